//! The README's "Setting up an org", walked in headless Chromium at the width of a Salesforce
//! side panel (400 px) against the standalone simulators, each its own process (`sim
//! salesforce`, `sim infobip`, `serve`): from the one-time link, through Salesforce Setup
//! (a connected app from the bridge's certificate, the messaging channel) and the Infobip
//! portal (the subscription and its secret), with the mistakes an admin makes on the way,
//! to every check green and a message carried each way. Screenshots go to
//! `target/test-artifacts/setup-walk/`.

use std::io::{BufRead, BufReader};
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use crate::browser::Browser;
use crate::helpers::TestDb;
use crate::process::{command, until_page_contains};

/// A process of the binary, ended when dropped, and the first stdout line that has `needle`.
struct Process {
    child: Child,
}

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn spawn(test_db: &TestDb, args: &[&str], env: &[(&str, &str)], needle: &str) -> (Process, String) {
    let mut child =
        command(test_db, args).envs(env.iter().copied()).stdout(Stdio::piped()).stderr(Stdio::null()).spawn().unwrap();
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    let mut printed = String::new();
    let line = loop {
        let mut line = String::new();
        assert!(stdout.read_line(&mut line).unwrap() > 0, "{args:?} ended early: {printed}");
        printed.push_str(&line);
        if line.contains(needle) {
            break line;
        }
    };
    // Keep reading, so later output never meets a closed pipe.
    std::thread::spawn(move || std::io::copy(&mut stdout, &mut std::io::sink()));
    (Process { child }, line)
}

fn first_url(line: &str) -> String {
    let start = line.find("http://").unwrap_or_else(|| panic!("no URL in {line}"));
    line[start..].split(|c: char| c.is_whitespace() || c == '"').next().unwrap().to_owned()
}

/// The error shown on the field called `name`, once the page shows one.
async fn field_error(browser: &Browser, name: &str) -> String {
    browser.text(&format!("#{name}-error")).await.unwrap_or_else(|| panic!("no error on {name}"))
}

async fn page_shows(browser: &Browser, url: &str, needle: &str) {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        browser.goto(url).await;
        if browser.html().await.contains(needle) {
            return;
        }
        assert!(Instant::now() < deadline, "{url} never showed {needle:?}: {}", browser.html().await);
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test]
async fn an_admin_sets_up_an_org_from_the_setup_link_to_green_against_the_standalone_simulators() {
    let Some(mut browser) = Browser::start_sized("setup-walk", 400, 1000).await else { return };
    let (sf_db, ib_db, bridge_db) = (TestDb::sqlite(), TestDb::sqlite(), TestDb::sqlite());
    let (_sf, line) =
        spawn(&sf_db, &["sim", "salesforce", "--port", "0", "--pubsub-port", "0"], &[], "Salesforce simulator on");
    let sf = first_url(&line);
    let (_ib, line) = spawn(&ib_db, &["sim", "infobip", "--port", "0"], &[], "Infobip simulator on");
    let ib = first_url(&line);
    let env = [("BYOC__WORKER__ENABLED", "true"), ("BYOC__SALESFORCE__SUBSCRIBE", "true")];
    let (_bridge, line) = spawn(&bridge_db, &["serve"], &env, "setup_link");
    let event: serde_json::Value = serde_json::from_str(&line).unwrap();
    let link = event["url"].as_str().unwrap().to_owned();
    let bridge = link.split("/setup/").next().unwrap().to_owned();

    // 1. The BYOC connection: the name first, with a mistake, then the certificate.
    browser.goto(&link).await;
    assert_eq!(browser.text("h1").await.as_deref(), Some("BYOC connection"));
    browser.fill("name", "acme corp").await;
    browser.submit("/setup/connection/keypair").await;
    assert!(field_error(&browser, "name").await.contains("letters"), "{}", browser.html().await);
    browser.assert_fits(400).await;
    browser.screenshot("connection-a-wrong-name").await;
    browser.fill("name", "acme").await;
    browser.submit("/setup/connection/keypair").await;
    assert!(browser.html().await.contains("The key pair is ready"));
    browser.assert_fits(400).await;
    browser.screenshot("connection-certificate-and-instructions").await;
    let callback = format!("{bridge}/setup/oauth/callback");
    assert!(browser.texts(".copyable code").await.contains(&callback), "the callback URL to paste");
    // The admin downloads the certificate (a download: fetched with the browser's session).
    let certificate = browser.download(&bridge, "/setup/certificate.crt").await;
    let certificate_file = bridge_db.dir.path().join("byoc-bridge.crt");
    std::fs::write(&certificate_file, certificate).unwrap();

    // In Salesforce Setup: the connected app, first without a name, then as instructed.
    browser.goto(&format!("{sf}/__sim/setup")).await;
    let company = browser.texts("#company code").await;
    let (org_id, pubsub) = (company[0].clone(), company[3].clone());
    browser.submit("/__sim/setup/connected-app").await;
    assert!(browser.html().await.contains("Connected App Name: You must enter a value"));
    browser.fill("name", "Partner1 WhatsApp").await;
    browser.fill("callback_urls", &callback).await;
    for scope in ["interaction_api", "api"] {
        browser.click(&format!("input[name=scope][value={scope}]")).await;
    }
    browser.attach("certificate_file", &certificate_file).await;
    browser.click("input[name=user][value=\"integration@sandbox.example\"]").await;
    browser.submit("/__sim/setup/connected-app").await;
    let consumer_key = browser.text("code.consumer-key").await.expect("Salesforce gave a consumer key");
    browser.screenshot("salesforce-setup-connected-app").await;

    // Back in the wizard: two wrong values, both marked at once before Salesforce is asked.
    browser.goto(&format!("{bridge}/setup/connection")).await;
    browser.fill("my_domain", &sf).await;
    browser.fill("org_id", "not-an-org").await;
    browser.fill("integration_username", " ").await;
    browser.fill("consumer_key", &consumer_key).await;
    browser.submit("/setup/connection").await;
    assert!(field_error(&browser, "org_id").await.contains("15- or 18-character"));
    assert!(!field_error(&browser, "integration_username").await.is_empty());
    assert!(browser.html().await.contains("fix the 2 marked fields"), "{}", browser.html().await);
    browser.assert_fits(400).await;
    browser.screenshot("connection-two-wrong-values").await;
    // Then a mistyped key: refused on its field, nothing saved.
    browser.fill("my_domain", &sf).await;
    browser.fill("org_id", &org_id).await;
    browser.fill("integration_username", "integration@sandbox.example").await;
    browser.fill("consumer_key", "3MVG9-mistyped").await;
    browser.click("details.advanced summary").await;
    browser.fill("pubsub_endpoint", &pubsub).await;
    browser.submit("/setup/connection").await;
    assert!(field_error(&browser, "consumer_key").await.contains("does not know this consumer key"));
    assert!(!browser.html().await.contains("Connected to org"));
    browser.assert_fits(400).await;
    browser.screenshot("connection-a-wrong-consumer-key").await;
    browser.fill("consumer_key", &consumer_key).await;
    browser.submit("/setup/connection").await;
    assert!(browser.html().await.contains("Connected to org"), "{}", browser.html().await);
    browser.assert_fits(400).await;
    browser.screenshot("connection-saved").await;

    // 2. The application: a definition name Salesforce would refuse, then the right one.
    browser.goto(&format!("{bridge}/setup/application")).await;
    assert!(browser.html().await.contains("Your org has no such channel yet"));
    browser.fill("authorization_context", "Partner1 WhatsApp").await;
    browser.submit("/setup/application/definition").await;
    assert!(!field_error(&browser, "authorization_context").await.is_empty());
    browser.fill("authorization_context", "Partner1_WhatsApp").await;
    browser.submit("/setup/application/definition").await;
    assert!(browser.html().await.contains("ConversationChannelDefinition Partner1_WhatsApp"));
    browser.assert_fits(400).await;
    browser.screenshot("application-definition-created").await;
    // In Salesforce Setup: the channel, from the definition's tile.
    browser.goto(&format!("{sf}/__sim/setup")).await;
    browser.submit("/__sim/setup/channel").await;
    assert!(browser.html().await.contains("Created: the messaging channel"));
    browser.screenshot("salesforce-setup-channel").await;
    // Saved without choosing it: refused on the field; then chosen.
    browser.goto(&format!("{bridge}/setup/application")).await;
    browser.fill("scrt_url", &sf).await;
    browser.submit("/setup/application").await;
    assert!(field_error(&browser, "channel_address_identifier").await.contains("required"));
    browser.click("select[name=channel_address_identifier] option:nth-child(2)").await;
    browser.submit("/setup/application").await;
    let notice = browser.text(".notice.good").await.unwrap_or_default();
    assert_eq!(notice, "Saved. Conversations use the channel definition Partner1_WhatsApp.");
    browser.assert_fits(400).await;
    browser.screenshot("application-saved").await;

    // 3. Infobip: a wrong key, then the account's.
    browser.goto(&format!("{bridge}/setup/infobip")).await;
    browser.fill("base_url", &ib).await;
    browser.fill("api_key", "not-the-key").await;
    browser.submit("/setup/infobip").await;
    assert!(field_error(&browser, "api_key").await.contains("The key is wrong"));
    browser.fill("base_url", &ib).await;
    browser.fill("api_key", "sandbox-infobip-key").await;
    browser.submit("/setup/infobip").await;
    assert!(browser.html().await.contains("The key works"));
    browser.assert_fits(400).await;
    browser.screenshot("infobip").await;

    // 4. The sender.
    browser.goto(&format!("{bridge}/setup/senders")).await;
    browser.click("input[name=sender]").await;
    browser.submit("/setup/senders").await;
    assert!(browser.html().await.contains("Saved: 1 sender(s)."));

    // 5. Summary: activating with the secret unset is refused; a short secret too.
    browser.goto(&format!("{bridge}/setup/summary")).await;
    browser.submit("/setup/activate").await;
    assert!(browser.html().await.contains("check(s) above are red"), "{}", browser.html().await);
    browser.assert_fits(400).await;
    browser.screenshot("summary-activation-refused").await;
    browser.fill("webhook_secret", "short").await;
    browser.submit("/setup/webhook-secret").await;
    assert!(field_error(&browser, "webhook_secret").await.contains("16 to 255 characters"));
    let secret = "correct-horse-battery-staple-42";
    browser.fill("webhook_secret", secret).await;
    browser.submit("/setup/webhook-secret").await;
    assert!(!browser.html().await.contains(secret), "the secret is never shown back");
    let urls = browser.texts(".copyable code").await;
    let (inbound, reports, notifications) = (urls[0].clone(), urls[1].clone(), urls[2].clone());

    // In the Infobip portal: the subscription to those webhooks, with the same secret.
    browser.goto(&format!("{ib}/__sim/portal")).await;
    browser.fill("inbound_url", &inbound).await;
    browser.fill("reports_url", &reports).await;
    browser.fill("notifications_url", &notifications).await;
    browser.fill("secret_key", secret).await;
    browser.submit("/__sim/portal/subscription").await;
    assert!(browser.html().await.contains("Subscription saved"));
    browser.screenshot("infobip-portal-subscription").await;

    // Activation, and every check green once the subscription is up.
    browser.goto(&format!("{bridge}/setup/summary")).await;
    browser.submit("/setup/activate").await;
    assert!(browser.html().await.contains("Activated"), "{}", browser.html().await);
    let deadline = Instant::now() + Duration::from_secs(30);
    while browser.html().await.contains("class=\"bad\"") {
        assert!(Instant::now() < deadline, "checks stayed red: {}", browser.html().await);
        tokio::time::sleep(Duration::from_millis(250)).await;
        browser.goto(&format!("{bridge}/setup/summary")).await;
    }
    browser.assert_fits(400).await;
    browser.screenshot("summary-green").await;

    // A customer's message reaches the console; the agent's answer reaches the phone.
    let user = "447700900777";
    browser.goto(&format!("{ib}/__sim/phone?user={user}")).await;
    browser.fill("text", "Hello, I set you up").await;
    browser.submit("/__sim/phone/send").await;
    until_page_contains(&format!("{sf}/__sim/agent/list"), user).await;
    let state: serde_json::Value = reqwest::get(format!("{sf}/__sim/state")).await.unwrap().json().await.unwrap();
    let conversation = state["conversations"][0]["identifier"].as_str().unwrap().to_owned();
    until_page_contains(&format!("{sf}/__sim/agent/{conversation}/feed"), "Hello, I set you up").await;
    browser.goto(&format!("{sf}/__sim/agent?c={conversation}")).await;
    browser.fill("text", "Welcome aboard").await;
    browser.submit(&format!("/__sim/agent/{conversation}/text")).await;
    page_shows(&browser, &format!("{ib}/__sim/phone/chat?user={user}"), "Welcome aboard").await;
    browser.screenshot("phone-answered").await;

    // WhatsApp reports the customer's identity changed: the agent is warned in the conversation.
    let posted: serde_json::Value = reqwest::Client::new()
        .post(format!("{ib}/__sim/webhooks/identity-change"))
        .json(&serde_json::json!({ "user": user }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(posted["statuses"], serde_json::json!([200]), "{posted}");
    until_page_contains(&format!("{sf}/__sim/agent/{conversation}/feed"), "may now belong to someone else").await;

    // The checklist's last item: the template panel on the Messaging Session page, given the
    // URL the summary shows; the console then shows it beside the conversation (signing in).
    let panel_url = format!("{bridge}/templates");
    browser.goto(&format!("{bridge}/setup/summary")).await;
    assert!(browser.texts(".copyable code").await.contains(&panel_url), "the panel's URL to paste");
    browser.goto(&format!("{sf}/__sim/setup")).await;
    browser.fill("url", &panel_url).await;
    browser.submit("/__sim/setup/record-page").await;
    browser.goto(&format!("{sf}/__sim/agent?c={conversation}")).await;
    let frame = browser.client.find(fantoccini::Locator::Css("iframe.panel")).await.unwrap();
    let src = frame.attr("src").await.unwrap().unwrap_or_default();
    assert!(src.starts_with(&format!("{panel_url}?id=0Mw")), "{src}");
    browser.close().await;
}
