//! Inbound: WhatsApp messages from the Infobip webhook into Salesforce conversations.

use byoc_bridge::db::conversations;
use byoc_bridge::db::jobs;
use byoc_sim::infobip::MediaFile;
use byoc_sim::infobip::webhooks::{inbound_envelope, inbound_result};
use serde_json::{Value, json};

use crate::bridge::{Bridge, SENDER};
use crate::helpers::TestDb;

crate::on_both_backends!(
    every_documented_message_type_arrives_as_the_right_interaction,
    refused_webhooks_store_nothing_and_redeliveries_are_stored_once,
    a_permanent_refusal_becomes_a_dead_letter_that_can_be_retried,
    a_thousand_messages_arrive_once_and_in_order_despite_faults_and_token_expiry
);

fn text(from: &str, id: &str, body: &str) -> Value {
    inbound_result(from, SENDER, id, json!({ "type": "TEXT", "text": body }))
}

/// What Salesforce shows for an entry: its text, or the attachment's type and size.
fn shown(entry: &byoc_sim::salesforce::Entry) -> String {
    if let Some(a) = &entry.attachment {
        return format!("[file {} {}] {}", a.mime_type, a.size, entry.payload["text"].as_str().unwrap_or_default());
    }
    let m = &entry.payload["payload"]["abstractMessage"];
    match m["messageType"].as_str() {
        Some("ChoicesResponseMessage") => {
            format!("[choice {}]", m["choicesResponse"]["selectedOptions"][0]["optionIdentifier"])
        }
        _ => m["staticContent"]["text"].as_str().unwrap_or_default().to_owned(),
    }
}

async fn every_documented_message_type_arrives_as_the_right_interaction(db: TestDb) {
    let bridge = Bridge::start(db).await;
    let specs = crate::helpers::specs();
    let mut expected = Vec::new();
    for (i, (name, mut example)) in specs.infobip_examples("whatsapp-inbound.").unwrap().into_iter().enumerate() {
        let result = &mut example["results"][0];
        result["to"] = json!(SENDER);
        result["messageId"] = json!(format!("wamid.{i}"));
        let from = format!("4477009{i:05}");
        result["from"] = json!(from);
        let kind = result["message"]["type"].as_str().unwrap().to_owned();
        // Media URLs point at the simulated Infobip, with a file of the kind WhatsApp sends.
        let mime = match kind.as_str() {
            "IMAGE" => Some("image/jpeg"),
            "DOCUMENT" => Some("application/pdf"),
            "VIDEO" => Some("video/mp4"),
            "AUDIO" => Some("audio/mpeg"),
            "VOICE" => Some("audio/ogg"),
            "STICKER" => Some("image/webp"),
            _ => None,
        };
        if let Some(mime) = mime {
            let url = bridge.ib.add_media(
                SENDER,
                MediaFile { bytes: vec![7u8; 1000 + i], content_type: mime.into(), redirect: i % 2 == 0 },
            );
            result["message"]["url"] = json!(url);
        }
        let (status, body) = bridge.post_inbound(&example).await;
        assert_eq!(status, 200, "{name}: {body}");
        expected.push((name, kind, from, mime));
    }
    let report = bridge.drain().await;
    assert_eq!(report.completed, expected.len(), "{report:?}");

    for (name, kind, from, mime) in expected {
        let conversation = bridge.sf.conversation_for(&from).unwrap_or_else(|| panic!("{name}: no conversation"));
        assert_eq!(conversation.entries.len(), 1, "{name}");
        let entry = &conversation.entries[0];
        let shown = shown(entry);
        match (kind.as_str(), mime) {
            ("VOICE" | "STICKER", Some(mime)) => {
                assert!(
                    entry.attachment.is_none() && shown.contains(mime),
                    "{name}: formats Salesforce refuses arrive as text: {shown}"
                )
            }
            (_, Some(mime)) => assert!(shown.starts_with(&format!("[file {mime} ")), "{name}: {shown}"),
            ("TEXT", _) => assert!(!shown.is_empty() && !shown.starts_with('('), "{name}: {shown}"),
            ("LOCATION", _) => assert!(shown.contains("📍") && shown.contains("maps"), "{name}: {shown}"),
            ("CONTACT", _) => assert!(shown.contains("👤 Contact"), "{name}: {shown}"),
            _ => assert!(!shown.is_empty(), "{name}: every type reaches the agent readably"),
        }
    }
}

async fn refused_webhooks_store_nothing_and_redeliveries_are_stored_once(db: TestDb) {
    let bridge = Bridge::start_with(db, &[("BYOC__SERVER__MAX_BODY_BYTES", "4096")]).await;
    let body = inbound_envelope(vec![text("447700900001", "wamid.a", "hello")]);
    let bytes = body.to_string().into_bytes();
    let path = "/api/infobip/inbound/messages";

    let (status, err) = bridge.post_raw(path, bytes.clone(), &[]).await;
    assert_eq!(status, 401, "no signature: {err}");
    let (status, _) = bridge.post_raw(path, bytes.clone(), &[("X-Infobip-Signature", "deadbeef")]).await;
    assert_eq!(status, 401, "wrong signature");
    let tampered = body.to_string().replace("hello", "hullo").into_bytes();
    let (status, _) = bridge.post_raw(path, tampered, &[("X-Infobip-Signature", &bridge.signature(&bytes))]).await;
    assert_eq!(status, 401, "signature of another body");

    let malformed = br#"{"results":[{"from":"447700900001","to":"447860099299","message":{"type":"TEXT"}}]}"#.to_vec();
    let (status, err) =
        bridge.post_raw(path, malformed.clone(), &[("X-Infobip-Signature", &bridge.signature(&malformed))]).await;
    assert_eq!((status, err["error"].as_str()), (400, Some("results[0].messageId is missing")));
    let not_json = b"{nope".to_vec();
    let (status, err) =
        bridge.post_raw(path, not_json.clone(), &[("X-Infobip-Signature", &bridge.signature(&not_json))]).await;
    assert_eq!(status, 400);
    assert!(err["error"].as_str().unwrap().starts_with("body is not valid JSON"));

    let big = inbound_envelope(vec![text("447700900001", "wamid.big", &"x".repeat(5000))]).to_string().into_bytes();
    let (status, _) = bridge.post_raw(path, big.clone(), &[("X-Infobip-Signature", &bridge.signature(&big))]).await;
    assert_eq!(status, 413);
    let (status, _) = bridge.post_raw("/api/infobip/inbound/messages/no-such-app", bytes.clone(), &[]).await;
    assert_eq!(status, 404);
    let signature = bridge.signature(&bytes);
    for named in ["acme", bridge.app_id.as_str()] {
        let (status, err) = bridge
            .post_raw(
                &format!("/api/infobip/inbound/messages/{named}"),
                b"{}".to_vec(),
                &[("X-Infobip-Signature", &signature)],
            )
            .await;
        assert_eq!(status, 401, "the signature of another body, on the app's own path: {err}");
    }
    let stranger = inbound_envelope(vec![inbound_result(
        "447700900001",
        "449999999999",
        "wamid.s",
        json!({ "type": "TEXT", "text": "x" }),
    )]);
    let (status, _) = bridge.post_inbound(&stranger).await;
    assert_eq!(status, 404, "a sender of no app");

    let stored = bridge.app.db.run(|c| jobs::depth(c, byoc_bridge::db::now())).await.unwrap();
    assert_eq!(stored.due, 0, "nothing refused was stored");

    // Accepted once, on the shared path and the per-app path alike; the replay is a duplicate.
    let (status, ok) = bridge.post_inbound(&body).await;
    assert_eq!((status, ok["accepted"].as_u64()), (200, Some(1)));
    let (status, again) = bridge
        .post_raw(
            &format!("{path}/{}", bridge.app_id),
            bytes.clone(),
            &[("X-Infobip-Signature", &bridge.signature(&bytes))],
        )
        .await;
    assert_eq!((status, again["duplicates"].as_u64()), (200, Some(1)));
    bridge.drain().await;
    let conversation = bridge.sf.conversation_for("447700900001").unwrap();
    assert_eq!(conversation.entries.len(), 1, "stored once, delivered once");

    // The stored conversation knows its Salesforce ids and the time of the last message.
    let app_id = bridge.app_id.clone();
    let stored = bridge
        .app
        .db
        .run(move |c| {
            let id = conversations::upsert(c, &app_id, "447700900001", SENDER, byoc_bridge::db::now())?;
            conversations::find(c, id)
        })
        .await
        .unwrap()
        .unwrap();
    assert_eq!(stored.sf_conversation_id.as_deref(), Some(conversation.identifier.as_str()));
    assert_eq!(stored.messaging_session_id.as_deref(), Some(conversation.messaging_session_id.as_str()));
    assert!(stored.last_inbound_at.is_some());
}

async fn a_permanent_refusal_becomes_a_dead_letter_that_can_be_retried(db: TestDb) {
    let bridge = Bridge::start(db).await;
    bridge.sf.set_channel_active(crate::bridge::CHANNEL, false);
    let (status, _) = bridge.post_inbound(&inbound_envelope(vec![text("447700900002", "wamid.d1", "first")])).await;
    assert_eq!(status, 200);
    let report = bridge.drain().await;
    assert_eq!(report.dead, 1);
    let dead = bridge.app.db.run(|c| jobs::dead_letters(c, 10)).await.unwrap();
    assert!(dead[0].last_error.as_deref().unwrap().contains("10031"), "{:?}", dead[0].last_error);

    // The admin fixes the channel and retries the dead letter.
    bridge.sf.set_channel_active(crate::bridge::CHANNEL, true);
    let id = dead[0].id;
    bridge.app.db.write(move |c| jobs::resurrect(c, Some(id), byoc_bridge::db::now())).await.unwrap();
    bridge.drain().await;
    assert_eq!(bridge.sf.conversation_for("447700900002").unwrap().entries.len(), 1);
}

async fn a_thousand_messages_arrive_once_and_in_order_despite_faults_and_token_expiry(db: TestDb) {
    use byoc_sim::faults::FaultRates;
    let bridge = Bridge::start_with(
        db,
        &[("BYOC__SALESFORCE__REQUEST_TIMEOUT_MS", "300"), ("BYOC__WORKER__MAX_ATTEMPTS", "100")],
    )
    .await;
    bridge.sf.faults.set_rates(
        FaultRates {
            server_error: 0.08,
            throttle: 0.06,
            retry_after_secs: 2,
            slow: 0.02,
            slow_by: std::time::Duration::from_millis(600),
            drop: 0.02,
            path_prefix: "/api/v1/interactions".into(),
        },
        42,
    );
    let users: Vec<String> = (0..50).map(|u| format!("4477001{u:05}")).collect();
    // 100 webhooks of 10 messages, each webhook mixing conversations, as Infobip batches them.
    let mut n = 0;
    for batch in 0..100 {
        let results: Vec<Value> = (0..10)
            .map(|k| {
                let seq = batch * 10 + k;
                let user = &users[seq % 50];
                text(user, &format!("wamid.{seq}"), &format!("m{:03}", seq / 50))
            })
            .collect();
        let (status, _) = bridge.post_inbound(&inbound_envelope(results)).await;
        assert_eq!(status, 200);
        n += 10;
        if n == 500 {
            // Half-way through, Salesforce revokes every session.
            bridge.drain().await;
            bridge.sf.expire_all_tokens();
        }
    }
    bridge.drain_all().await;

    assert!(bridge.sf.faults.injected() > 50, "faults were injected: {}", bridge.sf.faults.injected());
    assert!(bridge.sf.tokens_issued() >= 2, "the expired token was renewed");
    for user in &users {
        let conversation = bridge.sf.conversation_for(user).unwrap();
        let texts: Vec<String> = conversation.entries.iter().map(shown).collect();
        let expected: Vec<String> = (0..20).map(|i| format!("m{i:03}")).collect();
        assert_eq!(texts, expected, "conversation of {user}: exactly once, in order");
    }
    let dead = bridge.app.db.run(|c| jobs::dead_letters(c, 10)).await.unwrap();
    assert!(dead.is_empty(), "{dead:?}");
    // Timed-out posts that Salesforce did process were retried with the same entry id.
    let repeated: usize = bridge.sf.conversations().iter().map(|c| c.repeated_posts).sum();
    assert!(repeated > 0, "the fault mix includes posts processed after the bridge gave up on them");

    let metrics = bridge.app.get("/metrics").await.text().await.unwrap();
    assert!(metrics.contains(r#"byoc_inbound_messages_total{app="acme",outcome="received"} 1000"#), "{metrics}");
    assert!(metrics.contains(r#"byoc_inbound_messages_total{app="acme",outcome="delivered"} 1000"#), "{metrics}");
    assert!(metrics.contains("byoc_inbound_delivery_seconds_count 1000"), "{metrics}");
    assert!(metrics.contains(r#"byoc_jobs_finished_total{kind="deliver_inbound",outcome="retried"}"#), "{metrics}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn media_that_cannot_be_attached_still_reaches_the_agent_as_text() {
    let bridge = Bridge::start(TestDb::sqlite()).await;
    let huge = bridge.ib.add_media(
        SENDER,
        MediaFile { bytes: vec![0u8; 25 * 1024 * 1024 + 1], content_type: "image/jpeg".into(), redirect: false },
    );
    let gone = format!("{}/whatsapp/1/senders/{SENDER}/media/expired", bridge.ib.base_url());
    let results = vec![
        inbound_result(
            "447700900500",
            SENDER,
            "wamid.huge",
            json!({ "type": "IMAGE", "url": huge, "caption": "scan" }),
        ),
        inbound_result(
            "447700900500",
            SENDER,
            "wamid.gone",
            json!({ "type": "DOCUMENT", "url": gone, "caption": "contract.pdf" }),
        ),
    ];
    let (status, _) = bridge.post_inbound(&inbound_envelope(results)).await;
    assert_eq!(status, 200);
    bridge.drain().await;
    let texts: Vec<String> = bridge.sf.conversation_for("447700900500").unwrap().entries.iter().map(shown).collect();
    assert_eq!(
        texts,
        [
            "Image: “scan”\n(larger than the 25 MB Salesforce accepts)",
            "Document: “contract.pdf”\n(no longer available from WhatsApp)"
        ]
    );
}
