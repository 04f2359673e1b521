//! Consent both ways: WhatsApp's marketing STOP and RESUME become Salesforce consent where
//! the channel's definition gives it to the partner (`PATCH /consent`), a notice to the agent
//! either way; Salesforce's own `EndUserConsentUpdated` entries hold marketing templates back,
//! or let them go again.

use serde_json::{Value, json};

use crate::bridge::{Bridge, CHANNEL, CONTEXT, SENDER};
use crate::helpers::TestDb;

crate::on_both_backends!(
    a_partner_owned_channel_gets_the_customers_consent_from_whatsapp,
    a_salesforce_owned_channel_gets_a_notice_and_no_consent_call,
    salesforce_consent_entries_hold_marketing_templates_back_and_let_them_go
);

fn marketing_update(user: &str, status: &str, day: u32) -> Vec<u8> {
    json!({ "from": SENDER, "content": { "sender": SENDER, "from": user, "notificationMessagesStatus": status,
                                         "description": "User requested it" },
            "createdAt": format!("2026-01-0{day}T01:00:00.000+0000") })
    .to_string()
    .into_bytes()
}

async fn post_update(bridge: &Bridge, body: Vec<u8>) -> u16 {
    let signature = bridge.signature(&body);
    bridge.post_raw("/api/infobip/inbound/notifications", body, &[("X-Infobip-Signature", &signature)]).await.0
}

async fn opted_out(bridge: &Bridge, user: &str) -> Option<chrono::NaiveDateTime> {
    let (app, user) = (bridge.app_row().await.id, user.to_owned());
    bridge
        .app
        .db
        .run(move |c| {
            let id = byoc_bridge::db::conversations::find_id(c, &app, &user, SENDER)?.expect("a conversation");
            Ok(byoc_bridge::db::conversations::find(c, id)?.and_then(|c| c.marketing_opted_out_at))
        })
        .await
        .unwrap()
}

/// A channel whose definition gives consent to the partner (a CCaaS package's) gets
/// `PATCH /consent` after the notice, in the conversation's order: opted out on STOP,
/// explicitly opted in on RESUME.
async fn a_partner_owned_channel_gets_the_customers_consent_from_whatsapp(db: TestDb) {
    let bridge = Bridge::start(db).await;
    bridge.sf.set_consent_owner(CONTEXT, "Partner");
    let user = "447700900811";
    assert_eq!(post_update(&bridge, marketing_update(user, "stop", 1)).await, 200);
    let report = bridge.drain().await;
    assert_eq!((report.completed, report.dead), (2, 0), "the notice, then the consent: {report:?}");
    assert_eq!(post_update(&bridge, marketing_update(user, "resume", 2)).await, 200);
    let report = bridge.drain().await;
    assert_eq!((report.completed, report.dead), (2, 0), "{report:?}");

    let statuses: Vec<Value> = bridge.sf.consents().iter().map(|c| c["consentStatus"].clone()).collect();
    assert_eq!(statuses, [json!("OptedOut"), json!("ExplicitlyOptedIn")]);
    let first = &bridge.sf.consents()[0];
    assert_eq!(
        (first["endUserClientId"].as_str(), first["channelAddressIdentifier"].as_str()),
        (Some(user), Some(CHANNEL))
    );
    let entries = bridge.sf.conversation_for(user).unwrap().entries;
    assert_eq!(entries.len(), 2, "both notices reach the agent too: {entries:?}");
}

/// BYOC Messaging keeps consent in Salesforce (the simulator refuses `PATCH /consent` with
/// 10022 there, as the vendor does): the bridge does not call it, and the agent reads the
/// notice.
async fn a_salesforce_owned_channel_gets_a_notice_and_no_consent_call(db: TestDb) {
    let bridge = Bridge::start(db).await;
    let user = "447700900812";
    assert_eq!(post_update(&bridge, marketing_update(user, "stop", 1)).await, 200);
    let report = bridge.drain().await;
    assert_eq!((report.completed, report.dead), (2, 0), "{report:?}");
    assert!(bridge.sf.consents().is_empty());
    let entries = bridge.sf.conversation_for(user).unwrap().entries;
    assert!(entries.iter().any(|e| e.payload.to_string().contains("asked to stop marketing messages")), "{entries:?}");
    assert!(opted_out(&bridge, user).await.is_some());
}

/// Salesforce's `EndUserConsentUpdated` (the vendor's schema: subject, status, who began it)
/// is honoured, never sent to the customer nor reported as undeliverable.
async fn salesforce_consent_entries_hold_marketing_templates_back_and_let_them_go(db: TestDb) {
    let bridge = Bridge::start(db).await;
    let user = "447700900813";
    let conversation = bridge.open_conversation(user).await;
    let subscription = bridge.subscribe().await;
    let consent = |status: &str| {
        json!({ "endUserSubject": user, "consentStatus": status, "isEndUserInitiated": false,
                "endUserDisplayName": null })
    };
    let reply = json!({ "abstractMessage": { "messageType": "StaticContentMessage", "id": "m1",
        "staticContent": { "formatType": "Text", "text": "Noted." } } });
    bridge.sf.agent_publish(&conversation, "EndUserConsentUpdated", consent("OptedOut")).unwrap();
    bridge.sf.agent_publish(&conversation, "Message", reply.clone()).unwrap();
    bridge.until_relays_queued(1).await;
    assert!(opted_out(&bridge, user).await.is_some(), "an opt-out in Salesforce holds marketing back");

    bridge.sf.agent_publish(&conversation, "EndUserConsentUpdated", consent("ExplicitlyOptedIn")).unwrap();
    bridge.sf.agent_publish(&conversation, "Message", reply).unwrap();
    bridge.until_relays_queued(2).await;
    assert!(opted_out(&bridge, user).await.is_none(), "an opt-in lets it go");
    let report = bridge.drain().await;
    drop(subscription);
    assert_eq!((report.completed, report.dead), (2, 0), "{report:?}");
    assert_eq!(bridge.ib.sent().len(), 2, "only the two replies reach the customer");
    assert!(bridge.delivery_failures(user).is_empty());
}
