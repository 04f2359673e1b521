//! Inbound details: receipts become acknowledgements, button replies answer the agent's
//! choices, webhook authentication variants, and token renewal without a stampede.

use byoc_bridge::db::conversations::{self, NewMessage};
use byoc_bridge::db::schema::messages;
use byoc_bridge::provisioning::{self as prov, AppSpec, Ctx};
use byoc_sim::infobip::webhooks::{Encoding, HmacAlgorithm, format_signature};
use byoc_sim::infobip::webhooks::{delivery_report, inbound_envelope, inbound_result, seen_report};
use byoc_sim::salesforce::agent::Choice;
use diesel::prelude::*;
use secrecy::{ExposeSecret, SecretString};
use serde_json::{Value, json};

use crate::bridge::{Bridge, SENDER};
use crate::helpers::TestDb;

crate::on_both_backends!(
    receipts_become_batched_acknowledgements,
    button_replies_answer_the_agents_choices,
    basic_auth_rotation_and_other_algorithms_authenticate,
    many_jobs_renew_an_expired_token_once,
    an_identity_change_warns_the_agent_in_the_conversation
);

/// WhatsApp's identity-change notification (the vendor's example, for this app's sender)
/// becomes a warning in the customer's conversation, after what they wrote before; it is
/// stored once however often Infobip posts it, and does not open the 24-hour window.
async fn an_identity_change_warns_the_agent_in_the_conversation(db: TestDb) {
    let bridge = Bridge::start(db).await;
    let user = "447700900620";
    bridge.open_conversation(user).await;
    let db = bridge.app.db.clone();
    let app_id = bridge.app_id.clone();
    let window = move || {
        let (db, app_id) = (db.clone(), app_id.clone());
        async move {
            db.run(move |c| {
                let id = conversations::find_id(c, &app_id, user, SENDER)?.unwrap();
                Ok(conversations::find(c, id)?.unwrap().last_inbound_at)
            })
            .await
            .unwrap()
        }
    };
    let before = window().await;
    let notice = json!({
        "from": SENDER,
        "content": { "description": "Security code changed.", "hash": "eU2Fdi4EMUw=",
                     "type": "user_identity_changed", "userNumber": user, "userId": "HR.123123123" },
        "createdAt": "2026-01-18T23:23:09.206+0000"
    })
    .to_string()
    .into_bytes();
    for expected in [json!({ "accepted": 1, "duplicates": 0 }), json!({ "accepted": 0, "duplicates": 1 })] {
        let signature = bridge.signature(&notice);
        let (status, body) = bridge
            .post_raw("/api/infobip/inbound/notifications", notice.clone(), &[("X-Infobip-Signature", &signature)])
            .await;
        assert_eq!((status, body), (200, expected));
    }
    let unsigned = bridge.post_raw("/api/infobip/inbound/notifications", notice.clone(), &[]).await;
    assert_eq!(unsigned.0, 401);
    bridge.drain().await;
    let texts: Vec<String> = bridge
        .sf
        .conversation_for(user)
        .unwrap()
        .entries
        .iter()
        .filter_map(|e| e.payload.pointer("/payload/abstractMessage/staticContent/text").and_then(Value::as_str))
        .map(str::to_owned)
        .collect();
    assert_eq!(texts.len(), 2, "{texts:?}");
    assert_eq!(texts[0], "hello");
    assert!(texts[1].contains("security code changed") && texts[1].contains("may now belong to someone else"));
    assert_eq!(window().await, before, "a notice is not the customer writing");
}

async fn first_message(bridge: &Bridge, user: &str) -> (String, i64) {
    let conversation = bridge.open_conversation(user).await;
    let app_id = bridge.app_id.clone();
    let user = user.to_owned();
    let id = bridge
        .app
        .db
        .run(move |c| conversations::upsert(c, &app_id, &user, SENDER, byoc_bridge::db::now()))
        .await
        .unwrap();
    (conversation, id)
}

/// Records an outbound message as the outbound relay will: Infobip's id and the agent's entry.
async fn outbound(bridge: &Bridge, conversation_id: i64, provider_id: &str, entry_id: &str) {
    let (app_id, provider_id, entry_id) = (bridge.app_id.clone(), provider_id.to_owned(), entry_id.to_owned());
    bridge
        .app
        .db
        .write(move |c| {
            let now = byoc_bridge::db::now();
            let m = NewMessage {
                app_id: &app_id,
                conversation_id,
                direction: byoc_bridge::db::Direction::Outbound,
                provider_message_id: &provider_id,
                kind: "text",
                body: None,
                status: byoc_bridge::db::MessageStatus::Sent,
                received_at: None,
                sf_entry_id: None,
            };
            let id = conversations::insert_message(c, &m, now)?.unwrap();
            diesel::update(messages::table.find(id)).set(messages::sf_entry_id.eq(&entry_id)).execute(c)?;
            Ok(())
        })
        .await
        .unwrap();
}

async fn post_reports(bridge: &Bridge, body: &Value) -> (u16, Value) {
    let bytes = body.to_string().into_bytes();
    let signature = bridge.signature(&bytes);
    bridge.post_raw("/api/infobip/inbound/reports", bytes, &[("X-Infobip-Signature", &signature)]).await
}

async fn receipts_become_batched_acknowledgements(db: TestDb) {
    let bridge = Bridge::start(db).await;
    let user = "447700900100";
    let (sf_conversation, conversation_id) = first_message(&bridge, user).await;
    let mut entries = Vec::new();
    for i in 0..30 {
        let entry = bridge.sf.agent_send_text(&sf_conversation, &format!("reply {i}")).unwrap();
        outbound(&bridge, conversation_id, &format!("out-{i}"), &entry).await;
        entries.push(entry);
    }
    let mut dlr = json!({ "results": [] });
    for i in 0..30 {
        dlr["results"]
            .as_array_mut()
            .unwrap()
            .push(delivery_report(&format!("out-{i}"), user, true)["results"][0].clone());
    }
    dlr["results"].as_array_mut().unwrap().push(delivery_report("not-ours", user, true)["results"][0].clone());
    let (status, body) = post_reports(&bridge, &dlr).await;
    assert_eq!((status, body["acknowledged"].as_u64(), body["unknown"].as_u64()), (200, Some(30), Some(1)), "{body}");
    let mut seen = json!({ "results": [] });
    for i in 0..5 {
        seen["results"]
            .as_array_mut()
            .unwrap()
            .push(seen_report(&format!("out-{i}"), user, SENDER)["results"][0].clone());
    }
    let (status, _) = post_reports(&bridge, &seen).await;
    assert_eq!(status, 200);
    let (status, _) = bridge.post_raw("/api/infobip/inbound/reports", b"{}".to_vec(), &[]).await;
    assert_eq!(status, 401, "reports are authenticated like messages");
    bridge.drain().await;

    let acks = bridge.sf.conversation_for(user).unwrap().acknowledgements;
    assert_eq!(acks.iter().filter(|a| a.acknowledgement_type == "Delivered").count(), 30);
    assert_eq!(acks.iter().filter(|a| a.acknowledgement_type == "Read").count(), 5);
    assert!(acks.iter().all(|a| entries.contains(&a.acknowledged_entry_id)));
    let calls: Vec<usize> = bridge
        .sf
        .request_log()
        .iter()
        .filter(|r| r.path == "/api/v1/acknowledgement")
        .map(|r| r.body["acknowledgements"].as_array().map_or(0, Vec::len))
        .collect();
    assert_eq!(calls, [25, 5, 5], "at most 25 per call");
    let read = bridge.app.db.run(move |c| conversations::messages_of(c, conversation_id)).await.unwrap();
    assert_eq!(read.iter().filter(|m| m.status == byoc_bridge::db::MessageStatus::Read).count(), 5);
    assert_eq!(
        read.iter().filter(|m| m.direction == byoc_bridge::db::Direction::Outbound && m.delivered_at.is_some()).count(),
        30
    );
}

async fn button_replies_answer_the_agents_choices(db: TestDb) {
    let bridge = Bridge::start(db).await;
    let user = "447700900200";
    let (sf_conversation, conversation_id) = first_message(&bridge, user).await;
    let options = [Choice { id: "yes".into(), title: "Yes".into() }, Choice { id: "no".into(), title: "No".into() }];
    let entry = bridge.sf.agent_send_choices(&sf_conversation, "Buttons", "Solved?", &options).unwrap();
    outbound(&bridge, conversation_id, "out-choices", &entry).await;

    let reply = json!({ "type": "INTERACTIVE_BUTTON_REPLY", "id": "yes", "title": "Yes", "context": { "from": SENDER, "id": "out-choices" } });
    let unrelated = json!({ "type": "INTERACTIVE_LIST_REPLY", "id": "x", "title": "Other", "context": { "from": SENDER, "id": "unknown" } });
    let (status, _) = bridge
        .post_inbound(&inbound_envelope(vec![
            inbound_result(user, SENDER, "wamid.r1", reply),
            inbound_result(user, SENDER, "wamid.r2", unrelated),
        ]))
        .await;
    assert_eq!(status, 200);
    let report = bridge.drain().await;
    assert_eq!(report.completed, 2, "{report:?}");
    let entries = bridge.sf.conversation_for(user).unwrap().entries;
    let end_user: Vec<&Value> = entries
        .iter()
        .filter(|e| e.sender_role == "EndUser")
        .map(|e| &e.payload["payload"]["abstractMessage"])
        .collect();
    let answer = end_user[1];
    assert_eq!(answer["messageType"], "ChoicesResponseMessage");
    assert_eq!(answer["inReplyToMessageId"], entry.as_str());
    assert_eq!(answer["choicesResponse"]["selectedOptions"][0]["optionIdentifier"], "yes");
    assert_eq!(
        answer["choicesResponse"]["selectedOptions"][0]["optionTitle"],
        json!({ "itemType": "TitleItem", "title": "Yes" }),
        "the vendor's SelectedOption: optionIdentifier and optionTitle, nothing else"
    );
    assert_eq!(end_user[2]["staticContent"]["text"], "Other", "a reply to something else is plain text");
}

async fn basic_auth_rotation_and_other_algorithms_authenticate(db: TestDb) {
    let bridge = Bridge::start(db).await;
    let services = byoc_bridge::startup::Services::open(&bridge.settings()).await.unwrap();
    let cipher = services.cipher.clone();
    let app_id = bridge.app_id.clone();
    let body = |id: &str| {
        inbound_envelope(vec![inbound_result("447700900300", SENDER, id, json!({ "type": "TEXT", "text": id }))])
    };
    let path = "/api/infobip/inbound/messages";

    // SHA-512, base64, with prefix, in a header of the admin's choosing; then a rotation.
    let new_secret = bridge
        .app
        .db
        .write(move |c| {
            let ctx = Ctx { cipher: &cipher, actor: "test" };
            let mut row = prov::find_app(c, &app_id).map_err(anyhow::Error::from)?;
            let spec = AppSpec {
                webhook_hmac_algorithm: Some("HMAC_SHA_512".into()),
                webhook_signature_header: Some("X-Hub-Signature".into()),
                ..AppSpec::default()
            };
            prov::update_app(c, &ctx, &mut row, &spec).map_err(anyhow::Error::from)?;
            let new = prov::rotate_webhook_secret(c, &ctx, &mut row).map_err(anyhow::Error::from)?;
            Ok(new.expose_secret().to_owned())
        })
        .await
        .unwrap();
    for (secret, id) in [(bridge.webhook_secret.clone(), "wamid.old"), (new_secret.clone(), "wamid.new")] {
        let bytes = body(id).to_string().into_bytes();
        let sig = format_signature(HmacAlgorithm::HmacSha512, secret.as_bytes(), &bytes, Encoding::Base64, true);
        let (status, res) = bridge.post_raw(path, bytes, &[("X-Hub-Signature", &sig)]).await;
        assert_eq!(status, 200, "old and new secret both work during a rotation: {res}");
    }
    let bytes = body("wamid.256").to_string().into_bytes();
    let sha256 = format_signature(HmacAlgorithm::HmacSha256, new_secret.as_bytes(), &bytes, Encoding::Hex, false);
    assert_eq!(
        bridge.post_raw(path, bytes, &[("X-Hub-Signature", &sha256)]).await.0,
        401,
        "only the configured algorithm"
    );

    // Basic auth instead.
    let cipher = services.cipher.clone();
    let app_id = bridge.app_id.clone();
    bridge
        .app
        .db
        .write(move |c| {
            let ctx = Ctx { cipher: &cipher, actor: "test" };
            let mut row = prov::find_app(c, &app_id).map_err(anyhow::Error::from)?;
            let spec = AppSpec {
                webhook_auth: Some("basic".into()),
                webhook_basic_username: Some("infobip".into()),
                webhook_basic_password: Some(SecretString::from("s3cret-pass".to_owned())),
                ..AppSpec::default()
            };
            prov::update_app(c, &ctx, &mut row, &spec).map_err(anyhow::Error::from)?;
            Ok(())
        })
        .await
        .unwrap();
    use base64::Engine;
    let basic = |user: &str, pass: &str| {
        format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(format!("{user}:{pass}")))
    };
    let (status, _) = bridge
        .post_raw(
            path,
            body("wamid.b1").to_string().into_bytes(),
            &[("Authorization", &basic("infobip", "s3cret-pass"))],
        )
        .await;
    assert_eq!(status, 200);
    let (status, _) = bridge
        .post_raw(path, body("wamid.b2").to_string().into_bytes(), &[("Authorization", &basic("infobip", "wrong"))])
        .await;
    assert_eq!(status, 401);
    bridge.drain().await;
    assert_eq!(bridge.sf.conversation_for("447700900300").unwrap().entries.len(), 3);
}

async fn many_jobs_renew_an_expired_token_once(db: TestDb) {
    let bridge = Bridge::start(db).await;
    let results: Vec<Value> = (0..40)
        .map(|i| {
            inbound_result(
                &format!("4477009004{i:02}"),
                SENDER,
                &format!("wamid.t{i}"),
                json!({ "type": "TEXT", "text": "x" }),
            )
        })
        .collect();
    bridge.post_inbound(&inbound_envelope(results[..1].to_vec())).await;
    bridge.drain().await;
    assert_eq!(bridge.sf.tokens_issued(), 1);
    bridge.sf.expire_all_tokens();
    bridge.post_inbound(&inbound_envelope(results[1..].to_vec())).await;
    let report = bridge.drain().await;
    assert_eq!(report.completed, 39);
    assert_eq!(bridge.sf.tokens_issued(), 2, "39 concurrent deliveries saw the refusal; one renewal served them all");
}
