//! `POST /api/handovers`: a bot other than Infobip's hands a customer over with its
//! transcript in the request, which arrives in order before the customer's next message.

use byoc_bridge::provisioning as prov;
use byoc_sim::infobip::webhooks::{inbound_envelope, inbound_result};
use serde_json::{Value, json};

use crate::bridge::{Bridge, SENDER};
use crate::helpers::TestDb;

crate::on_both_backends!(
    any_bot_hands_over_with_its_transcript_in_order_before_the_next_message,
    bad_or_unauthenticated_handovers_are_refused_and_store_nothing
);

async fn api_token(bridge: &Bridge) -> String {
    use secrecy::ExposeSecret;
    bridge.change_app(|c, ctx, row| Ok(prov::rotate_api_token(c, ctx, row)?.expose_secret().to_owned())).await
}

async fn hand_over(bridge: &Bridge, token: &str, body: &Value) -> (u16, Value) {
    let bytes = body.to_string().into_bytes();
    bridge.post_raw("/api/handovers", bytes, &[("Authorization", &format!("Bearer {token}"))]).await
}

fn texts(bridge: &Bridge, user: &str) -> Vec<String> {
    bridge
        .sf
        .conversation_for(user)
        .map(|c| c.entries)
        .unwrap_or_default()
        .iter()
        .filter_map(|e| e.payload.pointer("/payload/abstractMessage/staticContent/text").and_then(Value::as_str))
        .map(str::to_owned)
        .collect()
}

async fn any_bot_hands_over_with_its_transcript_in_order_before_the_next_message(db: TestDb) {
    let bridge = Bridge::start(db).await;
    let token = api_token(&bridge).await;
    let user = "447700900710";
    let start = chrono::Utc::now() - chrono::Duration::minutes(5);
    let at = |s: i64| (start + chrono::Duration::seconds(s)).to_rfc3339();
    let call = json!({
        "conversationId": "my-bot-42", "endUser": format!("+{user}"),
        "routingAttributes": { "Topic": "returns" },
        "transcript": [
            { "speaker": "bot", "time": at(0), "text": "Hi, how can I help?" },
            { "speaker": "customer", "time": at(1), "text": "I want to return my shoes" },
            { "speaker": "bot", "time": at(2), "text": "Here is our policy", "mediaUrl": "https://shop.example/returns.pdf", "fileName": "returns.pdf" },
        ]
    });
    let (status, accepted) = hand_over(&bridge, &token, &call).await;
    assert_eq!(status, 202, "{accepted}");
    let id = accepted["handoverId"].as_str().unwrap().to_owned();
    // The customer writes at once: it waits behind the transcript.
    let next = inbound_result(user, SENDER, "wamid.after-bot", json!({ "type": "TEXT", "text": "hello?" }));
    assert_eq!(bridge.post_inbound(&inbound_envelope(vec![next])).await.0, 200);
    // Called again (a bot retrying): the same handover, imported once.
    let (again, repeated) = hand_over(&bridge, &token, &call).await;
    assert_eq!((again, repeated["handoverId"].as_str()), (200, Some(id.as_str())));
    bridge.drain_all().await;

    let shown = texts(&bridge, user);
    assert_eq!(shown.len(), 6, "{shown:#?}");
    assert!(shown[0].starts_with("— Conversation with the chatbot since") && shown[0].ends_with("3 messages —"));
    assert_eq!(shown[1], "Bot: Hi, how can I help?");
    assert_eq!(shown[2], "I want to return my shoes");
    assert_eq!(shown[3], "Bot: Here is our policy\n📎 returns.pdf: https://shop.example/returns.pdf");
    assert_eq!(shown[4], "— End of the chatbot conversation —");
    assert_eq!(shown[5], "hello?");
    let conversation = bridge.sf.conversation_for(user).unwrap();
    assert_eq!(conversation.routing_attributes["Topic"], "returns");

    let res = bridge
        .app
        .client
        .get(format!("{}/api/handovers/{id}", bridge.app.address))
        .header("Authorization", format!("Bearer {token}"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let view: Value = res.json().await.unwrap();
    assert_eq!((view["importStatus"].as_str(), view["transcriptMessages"].as_i64()), (Some("imported"), Some(3)));
}

async fn bad_or_unauthenticated_handovers_are_refused_and_store_nothing(db: TestDb) {
    let bridge = Bridge::start(db).await;
    let token = api_token(&bridge).await;
    let turn = json!({ "speaker": "bot", "time": "2026-01-02T10:00:00Z", "text": "Hi" });
    for (body, says) in [
        (json!({ "endUser": "447700900711", "transcript": [turn] }), "conversationId: is required"),
        (json!({ "conversationId": "c", "transcript": [turn] }), "endUser: is required"),
        (
            json!({ "conversationId": "c", "endUser": "447700900711", "transcript": "hi" }),
            "transcript: must be an array",
        ),
        (
            json!({ "conversationId": "c", "endUser": "447700900711",
                    "transcript": [turn, { "speaker": "bot", "time": "noon", "text": "x" }] }),
            "transcript: [1].time must be an RFC 3339 time",
        ),
    ] {
        let (status, answer) = hand_over(&bridge, &token, &body).await;
        assert_eq!(status, 400, "{answer}");
        assert!(answer.to_string().contains(says), "{says}: {answer}");
    }
    let good = json!({ "conversationId": "c", "endUser": "447700900711", "transcript": [turn] });
    assert_eq!(hand_over(&bridge, "not-the-token", &good).await.0, 401);
    assert_eq!(bridge.post_raw("/api/handovers", good.to_string().into_bytes(), &[]).await.0, 401);
    let stored = bridge
        .app
        .db
        .run(|c| {
            use byoc_bridge::db::schema::{handovers, jobs};
            use diesel::prelude::*;
            Ok((handovers::table.count().get_result::<i64>(c)?, jobs::table.count().get_result::<i64>(c)?))
        })
        .await
        .unwrap();
    assert_eq!(stored, (0, 0));
}
