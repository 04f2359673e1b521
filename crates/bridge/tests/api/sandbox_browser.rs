//! The sandbox as its three users meet it, in headless Chromium: the customer's phone (a draft
//! survives the chat refreshing, a tap on a button answers the agent), the agent's console with
//! the WhatsApp template panel beside the conversation, signed in through the org, which stops
//! taking replies once the session ended, and the admin's setup, signed in. Screenshots of each
//! go to `target/test-artifacts/sandbox/`.

use std::time::{Duration, Instant};

use fantoccini::Locator;

use crate::browser::Browser;
use crate::process::{Sandbox, until_page_contains};

/// The visible text inside the iframe matching `css`, once it shows `needle` (the frames
/// refresh themselves; the sandbox works in other processes).
async fn frame_shows(browser: &Browser, css: &str, needle: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let frame = browser.client.find(Locator::Css(css)).await.unwrap_or_else(|e| panic!("{css}: {e}"));
        frame.enter_frame().await.unwrap();
        let text = browser
            .client
            .execute("return document.body ? document.body.innerText : ''", vec![])
            .await
            .ok()
            .and_then(|v| v.as_str().map(str::to_owned))
            .unwrap_or_default();
        browser.client.enter_parent_frame().await.unwrap();
        if text.contains(needle) {
            return text;
        }
        assert!(Instant::now() < deadline, "{css} never showed {needle:?}:\n{text}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn input_value(browser: &Browser, css: &str) -> String {
    let field = browser.client.find(Locator::Css(css)).await.unwrap();
    field.prop("value").await.unwrap().unwrap_or_default()
}

#[tokio::test]
async fn the_sandbox_shows_the_phone_the_console_with_its_panel_and_the_setup() {
    let Some(mut browser) = Browser::start("sandbox").await else { return };
    let sandbox = Sandbox::start();
    let phone = sandbox.link("WhatsApp user");
    let console = sandbox.link("as the agent");
    let setup = sandbox.link("as the admin");
    let sf = console.split("/__sim").next().unwrap().to_owned();
    let user = "447700900123";

    // The customer writes.
    browser.goto(&format!("{phone}?user={user}")).await;
    browser.fill("text", "Hello, is my order on its way?").await;
    browser.submit("/__sim/phone/send").await;
    frame_shows(&browser, "iframe.chat", "Hello, is my order on its way?").await;

    // The agent sees it, with the template panel beside it, signed in through the org.
    browser.goto(&console).await;
    frame_shows(&browser, "iframe.feed", "Hello, is my order on its way?").await;
    let panel = frame_shows(&browser, "iframe.panel", "WhatsApp templates").await;
    assert!(panel.contains("Alex Agent"), "the panel names the signed-in agent: {panel}");
    browser.screenshot("console-with-template-panel").await;

    // The agent asks with buttons; the customer, typing a draft meanwhile, taps one.
    let state: serde_json::Value = reqwest::get(format!("{sf}/__sim/state")).await.unwrap().json().await.unwrap();
    let conversation = state["conversations"][0]["identifier"].as_str().unwrap().to_owned();
    browser.fill("text", "Let me check.").await;
    browser.submit(&format!("/__sim/agent/{conversation}/text")).await;
    let client = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
    let asked = client
        .post(format!("{sf}/__sim/agent/{conversation}/choices"))
        .form(&[("text", "Did it arrive?"), ("options", "Yes, No"), ("format", "Buttons")])
        .send()
        .await
        .unwrap();
    assert_eq!(asked.status(), 303);

    browser.goto(&format!("{phone}?user={user}")).await;
    browser.fill("text", "a draft not sent yet").await;
    frame_shows(&browser, "iframe.chat", "Did it arrive?").await;
    frame_shows(&browser, "iframe.chat", "Let me check.").await;
    assert_eq!(input_value(&browser, "input[name=text]").await, "a draft not sent yet", "the refresh kept the draft");
    browser.screenshot("phone-with-buttons").await;
    let frame = browser.client.find(Locator::Css("iframe.chat")).await.unwrap();
    frame.enter_frame().await.unwrap();
    browser.click("form[action=\"/__sim/phone/tap\"] button").await;
    browser.client.enter_parent_frame().await.unwrap();
    until_page_contains(&format!("{sf}/__sim/agent/{conversation}/feed"), "Chose “Yes”").await;

    // The session ends: the console offers no reply box, and refuses one posted anyway.
    browser.goto(&format!("{console}?c={conversation}")).await;
    browser.submit(&format!("/__sim/agent/{conversation}/end")).await;
    let ended = browser.text("main .ended").await.unwrap_or_default();
    assert!(ended.contains("has ended"), "{ended}");
    frame_shows(&browser, "iframe.feed", "The session ended").await;
    browser.screenshot("console-after-the-session-ended").await;
    let late = client
        .post(format!("{sf}/__sim/agent/{conversation}/text"))
        .form(&[("text", "one more thing")])
        .send()
        .await
        .unwrap();
    assert_eq!(late.status(), 409);

    // The admin's link opens the setup, signed in.
    browser.goto(&setup).await;
    let deadline = Instant::now() + Duration::from_secs(20);
    while !browser.html().await.contains("Avery Admin") {
        assert!(Instant::now() < deadline, "the admin link did not sign in: {}", browser.html().await);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let html = browser.html().await;
    assert!(html.contains("Summary"), "an app already set up opens on its summary: {html}");
    // What is left in Salesforce Setup, checked where the bridge can tell: the agent used the
    // panel, and the conversation got a messaging session.
    assert!(html.contains("Still to do in Salesforce Setup"), "{html}");
    assert!(html.contains("✓ Done: the template panel on the Messaging Session record page"), "{html}");
    assert!(html.contains("✓ Done: routing"), "{html}");
    browser.screenshot("setup-signed-in-as-the-admin").await;

    browser.close().await;
    assert_eq!(sandbox.stop(), Some(0));
}
