//! Outbound: agent entries from the Pub/Sub API to WhatsApp through Infobip.

use byoc_sim::infobip::webhooks::{inbound_envelope, inbound_result};
use serde_json::json;

use crate::bridge::{Bridge, SENDER};
use crate::helpers::TestDb;

crate::on_both_backends!(
    agent_text_replies_reach_whatsapp_once_and_in_order,
    replies_outside_the_24_hour_window_are_reported_to_the_agent,
    files_and_choices_become_media_and_interactive_messages,
    one_replica_holds_the_subscription_and_another_takes_over_when_it_dies,
    a_thousand_replies_arrive_once_and_in_order_through_breaks_and_a_restart,
    an_expired_replay_position_resumes_from_the_earliest_event_and_counts_the_gap,
    a_keepalive_position_is_kept_so_replies_sent_while_away_are_not_missed,
    a_restart_before_the_first_position_misses_no_reply_on_either_topic,
    a_send_infobip_took_but_answered_too_late_is_not_sent_twice,
    without_a_report_a_send_of_unknown_outcome_is_repeated_once_before_newer_replies,
    a_reply_infobip_refuses_is_reported_to_the_agent,
    a_reply_that_stays_unsendable_is_reported_when_retries_run_out,
    a_message_with_several_files_that_fails_part_way_sends_each_file_once,
    a_session_end_told_twice_sends_one_closing_message,
    a_session_end_known_only_from_change_data_capture_sends_the_closing_message,
    an_agent_reading_the_customers_message_shows_it_read_on_whatsapp,
    links_progress_and_what_whatsapp_cannot_show_each_reach_someone
);

/// A rich link arrives as a URL button, Agentforce's progress indicator as typing, and an
/// entry WhatsApp has nothing for (a form) reaches the agent as a failure that names it.
async fn links_progress_and_what_whatsapp_cannot_show_each_reach_someone(db: TestDb) {
    let bridge = Bridge::start(db).await;
    let user = "447700900640";
    let conversation = bridge.open_conversation(user).await;
    let subscription = bridge.subscribe().await;
    let rich = json!({ "abstractMessage": { "messageType": "StaticContentMessage", "id": "m1",
        "staticContent": { "formatType": "RichLink", "text": "Track it here",
            "linkItem": { "itemType": "TitleLinkItem", "url": "https://acme.example/t/1",
                          "titleItem": { "itemType": "TitleItem", "title": "Your parcel" } } } } });
    bridge.sf.agent_publish(&conversation, "Message", rich).unwrap();
    let progress = json!({ "progressIndicator": { "indicatorType": "ProgressUpdateIndicator",
                                                  "message": "Looking it up" } });
    bridge.sf.agent_publish(&conversation, "ProgressIndicator", progress).unwrap();
    let form = json!({ "abstractMessage": { "messageType": "FormMessage", "id": "m3",
                                            "form": { "formType": "Inputs" } } });
    bridge.sf.agent_publish(&conversation, "Message", form).unwrap();
    bridge.until_relays_queued(3).await;
    bridge.drain().await;
    drop(subscription);

    let sent: Vec<String> = bridge.ib.sent().iter().map(|m| m.kind.clone()).collect();
    assert_eq!(sent, ["interactive/url-button"]);
    assert_eq!(bridge.ib.events(), [(user.to_owned(), "TYPING_INDICATOR".to_owned())]);
    let failures = bridge.delivery_failures(user);
    assert_eq!(failures.len(), 1, "{failures:?}");
    assert!(failures[0].to_string().contains("FormMessage messages cannot be shown on WhatsApp"), "{failures:?}");
}

/// Salesforce's `ReadAcknowledgement` of the customer's entry (a channel with inbound
/// acknowledgements) marks that WhatsApp message read: the customer sees the blue ticks.
/// One of no message of this customer's marks nothing.
async fn an_agent_reading_the_customers_message_shows_it_read_on_whatsapp(db: TestDb) {
    let bridge = Bridge::start(db).await;
    let user = "447700900610";
    bridge.ib.record_inbound(&format!("wamid.open.{user}"));
    let conversation = bridge.open_conversation(user).await;
    let subscription = bridge.subscribe().await;
    bridge.sf.agent_read(&conversation).unwrap().expect("the customer wrote");
    bridge.until_relays_queued(1).await;
    let report = bridge.drain().await;
    assert_eq!((report.completed, report.dead), (1, 0), "{report:?}");
    assert_eq!(bridge.ib.read_marks(), [(SENDER.to_owned(), format!("wamid.open.{user}"))]);
    assert!(bridge.ib.sent().is_empty(), "a read receipt sends no message");
    drop(subscription);
}

async fn agent_text_replies_reach_whatsapp_once_and_in_order(db: TestDb) {
    let bridge = Bridge::start(db).await;
    let user = "447700900600";
    let conversation = bridge.open_conversation(user).await;
    let subscription = bridge.subscribe().await;

    bridge.sf.agent_join(&conversation).unwrap();
    bridge.sf.agent_typing(&conversation, true).unwrap();
    for i in 0..5 {
        bridge.sf.agent_send_text(&conversation, &format!("reply {i}")).unwrap();
    }
    bridge.sf.agent_end(&conversation).unwrap();
    bridge.until_relays_queued(8).await;

    // The stream breaks; the subscription resumes from its stored position: nothing twice.
    bridge.sf.pubsub.break_streams();
    bridge.until("the subscription is back", || bridge.sf.pubsub.open_streams() == 1).await;
    bridge.sf.agent_send_text(&conversation, "after the break").unwrap();
    bridge.until_relays_queued(9).await;
    let report = bridge.drain().await;
    assert_eq!(report.completed, 9, "{report:?}");
    assert_eq!(
        bridge.ib.events(),
        [(user.to_owned(), "TYPING_INDICATOR".to_owned())],
        "the agent typing shows on WhatsApp"
    );
    drop(subscription);

    let sent: Vec<String> =
        bridge.ib.sent().iter().map(|m| m.body["content"]["text"].as_str().unwrap().to_owned()).collect();
    assert_eq!(
        sent,
        [
            "Hang tight, an agent will join shortly.",
            "reply 0",
            "reply 1",
            "reply 2",
            "reply 3",
            "reply 4",
            "Thanks for chatting with us.",
            "after the break"
        ]
    );
    assert!(bridge.ib.sent().iter().all(|m| m.to == user && m.from == SENDER));
}

async fn replies_outside_the_24_hour_window_are_reported_to_the_agent(db: TestDb) {
    let bridge = Bridge::start(db).await;
    let user = "447700900700";
    let conversation = bridge.open_conversation(user).await;
    // The customer's last message is 25 hours old.
    let app_id = bridge.app_id.clone();
    bridge
        .app
        .db
        .write(move |c| {
            use byoc_bridge::db::schema::conversations;
            use diesel::prelude::*;
            diesel::update(conversations::table.filter(conversations::app_id.eq(&app_id)))
                .set(conversations::last_inbound_at.eq(byoc_bridge::db::now() - chrono::Duration::hours(25)))
                .execute(c)?;
            Ok(())
        })
        .await
        .unwrap();
    let _subscription = bridge.subscribe().await;
    let entry = bridge.sf.agent_send_text(&conversation, "are you there?").unwrap();
    bridge.until_relays_queued(1).await;
    let report = bridge.drain().await;
    assert_eq!(report.dead, 1, "visible as a dead letter too");
    assert!(bridge.ib.sent().is_empty(), "nothing is sent outside the window");
    let failures = bridge.delivery_failures(user);
    let failed = failures.first().expect("the agent sees the failure");
    assert_eq!(failed["failedConversationEntryIdentifier"], entry.as_str());
    assert_eq!(failed["errorCode"], "OUTSIDE_24H_WINDOW");
}

async fn files_and_choices_become_media_and_interactive_messages(db: TestDb) {
    use byoc_sim::salesforce::agent::Choice;
    let bridge = Bridge::start(db).await;
    let user = "447700900800";
    let conversation = bridge.open_conversation(user).await;
    let _subscription = bridge.subscribe().await;

    bridge
        .sf
        .agent_send_attachment(
            &conversation,
            "invoice.pdf",
            "application/pdf",
            b"%PDF-1.7 invoice".to_vec(),
            Some("Your invoice"),
        )
        .unwrap();
    bridge
        .sf
        .agent_send_attachment(&conversation, "photo.png", "image/png", vec![0x89, b'P', b'N', b'G'], None)
        .unwrap();
    let choice = |n: usize, len: usize| -> Vec<Choice> {
        (0..n).map(|i| Choice { id: format!("opt-{i}"), title: format!("{i}{}", "o".repeat(len - 1)) }).collect()
    };
    bridge.sf.agent_send_choices(&conversation, "Buttons", "Did that help?", &choice(2, 5)).unwrap();
    bridge.sf.agent_send_choices(&conversation, "ListPicker", "Pick a topic", &choice(5, 10)).unwrap();
    bridge.sf.agent_send_choices(&conversation, "Buttons", "Pick a store", &choice(12, 8)).unwrap();
    bridge.until_relays_queued(5).await;
    let report = bridge.drain().await;
    assert_eq!(report.completed, 5, "{report:?}");

    let sent = bridge.ib.sent();
    let kinds: Vec<&str> = sent.iter().map(|m| m.kind.as_str()).collect();
    assert_eq!(kinds, ["document", "image", "interactive/buttons", "interactive/list", "text"]);
    assert_eq!(sent[0].body["content"]["filename"], "invoice.pdf");
    assert_eq!(sent[0].body["content"]["caption"], "Your invoice");
    assert_eq!(sent[2].body["content"]["action"]["buttons"][1]["id"], "opt-1");
    assert_eq!(sent[3].body["content"]["action"]["sections"][0]["rows"].as_array().unwrap().len(), 5);
    assert!(sent[4].body["content"]["text"].as_str().unwrap().contains("12. 11"));

    // Infobip fetches the file through the bridge's signed link; a changed link is refused.
    let link = sent[0].body["content"]["mediaUrl"].as_str().unwrap().to_owned();
    assert!(link.starts_with(&bridge.app.address), "{link}");
    let file = reqwest::get(&link).await.unwrap();
    assert_eq!(file.status(), 200);
    assert_eq!(file.headers()["content-type"], "application/pdf");
    assert_eq!(&file.bytes().await.unwrap()[..], b"%PDF-1.7 invoice");
    let forged = link.replace("/0?", "/1?");
    assert_eq!(reqwest::get(&forged).await.unwrap().status(), 404);
    let flipped = if link.ends_with('0') { '1' } else { '0' };
    let tampered = format!("{}{flipped}", &link[..link.len() - 1]);
    assert_eq!(reqwest::get(&tampered).await.unwrap().status(), 404);
}

async fn one_replica_holds_the_subscription_and_another_takes_over_when_it_dies(db: TestDb) {
    let bridge = Bridge::start_with(db, &[("BYOC__SALESFORCE__SUBSCRIPTION_LEASE_SECS", "1")]).await;
    let user = "447700900900";
    let conversation = bridge.open_conversation(user).await;
    let app = bridge.app.subscriber.directory.snapshot().await.unwrap().by_id_or_name(&bridge.app_id).unwrap();
    let topic = format!("/event/{}", app.platform_event);
    let replica = |owner: &str| {
        let mut s = bridge.app.subscriber.clone();
        s.owner = owner.to_owned();
        tokio::spawn(s.keep_subscribed(app.clone(), tokio_util::sync::CancellationToken::new()))
    };
    let holder = || {
        let (db, app_id, topic) = (bridge.app.db.clone(), bridge.app_id.clone(), topic.clone());
        async move { db.run(move |c| byoc_bridge::db::cursors::lease_holder(c, &app_id, &topic)).await.unwrap() }
    };

    let first = replica("replica-a");
    bridge.until("replica a subscribes", || bridge.sf.pubsub.open_streams() == 1).await;
    let second = replica("replica-b");
    // Over two lease periods, the second replica only waits.
    tokio::time::sleep(std::time::Duration::from_millis(2200)).await;
    assert_eq!(bridge.sf.pubsub.open_streams(), 1);
    assert_eq!(holder().await.as_deref(), Some("replica-a"));
    bridge.sf.agent_send_text(&conversation, "one").unwrap();
    bridge.until_relays_queued(1).await;

    // Replica a dies without a word: its lease runs out and replica b takes over.
    first.abort();
    let _ = first.await;
    bridge.until("replica a's stream is gone", || bridge.sf.pubsub.open_streams() == 0).await;
    bridge.until("replica b subscribes", || bridge.sf.pubsub.open_streams() == 1).await;
    assert_eq!(holder().await.as_deref(), Some("replica-b"));
    bridge.sf.agent_send_text(&conversation, "two").unwrap();
    bridge.until_relays_queued(2).await;
    bridge.drain().await;
    second.abort();

    let sent: Vec<String> =
        bridge.ib.sent().iter().map(|m| m.body["content"]["text"].as_str().unwrap().to_owned()).collect();
    assert_eq!(sent, ["one", "two"], "each reply once, whichever replica received it");
}

async fn a_thousand_replies_arrive_once_and_in_order_through_breaks_and_a_restart(db: TestDb) {
    let bridge = Bridge::start_with(db, &[("BYOC__INFOBIP__SENDS_PER_SECOND_PER_SENDER", "100000")]).await;
    let users: Vec<String> = (0..50).map(|u| format!("4477002{u:05}")).collect();
    let results: Vec<_> = users
        .iter()
        .map(|u| inbound_result(u, SENDER, &format!("wamid.hi.{u}"), json!({ "type": "TEXT", "text": "hi" })))
        .collect();
    assert_eq!(bridge.post_inbound(&inbound_envelope(results)).await.0, 200);
    bridge.drain().await;
    let conversations: Vec<String> = users.iter().map(|u| bridge.sf.conversation_for(u).unwrap().identifier).collect();

    let mut subscription = Some(bridge.subscribe().await);
    let mut bridge = bridge;
    for round in 0..20 {
        for conversation in &conversations {
            bridge.sf.agent_send_text(conversation, &format!("r{round:02}")).unwrap();
        }
        match round {
            // The gRPC stream breaks now and then; the subscriber resumes from its position.
            4 | 9 | 15 => bridge.sf.pubsub.break_streams(),
            // The bridge is redeployed while agents keep answering.
            7 => {
                drop(subscription.take());
                bridge = bridge.restart().await;
            }
            8 => subscription = Some(bridge.subscribe().await),
            _ => {}
        }
    }
    bridge.until_relays_queued(1000).await;
    bridge.drain().await;
    drop(subscription);

    let sent = bridge.ib.sent();
    assert_eq!(sent.len(), 1000, "every reply once");
    for user in &users {
        let texts: Vec<&str> =
            sent.iter().filter(|m| &m.to == user).map(|m| m.body["content"]["text"].as_str().unwrap()).collect();
        let expected: Vec<String> = (0..20).map(|r| format!("r{r:02}")).collect();
        assert_eq!(texts, expected, "replies to {user} in order");
    }
}

async fn an_expired_replay_position_resumes_from_the_earliest_event_and_counts_the_gap(db: TestDb) {
    use byoc_sim::salesforce::SalesforceConfig;
    let org = SalesforceConfig {
        pubsub: byoc_sim::pubsub::PubSubSimConfig {
            retention: std::time::Duration::from_millis(2000),
            ..Default::default()
        },
        ..SalesforceConfig::default()
    };
    let bridge = Bridge::start_full(db, &[], org).await;
    let user = "447700901000";
    let conversation = bridge.open_conversation(user).await;
    let subscription = bridge.subscribe().await;
    bridge.sf.agent_send_text(&conversation, "before").unwrap();
    bridge.until_relays_queued(1).await;
    drop(subscription);
    bridge.until("the subscription stopped", || bridge.sf.pubsub.open_streams() == 0).await;

    // The bridge is away longer than Salesforce keeps events: its position is gone.
    tokio::time::sleep(std::time::Duration::from_millis(2200)).await;
    bridge.sf.agent_send_text(&conversation, "after").unwrap();
    let _subscription = bridge.subscribe().await;
    bridge.until_relays_queued(2).await;
    bridge.drain().await;

    let sent: Vec<String> =
        bridge.ib.sent().iter().map(|m| m.body["content"]["text"].as_str().unwrap().to_owned()).collect();
    assert_eq!(sent, ["before", "after"]);
    let metrics = bridge.app.get("/metrics").await.text().await.unwrap();
    assert!(metrics.contains(r#"byoc_pubsub_replay_gaps_total{app="acme"} 1"#), "{metrics}");
}

/// A new app subscribes at LATEST. Without storing the keep-alive's position, a bridge that
/// restarts before the first event would subscribe at LATEST again and miss what the agent
/// sent while it was away.
async fn a_keepalive_position_is_kept_so_replies_sent_while_away_are_not_missed(db: TestDb) {
    use byoc_sim::salesforce::SalesforceConfig;
    let org = SalesforceConfig {
        pubsub: byoc_sim::pubsub::PubSubSimConfig {
            keepalive_interval: std::time::Duration::from_millis(100),
            ..Default::default()
        },
        ..SalesforceConfig::default()
    };
    let bridge = Bridge::start_full(db, &[], org).await;
    let conversation = bridge.open_conversation("447700901100").await;
    let app = bridge.app.subscriber.directory.snapshot().await.unwrap().by_id_or_name(&bridge.app_id).unwrap();
    let topic = format!("/event/{}", app.platform_event);
    let cursor = || {
        let (db, app_id, topic) = (bridge.app.db.clone(), bridge.app_id.clone(), topic.clone());
        async move { db.run(move |c| byoc_bridge::db::cursors::get(c, &app_id, &topic)).await.unwrap() }
    };
    assert_eq!(cursor().await, None);
    let subscription = bridge.subscribe().await;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let positioned = |c: Option<String>| c.is_some_and(|c| byoc_bridge::db::cursors::since_of(&c).is_none());
    while !positioned(cursor().await) {
        assert!(std::time::Instant::now() < deadline, "a keep-alive's position was never stored");
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    drop(subscription);
    bridge.until("the subscription stopped", || bridge.sf.pubsub.open_streams() == 0).await;

    bridge.sf.agent_send_text(&conversation, "sent while the bridge was away").unwrap();
    let _subscription = bridge.subscribe().await;
    bridge.until_relays_queued(1).await;
    bridge.drain().await;
    let sent: Vec<String> =
        bridge.ib.sent().iter().map(|m| m.body["content"]["text"].as_str().unwrap().to_owned()).collect();
    assert_eq!(sent, ["sent while the bridge was away"]);
}

/// No event and no keep-alive yet (Salesforce sends the first after 270 s): a bridge that
/// stops now must still find, after its restart, the replies sent while it was down.
async fn a_restart_before_the_first_position_misses_no_reply_on_either_topic(db: TestDb) {
    // The session's end comes only as a change event: both topics are tested.
    let org = byoc_sim::salesforce::SalesforceConfig {
        session_status_on_event: false,
        ..byoc_sim::salesforce::SalesforceConfig::default()
    };
    let bridge = Bridge::start_full(db, &[], org).await;
    let user = "447700901101";
    let conversation = bridge.open_conversation(user).await;
    let app = bridge.app.subscriber.directory.snapshot().await.unwrap().by_id_or_name(&bridge.app_id).unwrap();
    let cursor = |topic: String| {
        let (db, app_id) = (bridge.app.db.clone(), bridge.app_id.clone());
        async move { db.run(move |c| byoc_bridge::db::cursors::get(c, &app_id, &topic)).await.unwrap() }
    };
    let event_topic = format!("/event/{}", app.platform_event);
    let session_topic = byoc_bridge::outbound::SESSION_CHANGE_TOPIC.to_owned();
    let (events, sessions) = (bridge.subscribe().await, bridge.subscribe_sessions().await);
    for topic in [&event_topic, &session_topic] {
        let stored = cursor(topic.clone()).await.expect("a position as soon as the subscription is open");
        assert!(byoc_bridge::db::cursors::since_of(&stored).is_some(), "{topic}: {stored}");
    }
    drop((events, sessions));
    bridge.until("the subscriptions stopped", || bridge.sf.pubsub.open_streams() == 0).await;

    // While the bridge is down the agent answers and ends the session.
    bridge.sf.agent_send_text(&conversation, "sent while the bridge was down").unwrap();
    bridge.sf.agent_end(&conversation).unwrap();
    let (_events, _sessions) = (bridge.subscribe().await, bridge.subscribe_sessions().await);
    bridge.until_relays_queued(2).await;
    bridge.drain().await;
    let sent: Vec<String> =
        bridge.ib.sent().iter().map(|m| m.body["content"]["text"].as_str().unwrap().to_owned()).collect();
    assert_eq!(sent, ["sent while the bridge was down", "Thanks for chatting with us."]);
}

/// The agent's two replies; Infobip carries out the first at once but answers only after the
/// bridge's 2 s timeout.
async fn late_first_answer(db: TestDb, user: &str) -> Bridge {
    let bridge = Bridge::start(db).await;
    let conversation = bridge.open_conversation(user).await;
    let _subscription = bridge.subscribe().await;
    bridge
        .ib
        .faults
        .script("/whatsapp/1/message", byoc_sim::faults::Fault::Late(std::time::Duration::from_millis(2500)));
    bridge.sf.agent_send_text(&conversation, "first").unwrap();
    bridge.sf.agent_send_text(&conversation, "second").unwrap();
    bridge.until_relays_queued(2).await;
    let report = bridge.drain().await;
    assert_eq!((report.completed, report.retried), (0, 1), "the first timed out, the second waits: {report:?}");
    assert_eq!(sent_texts(&bridge), ["first"], "Infobip has the first already");
    bridge
}

fn sent_texts(bridge: &Bridge) -> Vec<String> {
    bridge.ib.sent().iter().map(|m| m.body["content"]["text"].as_str().unwrap_or_default().to_owned()).collect()
}

async fn a_send_infobip_took_but_answered_too_late_is_not_sent_twice(db: TestDb) {
    let user = "447700901102";
    let bridge = late_first_answer(db, user).await;
    // However far the clock moves within the wait, the first is not sent again, and the second
    // does not overtake it.
    let later = byoc_bridge::db::now() + chrono::Duration::seconds(30);
    bridge.app.runner.drain_at(later).await.unwrap();
    assert_eq!(sent_texts(&bridge), ["first"]);
    // Infobip's delivery report of the first settles it.
    let first = bridge.ib.sent()[0].body["messageId"].as_str().unwrap().to_owned();
    let bytes = byoc_sim::infobip::webhooks::delivery_report(&first, user, true).to_string().into_bytes();
    let signature = bridge.signature(&bytes);
    let (status, _) =
        bridge.post_raw("/api/infobip/inbound/reports", bytes, &[("X-Infobip-Signature", &signature)]).await;
    assert_eq!(status, 200);
    bridge.drain_all().await;
    assert_eq!(sent_texts(&bridge), ["first", "second"]);
}

async fn without_a_report_a_send_of_unknown_outcome_is_repeated_once_before_newer_replies(db: TestDb) {
    let bridge = late_first_answer(db, "447700901103").await;
    // Infobip has no lookup by messageId: after the wait the first goes again, under the same
    // messageId, and still before the second.
    bridge.drain_all().await;
    assert_eq!(sent_texts(&bridge), ["first", "first", "second"]);
    let ids: Vec<String> = bridge.ib.sent().iter().map(|m| m.body["messageId"].as_str().unwrap().to_owned()).collect();
    assert_eq!(ids[0], ids[1], "the repeat carries the first's messageId");
}

async fn a_reply_infobip_refuses_is_reported_to_the_agent(db: TestDb) {
    let bridge = Bridge::start(db).await;
    let user = "447700901100";
    let conversation = bridge.open_conversation(user).await;
    let _subscription = bridge.subscribe().await;
    // The number stopped being a WhatsApp sender of the account: Infobip refuses the send.
    bridge.ib.remove_sender(crate::bridge::SENDER);
    let entry = bridge.sf.agent_send_text(&conversation, "Thanks for waiting.").unwrap();
    bridge.until_relays_queued(1).await;
    let report = bridge.drain().await;
    assert_eq!(report.dead, 1);
    assert!(bridge.ib.sent().is_empty());
    let failures = bridge.delivery_failures(user);
    let failed = failures.first().expect("the agent sees the failure");
    assert_eq!(failed["failedConversationEntryIdentifier"], entry.as_str());
    assert_eq!(failed["errorCode"], "INFOBIP_REFUSED");
    assert!(failed["errorMessage"].as_str().unwrap().contains("from"), "the reason says what was wrong");
}

async fn a_reply_that_stays_unsendable_is_reported_when_retries_run_out(db: TestDb) {
    use byoc_sim::faults::Fault;
    let bridge = Bridge::start_with(db, &[("BYOC__WORKER__MAX_ATTEMPTS", "3")]).await;
    let user = "447700901200";
    let conversation = bridge.open_conversation(user).await;
    let _subscription = bridge.subscribe().await;
    for _ in 0..3 {
        bridge.ib.faults.script("/whatsapp/1/message", Fault::ServerError);
    }
    let entry = bridge.sf.agent_send_text(&conversation, "hello?").unwrap();
    bridge.until_relays_queued(1).await;
    bridge.drain_all().await;
    assert!(bridge.ib.sent().is_empty());
    assert_eq!(bridge.ib.faults.injected(), 3, "tried three times");
    let failures = bridge.delivery_failures(user);
    let failed = failures.first().expect("the agent sees the failure");
    assert_eq!(failed["failedConversationEntryIdentifier"], entry.as_str());
    assert_eq!(failed["errorCode"], "RETRIES_EXHAUSTED");
}

async fn a_message_with_several_files_that_fails_part_way_sends_each_file_once(db: TestDb) {
    use byoc_sim::faults::Fault;
    let bridge = Bridge::start(db).await;
    let user = "447700901300";
    let conversation = bridge.open_conversation(user).await;
    let _subscription = bridge.subscribe().await;
    // The photo goes through; the document after it meets an outage, then a throttle.
    bridge.ib.faults.script("/whatsapp/1/message/document", Fault::ServerError);
    bridge.ib.faults.script("/whatsapp/1/message/document", Fault::Throttle { retry_after_secs: 1 });
    let files = vec![
        ("photo.png", "image/png", vec![0x89, b'P', b'N', b'G']),
        ("invoice.pdf", "application/pdf", b"%PDF-1.7".to_vec()),
        ("terms.pdf", "application/pdf", b"%PDF-1.7 terms".to_vec()),
    ];
    bridge.sf.agent_send_attachments(&conversation, files, Some("Your papers")).unwrap();
    bridge.until_relays_queued(1).await;
    bridge.drain_all().await;

    assert_eq!(bridge.ib.faults.injected(), 2);
    let sent = bridge.ib.sent();
    let files: Vec<(&str, &str)> =
        sent.iter().map(|m| (m.kind.as_str(), m.body["content"]["filename"].as_str().unwrap_or("-"))).collect();
    assert_eq!(files, [("image", "-"), ("document", "invoice.pdf"), ("document", "terms.pdf")], "each file once");
    assert_eq!(sent[0].body["content"]["caption"], "Your papers", "the text goes with the first file");
    let ids: std::collections::HashSet<&str> = sent.iter().map(|m| m.body["messageId"].as_str().unwrap()).collect();
    assert_eq!(ids.len(), 3);
    assert!(bridge.delivery_failures(user).is_empty());
}

async fn a_session_end_told_twice_sends_one_closing_message(db: TestDb) {
    let bridge = Bridge::start(db).await;
    let user = "447700901400";
    let conversation = bridge.open_conversation(user).await;
    let _events = bridge.subscribe().await;
    let _sessions = bridge.subscribe_sessions().await;
    bridge.sf.agent_end(&conversation).unwrap();
    // Both the custom event and the change event arrive; they are one closing message.
    bridge.until_relays_queued(1).await;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let metrics = bridge.app.get("/metrics").await.text().await.unwrap();
        if metrics.contains(r#"byoc_outbound_entries_total{app="acme",outcome="duplicate"} 1"#) {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "the second telling never arrived: {metrics}");
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    bridge.drain().await;
    let sent: Vec<String> =
        bridge.ib.sent().iter().map(|m| m.body["content"]["text"].as_str().unwrap().to_owned()).collect();
    assert_eq!(sent, ["Thanks for chatting with us."]);
}

async fn a_session_end_known_only_from_change_data_capture_sends_the_closing_message(db: TestDb) {
    use byoc_sim::salesforce::SalesforceConfig;
    let org = SalesforceConfig { session_status_on_event: false, ..SalesforceConfig::default() };
    let bridge = Bridge::start_full(db, &[], org).await;
    let user = "447700901500";
    let conversation = bridge.open_conversation(user).await;
    let _sessions = bridge.subscribe_sessions().await;
    bridge.sf.agent_end(&conversation).unwrap();
    bridge.until_relays_queued(1).await;
    bridge.drain().await;
    let sent: Vec<String> =
        bridge.ib.sent().iter().map(|m| m.body["content"]["text"].as_str().unwrap().to_owned()).collect();
    assert_eq!(sent, ["Thanks for chatting with us."]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_subscription_runs_over_tls() {
    use byoc_bridge::provisioning::{self as prov, AppSpec, Ctx};
    let bridge = Bridge::start(TestDb::sqlite()).await;
    let user = "447700901600";
    let conversation = bridge.open_conversation(user).await;

    // The org's Pub/Sub endpoint speaks TLS with a certificate for "localhost".
    let fixture = |name: &str| std::fs::read(format!("{}/tests/fixtures/{name}", env!("CARGO_MANIFEST_DIR"))).unwrap();
    let (cert, key) = (fixture("tls_cert.pem"), fixture("tls_key.pem"));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let cancel = tokio_util::sync::CancellationToken::new();
    let sim = bridge.sf.pubsub.clone();
    let server_cancel = cancel.clone();
    tokio::spawn(async move { sim.serve_tls(listener, server_cancel, &cert, &key).await });
    let _stop = cancel.drop_guard();

    let services = byoc_bridge::startup::Services::open(&bridge.settings()).await.unwrap();
    let (cipher, app_id) = (services.cipher.clone(), bridge.app_id.clone());
    bridge
        .app
        .db
        .write(move |c| {
            let ctx = Ctx { cipher: &cipher, actor: "test" };
            let mut row = prov::find_app(c, &app_id).map_err(anyhow::Error::from)?;
            let spec = AppSpec { pubsub_endpoint: Some(format!("https://localhost:{port}")), ..AppSpec::default() };
            prov::update_app(c, &ctx, &mut row, &spec).map_err(anyhow::Error::from)?;
            Ok(())
        })
        .await
        .unwrap();
    let mut subscriber = bridge.app.subscriber.clone();
    subscriber.directory.invalidate();
    let mut trusting = bridge.settings();
    trusting.salesforce.extra_ca_file = Some(format!("{}/tests/fixtures/tls_ca.pem", env!("CARGO_MANIFEST_DIR")));
    subscriber.salesforce = byoc_bridge::salesforce::Client::new(&trusting.salesforce).unwrap();
    let app = subscriber.directory.snapshot().await.unwrap().by_id_or_name(&bridge.app_id).unwrap();
    assert_eq!(app.salesforce.pubsub_endpoint.as_deref(), Some(format!("https://localhost:{port}").as_str()));
    let subscription = tokio_util::sync::CancellationToken::new();
    tokio::spawn(subscriber.keep_subscribed(app, subscription.clone()));
    let _unsubscribe = subscription.drop_guard();
    bridge.until("the TLS subscription is open", || bridge.sf.pubsub.open_streams() == 1).await;

    bridge.sf.agent_send_text(&conversation, "over TLS").unwrap();
    bridge.until_relays_queued(1).await;
    bridge.drain().await;
    assert_eq!(bridge.ib.sent()[0].body["content"]["text"], "over TLS");
}
