//! The chatbot's handover call (`/api/infobip/inbound/answers`), made by the "API" element
//! of an Infobip Answers bot. Authenticated like the webhooks; answered as soon as the
//! handover and its import job are stored, because the bot waits for the answer.

use actix_web::{HttpResponse, get, routes, web};

use super::AppState;
use super::webhooks::SignedWebhook;
use crate::db::handovers;
use crate::error::AppError;
use crate::handover::{self, HandoverRequest};

#[routes]
#[post("/api/infobip/inbound/answers")]
#[post("/api/infobip/inbound/answers/{app}")]
pub async fn accept_handover(state: web::Data<AppState>, webhook: SignedWebhook) -> Result<HttpResponse, AppError> {
    let SignedWebhook { app, body } = webhook;
    let request = HandoverRequest::parse(&app, &body).map_err(|e| AppError::BadRequest(e.to_string()))?;
    let app_id = app.id.clone();
    let (view, created) = state
        .db
        .write(move |c| {
            let (row, created) = handover::accept(c, &app_id, &request)?;
            Ok((handover::view(c, &row)?, created))
        })
        .await?;
    if created {
        state.wake.notify_one();
    }
    tracing::info!(app.id = %app.id, handover.id = %view["handoverId"], duplicate = !created, "chatbot handover accepted");
    let mut answer = serde_json::json!({ "status": "accepted", "duplicate": !created });
    if let (Some(answer), Some(details)) = (answer.as_object_mut(), view.as_object()) {
        answer.extend(details.clone());
    }
    // 200, not 202: chatbot builders branch on 200 most easily.
    Ok(HttpResponse::Ok().json(answer))
}

/// A handover's progress, for the bot (or an operator) holding its id. The request is
/// authenticated like the handover call itself (its body is empty).
#[get("/api/infobip/inbound/answers/{id}")]
pub async fn handover_status(
    state: web::Data<AppState>,
    webhook: SignedWebhook,
    id: web::Path<String>,
) -> Result<HttpResponse, AppError> {
    let app = webhook.app;
    let id = id.into_inner();
    let app_id = app.id.clone();
    let view = state
        .db
        .run(move |c| match handovers::find(c, &id)? {
            Some(row) if row.app_id == app_id => Ok(Some(handover::view(c, &row)?)),
            _ => Ok(None),
        })
        .await?
        .ok_or_else(|| AppError::NotFound("handover".into()))?;
    Ok(HttpResponse::Ok().json(view))
}
