//! HTTP routes and what every handler shares: Infobip's webhooks and the handover and
//! proactive APIs for programs; the setup (`admin`), the template panel, the status page and
//! their assets for people; health, readiness and metrics for operators.

pub mod admin;
mod assets;
mod conversations_api;
mod error_page;
pub(crate) mod guard;
mod handover;
mod health;
mod media;
pub mod panel;
pub mod panel_sent;
pub(crate) mod request_span;
mod status;
mod webhooks;

use std::sync::Arc;
use std::time::Instant;

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::middleware::Next;
use actix_web::{HttpMessage, web};

use crate::config::Settings;
use crate::crypto::Cipher;
use crate::db::Db;
use crate::metrics::{HttpLabels, Metrics};

pub use error_page::html_errors;

/// State shared by all handlers.
pub struct AppState {
    pub settings: Arc<Settings>,
    pub db: Db,
    pub cipher: Cipher,
    pub metrics: Arc<Metrics>,
    pub directory: crate::directory::Directory,
    /// Signed links to agents' files.
    pub media: crate::media_links::MediaLinks,
    /// Where browsers and vendors reach this service (no trailing slash).
    pub base_url: String,
    /// The vendors' clients (sign-in, live checks, files, the panel's sends).
    pub salesforce: crate::salesforce::Client,
    pub infobip: crate::infobip::Client,
    /// Paces sends per WhatsApp number; shared with the agents' replies.
    pub limiter: crate::infobip::rate::SenderLimiter,
    /// The senders' approved templates, briefly kept for the agents' panel.
    pub templates: crate::infobip::catalog::TemplateCatalog,
    /// Wakes the job worker when work was just enqueued.
    pub wake: Arc<tokio::sync::Notify>,
    pub started_at: Instant,
}

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(health::healthz)
        .service(health::readyz)
        .service(health::metrics)
        .service(webhooks::inbound)
        .service(webhooks::reports)
        .service(webhooks::notifications)
        .service(handover::accept_handover)
        .service(handover::handover_status)
        .service(conversations_api::start)
        .service(conversations_api::status)
        .service(conversations_api::handover)
        .service(conversations_api::handover_status)
        .service(media::agent_file)
        .service(status::status)
        .service(assets::style)
        .service(assets::setup_style)
        .service(assets::setup_script)
        .service(assets::panel_script)
        .service(admin::wizard::entry)
        .service(admin::signin::bootstrap)
        .service(admin::signin::start_sign_in)
        .service(admin::signin::callback)
        .service(admin::signin::sign_out)
        .service(admin::signin::handoff)
        .service(admin::connection::show_step)
        .service(admin::connection::save)
        .service(admin::keys::generate)
        .service(admin::keys::upload)
        .service(admin::keys::download_certificate)
        .service(admin::application::show_step)
        .service(admin::application::save)
        .service(admin::application::create_definition)
        .service(admin::accounts::show_accounts)
        .service(admin::accounts::save_account)
        .service(admin::accounts::remove_account)
        .service(admin::accounts::show_senders)
        .service(admin::accounts::save_senders)
        .service(admin::summary::show_step)
        .service(admin::summary::recheck)
        .service(admin::summary::activate)
        .service(admin::summary::set_secret)
        .service(admin::console::overview)
        .service(admin::console::dead_letters::list)
        .service(admin::console::dead_letters::retry)
        .service(admin::console::dead_letters::retry_all)
        .service(admin::console::trace::list)
        .service(admin::console::trace::show_trace)
        .service(panel::panel)
        .service(panel::send)
        .service(panel_sent::sent);
}

/// Counts and times every request by matched route, method and status, and returns the
/// request id in `X-Request-Id`.
pub async fn record_metrics(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let started = Instant::now();
    let metrics = req.app_data::<web::Data<AppState>>().map(|s| s.metrics.clone());
    let method = req.method().to_string();
    let mut res = next.call(req).await?;
    // Echo the id that tracing-actix-web put on every log line of this request.
    let request_id = res.request().extensions().get::<tracing_actix_web::RequestId>().copied();
    if let Some(id) = request_id
        && let Ok(value) = actix_web::http::header::HeaderValue::from_str(&id.to_string())
    {
        res.headers_mut().insert(actix_web::http::header::HeaderName::from_static("x-request-id"), value);
    }
    if let Some(metrics) = metrics {
        let labels = HttpLabels {
            method,
            route: res.request().match_pattern().unwrap_or_else(|| "unmatched".to_owned()),
            status: res.status().as_u16(),
        };
        metrics.http_requests.get_or_create(&labels).inc();
        metrics.http_duration_seconds.get_or_create(&labels).observe(started.elapsed().as_secs_f64());
    }
    Ok(res)
}
