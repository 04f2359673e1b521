//! "Sent from this panel": the templates sent to a customer through a sender and where
//! each one is, shown in a small frame of the panel that reloads itself (no JavaScript)
//! while a send can still change, so an agent sees "delivered" and "read" arrive without
//! reloading the panel and losing what they typed.

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, get, web};
use askama::Template;
use serde::Deserialize;
use serde_json::Value;

use super::admin::render;
use crate::db::conversations::{self, Message};
use crate::db::{Direction, MessageStatus};
use crate::error::AppError;
use crate::web::AppState;

/// One template sent: when, which and by whom, and where it is.
#[derive(Debug, Clone)]
pub struct SentLine {
    pub at: String,
    pub what: String,
    pub status: String,
    /// Read or failed: nothing more will change.
    pub settled: bool,
}

/// The templates among a conversation's messages, oldest first.
pub fn lines(messages: &[Message]) -> Vec<SentLine> {
    messages
        .iter()
        .filter(|m| m.kind == "template" && m.direction == Direction::Outbound)
        .map(|m| {
            let body: Value = m.body.as_deref().and_then(|b| serde_json::from_str(b).ok()).unwrap_or(Value::Null);
            let what = format!(
                "{} by {}",
                body.pointer("/content/templateName").and_then(Value::as_str).unwrap_or("template"),
                body.pointer("/panel/sentBy").and_then(Value::as_str).unwrap_or("?")
            );
            let (status, settled) = match (&m.read_at, &m.delivered_at, m.error.as_deref()) {
                (Some(_), _, _) => ("read".to_owned(), true),
                (None, Some(_), _) => ("delivered".to_owned(), false),
                (None, None, Some(e)) => (format!("failed: {e}"), true),
                _ => (m.status.to_string(), m.status == MessageStatus::Failed),
            };
            SentLine { at: m.created_at.format("%H:%M").to_string(), what, status, settled }
        })
        .collect()
}

/// How often the frame reloads while a send may still change.
const REFRESH_SECS: u32 = 5;

#[derive(Template)]
#[template(path = "setup/panel_sent.html")]
struct SentFrame {
    lines: Vec<SentLine>,
    refresh: Option<u32>,
}

#[derive(Debug, Deserialize)]
pub struct SentQuery {
    to: String,
    sender: String,
}

/// The frame's URL for a customer and a sender.
pub fn frame_url(to: &str, sender: &str) -> String {
    let encode = |v: &str| url::form_urlencoded::byte_serialize(v.as_bytes()).collect::<String>();
    format!("/templates/sent?to={}&sender={}", encode(to), encode(sender))
}

#[get("/templates/sent")]
pub async fn sent(
    state: web::Data<AppState>,
    req: HttpRequest,
    query: web::Query<SentQuery>,
) -> Result<HttpResponse, AppError> {
    let Some(session) = super::admin::current(&state, &req).await? else {
        return Err(AppError::Unauthorized);
    };
    let app_id = session.app_id.clone().unwrap_or_default();
    let (to, from) = (query.to.clone(), query.sender.clone());
    let found = state
        .db
        .run(move |c| {
            let Some(app) = crate::db::apps::find(c, &app_id)? else { return Ok(None) };
            match conversations::find_id(c, &app.id, &to, &from)? {
                Some(id) => Ok(Some((app, conversations::messages_of(c, id)?))),
                None => Ok(Some((app, Vec::new()))),
            }
        })
        .await?;
    let Some((app, messages)) = found else { return Err(AppError::NotFound("app".into())) };
    let lines = lines(&messages);
    let refresh = lines.iter().any(|l| !l.settled).then_some(REFRESH_SECS);
    // Framed by the panel (this site) inside the org's console.
    let ancestors = format!("'self' {}", super::admin::frame_ancestors(Some(&app)).replace("'none'", ""));
    render(StatusCode::OK, &SentFrame { lines, refresh }, ancestors.trim())
}
