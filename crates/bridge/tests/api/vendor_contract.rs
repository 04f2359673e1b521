//! Where the bridge once disagreed with the vendors, found by clients and fakes written by
//! others; each test fails against the old behaviour, because the simulators refuse it as the
//! vendors do.

use byoc_bridge::db::OrgType;
use byoc_sim::infobip::webhooks::{delivery_report, inbound_envelope, inbound_result};
use byoc_sim::salesforce::SalesforceConfig;
use serde_json::json;

use crate::bridge::{Bridge, SENDER};
use crate::helpers::TestDb;

crate::on_both_backends!(
    a_sandbox_gets_its_tokens_for_the_sandbox_audience,
    a_reply_whatsapp_did_not_deliver_is_reported_to_the_agent_in_plain_words
);

/// The JWT audience follows the org's kind, not the URL the token is asked from (here the
/// simulator's, as a My Domain would be).
async fn a_sandbox_gets_its_tokens_for_the_sandbox_audience(db: TestDb) {
    let bridge = Bridge::start_full(db, &[], SalesforceConfig { sandbox: true, ..SalesforceConfig::default() }).await;
    bridge
        .change_app(|c, ctx, row| {
            let spec = byoc_bridge::provisioning::AppSpec { org_type: Some("sandbox".into()), ..Default::default() };
            byoc_bridge::provisioning::update_app(c, ctx, row, &spec)
        })
        .await;
    let row = bridge.app_row().await;
    assert_eq!(row.org_type, OrgType::Sandbox);
    assert!(row.login_url.starts_with("http://127.0.0.1"), "the token endpoint stays the org's own host");
    let message = inbound_result("447700900301", SENDER, "wamid.sandbox.1", json!({ "type": "TEXT", "text": "hi" }));
    assert_eq!(bridge.post_inbound(&inbound_envelope(vec![message])).await.0, 200);
    let report = bridge.drain().await;
    assert_eq!((report.completed, report.dead), (1, 0), "{report:?}");
    assert_eq!(bridge.sf.tokens_issued(), 1);
}

/// A delivery report of REJECTED, UNDELIVERABLE or EXPIRED reaches the agent as a
/// `MessageDeliveryFailed` on the entry it concerns (before, it only marked the message).
async fn a_reply_whatsapp_did_not_deliver_is_reported_to_the_agent_in_plain_words(db: TestDb) {
    let bridge = Bridge::start(db).await;
    let user = "447700900302";
    let conversation = bridge.open_conversation(user).await;
    let _subscription = bridge.subscribe().await;
    let entry = bridge.sf.agent_send_text(&conversation, "Your order shipped.").unwrap();
    bridge.until_relays_queued(1).await;
    bridge.drain().await;
    let sent = bridge.ib.sent();
    assert_eq!(sent.len(), 1);
    // WhatsApp refuses it: the customer's window is closed (7010 EC_NO_SESSION).
    let report = delivery_report(&sent[0].message_id, user, false);
    let bytes = report.to_string().into_bytes();
    let signature = bridge.signature(&bytes);
    let (status, body) =
        bridge.post_raw("/api/infobip/inbound/reports", bytes, &[("X-Infobip-Signature", &signature)]).await;
    assert_eq!((status, body["failed"].as_i64()), (200, Some(1)), "{body}");
    let done = bridge.drain().await;
    assert_eq!((done.completed, done.dead), (1, 0), "{done:?}");
    let failures = bridge.delivery_failures(user);
    let [failed] = failures.as_slice() else { panic!("one failure for the agent: {failures:?}") };
    assert_eq!(failed["failedConversationEntryIdentifier"], entry.as_str());
    assert_eq!(failed["errorCode"], "WHATSAPP_EC_NO_SESSION");
    let reason = failed["errorMessage"].as_str().unwrap();
    assert!(reason.contains("24 hours") && reason.contains("template"), "{reason}");
}
