//! What the logs must never hold: query strings (OAuth codes and states, the setup token, media
//! signatures), phone numbers and customers' words, even where a vendor quotes them back.

use byoc_sim::faults::Fault;
use byoc_sim::infobip::webhooks::{inbound_envelope, inbound_result};
use serde_json::json;

use crate::bridge::{Bridge, SENDER};
use crate::helpers::{TestDb, captured_logs};

crate::on_both_backends!(
    logs_hold_no_secret_no_phone_number_and_no_message_text,
    each_message_delivered_or_sent_is_one_info_line_of_ids
);

/// An operator follows a message through the log by its ids: one info line when Salesforce
/// took it, one when WhatsApp did, and nothing in them that identifies the customer.
async fn each_message_delivered_or_sent_is_one_info_line_of_ids(db: TestDb) {
    let logs = captured_logs();
    let bridge = Bridge::start(db).await;
    let user = "447700900777";
    let conversation = bridge.open_conversation(user).await;
    let _subscription = bridge.subscribe().await;
    bridge.sf.agent_send_text(&conversation, "Happy to help.").unwrap();
    bridge.until_relays_queued(1).await;
    bridge.drain().await;
    assert_eq!(bridge.ib.sent().len(), 1);

    let text = logs.text();
    let lines: Vec<serde_json::Value> = text
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|l| l["app.id"] == bridge.app_id.as_str())
        .collect();
    for (message, ids) in [
        ("message delivered to Salesforce", ["conversation.id", "message.id", "entry.id"]),
        ("message sent to WhatsApp", ["conversation.id", "message.id", "entry.id"]),
    ] {
        let found: Vec<&serde_json::Value> = lines.iter().filter(|l| l["message"] == message).collect();
        assert_eq!(found.len(), 1, "{message}: {found:#?}");
        let line = found[0];
        assert_eq!(line["level"], "INFO");
        for id in ids {
            assert!(!line[id].is_null(), "{message} names {id}: {line}");
        }
        let shown = line.to_string();
        assert!(!shown.contains(user) && !shown.contains("Happy") && !shown.contains("hello"), "{shown}");
    }
}

async fn logs_hold_no_secret_no_phone_number_and_no_message_text(db: TestDb) {
    let logs = captured_logs();
    let bridge = Bridge::start(db).await;
    // Unique to this run (and this backend), so other tests' lines cannot mask or fake a hit.
    let marker = uuid::Uuid::new_v4().simple().to_string();
    let user = format!("4477{}", &u128::from_str_radix(&marker[..12], 16).unwrap().to_string()[..8]);

    for path in [
        format!("/setup/bootstrap?token=S3CRET{marker}"),
        format!("/setup/oauth/callback?code=S3CRET{marker}&state=S3CRET{marker}"),
        format!("/setup/handoff?code=S3CRET{marker}"),
        format!("/media/1/0?expires=4102444800&signature=S3CRET{marker}"),
    ] {
        let status = bridge.app.get(&path).await.status();
        assert!(status.is_client_error(), "{path}: {status}");
    }

    // Salesforce refuses the customer's message, quoting it back: the job's log names the code.
    bridge.sf.faults.script("/api/v1/interactions", Fault::RefuseQuoting);
    let words = format!("my card number is 4111111111111111, words {marker}");
    let message = inbound_result(&user, SENDER, "wamid.logs", json!({ "type": "TEXT", "text": words }));
    let (status, _) = bridge.post_inbound(&inbound_envelope(vec![message])).await;
    assert_eq!(status, 200);
    bridge.drain().await;
    assert_eq!(bridge.sf.faults.scripted().len(), 0, "Salesforce refused the delivery");

    // Bodies that do not parse, holding numbers where a string belongs.
    for body in [json!({ "results": format!("{user}") }), json!({ "results": [{ "messageId": 7, "from": user }] })] {
        let (status, _) = bridge.post_inbound(&body).await;
        assert_eq!(status, 400);
    }

    let text = logs.text();
    assert!(text.contains("10045"), "the refusal is logged by its code");
    let mine: Vec<&str> = text.lines().filter(|l| l.contains(&marker) || l.contains(&user)).collect();
    assert!(mine.is_empty(), "logged: {mine:#?}");
    assert!(!text.contains("4111111111111111"), "a card number reached the log");
}
