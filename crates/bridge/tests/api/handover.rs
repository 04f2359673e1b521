//! Chatbot handover: the bot conversation is imported into Salesforce before the user's
//! next message; and proactive conversations started through the bridge's API.

use byoc_bridge::provisioning as prov;
use byoc_sim::faults::Fault;
use byoc_sim::infobip::MediaFile;
use byoc_sim::infobip::webhooks::{inbound_envelope, inbound_result};
use byoc_sim::salesforce::{Entry, SalesforceConfig};
use serde_json::{Value, json};

use crate::bridge::{Bridge, SENDER};
use crate::helpers::TestDb;

crate::on_both_backends!(
    a_paged_bot_conversation_arrives_in_order_before_the_users_next_message_and_the_welcome,
    a_repeated_handover_imports_once_and_later_handovers_skip_the_refused_history_api,
    infobip_unavailable_during_the_import_is_retried_and_nothing_overtakes_the_transcript,
    the_history_api_is_used_where_the_org_allows_it,
    a_long_import_gives_its_lease_back_and_keeps_its_place,
    bad_handover_calls_are_refused_and_store_nothing,
    a_proactive_conversation_is_established_once_and_its_template_goes_out,
    proactive_calls_are_authenticated_and_validated
);

const PAGE_SIZE: (&str, &str) = ("BYOC__INFOBIP__CONVERSATION_PAGE_SIZE", "25");

/// A bot conversation of `n` turns that started an hour ago: the bot and the user take
/// turns, the user sends a photo at turn 7, and the last turn is the system's transfer note.
fn bot_conversation(bridge: &Bridge, id: &str, user: &str, n: usize) -> Vec<Value> {
    let start = chrono::Utc::now() - chrono::Duration::hours(1);
    (0..n)
        .map(|i| {
            let author = if i == n - 1 {
                "SYSTEM"
            } else if i % 2 == 0 {
                "BOT"
            } else {
                "CUSTOMER"
            };
            let (from, to, direction) =
                if author == "CUSTOMER" { (user, SENDER, "INBOUND") } else { (SENDER, user, "OUTBOUND") };
            let (content_type, content) = if i == 7 {
                let url = bridge.ib.add_media(
                    SENDER,
                    MediaFile { bytes: vec![9u8; 2048], content_type: "image/jpeg".into(), redirect: false },
                );
                ("IMAGE", json!({ "url": url, "caption": "my receipt" }))
            } else {
                ("TEXT", json!({ "text": format!("turn {i}") }))
            };
            let at = (start + chrono::Duration::seconds(i as i64)).format("%Y-%m-%dT%H:%M:%S%.3f+00:00").to_string();
            json!({ "id": format!("{id}-m{i}"), "channel": "WHATSAPP", "from": from, "to": to, "direction": direction,
                    "conversationId": id, "authorId": format!("{author}-1"), "authorType": author,
                    "createdAt": at, "updatedAt": at, "contentType": content_type, "content": content })
        })
        .collect()
}

/// What the agent sees for an entry: its text, or a file's caption.
fn shown(e: &Entry) -> String {
    let p = &e.payload;
    p.pointer("/payload/abstractMessage/staticContent/text")
        .or_else(|| p.pointer("/entryPayload/abstractMessage/staticContent/text"))
        .or_else(|| p.get("text"))
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned()
}

/// The texts the agent should see for `bot_conversation(…, 60)` posted as entries.
fn expected_entries(n: usize) -> Vec<String> {
    let mut expected = vec![];
    for i in 0..n {
        expected.push(if i == n - 1 {
            format!("System: turn {i}")
        } else if i == 7 {
            "my receipt".into()
        } else if i % 2 == 0 {
            format!("Bot: turn {i}")
        } else {
            format!("turn {i}")
        });
    }
    expected
}

async fn post_handover(bridge: &Bridge, body: &Value) -> (u16, Value) {
    let bytes = body.to_string().into_bytes();
    let signature = bridge.signature(&bytes);
    bridge.post_raw("/api/infobip/inbound/answers", bytes, &[("X-Infobip-Signature", &signature)]).await
}

async fn handover_status(bridge: &Bridge, id: &str) -> Value {
    let res = bridge
        .app
        .client
        .get(format!("{}/api/infobip/inbound/answers/{id}", bridge.app.address))
        .header("X-Infobip-Signature", bridge.signature(b""))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    res.json().await.unwrap()
}

async fn user_writes(bridge: &Bridge, user: &str, id: &str, text: &str) {
    let message = inbound_result(user, SENDER, id, json!({ "type": "TEXT", "text": text }));
    let (status, _) = bridge.post_inbound(&inbound_envelope(vec![message])).await;
    assert_eq!(status, 200);
}

async fn a_paged_bot_conversation_arrives_in_order_before_the_users_next_message_and_the_welcome(db: TestDb) {
    let bridge = Bridge::start_with(db, &[PAGE_SIZE]).await;
    let user = "447700900700";
    bridge.ib.add_conversation("bot-1", bot_conversation(&bridge, "bot-1", user, 60));

    let (status, accepted) = post_handover(
        &bridge,
        &json!({ "conversationId": "bot-1", "senderNumber": format!("+{user}"), "routingAttributes": { "Topic": "billing", "Tier": 2 } }),
    )
    .await;
    assert_eq!(status, 200, "{accepted}");
    assert_eq!((accepted["status"].as_str(), accepted["duplicate"].as_bool()), (Some("accepted"), Some(false)));
    let id = accepted["handoverId"].as_str().unwrap().to_owned();
    // The user writes while the import has not even started: the message waits its turn.
    user_writes(&bridge, user, "wamid.after-bot", "are you there?").await;
    bridge.drain_all().await;

    let conversation = bridge.sf.conversation_for(user).unwrap();
    let texts: Vec<String> = conversation.entries.iter().map(shown).collect();
    let mut expected = vec!["— Conversation with the chatbot since".to_owned()];
    expected.extend(expected_entries(60));
    expected.push("— End of the chatbot conversation —".into());
    expected.push("are you there?".into());
    assert_eq!(texts.len(), expected.len(), "{texts:#?}");
    assert!(texts[0].starts_with(&expected[0]) && texts[0].ends_with(": 60 messages —"), "{}", texts[0]);
    assert_eq!(texts[1..], expected[1..]);
    let photo = &conversation.entries[8];
    assert_eq!(photo.attachment.as_ref().map(|a| (a.mime_type.as_str(), a.size)), Some(("image/jpeg", 2048)));
    assert_eq!(conversation.routing_attributes, json!({ "Topic": "billing", "Tier": "2" }));

    // All pages, oldest first: 25 + 25 + 10.
    let pages: Vec<(usize, usize)> = bridge.ib.conversation_reads().iter().map(|(_, p, l)| (*p, *l)).collect();
    assert_eq!(pages, [(0, 25), (1, 25), (2, 25)]);
    // The org refused the history API (BYOC for Messaging), so the entries path was taken.
    let history_calls = bridge.sf.request_log().iter().filter(|r| r.path.ends_with("/conversationHistory")).count();
    assert_eq!(history_calls, 1);
    let status = handover_status(&bridge, &id).await;
    assert_eq!(
        (&status["importStatus"], &status["method"], &status["transcriptMessages"], &status["importedMessages"]),
        (&json!("imported"), &json!("entries"), &json!(60), &json!(60))
    );
    assert_eq!(status["messagingSessionId"].as_str(), Some(conversation.messaging_session_id.as_str()));

    // Then the agent takes the session and the welcome message reaches the user.
    let subscription = bridge.subscribe().await;
    bridge.sf.agent_join(&conversation.identifier).unwrap();
    bridge.until_relays_queued(1).await;
    bridge.drain_all().await;
    drop(subscription);
    let sent: Vec<(String, String)> = bridge
        .ib
        .sent()
        .iter()
        .map(|m| (m.to.clone(), m.body["content"]["text"].as_str().unwrap_or_default().to_owned()))
        .collect();
    assert_eq!(sent, [(user.to_owned(), "Hang tight, an agent will join shortly.".to_owned())]);
}

async fn a_repeated_handover_imports_once_and_later_handovers_skip_the_refused_history_api(db: TestDb) {
    let bridge = Bridge::start_with(db, &[PAGE_SIZE]).await;
    let user = "447700900701";
    bridge.ib.add_conversation("bot-2", bot_conversation(&bridge, "bot-2", user, 12));
    let call = json!({ "conversationId": "bot-2", "senderNumber": user });
    let (_, first) = post_handover(&bridge, &call).await;
    let (status, second) = post_handover(&bridge, &call).await;
    assert_eq!(status, 200);
    assert_eq!(second["handoverId"], first["handoverId"]);
    assert_eq!(second["duplicate"], json!(true));
    bridge.drain_all().await;
    let (_, third) = post_handover(&bridge, &call).await;
    assert_eq!((&third["handoverId"], &third["importStatus"]), (&first["handoverId"], &json!("imported")));
    bridge.drain_all().await;
    assert_eq!(bridge.sf.conversation_for(user).unwrap().entries.len(), 12 + 2, "one import, with its two frame lines");
    assert_eq!(bridge.ib.conversation_reads().len(), 1);

    // Another user's handover goes straight to entries: the refusal was remembered.
    let other = "447700900702";
    bridge.ib.add_conversation("bot-3", bot_conversation(&bridge, "bot-3", other, 3));
    post_handover(&bridge, &json!({ "conversationId": "bot-3", "senderNumber": other })).await;
    bridge.drain_all().await;
    assert_eq!(bridge.sf.conversation_for(other).unwrap().entries.len(), 3 + 2);
    let history_calls = bridge.sf.request_log().iter().filter(|r| r.path.ends_with("/conversationHistory")).count();
    assert_eq!(history_calls, 1);
}

async fn infobip_unavailable_during_the_import_is_retried_and_nothing_overtakes_the_transcript(db: TestDb) {
    let bridge = Bridge::start_with(db, &[PAGE_SIZE]).await;
    let user = "447700900703";
    bridge.ib.add_conversation("bot-4", bot_conversation(&bridge, "bot-4", user, 60));
    // Reading the first page fails three times: a 500 now, then a 429 and a cut connection.
    bridge.ib.faults.script("/ccaas", Fault::ServerError);
    bridge.ib.faults.script("/ccaas", Fault::Throttle { retry_after_secs: 1 });
    post_handover(&bridge, &json!({ "conversationId": "bot-4", "senderNumber": user })).await;
    user_writes(&bridge, user, "wamid.during-1", "hello?").await;

    let report = bridge.drain().await;
    assert_eq!((report.retried, report.completed), (1, 0), "{report:?}");
    assert!(bridge.sf.conversation_for(user).is_none(), "the user's message waits for the transcript");
    user_writes(&bridge, user, "wamid.during-2", "anyone?").await;
    bridge.ib.faults.script("/ccaas", Fault::Drop);
    bridge.drain_all().await;

    let texts: Vec<String> = bridge.sf.conversation_for(user).unwrap().entries.iter().map(shown).collect();
    assert_eq!(texts.len(), 60 + 2 + 2);
    assert_eq!(texts[1..61], expected_entries(60));
    assert_eq!(texts[62..], ["hello?", "anyone?"]);
    assert_eq!(bridge.ib.faults.injected(), 3);
}

async fn a_long_import_gives_its_lease_back_and_keeps_its_place(db: TestDb) {
    // A slice of 0: every run posts one entry, then hands the job back, however fast it was.
    let bridge = Bridge::start_with(db, &[PAGE_SIZE, ("BYOC__WORKER__SLICE_MS", "0")]).await;
    let user = "447700900708";
    bridge.ib.add_conversation("bot-7", bot_conversation(&bridge, "bot-7", user, 20));
    post_handover(&bridge, &json!({ "conversationId": "bot-7", "senderNumber": user })).await;
    user_writes(&bridge, user, "wamid.long", "hi").await;
    let report = bridge.drain().await;
    // 20 turns with the intro and outro lines: 22 entries, so 21 runs hand the job back.
    assert_eq!(report.resumed, 21, "one entry per run: {report:?}");
    assert_eq!((report.completed, report.retried, report.dead), (2, 0, 0), "{report:?}");
    let texts: Vec<String> = bridge.sf.conversation_for(user).unwrap().entries.iter().map(shown).collect();
    assert_eq!(texts[1..21], expected_entries(20));
    assert_eq!(texts.last().map(String::as_str), Some("hi"));
}

async fn the_history_api_is_used_where_the_org_allows_it(db: TestDb) {
    let org = SalesforceConfig { history_api: true, ..SalesforceConfig::default() };
    let bridge = Bridge::start_full(db, &[PAGE_SIZE], org).await;
    let user = "447700900704";
    bridge.ib.add_conversation("bot-5", bot_conversation(&bridge, "bot-5", user, 60));
    let (_, accepted) = post_handover(&bridge, &json!({ "conversationId": "bot-5", "senderNumber": user })).await;
    user_writes(&bridge, user, "wamid.after-history", "still here").await;
    bridge.drain_all().await;

    let log = bridge.sf.request_log();
    let batches: Vec<usize> = log
        .iter()
        .filter(|r| r.path.ends_with("/conversationHistory"))
        .map(|r| {
            assert_eq!(r.status, 202, "{}", r.body);
            r.body["conversationEntries"].as_array().unwrap().len()
        })
        .collect();
    assert_eq!(batches, [25, 25, 10]);
    let conversation = bridge.sf.conversation_for(user).unwrap();
    let roles: Vec<&str> = conversation.entries.iter().take(3).map(|e| e.sender_role.as_str()).collect();
    assert_eq!(roles, ["Chatbot", "EndUser", "Chatbot"]);
    let texts: Vec<String> = conversation.entries.iter().map(shown).collect();
    assert_eq!(texts.len(), 61);
    assert_eq!((texts[0].as_str(), texts[1].as_str()), ("turn 0", "turn 1"), "no labels: the roles say who spoke");
    assert_eq!(texts[7], "Image: “my receipt” (file not included in the imported history)");
    assert_eq!(texts[60], "still here");
    let status = handover_status(&bridge, accepted["handoverId"].as_str().unwrap()).await;
    assert_eq!((&status["method"], &status["importedMessages"]), (&json!("history"), &json!(60)));
}

async fn bad_handover_calls_are_refused_and_store_nothing(db: TestDb) {
    let bridge = Bridge::start(db).await;
    let good = json!({ "conversationId": "bot-6", "senderNumber": "447700900705" }).to_string().into_bytes();
    let (status, _) =
        bridge.post_raw("/api/infobip/inbound/answers", good.clone(), &[("X-Infobip-Signature", "00ff")]).await;
    assert_eq!(status, 401);
    let signature = bridge.signature(&good);
    let (status, body) =
        bridge.post_raw("/api/infobip/inbound/answers/nobody", good, &[("X-Infobip-Signature", &signature)]).await;
    assert_eq!(status, 404, "{body}");
    for (body, field) in [
        (json!({ "senderNumber": "447700900705" }), "conversationId"),
        (json!({ "conversationId": "bot-6" }), "senderNumber"),
        (json!({ "conversationId": "bot-6", "senderNumber": "call me" }), "senderNumber"),
        (
            json!({ "conversationId": "bot-6", "senderNumber": "447700900705", "routingAttributes": ["x"] }),
            "routingAttributes",
        ),
        (
            json!({ "conversationId": "bot-6", "senderNumber": "447700900705", "businessNumber": "441134960000" }),
            "businessNumber",
        ),
        (json!(["not", "an", "object"]), "body"),
    ] {
        let (status, answer) = post_handover(&bridge, &body).await;
        assert_eq!(status, 400, "{body}");
        assert!(answer["error"].as_str().unwrap().starts_with(field), "{answer}");
    }
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

/// Issues the app's API token.
async fn api_token(bridge: &Bridge) -> String {
    use secrecy::ExposeSecret;
    bridge.change_app(|c, ctx, row| Ok(prov::rotate_api_token(c, ctx, row)?.expose_secret().to_owned())).await
}

async fn start_conversation(bridge: &Bridge, token: &str, body: &Value) -> (u16, Value) {
    let bytes = body.to_string().into_bytes();
    bridge.post_raw("/api/conversations", bytes, &[("Authorization", &format!("Bearer {token}"))]).await
}

fn order_template() -> Value {
    json!({ "id": "1", "name": "order_update", "language": "en", "status": "APPROVED", "category": "UTILITY",
            "structure": { "body": { "text": "Hi {{1}}, order {{2}} shipped." }, "type": "TEXT" } })
}

async fn a_proactive_conversation_is_established_once_and_its_template_goes_out(db: TestDb) {
    let bridge = Bridge::start(db).await;
    bridge.ib.add_template(SENDER, order_template());
    let token = api_token(&bridge).await;
    let user = "447700900706";
    let request = json!({ "to": format!("+{user}"), "routingAttributes": { "Reason": "order" },
                          "template": { "name": "order_update", "language": "en", "placeholders": ["Ann", "42"] } });
    let (status, first) = start_conversation(&bridge, &token, &request).await;
    assert_eq!(status, 202, "{first}");
    let (status, again) = start_conversation(&bridge, &token, &request).await;
    assert_eq!((status, &again["id"]), (200, &first["id"]));
    bridge.drain_all().await;
    let (status, third) = start_conversation(&bridge, &token, &request).await;
    assert_eq!((status, &third["id"], &third["status"]), (200, &first["id"], &json!("template_sent")));
    bridge.drain_all().await;

    let established = bridge.sf.request_log().iter().filter(|r| r.path.ends_with("/conversation")).count();
    assert_eq!(established, 1);
    let conversation = bridge.sf.conversation_for(user).unwrap();
    assert_eq!(conversation.routing_attributes, json!({ "Reason": "order" }));
    let sent = bridge.ib.sent();
    assert_eq!(sent.len(), 1);
    assert_eq!((sent[0].kind.as_str(), sent[0].to.as_str(), sent[0].from.as_str()), ("template", user, SENDER));
    assert_eq!(sent[0].body["content"]["templateData"]["body"]["placeholders"], json!(["Ann", "42"]));

    let res = bridge
        .app
        .client
        .get(format!("{}/api/conversations/{}", bridge.app.address, first["id"].as_str().unwrap()))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    let status: Value = res.json().await.unwrap();
    assert_eq!(status["messagingSessionId"].as_str(), Some(conversation.messaging_session_id.as_str()));
    assert_eq!(status["templateMessageId"].as_str(), Some(sent[0].message_id.as_str()));
}

async fn proactive_calls_are_authenticated_and_validated(db: TestDb) {
    let bridge = Bridge::start(db).await;
    bridge.ib.add_template(SENDER, order_template());
    let token = api_token(&bridge).await;
    let (status, _) = start_conversation(&bridge, "byoc_wrong", &json!({ "to": "447700900707" })).await;
    assert_eq!(status, 401);
    let long = "x".repeat(129);
    for (body, field) in [
        (json!({}), "to"),
        (json!({ "to": "447700900707", "template": { "language": "en" } }), "template.name"),
        (
            json!({ "to": "447700900707", "template": { "name": "order_update", "language": "en", "placeholders": ["Ann", ""] } }),
            "template.placeholders",
        ),
        (
            json!({ "to": "447700900707", "template": { "name": "order_update", "language": "en", "placeholders": [],
                 "buttons": [{ "type": "QUICK_REPLY", "parameter": long }] } }),
            "template.buttons",
        ),
    ] {
        let (status, answer) = start_conversation(&bridge, &token, &body).await;
        assert_eq!(status, 400, "{body}");
        assert!(answer["error"].as_str().unwrap().starts_with(field), "{answer}");
    }
    // A template Infobip refuses (one placeholder missing) fails visibly and sends nothing.
    let (status, started) = start_conversation(
        &bridge,
        &token,
        &json!({ "to": "447700900707", "template": { "name": "order_update", "language": "en", "placeholders": ["Ann"] } }),
    )
    .await;
    assert_eq!(status, 202);
    bridge.drain_all().await;
    let res = bridge
        .app
        .client
        .get(format!("{}/api/conversations/{}", bridge.app.address, started["id"].as_str().unwrap()))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    let status: Value = res.json().await.unwrap();
    assert_eq!(status["status"], "failed");
    assert!(status["error"].as_str().unwrap().contains("placeholders"), "{status}");
    assert!(bridge.ib.sent().is_empty());
}
