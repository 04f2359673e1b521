//! The setup wizard in headless Chromium: every step from the one-time link to an active
//! app with every health check green, a screenshot of each step, and the page framed only
//! by the org's console.

use byoc_sim::salesforce::ConnectedApp;

use crate::bridge::{API_KEY, CHANNEL, CONSUMER_KEY, CONTEXT, SENDER, USERNAME};
use crate::browser::Browser;
use crate::helpers::TestDb;
use crate::wizard::fresh;

#[tokio::test]
async fn the_wizard_in_a_browser_walks_every_step_to_green_and_shows_only_inside_the_org() {
    let Some(mut browser) = Browser::start("wizard").await else { return };
    let setup = fresh(TestDb::sqlite(), &[]).await;
    let bridge = setup.app.address.clone();
    let sf = setup.vendors.sf_running.base_url.clone();
    let link = byoc_bridge::web::admin::signin::issue_bootstrap(&setup.app.db, &bridge).await.unwrap().unwrap();

    // 1. BYOC connection, in Salesforce's order: the certificate first.
    browser.goto(&link).await;
    assert_eq!(browser.text("h1").await.as_deref(), Some("BYOC connection"));
    browser.screenshot("connection-empty").await;
    browser.fill("name", "acme").await;
    browser.submit("/setup/connection/keypair").await;
    assert!(browser.html().await.contains("The key pair is ready"));
    browser.screenshot("connection-certificate-and-instructions").await;
    // The admin downloads the certificate and uploads it to the connected app in Salesforce.
    let certificate = browser.download(&bridge, "/setup/certificate.crt").await;
    setup.vendors.sf.register_app(ConnectedApp {
        consumer_key: CONSUMER_KEY.into(),
        certificate_pem: certificate,
        approved_users: vec![USERNAME.into()],
        scopes: vec!["interaction_api".into(), "api".into()],
        callback_urls: vec![format!("{bridge}/setup/oauth/callback")],
    });
    // Then the consumer key Salesforce gave, with the org's details (production is chosen).
    let typed = ["name", "org_type"];
    for (name, value) in setup.connection_fields().into_iter().filter(|(n, _)| !typed.contains(n)) {
        browser.fill(name, &value).await;
    }
    browser.submit("/setup/connection").await;
    let html = browser.html().await;
    assert!(html.contains("Connected to org"), "{html}");
    browser.screenshot("connection").await;

    // 2. Application: the channel definition, then the org's channel made from it.
    browser.click("a[href=\"/setup/application\"]").await;
    browser.fill("authorization_context", CONTEXT).await;
    browser.submit("/setup/application/definition").await;
    assert!(browser.html().await.contains(&format!("ConversationChannelDefinition {CONTEXT}")));
    browser.click(&format!("option[value=\"{CHANNEL}\"]")).await;
    browser.fill("scrt_url", &sf).await;
    browser.fill("welcome_message", "An agent will be with you shortly.").await;
    browser.submit("/setup/application").await;
    let notice = browser.text(".notice.good").await.unwrap_or_default();
    assert!(notice.starts_with("Saved. Conversations use the channel definition"), "{notice}");
    browser.screenshot("application").await;

    // 3. Infobip account.
    browser.click("a[href=\"/setup/infobip\"]").await;
    browser.fill("base_url", &setup.vendors.ib_running.base_url).await;
    browser.fill("api_key", API_KEY).await;
    browser.submit("/setup/infobip").await;
    assert!(browser.html().await.contains("The key works"));
    browser.screenshot("infobip").await;

    // 4. Senders.
    browser.click("a[href=\"/setup/senders\"]").await;
    browser.click(&format!("input[value=\"main:{SENDER}\"]")).await;
    browser.submit("/setup/senders").await;
    assert!(browser.html().await.contains("Saved: 1 sender(s)."));
    browser.screenshot("senders").await;

    // 5. Summary: activate, and wait for the subscription to come up.
    let cancel = tokio_util::sync::CancellationToken::new();
    tokio::spawn(setup.app.subscriber.clone().run(cancel.clone()));
    browser.click("a[href=\"/setup/summary\"]").await;
    browser.fill("webhook_secret", "a-long-random-secret-entered-in-infobip").await;
    browser.submit("/setup/webhook-secret").await;
    browser.submit("/setup/activate").await;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while browser.html().await.contains("class=\"bad\"") {
        assert!(std::time::Instant::now() < deadline, "checks stayed red: {}", browser.html().await);
        tokio::time::sleep(std::time::Duration::from_millis(250)).await;
        browser.goto(&format!("{bridge}/setup/summary")).await;
    }
    assert_eq!(browser.html().await.matches("class=\"good\"").count(), 7);
    browser.screenshot("summary").await;
    cancel.cancel();

    // Inside the org's console the page shows (the iframe's `?id=` is accepted)...
    let src: String = url::form_urlencoded::byte_serialize(format!("{bridge}/").as_bytes()).collect();
    browser.goto(&format!("{sf}/__sim/console?src={src}")).await;
    browser.client.enter_frame(0).await.unwrap();
    assert_eq!(browser.text("h1").await.as_deref(), Some("Summary"));
    assert!(browser.html().await.contains("Health checks"));
    browser.client.enter_parent_frame().await.unwrap();
    browser.screenshot("in-the-console").await;
    // ...framed by any other origin, the browser refuses it.
    browser.goto(&format!("data:text/html,<iframe src=\"{bridge}/setup/summary\"></iframe>")).await;
    browser.client.enter_frame(0).await.unwrap();
    let framed = browser.html().await;
    assert!(!framed.contains("Health checks"), "the page must not render in a foreign frame: {framed}");
    browser.client.enter_parent_frame().await.unwrap();

    // An admin signs in from inside the console: Salesforce's login runs in a popup, which
    // hands the session to the iframe.
    setup.vendors.sf.add_user("admin@acme.example", "Ada Admin", "System Administrator");
    browser.goto(&format!("{sf}/__sim/console?src={src}")).await;
    let console = browser.client.window().await.unwrap();
    browser.client.enter_frame(0).await.unwrap();
    browser.submit("/setup/signout").await;
    assert_eq!(browser.text("h1").await.as_deref(), Some("Sign in"));
    browser.screenshot("sign-in-in-the-console").await;
    browser.client.find(fantoccini::Locator::Css("a[data-popup]")).await.unwrap().click().await.unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    let popup = loop {
        let windows = browser.client.windows().await.unwrap();
        if let Some(w) = windows.into_iter().find(|w| *w != console) {
            break w;
        }
        assert!(std::time::Instant::now() < deadline, "no sign-in popup");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    };
    browser.client.switch_to_window(popup).await.unwrap();
    browser.click("input[value=\"admin@acme.example\"]").await;
    browser.client.find(fantoccini::Locator::Css("button[type=submit]")).await.unwrap().click().await.unwrap();
    while browser.client.windows().await.unwrap().len() > 1 {
        assert!(std::time::Instant::now() < deadline, "the sign-in popup did not close");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    browser.client.switch_to_window(console).await.unwrap();
    browser.client.enter_frame(0).await.unwrap();
    while browser.text("h1").await.as_deref() != Some("Summary") {
        assert!(std::time::Instant::now() < deadline, "the iframe did not sign in: {}", browser.html().await);
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert!(browser.html().await.contains("Ada Admin"));
    browser.client.enter_parent_frame().await.unwrap();
    browser.screenshot("signed-in-in-the-console").await;
    browser.close().await;
}
