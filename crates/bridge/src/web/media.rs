//! `GET /media/{message}/{index}`: the file of an agent's message, for Infobip to fetch
//! through a signed, expiring link (see `media_links`).

use actix_web::{HttpResponse, get, web};
use futures_util::TryStreamExt;
use serde::Deserialize;
use serde_json::Value;

use super::AppState;
use crate::db::conversations;
use crate::error::AppError;
use crate::outbound::AgentEntry;

#[derive(Deserialize)]
struct Signed {
    expires: i64,
    signature: String,
}

#[get("/media/{message}/{index}")]
pub async fn agent_file(
    state: web::Data<AppState>,
    path: web::Path<(i64, usize)>,
    signed: web::Query<Signed>,
) -> Result<HttpResponse, AppError> {
    let (message_id, index) = path.into_inner();
    if !state.media.verify(message_id, index, signed.expires, &signed.signature) {
        return Err(AppError::NotFound("file".into()));
    }
    let message = state.db.run(move |c| conversations::message(c, message_id)).await?;
    let url = message
        .filter(|m| m.direction == crate::db::Direction::Outbound)
        .and_then(|m| m.body)
        .and_then(|b| AgentEntry::parse(&b))
        .and_then(|e| {
            e.entry_payload()
                .pointer(&format!("/abstractMessage/staticContent/attachments/{index}/url"))
                .and_then(Value::as_str)
                .map(str::to_owned)
        })
        .ok_or_else(|| AppError::NotFound("file".into()))?;
    let upstream = state.salesforce.fetch_file(&url).await.map_err(|e| AppError::Unavailable(e.detail()))?;
    let content_type = upstream
        .headers()
        .get("Content-Type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("application/octet-stream")
        .to_owned();
    let stream = upstream.bytes_stream().map_err(std::io::Error::other);
    Ok(HttpResponse::Ok()
        .content_type(content_type)
        .insert_header(("Cache-Control", "private, no-store"))
        .streaming(stream))
}
