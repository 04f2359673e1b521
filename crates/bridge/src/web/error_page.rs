//! Errors as pages for people: a browser that posted a stale form or followed a dead link
//! gets an HTML page saying what went wrong, not the JSON an API client gets.

use actix_web::body::{BoxBody, EitherBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header::{self, HeaderValue};
use actix_web::middleware::Next;
use askama::Template;

#[derive(Template)]
#[template(path = "error.html")]
struct ErrorPage<'a> {
    heading: &'a str,
    message: String,
    back: &'a str,
}

/// Paths whose answers are for programs (webhooks, APIs, probes), never pages.
fn for_programs(path: &str) -> bool {
    ["/api/", "/media/", "/healthz", "/readyz", "/metrics", "/static/"].iter().any(|p| path.starts_with(p))
}

/// Turns an error answer into a page when a browser asked for a page.
pub async fn html_errors(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<EitherBody<BoxBody>>, actix_web::Error> {
    let wants_html = !for_programs(req.path())
        && req.headers().get(header::ACCEPT).and_then(|v| v.to_str().ok()).is_some_and(|v| v.contains("text/html"));
    let res = next.call(req).await?;
    let status = res.status();
    let message = match res.response().error() {
        Some(error) if wants_html && (status.is_client_error() || status.is_server_error()) => error.to_string(),
        _ => return Ok(res.map_body(|_, body| EitherBody::left(body.boxed()))),
    };
    let heading = match status.as_u16() {
        400 => "Something in the request is not right",
        401 => "Please sign in",
        403 => "Not allowed",
        404 => "Not found",
        413 => "Too large",
        503 => "Temporarily unavailable",
        _ => "Something went wrong",
    };
    let page = ErrorPage { heading, message: format!("{}.", message.trim_end_matches('.')), back: "/" };
    let html = page.render().unwrap_or_else(|_| format!("{heading}: {message}"));
    let (req, mut response) = res.into_parts();
    response.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("text/html; charset=utf-8"));
    let response = response.set_body(html).map_into_boxed_body();
    Ok(ServiceResponse::new(req, response).map_into_right_body())
}
