//! Infobip's side of the standalone simulator's controls: play Infobip posting to the bridge.
//!
//! - `POST /__sim/webhooks/inbound` `{"from": "447700900001", "text": "hi"}` (or `"message"`:
//!   any inbound message object of the vendor's schema, and optionally `"to"`: the sender):
//!   posts an inbound-message webhook to the messages URL;
//! - `POST /__sim/webhooks/report` `{"messageId": "…", "status": "delivered" | "undeliverable"
//!   | "seen"}`: posts a delivery or seen report of a message the bridge sent to the reports URL.
//!
//! - `POST /__sim/webhooks/identity-change` `{"user": "447700900001"}`: posts WhatsApp's
//!   identity-change notification of that user to the notifications URL;
//! - `POST /__sim/webhooks/marketing` `{"user": "447700900001", "status": "stop" | "resume"}`:
//!   posts the user's marketing subscription update there.
//!
//! Each answers with every HTTP status the bridge gave (the sender retries like Infobip).

use actix_web::{HttpResponse, web};
use serde::Deserialize;
use serde_json::{Value, json};

use super::InfobipSim;
use super::webhooks::{delivery_report, inbound_envelope, inbound_result, seen_report};
use crate::control::bad_request;

pub(super) fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/__sim/webhooks/inbound", web::post().to(inbound))
        .route("/__sim/webhooks/report", web::post().to(report))
        .route("/__sim/webhooks/identity-change", web::post().to(identity_change))
        .route("/__sim/webhooks/marketing", web::post().to(marketing));
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct InboundRequest {
    from: String,
    to: Option<String>,
    text: Option<String>,
    message: Option<Value>,
}

async fn inbound(sim: web::Data<InfobipSim>, body: web::Json<InboundRequest>) -> HttpResponse {
    let body = body.into_inner();
    let message = match (body.text, body.message) {
        (Some(text), None) => json!({ "type": "TEXT", "text": text }),
        (None, Some(message)) => message,
        _ => return bad_request("give either text or message"),
    };
    let (webhook, first_sender) = {
        let state = sim.state();
        (state.webhook.clone(), state.senders.first().cloned())
    };
    let Some(webhook) = webhook else {
        return HttpResponse::Conflict().json(json!({ "error": "no messages webhook is configured" }));
    };
    let Some(to) = body.to.or(first_sender) else {
        return bad_request("the account has no sender: give to");
    };
    let id = format!("wamid.sim.{}", uuid::Uuid::new_v4().simple());
    sim.state().inbound_ids.insert(id.clone());
    let envelope = inbound_envelope(vec![inbound_result(&body.from, &to, &id, message)]);
    let delivery = webhook.post(&envelope).await;
    HttpResponse::Ok().json(json!({ "messageId": id, "statuses": delivery.statuses }))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct ReportRequest {
    message_id: String,
    status: ReportStatus,
}

#[derive(Deserialize, Clone, Copy)]
#[serde(rename_all = "lowercase")]
enum ReportStatus {
    Delivered,
    Undeliverable,
    Seen,
}

async fn report(sim: web::Data<InfobipSim>, body: web::Json<ReportRequest>) -> HttpResponse {
    let (webhook, sent) = {
        let state = sim.state();
        let sent = state.sent.iter().find(|m| m.message_id == body.message_id).cloned();
        (state.report_webhook.clone(), sent)
    };
    let Some(webhook) = webhook else {
        return HttpResponse::Conflict().json(json!({ "error": "no reports webhook is configured" }));
    };
    let Some(sent) = sent else {
        return HttpResponse::NotFound().json(json!({ "error": "no message was sent with this messageId" }));
    };
    let report = match body.status {
        ReportStatus::Delivered => delivery_report(&sent.message_id, &sent.to, true),
        ReportStatus::Undeliverable => delivery_report(&sent.message_id, &sent.to, false),
        ReportStatus::Seen => seen_report(&sent.message_id, &sent.to, &sent.from),
    };
    let delivery = webhook.post(&report).await;
    HttpResponse::Ok().json(json!({ "statuses": delivery.statuses }))
}

/// Where notifications go, and the business number they come from (the account's first).
fn notification_target(sim: &InfobipSim) -> Result<(super::webhooks::WebhookSender, String), HttpResponse> {
    let state = sim.state();
    let sender = state.senders.first().cloned().unwrap_or_default();
    match state.notification_webhook.clone() {
        Some(webhook) => Ok((webhook, sender)),
        None => Err(HttpResponse::Conflict().json(json!({ "error": "no notifications webhook is configured" }))),
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct IdentityChangeRequest {
    user: String,
}

/// The shape of Infobip's `receive-whatsapp-identity-change-notification`: `from` is the
/// business's sender, `content.userNumber` the customer whose security code changed.
async fn identity_change(sim: web::Data<InfobipSim>, body: web::Json<IdentityChangeRequest>) -> HttpResponse {
    let (webhook, sender) = match notification_target(&sim) {
        Ok(target) => target,
        Err(refused) => return refused,
    };
    let now = chrono::Utc::now().format("%Y-%m-%dT%H:%M:%S%.3f%z").to_string();
    let hash = uuid::Uuid::new_v4().simple().to_string();
    let notice = json!({
        "from": sender,
        "content": { "description": "Security code changed.", "hash": hash.get(..12).unwrap_or_default(),
                     "type": "user_identity_changed", "userNumber": body.user },
        "createdAt": now
    });
    let delivery = webhook.post(&notice).await;
    HttpResponse::Ok().json(json!({ "statuses": delivery.statuses }))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct MarketingRequest {
    user: String,
    status: MarketingStatus,
}

#[derive(Deserialize, Clone, Copy)]
#[serde(rename_all = "lowercase")]
enum MarketingStatus {
    Stop,
    Resume,
}

/// The shape of Infobip's `receive-whatsapp-marketing-update-notification`: the user's STOP or
/// RESUME of the business's marketing messages.
async fn marketing(sim: web::Data<InfobipSim>, body: web::Json<MarketingRequest>) -> HttpResponse {
    let (webhook, sender) = match notification_target(&sim) {
        Ok(target) => target,
        Err(refused) => return refused,
    };
    let (status, description) = match body.status {
        MarketingStatus::Stop => ("stop", "User requested to stop marketing messages"),
        MarketingStatus::Resume => ("resume", "User requested to resume marketing messages"),
    };
    let now = chrono::Utc::now().format("%Y-%m-%dT%H:%M:%S%.3f%z").to_string();
    let update = json!({
        "from": sender,
        "content": { "sender": sender, "from": body.user, "notificationMessagesStatus": status, "description": description },
        "createdAt": now
    });
    let delivery = webhook.post(&update).await;
    HttpResponse::Ok().json(json!({ "statuses": delivery.statuses }))
}
