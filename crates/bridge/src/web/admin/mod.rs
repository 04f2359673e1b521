//! The pages' sign-in and sessions (shared with the agents' template panel), and the admins'
//! setup wizard, embedded in Salesforce as an iframe.
//!
//! Sessions live in the database; the cookie carries a random token and is set
//! `Secure; HttpOnly; SameSite=None; Partitioned`, so it works inside the Service Console's
//! third-party iframe without being shared with other sites. Every form carries the
//! session's CSRF token. Pages may be framed only by the org's Salesforce domains.

pub mod accounts;
pub mod application;
pub mod connection;
pub mod console;
pub mod keys;
pub mod signin;
pub mod summary;
pub mod webhooks;
pub mod wizard;

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse};

use super::AppState;
use crate::crypto::token_hash;
use crate::db::Role;
use crate::db::apps::AppRow;
use crate::db::web::{self as rows, Session};
use crate::error::AppError;

pub const COOKIE: &str = "byoc_session";
/// Sessions end after a working day.
pub const SESSION_HOURS: i64 = 8;

/// The session cookie (`Partitioned` is written by hand: actix's cookie crate predates it).
pub fn session_cookie(token: &str, max_age_secs: i64) -> String {
    format!("{COOKIE}={token}; Path=/; Max-Age={max_age_secs}; HttpOnly; Secure; SameSite=None; Partitioned")
}

fn cookie_token(req: &HttpRequest) -> Option<String> {
    cookie_value(req, COOKIE)
}

/// The value of the cookie `name`, if the request has a non-empty one.
pub fn cookie_value(req: &HttpRequest, name: &str) -> Option<String> {
    let header = req.headers().get("Cookie")?.to_str().ok()?;
    header
        .split(';')
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(n, _)| *n == name)
        .map(|(_, value)| value.to_owned())
        .filter(|v| !v.is_empty())
}

/// The signed-in session of this request, if any.
pub async fn current(state: &AppState, req: &HttpRequest) -> Result<Option<Session>, AppError> {
    let Some(token) = cookie_token(req) else { return Ok(None) };
    let id = token_hash(&token);
    Ok(state.db.run(move |c| rows::session(c, &id, crate::db::now())).await?)
}

/// Creates a session; returns its cookie token.
pub async fn open_session(
    state: &AppState,
    app_id: Option<String>,
    role: Role,
    user_id: String,
    user_name: String,
) -> Result<String, AppError> {
    let token = crate::crypto::random_token().map_err(|e| AppError::Internal(e.into()))?;
    let csrf = crate::crypto::random_token().map_err(|e| AppError::Internal(e.into()))?;
    let now = crate::db::now();
    let session = Session {
        id_hash: token_hash(&token),
        app_id,
        role,
        user_id,
        user_name,
        csrf_token: csrf,
        created_at: now,
        expires_at: now + chrono::Duration::hours(SESSION_HOURS),
    };
    state
        .db
        .write(move |c| {
            rows::purge_expired(c, now)?;
            rows::insert_session(c, &session)
        })
        .await?;
    Ok(token)
}

/// A form that carries nothing but its CSRF token (buttons that act on the session's app).
#[derive(serde::Deserialize)]
pub struct CsrfForm {
    pub csrf: String,
}

/// Refuses a form whose CSRF token is not the session's.
pub fn check_csrf(session: &Session, given: &str) -> Result<(), AppError> {
    if crate::crypto::constant_time_eq(session.csrf_token.as_bytes(), given.as_bytes()) {
        Ok(())
    } else {
        Err(AppError::Forbidden("the form expired or did not come from this page; reload it and try again".into()))
    }
}

/// The answer to a form post: go to `location` (post/redirect/get).
pub fn see_other(location: &str) -> HttpResponse {
    HttpResponse::SeeOther().insert_header(("Location", location)).finish()
}

/// Steps after the first need the app the first step creates.
pub fn to_step_one() -> HttpResponse {
    see_other("/setup/connection")
}

/// Origins allowed to frame the pages: the org's Salesforce domains (My Domain, Lightning,
/// Setup), derived from its login and instance URLs. Loopback origins are kept as they are
/// (the simulators); nothing else may frame the pages.
pub fn frame_ancestors(app: Option<&AppRow>) -> String {
    frame_ancestors_of(app.into_iter())
}

/// `frame_ancestors` of several apps (the sign-in page belongs to no app yet).
pub fn frame_ancestors_of<'a>(apps: impl Iterator<Item = &'a AppRow>) -> String {
    let mut origins: Vec<String> = Vec::new();
    for url in apps.flat_map(|a| [Some(a.login_url.as_str()), a.instance_url.as_deref()]).flatten() {
        let Ok(parsed) = url::Url::parse(url) else { continue };
        let Some(host) = parsed.host_str() else { continue };
        if matches!(host, "127.0.0.1" | "localhost" | "[::1]") {
            origins.push(parsed.origin().ascii_serialization());
        } else if let Some(domain) = host.strip_suffix(".my.salesforce.com") {
            // acme.my.salesforce.com, acme--dev.sandbox.my.salesforce.com
            origins.push(format!("https://{domain}.my.salesforce.com"));
            origins.push(format!("https://{domain}.lightning.force.com"));
            origins.push(format!("https://{domain}.my.salesforce-setup.com"));
        }
    }
    origins.sort();
    origins.dedup();
    if origins.is_empty() { "'none'".to_owned() } else { origins.join(" ") }
}

/// An HTML page with the headers every admin page carries.
pub fn page(status: StatusCode, html: String, ancestors: &str) -> HttpResponse {
    HttpResponse::build(status)
        .content_type("text/html; charset=utf-8")
        .insert_header((
            "Content-Security-Policy",
            format!(
                "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; form-action 'self' https: http://127.0.0.1:*; frame-ancestors {ancestors}"
            ),
        ))
        .insert_header(("X-Content-Type-Options", "nosniff"))
        .insert_header(("Referrer-Policy", "same-origin"))
        .insert_header(("Cache-Control", "no-store"))
        .body(html)
}

/// Renders an askama template as an admin page.
pub fn render(status: StatusCode, template: &impl askama::Template, ancestors: &str) -> Result<HttpResponse, AppError> {
    let html =
        template.render().map_err(|e| AppError::Internal(anyhow::Error::new(e).context("rendering setup page")))?;
    Ok(page(status, html, ancestors))
}
