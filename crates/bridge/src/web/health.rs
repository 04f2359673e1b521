//! Liveness, readiness and metrics.

use actix_web::{HttpResponse, get, web};
use serde_json::json;

use super::AppState;
use crate::db::{jobs, migrations};
use crate::error::AppError;

/// Alive: the process answers. Never touches the database, so a database outage does not
/// get the process restarted by its orchestrator.
#[get("/healthz")]
pub async fn healthz() -> HttpResponse {
    HttpResponse::Ok().json(json!({ "status": "ok", "version": env!("CARGO_PKG_VERSION") }))
}

/// Ready: the database answers and every migration this binary knows is applied.
#[get("/readyz")]
pub async fn readyz(state: web::Data<AppState>) -> HttpResponse {
    let backend = state.db.backend().to_string();
    if let Err(e) = state.db.ping().await {
        tracing::warn!(error.cause_chain = ?anyhow::Error::from(e), "readiness: database unreachable");
        return HttpResponse::ServiceUnavailable()
            .json(json!({ "status": "unavailable", "database": backend, "problem": "database unreachable" }));
    }
    match migrations::pending(&state.db).await {
        Ok(pending) if pending.is_empty() => HttpResponse::Ok().json(json!({ "status": "ready", "database": backend })),
        Ok(pending) => HttpResponse::ServiceUnavailable().json(json!({
            "status": "unavailable",
            "database": backend,
            "problem": "migrations pending",
            "pending_migrations": pending,
        })),
        Err(e) => {
            tracing::warn!(error.cause_chain = ?anyhow::Error::from(e), "readiness: cannot read migrations");
            HttpResponse::ServiceUnavailable()
                .json(json!({ "status": "unavailable", "database": backend, "problem": "cannot read migration state" }))
        }
    }
}

/// OpenMetrics text, which Prometheus reads. Queue depth is counted from the database in one pass, at most
/// once per second however often it is scraped.
#[get("/metrics")]
pub async fn metrics(state: web::Data<AppState>) -> Result<HttpResponse, AppError> {
    if state.metrics.depth_due() {
        match state.db.run(|conn| jobs::depth(conn, crate::db::now())).await {
            Ok(depth) => state.metrics.set_queue_depth(&depth),
            // Still serve the other metrics; the stale gauge is better than no scrape.
            Err(e) => tracing::warn!(error.cause_chain = ?anyhow::Error::from(e), "metrics: queue depth unavailable"),
        }
    }
    if let Some(stats) = state.db.writer_stats() {
        state.metrics.set_writer_stats(stats);
    }
    let body = state.metrics.encode().map_err(|e| AppError::Internal(anyhow::anyhow!("encoding metrics: {e}")))?;
    Ok(HttpResponse::Ok().content_type(crate::metrics::CONTENT_TYPE).body(body))
}
