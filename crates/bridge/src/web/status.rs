//! The status page (`/status`): what this service is and whether it is healthy.

use actix_web::{HttpResponse, get, web};
use askama::Template;

use super::AppState;
use crate::db::{apps, jobs};
use crate::error::AppError;

#[derive(Template)]
#[template(path = "status.html")]
struct StatusPage {
    version: &'static str,
    backend: String,
    uptime: String,
    apps: i64,
    depth: jobs::QueueDepth,
}

#[get("/status")]
pub async fn status(state: web::Data<AppState>) -> Result<HttpResponse, AppError> {
    let (apps, depth) = state.db.run(|conn| Ok((apps::count(conn)?, jobs::depth(conn, crate::db::now())?))).await?;
    let secs = state.started_at.elapsed().as_secs();
    let page = StatusPage {
        version: env!("CARGO_PKG_VERSION"),
        backend: state.db.backend().to_string(),
        uptime: format!("{}h {:02}m {:02}s", secs / 3600, secs / 60 % 60, secs % 60),
        apps,
        depth,
    };
    render(&page)
}

/// Renders a page; a template error is an internal error, logged with its cause.
pub(crate) fn render(page: &impl Template) -> Result<HttpResponse, AppError> {
    let html = page.render().map_err(|e| AppError::Internal(anyhow::Error::new(e).context("rendering page")))?;
    Ok(HttpResponse::Ok().content_type("text/html; charset=utf-8").body(html))
}
