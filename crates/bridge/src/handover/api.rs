//! `POST /api/handovers`: a handover from any bot, not only Infobip's. The caller sends the
//! transcript in the request; it goes into the customer's Salesforce session in order, before
//! anything the customer writes next, exactly as an Infobip bot's transcript does. The
//! transcript is stored in the shape of Infobip's conversation messages, so one import path
//! serves both.
//!
//! Body: `{"conversationId", "endUser", "businessNumber"?, "routingAttributes"?, "transcript":
//! [{"speaker": "customer"|"bot"|"agent"|"system", "time": RFC 3339, "text"?, "mediaUrl"?,
//! "fileName"?}]}`. A media turn arrives as its link in text: the bridge downloads nothing a
//! caller names (it would have to send credentials, or fetch from anywhere).

use serde_json::{Value, json};

use super::{BadRequest, HandoverRequest, bad, business_number, routing_attributes, string_field, whatsapp_id};
use crate::directory::ActiveApp;

/// At most this many turns, each of at most `MAX_TEXT` characters.
pub const MAX_TURNS: usize = 500;
const MAX_TEXT: usize = 4096;

/// The conversation ids of API handovers are kept apart from Infobip's.
const ID_PREFIX: &str = "api:";

/// A validated handover call with its transcript, ready to store.
#[derive(Debug, Clone, PartialEq)]
pub struct ApiHandover {
    pub request: HandoverRequest,
    /// JSON array of Infobip-shaped messages.
    pub transcript: String,
}

fn author_type(speaker: &str) -> Option<&'static str> {
    match speaker.to_ascii_lowercase().as_str() {
        "customer" | "enduser" | "end_user" | "user" => Some("CUSTOMER"),
        "bot" | "chatbot" => Some("BOT"),
        "agent" => Some("AGENT"),
        "system" => Some("SYSTEM"),
        _ => None,
    }
}

fn turn(i: usize, t: &Value) -> Result<Value, BadRequest> {
    let field = "transcript";
    let item = t.as_object().ok_or_else(|| bad(field, format!("[{i}] must be an object")))?;
    let text_of = |name: &str| -> Result<Option<String>, BadRequest> {
        match item.get(name) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) if s.trim().is_empty() => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.trim().to_owned())),
            Some(_) => Err(bad(field, format!("[{i}].{name} must be a string"))),
        }
    };
    let speaker = text_of("speaker")?.ok_or_else(|| bad(field, format!("[{i}].speaker is required")))?;
    let author = author_type(&speaker)
        .ok_or_else(|| bad(field, format!("[{i}].speaker must be customer, bot, agent or system")))?;
    let time = text_of("time")?.ok_or_else(|| bad(field, format!("[{i}].time is required")))?;
    let at = chrono::DateTime::parse_from_rfc3339(&time)
        .map_err(|_| bad(field, format!("[{i}].time must be an RFC 3339 time, e.g. 2026-01-02T10:00:00Z")))?;
    let text = text_of("text")?;
    let media = text_of("mediaUrl")?;
    if let Some(url) = &media
        && !url::Url::parse(url).is_ok_and(|u| matches!(u.scheme(), "https" | "http"))
    {
        return Err(bad(field, format!("[{i}].mediaUrl must be an http(s) URL")));
    }
    let shown = match (text, media) {
        (None, None) => return Err(bad(field, format!("[{i}] needs a text or a mediaUrl"))),
        (Some(text), None) => text,
        (text, Some(url)) => {
            let name = text_of("fileName")?.unwrap_or_else(|| "file".into());
            let link = format!("📎 {name}: {url}");
            match text {
                Some(text) => format!("{text}\n{link}"),
                None => link,
            }
        }
    };
    if shown.chars().count() > MAX_TEXT {
        return Err(bad(field, format!("[{i}] is longer than {MAX_TEXT} characters")));
    }
    Ok(json!({
        "id": format!("turn-{i:04}"),
        "authorType": author,
        "contentType": "TEXT",
        "content": { "text": shown },
        "createdAt": at.to_rfc3339(),
    }))
}

impl ApiHandover {
    pub fn parse(app: &ActiveApp, body: &[u8]) -> Result<Self, BadRequest> {
        let body: Value = serde_json::from_slice(body).map_err(|e| bad("body", format!("is not JSON: {e}")))?;
        if !body.is_object() {
            return Err(bad("body", "must be a JSON object"));
        }
        let id = string_field(&body, "conversationId")?
            .filter(|s| !s.is_empty())
            .ok_or_else(|| bad("conversationId", "is required: your bot's id of the conversation"))?;
        if id.len() > 120 || id.chars().any(char::is_control) {
            return Err(bad("conversationId", "must be at most 120 printable characters"));
        }
        let end_user = string_field(&body, "endUser")?
            .filter(|s| !s.is_empty())
            .ok_or_else(|| bad("endUser", "is required: the customer's WhatsApp number"))?;
        let turns = match body.get("transcript") {
            None | Some(Value::Null) => Vec::new(),
            Some(Value::Array(items)) if items.len() <= MAX_TURNS => {
                items.iter().enumerate().map(|(i, t)| turn(i, t)).collect::<Result<Vec<_>, _>>()?
            }
            Some(Value::Array(_)) => return Err(bad("transcript", format!("must have at most {MAX_TURNS} turns"))),
            Some(_) => return Err(bad("transcript", "must be an array of turns")),
        };
        Ok(Self {
            request: HandoverRequest {
                conversation_id: format!("{ID_PREFIX}{id}"),
                end_user: whatsapp_id("endUser", &end_user)?,
                business_number: business_number(app, string_field(&body, "businessNumber")?)?,
                routing_attributes: routing_attributes(&body)?,
            },
            transcript: Value::Array(turns).to_string(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn turns_take_the_shape_of_infobip_messages_and_media_stay_links() {
        let t = json!({ "speaker": "bot", "time": "2026-01-02T10:00:00Z", "text": "Hello", "mediaUrl": "https://x.example/a.pdf", "fileName": "a.pdf" });
        let m = turn(0, &t).unwrap();
        assert_eq!(m["authorType"], "BOT");
        assert_eq!(m["content"]["text"], "Hello\n📎 a.pdf: https://x.example/a.pdf");
        for (bad_turn, says) in [
            (json!({ "speaker": "robot", "time": "2026-01-02T10:00:00Z", "text": "x" }), "speaker must be"),
            (json!({ "speaker": "bot", "time": "yesterday", "text": "x" }), "RFC 3339"),
            (json!({ "speaker": "bot", "time": "2026-01-02T10:00:00Z" }), "needs a text or a mediaUrl"),
            (
                json!({ "speaker": "bot", "time": "2026-01-02T10:00:00Z", "mediaUrl": "file:///etc/passwd" }),
                "http(s) URL",
            ),
        ] {
            let e = turn(3, &bad_turn).unwrap_err();
            assert!(e.problem.contains(says) && e.problem.starts_with("[3]"), "{e}");
        }
    }
}
