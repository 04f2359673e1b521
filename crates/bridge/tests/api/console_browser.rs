//! The operations console in headless Chromium at 400 px: an admin signs in with Salesforce,
//! reads the health checks, finds the dead letter, follows it to its conversation's trace,
//! retries it there and sees it delivered; then finds the conversation by its number.
//! Screenshots are kept in `target/test-artifacts/console-400px/`.

use crate::bridge::{Bridge, CHANNEL};
use crate::browser::Browser;
use crate::console::{CUSTOMER, allow_admin, conversation_id, dead_letter};
use crate::helpers::TestDb;

#[tokio::test]
async fn an_admin_retries_a_dead_letter_from_its_trace_in_a_400px_browser() {
    let Some(mut browser) = Browser::start_sized("console-400px", 400, 1000).await else { return };
    let bridge = Bridge::start(TestDb::sqlite()).await;
    let job = dead_letter(&bridge).await;
    let conversation = conversation_id(&bridge).await;
    allow_admin(&bridge);
    let base = bridge.app.address.clone();

    // Signing in with Salesforce (the simulated login page) leads to the console.
    browser.goto(&format!("{base}/setup/signin?app=acme&next=%2Fconsole")).await;
    browser.click("input[value=\"admin@acme.example\"]").await;
    browser.click("button[type=submit]").await;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while browser.text("h1").await.as_deref() != Some("Operations") {
        assert!(std::time::Instant::now() < deadline, "not on the console: {}", browser.html().await);
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let html = browser.html().await;
    assert!(html.contains("Salesforce token (JWT bearer flow) obtained."), "{html}");
    assert!(html.contains("1 dead letter(s)"), "{html}");
    assert!(!html.contains("<script"), "the console needs no JavaScript");
    browser.assert_fits(400).await;
    browser.screenshot("health").await;

    browser.click("nav.tabs a[href=\"/console/dead-letters\"]").await;
    assert_eq!(browser.text("h1").await.as_deref(), Some("Dead letters"));
    assert!(browser.text("li.item").await.unwrap_or_default().contains("10031"), "{}", browser.html().await);
    browser.assert_fits(400).await;
    browser.screenshot("dead-letters").await;

    // Its conversation's trace: the failed attempt, then the retry from there.
    browser.click(&format!("a[href=\"/console/conversations/{conversation}\"]")).await;
    assert_eq!(browser.text("h1").await.as_deref(), Some("Conversation trace"));
    let html = browser.html().await;
    assert!(html.contains("It became a dead letter.") && !html.contains(CUSTOMER), "{html}");
    browser.assert_fits(400).await;
    browser.screenshot("trace-dead-letter").await;
    bridge.sf.set_channel_active(CHANNEL, true);
    browser.submit(&format!("/console/dead-letters/{job}/retry")).await;
    assert!(browser.text(".notice.good").await.unwrap_or_default().starts_with("Put back in the queue"));
    bridge.drain().await;
    browser.goto(&format!("{base}/console/conversations/{conversation}")).await;
    let html = browser.html().await;
    assert!(html.contains("In Salesforce") && html.contains("Retried: put back in the queue by"), "{html}");
    browser.assert_fits(400).await;
    browser.screenshot("trace-delivered").await;

    // The conversation again, found by the last digits of the number.
    browser.click("nav.tabs a[href=\"/console/conversations\"]").await;
    browser.fill("q", "0002").await;
    browser.click("form[role=search] button[type=submit]").await;
    assert_eq!(browser.text("h2 + ul.items a").await.as_deref(), Some("Customer …0002 with +447860099299"));
    browser.assert_fits(400).await;
    browser.screenshot("search").await;
    browser.close().await;
}
