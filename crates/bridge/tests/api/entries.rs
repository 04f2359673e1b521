//! Salesforce entries beyond messages, end to end: the queue's news as the admin's messages,
//! a file that did not upload told to the agent, and a link as WhatsApp's URL button.

use byoc_bridge::provisioning::{self as prov, AppSpec};
use serde_json::json;

use crate::bridge::Bridge;
use crate::helpers::TestDb;

crate::on_both_backends!(
    queue_position_and_estimated_wait_reach_the_customer_in_the_admins_words,
    without_waiting_messages_the_queue_news_is_let_go,
    a_file_that_did_not_upload_is_told_to_the_agent,
    a_rich_link_arrives_as_a_url_button
);

async fn set_waiting(bridge: &Bridge, queue: &str, wait: &str) {
    let spec = AppSpec { queue_message: Some(queue.into()), wait_message: Some(wait.into()), ..Default::default() };
    bridge.change_app(move |c, ctx, row| prov::update_app(c, ctx, row, &spec)).await;
}

fn routed(seconds: i64) -> serde_json::Value {
    json!({ "routingType": "Initial", "failureType": "None", "recordId": "0Mw000000000001",
            "estimatedWaitTime": { "estimatedWaitTimeInSeconds": seconds, "isEWTRequested": true } })
}

/// `QueuePosition` and a `RoutingResult` with an estimated wait each become the admin's
/// message with the value in it; a routing without an estimate sends nothing.
async fn queue_position_and_estimated_wait_reach_the_customer_in_the_admins_words(db: TestDb) {
    let bridge = Bridge::start(db).await;
    set_waiting(
        &bridge,
        "You are number {position} in the queue.",
        "An agent will be with you in about {minutes} min.",
    )
    .await;
    let user = "447700900820";
    let conversation = bridge.open_conversation(user).await;
    let subscription = bridge.subscribe().await;
    let position = |n: i64| json!({ "pendingServiceRoutingId": "0JR000000000001", "workItemId": "0Mw000000000001", "position": n });
    bridge.sf.agent_publish(&conversation, "QueuePosition", position(3)).unwrap();
    bridge.sf.agent_publish(&conversation, "RoutingResult", routed(150)).unwrap();
    let mut no_estimate = routed(0);
    no_estimate["estimatedWaitTime"]["isEWTRequested"] = json!(false);
    bridge.sf.agent_publish(&conversation, "RoutingResult", no_estimate).unwrap();
    bridge.sf.agent_publish(&conversation, "QueuePosition", position(1)).unwrap();
    bridge.until_relays_queued(3).await;
    let report = bridge.drain().await;
    drop(subscription);
    assert_eq!((report.completed, report.dead), (3, 0), "{report:?}");
    let sent: Vec<String> =
        bridge.ib.sent().iter().filter_map(|m| m.body["content"]["text"].as_str().map(str::to_owned)).collect();
    assert_eq!(
        sent,
        [
            "You are number 3 in the queue.",
            "An agent will be with you in about 3 min.",
            "You are number 1 in the queue."
        ]
    );
    assert!(bridge.delivery_failures(user).is_empty());

    // A message without its placeholder is refused, naming the field.
    let spec = AppSpec { queue_message: Some("Please wait.".into()), ..Default::default() };
    let refused = bridge
        .change_app(move |c, ctx, row| Ok(prov::update_app(c, ctx, row, &spec).map(|_| ()).map_err(|e| e.to_string())))
        .await;
    assert!(refused.as_ref().is_err_and(|e| e.contains("queue_message") && e.contains("{position}")), "{refused:?}");
}

/// With no waiting messages (the default) the queue's news is Salesforce's bookkeeping: no
/// message, no failure for the agent.
async fn without_waiting_messages_the_queue_news_is_let_go(db: TestDb) {
    let bridge = Bridge::start(db).await;
    let user = "447700900821";
    let conversation = bridge.open_conversation(user).await;
    let subscription = bridge.subscribe().await;
    bridge
        .sf
        .agent_publish(
            &conversation,
            "QueuePosition",
            json!({ "pendingServiceRoutingId": "0JR1", "workItemId": "0Mw1", "position": 2 }),
        )
        .unwrap();
    bridge.sf.agent_publish(&conversation, "RoutingResult", routed(60)).unwrap();
    let reply = json!({ "abstractMessage": { "messageType": "StaticContentMessage", "id": "m1",
        "staticContent": { "formatType": "Text", "text": "Hello" } } });
    bridge.sf.agent_publish(&conversation, "Message", reply).unwrap();
    bridge.until_relays_queued(1).await;
    bridge.drain().await;
    drop(subscription);
    let sent: Vec<_> = bridge.ib.sent().iter().map(|m| m.body["content"]["text"].clone()).collect();
    assert_eq!(sent, [json!("Hello")]);
    assert!(bridge.delivery_failures(user).is_empty());
}

/// `MessageUpdated` with `ErrorAttachmentUploadResult` (the vendor's schema) puts a notice in
/// the agent's conversation naming the file and the reason; the file that did upload is not
/// mentioned, and nothing goes to the customer.
async fn a_file_that_did_not_upload_is_told_to_the_agent(db: TestDb) {
    let bridge = Bridge::start(db).await;
    let user = "447700900822";
    let conversation = bridge.open_conversation(user).await;
    let subscription = bridge.subscribe().await;
    let updated = json!({ "updatedMessage": { "messageType": "StaticContentMessage", "id": "m7",
        "staticContent": { "formatType": "Attachments", "attachments": [
            { "id": "069000000000001", "name": "invoice.pdf", "mimeType": "application/pdf", "url": "",
              "referenceId": "r1", "attachmentUploadResult": { "resultType": "ErrorAttachmentUploadResult",
                                                               "errorType": "StorageLimitExceeded" } },
            { "id": "069000000000002", "name": "photo.jpg", "mimeType": "image/jpeg", "url": "",
              "referenceId": "r2", "attachmentUploadResult": { "resultType": "CompletedAttachmentUploadResult" } } ] } } });
    bridge.sf.agent_publish(&conversation, "MessageUpdated", updated).unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while notices_stored(&bridge).await == 0 {
        assert!(std::time::Instant::now() < deadline, "timed out waiting for the notice to be stored");
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    let report = bridge.drain().await;
    drop(subscription);
    assert_eq!((report.completed, report.dead), (1, 0), "{report:?}");
    let entries = bridge.sf.conversation_for(user).unwrap().entries;
    let notices: Vec<String> = entries
        .iter()
        .filter(|e| e.sender_role == "EndUser")
        .map(|e| e.payload.to_string())
        .filter(|p| p.contains("Bridge notice"))
        .collect();
    assert_eq!(notices.len(), 1, "one notice, for the one failed file: {entries:?}");
    assert!(notices[0].contains("invoice.pdf") && notices[0].contains("file storage is full"), "{notices:?}");
    assert!(bridge.ib.sent().is_empty(), "nothing goes to the customer");
    assert!(bridge.delivery_failures(user).is_empty());
}

/// A rich link goes through Infobip's `interactive/url-button` (checked against Infobip's
/// schema by the simulator): the title on the button, the text above it.
async fn a_rich_link_arrives_as_a_url_button(db: TestDb) {
    let bridge = Bridge::start(db).await;
    let user = "447700900823";
    let conversation = bridge.open_conversation(user).await;
    let subscription = bridge.subscribe().await;
    let rich = json!({ "abstractMessage": { "messageType": "StaticContentMessage", "id": "m1",
        "staticContent": { "formatType": "RichLink", "text": "Track it here",
            "linkItem": { "itemType": "TitleLinkItem", "url": "https://acme.example/t/1",
                          "titleItem": { "itemType": "TitleItem", "title": "Your parcel" } } } } });
    bridge.sf.agent_publish(&conversation, "Message", rich).unwrap();
    bridge.until_relays_queued(1).await;
    let report = bridge.drain().await;
    drop(subscription);
    assert_eq!((report.completed, report.dead), (1, 0), "{report:?}");
    let sent = bridge.ib.sent();
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0].kind, "interactive/url-button");
    assert_eq!(
        sent[0].body["content"],
        json!({ "body": { "text": "Track it here" },
                "action": { "displayText": "Your parcel", "url": "https://acme.example/t/1" } })
    );
}

async fn notices_stored(bridge: &Bridge) -> i64 {
    bridge
        .app
        .db
        .run(|c| {
            use byoc_bridge::db::schema::messages;
            use diesel::prelude::*;
            Ok(messages::table.filter(messages::kind.eq("UPLOAD_FAILED")).count().get_result::<i64>(c)?)
        })
        .await
        .unwrap()
}
