//! The template panel in headless Chromium: an agent signs in with Salesforce, chooses a
//! sender, searches, fills (with a value picked from the session), watches the preview
//! follow, and sends; the simulated Infobip gets a request valid against Infobip's spec.

use byoc_sim::infobip::webhooks::delivery_report;
use fantoccini::Locator;

use crate::bridge::{Bridge, SENDER};
use crate::browser::Browser;
use crate::helpers::TestDb;
use crate::panel::{USER, prepare_session};

/// Signs the agent in with Salesforce (the simulated login page) and waits for the panel of
/// `session`: a sign-in in the panel's own window goes on to it by itself.
async fn sign_in_to_the_panel(browser: &Browser, base: &str, session: &str) {
    browser.goto(&format!("{base}/setup/signin?app=acme&next=%2Ftemplates%3Fid%3D{session}")).await;
    browser.click("input[value=\"agent@acme.example\"]").await;
    browser.click("button[type=submit]").await;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while browser.text("h1").await.as_deref() != Some("WhatsApp templates") {
        assert!(std::time::Instant::now() < deadline, "not on the panel: {}", browser.html().await);
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn an_agent_sends_a_template_from_the_panel_in_a_browser() {
    let Some(mut browser) = Browser::start("panel").await else { return };
    let bridge = Bridge::start(TestDb::sqlite()).await;
    let session = prepare_session(&bridge).await;
    let base = bridge.app.address.clone();

    // Sign in with Salesforce (the simulated login page), back to the panel.
    browser.goto(&format!("{base}/templates?id={session}")).await;
    assert_eq!(browser.text("h1").await.as_deref(), Some("Sign in"));
    sign_in_to_the_panel(&browser, &base, &session).await;
    assert!(browser.html().await.contains("Outside the 24-hour window"));
    browser.screenshot("signed-in").await;

    // The app's lone sender is chosen already; search: the list filters as the agent types.
    assert!(browser.html().await.contains(&format!("1. Sender: +{SENDER}")));
    browser.fill("q", "marketing").await;
    let order = browser.client.find(Locator::Css("li[data-search^=\"order_update\"]")).await.unwrap();
    assert!(!order.is_displayed().await.unwrap(), "filtered out while typing");
    browser.screenshot("search").await;
    browser.fill("q", "order").await;
    browser.click("a[href*=\"template=order_update\"]").await;

    // Fill: a value from the session through the picker, the preview following.
    browser.fill("header_text", "42").await;
    browser.click("#body_1").await;
    browser.click("option[value=\"Ann Contact\"]").await;
    browser.click("#insert").await;
    browser.fill("body_2", "A-42").await;
    browser.fill("button_1", "A-42").await;
    assert_eq!(browser.text("#preview-body").await.as_deref(), Some("Hi Ann Contact, your order A-42 has shipped."));
    assert_eq!(browser.text("#preview-header").await.as_deref(), Some("Order 42"));
    browser.screenshot("filled").await;

    browser.submit("/templates/send").await;
    assert!(browser.html().await.contains(&format!("Sent to +{USER}.")), "{}", browser.html().await);
    browser.screenshot("sent").await;
    let sent = bridge.ib.sent();
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0].to, USER);
    let request = serde_json::json!({ "messages": [sent[0].body.clone()] });
    crate::helpers::specs()
        .whatsapp
        .validate_request("post", "/whatsapp/1/message/template", "application/json", &request)
        .unwrap();
    assert_eq!(
        sent[0].body["content"]["templateData"]["body"]["placeholders"],
        serde_json::json!(["Ann Contact", "A-42"])
    );
    browser.close().await;
}

/// In the 400 px side panel of the Messaging Session page: nothing runs off the side, the lone
/// sender's templates show at once with the sender folded to one line, the chosen template
/// folds too, the preview sits above Send, and quick-reply payloads wait under "Advanced".
#[tokio::test]
async fn the_panel_fits_a_400_px_side_panel_with_a_lone_sender() {
    let Some(mut browser) = Browser::start_sized("panel-400px", 400, 1000).await else { return };
    let bridge = Bridge::start(TestDb::sqlite()).await;
    let session = prepare_session(&bridge).await;
    let base = bridge.app.address.clone();
    sign_in_to_the_panel(&browser, &base, &session).await;
    let sender = browser.client.find(Locator::Css("details.done-step")).await.unwrap();
    assert_eq!(sender.attr("open").await.unwrap(), None, "the chosen sender is folded to one line");
    let order = browser.client.find(Locator::Css("a[href*=\"template=order_update\"]")).await.unwrap();
    assert!(order.is_displayed().await.unwrap(), "the lone sender's templates show at once");
    browser.assert_fits(400).await;
    browser.screenshot("lone-sender").await;

    browser.click("a[href*=\"template=order_update\"]").await;
    assert!(browser.html().await.contains("2. Template: order_update · en"), "the chosen template folds too");
    let payload = browser.client.find(Locator::Css("details.advanced #button_2")).await.unwrap();
    assert!(!payload.is_displayed().await.unwrap(), "the quick reply's payload waits under Advanced");
    let above = "return document.getElementById('preview').compareDocumentPosition(document.querySelector('#send-form button[type=submit]')) & Node.DOCUMENT_POSITION_FOLLOWING";
    assert_ne!(browser.client.execute(above, vec![]).await.unwrap(), serde_json::json!(0), "the preview is above Send");
    browser.assert_fits(400).await;
    browser.screenshot("template-chosen").await;

    browser.fill("header_text", "42").await;
    browser.fill("body_1", "Ann").await;
    browser.fill("body_2", "A-42").await;
    browser.fill("button_1", "A-42").await;
    browser.submit("/templates/send").await;
    assert!(browser.html().await.contains(&format!("Sent to +{USER}.")), "{}", browser.html().await);
    browser.assert_fits(400).await;
    browser.screenshot("sent").await;

    // WhatsApp reports the delivery: the status changes in the panel by itself, and the
    // panel around it is not reloaded (the agent's typing would be lost).
    browser.client.execute("window.notReloaded = true", vec![]).await.unwrap();
    let sent = bridge.ib.sent();
    let report = delivery_report(&sent[0].message_id, USER, true).to_string().into_bytes();
    let signature = bridge.signature(&report);
    let (status, _) =
        bridge.post_raw("/api/infobip/inbound/reports", report, &[("X-Infobip-Signature", &signature)]).await;
    assert_eq!(status, 200);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    loop {
        let frame = browser.client.find(Locator::Css("iframe.sent")).await.unwrap();
        frame.enter_frame().await.unwrap();
        let text = browser.text("ul.sent").await.unwrap_or_default();
        browser.client.enter_parent_frame().await.unwrap();
        if text.contains("delivered") {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "the status never changed: {text}");
        tokio::time::sleep(std::time::Duration::from_millis(250)).await;
    }
    let kept = browser.client.execute("return window.notReloaded === true", vec![]).await.unwrap();
    assert_eq!(kept, serde_json::json!(true), "the panel itself was not reloaded");
    browser.screenshot("delivered").await;
    browser.close().await;
}
