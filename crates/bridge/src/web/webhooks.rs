//! Infobip's webhooks: inbound WhatsApp messages, and delivery / seen reports.
//!
//! Each request is authenticated on the raw bytes before anything is parsed: the HMAC of the
//! body under the app's secret (either of two during a rotation) in the app's signature
//! header, or Basic auth. On the shared path the credentials themselves identify the app.
//! Messages are stored with their delivery jobs in one transaction before the 200.

use std::sync::Arc;

use actix_web::error::PayloadError;
use actix_web::{FromRequest, HttpRequest, HttpResponse, dev, routes, web};
use base64::Engine;
use futures_util::future::LocalBoxFuture;
use futures_util::{Stream, StreamExt};
use secrecy::ExposeSecret;
use serde_json::json;

use super::AppState;
use crate::directory::{ActiveApp, Snapshot, WebhookAuth};
use crate::error::AppError;
use crate::infobip::signature;
use crate::infobip::webhook::parse_inbound;

/// A webhook request whose credentials were checked on its raw body, before anything was
/// parsed: the app they belong to, and the body. The path's `{app}` segment names the app;
/// on the shared paths the credentials themselves find it.
pub(crate) struct SignedWebhook {
    pub app: Arc<ActiveApp>,
    pub body: web::Bytes,
}

impl FromRequest for SignedWebhook {
    type Error = AppError;
    type Future = LocalBoxFuture<'static, Result<Self, AppError>>;

    fn from_request(req: &HttpRequest, payload: &mut dev::Payload) -> Self::Future {
        let (req, payload) = (req.clone(), payload.take());
        Box::pin(async move {
            let state = req
                .app_data::<web::Data<AppState>>()
                .cloned()
                .ok_or_else(|| AppError::Internal(anyhow::anyhow!("the application state is not registered")))?;
            let body = read_body(payload, state.settings.server.max_body_bytes).await?;
            let app = authenticate(&state, &req, &body, req.match_info().get("app")).await?;
            Ok(Self { app, body })
        })
    }
}

/// Reads the body up to the configured limit.
pub(crate) async fn read_body<S>(mut payload: S, limit: usize) -> Result<web::Bytes, AppError>
where
    S: Stream<Item = Result<web::Bytes, PayloadError>> + Unpin,
{
    let mut body = web::BytesMut::new();
    while let Some(chunk) = payload.next().await {
        let chunk = chunk.map_err(|e| match e {
            e if super::guard::is_deadline(&e) => AppError::RequestTimeout("the body did not arrive in time".into()),
            e => AppError::BadRequest(format!("cannot read the body: {e}")),
        })?;
        if body.len() + chunk.len() > limit {
            return Err(AppError::PayloadTooLarge { limit });
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body.freeze())
}

/// Does this request carry valid credentials of `app`?
fn authenticates(app: &ActiveApp, req: &HttpRequest, body: &[u8]) -> bool {
    match &app.webhook {
        WebhookAuth::Hmac { algorithm, header, secrets } => {
            let Some(value) = req.headers().get(header.as_str()).and_then(|v| v.to_str().ok()) else {
                return false;
            };
            let secrets: Vec<&[u8]> = secrets.iter().map(|s| s.expose_secret().as_bytes()).collect();
            signature::verify(*algorithm, &secrets, body, value)
        }
        WebhookAuth::Basic { username, password } => {
            let Some(given) = req
                .headers()
                .get("Authorization")
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.strip_prefix("Basic "))
                .and_then(|v| base64::engine::general_purpose::STANDARD.decode(v.trim()).ok())
            else {
                return false;
            };
            let expected = format!("{username}:{}", password.expose_secret());
            crate::crypto::constant_time_eq(expected.as_bytes(), &given)
        }
    }
}

fn find_app(
    snapshot: &Snapshot,
    req: &HttpRequest,
    body: &[u8],
    key: Option<&str>,
) -> Result<Option<Arc<ActiveApp>>, AppError> {
    match key {
        Some(key) => {
            let app = snapshot.by_id_or_name(key).ok_or_else(|| AppError::NotFound(format!("active app {key:?}")))?;
            Ok(authenticates(&app, req, body).then_some(app))
        }
        None => Ok(snapshot.apps.iter().find(|app| authenticates(app, req, body)).cloned()),
    }
}

/// Authenticates against the cached directory, and against a fresh one before refusing
/// (the app may have been set up a moment ago).
async fn authenticate(
    state: &AppState,
    req: &HttpRequest,
    body: &[u8],
    key: Option<&str>,
) -> Result<Arc<ActiveApp>, AppError> {
    let arrived = std::time::Instant::now();
    let cached = state.directory.snapshot().await?;
    match find_app(&cached, req, body, key) {
        Ok(Some(app)) => return Ok(app),
        Ok(None) | Err(AppError::NotFound(_)) => {}
        Err(e) => return Err(e),
    }
    let fresh = state.directory.refreshed(arrived).await?;
    find_app(&fresh, req, body, key)?.ok_or(AppError::Unauthorized)
}

#[routes]
#[post("/api/infobip/inbound/messages")]
#[post("/api/infobip/inbound/messages/{app}")]
pub async fn inbound(state: web::Data<AppState>, webhook: SignedWebhook) -> Result<HttpResponse, AppError> {
    let SignedWebhook { app, body } = webhook;
    let messages = parse_inbound(&body).map_err(|e| AppError::BadRequest(e.0))?;
    if let Some((i, m)) = messages.iter().enumerate().find(|(_, m)| !app.senders.contains_key(&m.to)) {
        return Err(AppError::NotFound(format!(
            "results[{i}].to {} is not a sender of this app, so",
            crate::redact::phone(&m.to)
        )));
    }
    let app_id = app.id.clone();
    let stored = state.db.write(move |c| crate::inbound::store(c, &app_id, &messages)).await?;
    for _ in 0..stored.accepted {
        state.metrics.inbound(&app.name, "received");
    }
    for _ in 0..stored.duplicates {
        state.metrics.inbound(&app.name, "duplicate");
    }
    if stored.accepted > 0 {
        state.wake.notify_one();
    }
    tracing::info!(app.id = %app.id, accepted = stored.accepted, duplicates = stored.duplicates, "inbound webhook stored");
    Ok(HttpResponse::Ok().json(json!({ "accepted": stored.accepted, "duplicates": stored.duplicates })))
}

/// Phone numbers are shown only by their last digits.
/// Delivery and seen reports (one URL for both, as Infobip recommends).
#[routes]
#[post("/api/infobip/inbound/reports")]
#[post("/api/infobip/inbound/reports/{app}")]
pub async fn reports(state: web::Data<AppState>, webhook: SignedWebhook) -> Result<HttpResponse, AppError> {
    let SignedWebhook { app, body } = webhook;
    let reports = crate::infobip::webhook::parse_reports(&body).map_err(|e| AppError::BadRequest(e.0))?;
    let app_id = app.id.clone();
    let stored = state.db.write(move |c| crate::inbound::receipts::store(c, &app_id, &reports)).await?;
    if stored.acknowledged > 0 {
        state.wake.notify_one();
    }
    tracing::info!(app.id = %app.id, acknowledged = stored.acknowledged, failed = stored.failed, unknown = stored.unknown, "reports stored");
    Ok(HttpResponse::Ok()
        .json(json!({ "acknowledged": stored.acknowledged, "failed": stored.failed, "unknown": stored.unknown })))
}

/// Notifications about a customer that are not messages, which an Infobip subscription of
/// `IDENTITY_CHANGE` and `MARKETING_SUBSCRIPTION_UPDATE` posts: each becomes a notice the
/// agent reads in the conversation, in order with the customer's messages; a marketing STOP
/// or RESUME is also recorded (the panel then holds marketing templates back), in the same
/// transaction, with the consent update queued behind the notice (`inbound::consent`).
/// Types the bridge does not act on are acknowledged and let go.
#[routes]
#[post("/api/infobip/inbound/notifications")]
#[post("/api/infobip/inbound/notifications/{app}")]
pub async fn notifications(state: web::Data<AppState>, webhook: SignedWebhook) -> Result<HttpResponse, AppError> {
    use crate::inbound::consent::UpdateConsent;
    use crate::infobip::notification::{self, Notification};
    use crate::worker::BackgroundJob;
    let SignedWebhook { app, body } = webhook;
    let Some(parsed) = notification::parse(&body).map_err(|e| AppError::BadRequest(e.0))? else {
        return Ok(HttpResponse::Ok().json(json!({ "accepted": 0, "ignored": 1 })));
    };
    let notice = parsed.notice().clone();
    if !app.senders.contains_key(&notice.to) {
        return Err(AppError::NotFound(format!(
            "from {} is not a sender of this app, so",
            crate::redact::phone(&notice.to)
        )));
    }
    let (app_id, outcome) = (
        app.id.clone(),
        if matches!(parsed, Notification::Marketing { .. }) { "marketing_update" } else { "identity_change" },
    );
    let stored = state
        .db
        .write(move |c| {
            let stored = crate::inbound::store(c, &app_id, std::slice::from_ref(&notice))?;
            if let Notification::Marketing { stop, .. } = parsed
                && stored.accepted > 0
            {
                // `store` made the conversation just now, if it was new.
                if let Some(id) = crate::db::conversations::find_id(c, &app_id, &notice.from, &notice.to)? {
                    let at = notice.received_at.unwrap_or_else(crate::db::now);
                    crate::db::conversations::set_marketing_opt_out(c, id, stop.then_some(at))?;
                    let consent =
                        UpdateConsent { app_id: app_id.clone(), end_user: notice.from.clone(), opted_out: stop };
                    let job = consent.to_job()?.for_app(&app_id).ordered_by(crate::inbound::ordering_key(id));
                    crate::db::jobs::enqueue(c, &[job])?;
                }
            }
            Ok(stored)
        })
        .await?;
    if stored.accepted > 0 {
        state.metrics.inbound(&app.name, outcome);
        state.wake.notify_one();
    }
    tracing::info!(app.id = %app.id, accepted = stored.accepted, duplicates = stored.duplicates, "notification stored");
    Ok(HttpResponse::Ok().json(json!({ "accepted": stored.accepted, "duplicates": stored.duplicates })))
}
