//! A chatbot conversation, as Infobip's Conversations API returns it, turned into the
//! messages the agent reads: each turn in the shape of an inbound WhatsApp message (so the
//! inbound rendering and media path apply), with the speaker it came from.

use serde_json::{Value, json};

use crate::provisioning::TranscriptLabels;

/// One turn of the bot conversation, ready to store.
#[derive(Debug, Clone, PartialEq)]
pub struct Turn {
    /// Infobip's message id (unique within the conversation).
    pub id: String,
    /// The WhatsApp message type the turn is rendered as (`TEXT`, `IMAGE`, …).
    pub kind: String,
    /// `{"message": {…}, "speaker": …, "authorType": …, "createdAt": …}`.
    pub body: Value,
    pub created_at: Option<chrono::DateTime<chrono::FixedOffset>>,
}

/// Who said it: `CUSTOMER` turns are the end user's own and carry no label.
fn speaker<'a>(author_type: &str, labels: &'a TranscriptLabels) -> Option<&'a str> {
    let label = match author_type {
        "CUSTOMER" => return None,
        "BOT" => &labels.bot,
        "AGENT" => &labels.agent,
        _ => &labels.system,
    };
    Some(label.as_str()).filter(|l| !l.is_empty())
}

fn text<'a>(v: &'a Value, pointer: &str) -> Option<&'a str> {
    v.pointer(pointer).and_then(Value::as_str).map(str::trim).filter(|s| !s.is_empty())
}

/// Infobip writes times as `2024-01-01T10:00:00.000+00:00` or `…+0000`.
fn parse_time(value: &str) -> Option<chrono::DateTime<chrono::FixedOffset>> {
    chrono::DateTime::parse_from_rfc3339(value)
        .or_else(|_| chrono::DateTime::parse_from_str(value, "%Y-%m-%dT%H:%M:%S%.f%z"))
        .ok()
}

/// The turns of a conversation's messages, oldest first (pages come in `createdAt` order;
/// the sort is stable, so equal times keep Infobip's order).
pub fn turns(messages: &[Value], labels: &TranscriptLabels) -> Vec<Turn> {
    let mut turns: Vec<Turn> = messages.iter().filter_map(|m| turn(m, labels)).collect();
    turns.sort_by_key(|t| t.created_at);
    turns
}

fn turn(m: &Value, labels: &TranscriptLabels) -> Option<Turn> {
    let id = text(m, "/id")?.to_owned();
    let author_type = text(m, "/authorType").unwrap_or("SYSTEM");
    let content_type = text(m, "/contentType").unwrap_or("TEXT");
    let content = m.get("content").unwrap_or(&Value::Null);
    let (kind, message) = whatsapp_shape(content_type, content);
    let created_at = text(m, "/createdAt").and_then(parse_time);
    Some(Turn {
        id,
        kind: kind.to_owned(),
        body: json!({
            "message": message,
            "speaker": speaker(author_type, labels),
            "authorType": author_type,
            "createdAt": created_at.map(|t| t.to_rfc3339()),
        }),
        created_at,
    })
}

/// Maps a Conversations `contentType`/`content` to an inbound WhatsApp message type and body.
fn whatsapp_shape(content_type: &str, content: &Value) -> (&'static str, Value) {
    let media = |kind: &'static str| {
        (kind, json!({ "type": kind, "url": text(content, "/url"), "caption": text(content, "/caption") }))
    };
    match content_type {
        "IMAGE" => media("IMAGE"),
        "DOCUMENT" => media("DOCUMENT"),
        "VIDEO" => media("VIDEO"),
        "AUDIO" => media("AUDIO"),
        "VOICE" => media("VOICE"),
        "WHATSAPP_STICKER" | "STICKER" => media("STICKER"),
        "LOCATION" => (
            "LOCATION",
            json!({ "type": "LOCATION", "latitude": content.get("latitude"), "longitude": content.get("longitude"),
                    "name": text(content, "/locationName"), "address": text(content, "/address") }),
        ),
        "CONTACT" => ("CONTACT", json!({ "type": "CONTACT", "contacts": content.get("contacts") })),
        _ => ("TEXT", json!({ "type": "TEXT", "text": readable(content_type, content) })),
    }
}

/// Text for everything that is not media: the bot's menus list their options, and an
/// unknown type still shows whatever text it has.
fn readable(content_type: &str, content: &Value) -> String {
    if let Some(interactive) = content.get("interactive") {
        let mut lines: Vec<String> = ["/header/text", "/body/text", "/footer/text"]
            .iter()
            .filter_map(|p| text(interactive, p).map(str::to_owned))
            .collect();
        let action = interactive.get("action").unwrap_or(&Value::Null);
        let buttons = action.get("buttons").and_then(Value::as_array).into_iter().flatten();
        let rows = action
            .get("sections")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .flat_map(|s| s.get("rows").and_then(Value::as_array).cloned().unwrap_or_default());
        let options: Vec<String> = buttons
            .cloned()
            .chain(rows)
            .filter_map(|b| text(&b, "/title").or_else(|| text(&b, "/reply/title")).map(|t| format!("[{t}]")))
            .collect();
        if !options.is_empty() {
            lines.push(options.join(" "));
        }
        if !lines.is_empty() {
            return lines.join("\n");
        }
    }
    for pointer in ["/text", "/title", "/body/text", "/payload"] {
        if let Some(t) = text(content, pointer) {
            return t.to_owned();
        }
    }
    if let Some(name) = text(content, "/templateName") {
        return format!("(template {name})");
    }
    format!("({} message)", content_type.to_ascii_lowercase().replace('_', " "))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels() -> TranscriptLabels {
        TranscriptLabels::default()
    }

    #[test]
    fn turns_keep_time_order_and_speakers() {
        let messages = vec![
            json!({ "id": "2", "authorType": "CUSTOMER", "contentType": "TEXT", "content": { "text": "Hi" }, "createdAt": "2026-11-21T10:00:02.000+00:00" }),
            json!({ "id": "1", "authorType": "BOT", "contentType": "TEXT", "content": { "text": "Hello!" }, "createdAt": "2026-11-21T10:00:01.000+0000" }),
            json!({ "id": "3", "authorType": "SYSTEM", "contentType": "TEXT", "content": { "text": "Transferred" }, "createdAt": "2026-11-21T10:00:03.000+00:00" }),
        ];
        let turns = turns(&messages, &labels());
        let ids: Vec<&str> = turns.iter().map(|t| t.id.as_str()).collect();
        assert_eq!(ids, ["1", "2", "3"]);
        let speakers: Vec<Option<&str>> = turns.iter().map(|t| t.body["speaker"].as_str()).collect();
        assert_eq!(speakers, [Some("Bot"), None, Some("System")]);
    }

    #[test]
    fn bot_menus_list_their_options_and_media_keeps_its_url() {
        let menu = json!({ "id": "m", "authorType": "BOT", "contentType": "INTERACTIVE", "content": { "interactive": {
            "type": "BUTTONS", "body": { "text": "Pick one" },
            "action": { "buttons": [{ "type": "REPLY", "id": "a", "title": "Orders" }, { "type": "REPLY", "id": "b", "title": "Billing" }] } } } });
        let image = json!({ "id": "i", "authorType": "CUSTOMER", "contentType": "IMAGE", "content": { "url": "https://x/y.jpg", "caption": "receipt" } });
        let turns = turns(&[menu, image], &labels());
        assert_eq!(turns[0].body["message"]["text"], "Pick one\n[Orders] [Billing]");
        assert_eq!(
            (turns[1].kind.as_str(), turns[1].body["message"]["url"].as_str()),
            ("IMAGE", Some("https://x/y.jpg"))
        );
    }

    #[test]
    fn empty_labels_leave_turns_unlabelled() {
        let quiet = TranscriptLabels { bot: String::new(), ..labels() };
        let t = turns(
            &[json!({ "id": "1", "authorType": "BOT", "contentType": "TEXT", "content": { "text": "x" } })],
            &quiet,
        );
        assert!(t[0].body["speaker"].is_null());
        assert_eq!(crate::inbound::render::labelled(Some("Bot"), "Hi"), "Bot: Hi");
        assert_eq!(crate::inbound::render::labelled(None, "Hi"), "Hi");
    }
}
