//! What Infobip's and the chatbot's schemas refuse, the bridge refuses, naming the field and
//! storing nothing; a replayed webhook, handover or proactive call changes no row.

use byoc_sim::infobip::webhooks::{inbound_envelope, inbound_result};
use serde_json::{Value, json};

use crate::bridge::{Bridge, SENDER};
use crate::helpers::{TestDb, snapshot};

crate::on_both_backends!(
    wrongly_typed_webhook_fields_are_refused_by_name_and_store_nothing,
    a_replayed_webhook_handover_or_proactive_call_changes_no_row
);

const USER: &str = "447700900321";

fn text_message(id: &str) -> Value {
    inbound_result(USER, SENDER, id, json!({ "type": "TEXT", "text": "my card is 4111" }))
}

async fn post_handover(bridge: &Bridge, body: &Value) -> (u16, Value) {
    let bytes = body.to_string().into_bytes();
    let signature = bridge.signature(&bytes);
    bridge.post_raw("/api/infobip/inbound/answers", bytes, &[("X-Infobip-Signature", &signature)]).await
}

async fn post_proactive(bridge: &Bridge, token: &str, body: &Value) -> (u16, Value) {
    let bytes = body.to_string().into_bytes();
    bridge.post_raw("/api/conversations", bytes, &[("Authorization", &format!("Bearer {token}"))]).await
}

async fn api_token(bridge: &Bridge) -> String {
    use secrecy::ExposeSecret;
    bridge
        .change_app(|c, ctx, row| {
            Ok(byoc_bridge::provisioning::rotate_api_token(c, ctx, row)?.expose_secret().to_owned())
        })
        .await
}

async fn wrongly_typed_webhook_fields_are_refused_by_name_and_store_nothing(db: TestDb) {
    let bridge = Bridge::start(db).await;
    let token = api_token(&bridge).await;
    let before = snapshot(&bridge.app.db).await;
    let with = |pointer: &str, value: Value| {
        let mut m = text_message("wamid.typed");
        *m.pointer_mut(pointer).unwrap() = value;
        inbound_envelope(vec![m])
    };
    for (body, problem) in [
        (with("/receivedAt", json!(1_735_725_000)), "results[0].receivedAt must be a string"),
        (with("/message/text", json!({ "body": "my card is 4111" })), "results[0].message.text must be a string"),
        (with("/to", json!(447_860_099_299_u64)), "results[0].to must be a string"),
        (with("/messageId", json!(7)), "results[0].messageId must be a string"),
        (with("/from", json!(447_700_900_321_u64)), "results[0].from must be a string"),
        (with("/message/type", json!(["TEXT"])), "results[0].message.type must be a string"),
        (json!({ "results": { "0": {} } }), "`results` must be an array"),
        (json!({ "results": ["447700900321"] }), "results[0] must be an object"),
    ] {
        let (status, answer) = bridge.post_inbound(&body).await;
        assert_eq!((status, answer["error"].as_str()), (400, Some(problem)), "{body}");
        let said = answer.to_string();
        assert!(!said.contains("4111") && !said.contains("900321") && !said.contains("099299"), "{said}");
    }
    // A report with a wrongly typed error id is refused the same way.
    let report = json!({ "results": [{ "messageId": "m", "status": { "groupName": "UNDELIVERABLE" },
                                       "error": { "id": "7" } }] });
    let bytes = report.to_string().into_bytes();
    let signature = bridge.signature(&bytes);
    let (status, answer) =
        bridge.post_raw("/api/infobip/inbound/reports", bytes, &[("X-Infobip-Signature", &signature)]).await;
    assert_eq!((status, answer["error"].as_str()), (400, Some("results[0].error.id must be an integer")));

    // The chatbot's handover and the proactive API: numbers are no strings there either.
    for (body, field) in [
        (json!({ "conversationId": 42, "senderNumber": USER }), "conversationId"),
        (json!({ "conversationId": "bot-1", "senderNumber": 447_700_900_321_u64 }), "senderNumber"),
    ] {
        let (status, answer) = post_handover(&bridge, &body).await;
        assert_eq!(status, 400, "{body}: {answer}");
        assert!(answer["error"].as_str().unwrap().starts_with(field), "{answer}");
    }
    let (status, answer) = post_proactive(&bridge, &token, &json!({ "to": 447_700_900_321_u64 })).await;
    assert_eq!(status, 400, "{answer}");
    assert!(answer["error"].as_str().unwrap().starts_with("to"), "{answer}");

    assert_eq!(snapshot(&bridge.app.db).await, before, "nothing refused changed a row");
}

async fn a_replayed_webhook_handover_or_proactive_call_changes_no_row(db: TestDb) {
    let bridge = Bridge::start(db).await;
    let token = api_token(&bridge).await;
    let webhook = inbound_envelope(vec![text_message("wamid.once")]);
    let (status, answer) = bridge.post_inbound(&webhook).await;
    assert_eq!((status, answer["accepted"].as_u64()), (200, Some(1)), "{answer}");
    let handover = json!({ "conversationId": "bot-7", "senderNumber": "447700900322" });
    let (status, first) = post_handover(&bridge, &handover).await;
    assert_eq!(status, 200, "{first}");
    let proactive = json!({ "to": "+447700900323", "routingAttributes": { "Reason": "order" } });
    let (status, started) = post_proactive(&bridge, &token, &proactive).await;
    assert!(status == 200 || status == 202, "{status} {started}");

    // Infobip redelivers, the chatbot retries, the shop's backend calls again: the answers are
    // the first ones', and not one stored value moves (times are kept to the microsecond).
    let before = snapshot(&bridge.app.db).await;
    let (status, again) = bridge.post_inbound(&webhook).await;
    assert_eq!((status, again["duplicates"].as_u64()), (200, Some(1)), "{again}");
    let (status, second) = post_handover(&bridge, &handover).await;
    assert_eq!((status, &second["handoverId"]), (200, &first["handoverId"]), "{second}");
    let (_, restarted) = post_proactive(&bridge, &token, &proactive).await;
    assert_eq!(restarted["id"], started["id"], "{restarted}");
    assert_eq!(snapshot(&bridge.app.db).await, before);
}
