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
    a_reply_whatsapp_did_not_deliver_is_reported_to_the_agent_in_plain_words,
    a_long_reply_goes_as_several_messages_in_order_and_resumes_where_it_failed
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
    // The capabilities registered at activation (production audience) was refused; this one
    // token is the sandbox's.
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

/// WhatsApp takes texts of at most 4,096 characters (Infobip refuses longer ones, and the
/// reply became a dead letter): a longer reply goes as several messages, cut at sentences, in
/// order; when one part fails, the retry goes on from that part.
async fn a_long_reply_goes_as_several_messages_in_order_and_resumes_where_it_failed(db: TestDb) {
    use byoc_sim::faults::Fault;
    let bridge = Bridge::start(db).await;
    let user = "447700900303";
    let conversation = bridge.open_conversation(user).await;
    let _subscription = bridge.subscribe().await;
    let text: String = (0..250).map(|i| format!("Step {i:03} of the instructions is short. ")).collect();
    assert!(text.chars().count() > 2 * 4096);
    // The first part goes through; the second meets a server error.
    bridge.ib.faults.script("/whatsapp/1/message/text", Fault::Pass);
    bridge.ib.faults.script("/whatsapp/1/message/text", Fault::ServerError);
    let ok = bridge.ib.sent().len();
    bridge.sf.agent_send_text(&conversation, &text).unwrap();
    bridge.until_relays_queued(1).await;
    bridge.drain_all().await;
    let parts: Vec<String> =
        bridge.ib.sent()[ok..].iter().map(|m| m.body["content"]["text"].as_str().unwrap().to_owned()).collect();
    assert_eq!(parts.len(), 3, "{:?}", parts.iter().map(String::len).collect::<Vec<_>>());
    assert!(parts.iter().all(|p| p.chars().count() <= 4096 && p.ends_with("short.")));
    assert_eq!(parts.join(" "), text.trim_end(), "every word, in order, none twice");
    assert!(bridge.delivery_failures(user).is_empty());
    assert_eq!(bridge.ib.faults.injected(), 2, "the failure happened on the second part");
}
