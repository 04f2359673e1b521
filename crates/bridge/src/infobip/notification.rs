//! WhatsApp notifications about a customer that are not messages, posted by an Infobip
//! subscription to the bridge's notifications webhook (`{from, content{type, …}, createdAt}`,
//! Infobip's `receive-whatsapp-identity-change-notification`): an identity change means the
//! customer's security code changed, and the number may now belong to someone else.

use chrono::NaiveDateTime;
use serde_json::Value;

use super::webhook::{InboundMessage, ParseError};

/// What the agent reads in the conversation when WhatsApp reports an identity change.
pub const IDENTITY_WARNING: &str = "⚠ WhatsApp notice: this customer's security code changed. The number may now belong to someone else, or they reinstalled WhatsApp on a new phone. Confirm who you are talking to before sharing anything personal.";

/// The stored kind of a notice (never opens WhatsApp's 24-hour window: the customer wrote nothing).
pub const IDENTITY_CHANGE_KIND: &str = "IDENTITY_CHANGE";

fn text(v: &Value, pointer: &str) -> Option<String> {
    v.pointer(pointer).and_then(Value::as_str).map(str::trim).filter(|s| !s.is_empty()).map(str::to_owned)
}

fn time(v: &Value) -> Option<NaiveDateTime> {
    let raw = v.get("createdAt")?.as_str()?;
    chrono::DateTime::parse_from_str(raw, "%Y-%m-%dT%H:%M:%S%.f%z").ok().map(|t| t.naive_utc())
}

/// Parses a notification into the message the agent sees, stored and delivered in order
/// with the customer's messages. `Ok(None)` for a notification type the bridge does not act
/// on (it is acknowledged, not refused, so Infobip does not retry it).
pub fn parse(body: &[u8]) -> Result<Option<InboundMessage>, ParseError> {
    let v: Value = serde_json::from_slice(body).map_err(|e| ParseError(format!("body is not JSON: {e}")))?;
    let kind = text(&v, "/content/type").ok_or_else(|| ParseError("content.type is missing".into()))?;
    if kind != "user_identity_changed" {
        return Ok(None);
    }
    let business = text(&v, "/from").ok_or_else(|| ParseError("from (the sender number) is missing".into()))?;
    let user = text(&v, "/content/userNumber")
        .or_else(|| text(&v, "/content/userId"))
        .ok_or_else(|| ParseError("content.userNumber is missing".into()))?;
    let hash = text(&v, "/content/hash").unwrap_or_default();
    let created = v.get("createdAt").and_then(Value::as_str).unwrap_or_default();
    // One notice per change: Infobip may post it again, and the hash and time name it.
    let message_id = format!("identity-change:{user}:{hash}:{created}");
    let raw = serde_json::json!({
        "from": user, "to": business, "messageId": message_id,
        "message": { "type": "TEXT", "text": IDENTITY_WARNING },
    });
    Ok(Some(InboundMessage {
        message_id,
        from: user,
        to: business,
        received_at: time(&v),
        kind: IDENTITY_CHANGE_KIND.into(),
        raw,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_vendors_identity_change_example_becomes_a_warning_for_the_agent() {
        let example = br#"{"from":"41793026731","content":{"description":"Security code changed.","hash":"eU2Fdi4EMUw=","type":"user_identity_changed","userNumber":"385919998888","userId":"HR.123123123"},"createdAt":"2022-01-18T23:23:09.206+0000"}"#;
        let notice = parse(example).unwrap().unwrap();
        assert_eq!((notice.from.as_str(), notice.to.as_str()), ("385919998888", "41793026731"));
        assert_eq!(notice.kind, IDENTITY_CHANGE_KIND);
        assert_eq!(notice.raw["message"]["text"], IDENTITY_WARNING);
        assert!(notice.received_at.is_some());
        assert_eq!(parse(example).unwrap().unwrap().message_id, notice.message_id, "the same report, the same id");
        let other =
            br#"{"from":"41793026731","content":{"type":"something_new"},"createdAt":"2022-01-18T23:23:09.206+0000"}"#;
        assert!(parse(other).unwrap().is_none());
        assert!(parse(br#"{"from":"1"}"#).unwrap_err().0.contains("content.type"));
    }
}
