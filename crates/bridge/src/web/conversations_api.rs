//! `POST /api/conversations`: the business starts a WhatsApp conversation that agents (or
//! Agentforce) take over in Salesforce; `POST /api/handovers`: any bot hands a customer to an
//! agent with its transcript. Authenticated with the app's API token
//! (`byoc-bridge app api-token APP`), sent as `Authorization: Bearer …`.

use actix_web::{HttpRequest, HttpResponse, get, post, web};

use super::AppState;
use super::webhooks::read_body;
use crate::crypto::constant_time_eq;
use crate::db::handovers;
use crate::directory::{ActiveApp, Snapshot};
use crate::error::AppError;
use crate::proactive::{self, ProactiveRequest};

fn find_by_token(snapshot: &Snapshot, hash: &str) -> Option<std::sync::Arc<ActiveApp>> {
    snapshot
        .apps
        .iter()
        .find(|app| app.api_token_hash.as_deref().is_some_and(|h| constant_time_eq(h.as_bytes(), hash.as_bytes())))
        .cloned()
}

/// The app whose API token the request carries (a token issued a moment ago is found too).
async fn authenticate(state: &AppState, req: &HttpRequest) -> Result<std::sync::Arc<ActiveApp>, AppError> {
    let arrived = std::time::Instant::now();
    let token = req
        .headers()
        .get("Authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .ok_or(AppError::Unauthorized)?;
    let hash = crate::crypto::token_hash(token);
    if let Some(app) = find_by_token(&*state.directory.snapshot().await?, &hash) {
        return Ok(app);
    }
    find_by_token(&*state.directory.refreshed(arrived).await?, &hash).ok_or(AppError::Unauthorized)
}

/// The app and body of an authenticated call.
async fn authenticated_call(
    state: &AppState,
    req: &HttpRequest,
    payload: web::Payload,
) -> Result<(std::sync::Arc<ActiveApp>, web::Bytes), AppError> {
    let app = authenticate(state, req).await?;
    let body = read_body(payload, state.settings.server.max_body_bytes).await?;
    Ok((app, body))
}

/// `202` with the new request's `Location`, or `200` for one seen before (the same answer).
fn accepted(state: &AppState, created: bool, location: String, view: serde_json::Value) -> HttpResponse {
    if created {
        state.wake.notify_one();
    }
    let mut response = if created { HttpResponse::Accepted() } else { HttpResponse::Ok() };
    response.insert_header(("Location", location)).json(view)
}

#[post("/api/conversations")]
pub async fn start(
    state: web::Data<AppState>,
    req: HttpRequest,
    payload: web::Payload,
) -> Result<HttpResponse, AppError> {
    let (app, body) = authenticated_call(&state, &req, payload).await?;
    let request = ProactiveRequest::parse(&app, &body).map_err(|e| AppError::BadRequest(e.to_string()))?;
    let app_id = app.id.clone();
    let (view, created) = state
        .db
        .write(move |c| {
            let (row, created) = proactive::accept(c, &app_id, &request)?;
            Ok((proactive::view(c, &row)?, created))
        })
        .await?;
    tracing::info!(app.id = %app.id, proactive.id = %view["id"], duplicate = !created, "proactive conversation requested");
    let location = format!("/api/conversations/{}", view["id"].as_str().unwrap_or_default());
    Ok(accepted(&state, created, location, view))
}

#[get("/api/conversations/{id}")]
pub async fn status(
    state: web::Data<AppState>,
    req: HttpRequest,
    id: web::Path<String>,
) -> Result<HttpResponse, AppError> {
    let app = authenticate(&state, &req).await?;
    let (id, app_id) = (id.into_inner(), app.id.clone());
    let view = state
        .db
        .run(move |c| match handovers::find_proactive(c, &id)? {
            Some(row) if row.app_id == app_id => Ok(Some(proactive::view(c, &row)?)),
            _ => Ok(None),
        })
        .await?
        .ok_or_else(|| AppError::NotFound("conversation".into()))?;
    Ok(HttpResponse::Ok().json(view))
}

#[post("/api/handovers")]
pub async fn handover(
    state: web::Data<AppState>,
    req: HttpRequest,
    payload: web::Payload,
) -> Result<HttpResponse, AppError> {
    let (app, body) = authenticated_call(&state, &req, payload).await?;
    let call =
        crate::handover::api::ApiHandover::parse(&app, &body).map_err(|e| AppError::BadRequest(e.to_string()))?;
    let app_id = app.id.clone();
    let (view, created) = state
        .db
        .write(move |c| {
            let (row, created) =
                crate::handover::accept_with_transcript(c, &app_id, &call.request, Some(call.transcript.clone()))?;
            Ok((crate::handover::view(c, &row)?, created))
        })
        .await?;
    tracing::info!(app.id = %app.id, handover.id = %view["handoverId"], duplicate = !created, "bot handover accepted");
    let location = format!("/api/handovers/{}", view["handoverId"].as_str().unwrap_or_default());
    Ok(accepted(&state, created, location, view))
}

#[get("/api/handovers/{id}")]
pub async fn handover_status(
    state: web::Data<AppState>,
    req: HttpRequest,
    id: web::Path<String>,
) -> Result<HttpResponse, AppError> {
    let app = authenticate(&state, &req).await?;
    let (id, app_id) = (id.into_inner(), app.id.clone());
    let view = state
        .db
        .run(move |c| match handovers::find(c, &id)? {
            Some(row) if row.app_id == app_id => Ok(Some(crate::handover::view(c, &row)?)),
            _ => Ok(None),
        })
        .await?
        .ok_or_else(|| AppError::NotFound("handover".into()))?;
    Ok(HttpResponse::Ok().json(view))
}
