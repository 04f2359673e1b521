//! WhatsApp notifications about a customer that are not messages, posted by an Infobip
//! subscription to the bridge's notifications webhook (`{from, content{…}, createdAt}`):
//! an identity change (`IDENTITY_CHANGE`: the customer's security code changed, and the
//! number may now belong to someone else) and a marketing update
//! (`MARKETING_SUBSCRIPTION_UPDATE`: the customer asked to stop, or resume, marketing
//! messages from this number). Each becomes a notice the agent reads in the conversation.

use chrono::NaiveDateTime;
use serde_json::Value;

use super::webhook::{InboundMessage, ParseError};

/// What the agent reads in the conversation when WhatsApp reports an identity change.
pub const IDENTITY_WARNING: &str = "⚠ WhatsApp notice: this customer's security code changed. The number may now belong to someone else, or they reinstalled WhatsApp on a new phone. Confirm who you are talking to before sharing anything personal.";

/// What the agent reads when the customer stops, or resumes, marketing messages.
pub const MARKETING_STOP_NOTICE: &str = "WhatsApp notice: this customer asked to stop marketing messages from this number. They can still write and get your replies; marketing templates are not sent to them until they resume.";
pub const MARKETING_RESUME_NOTICE: &str =
    "WhatsApp notice: this customer asked to receive marketing messages from this number again.";

/// The stored kinds of notices (they never open WhatsApp's 24-hour window: the customer
/// wrote nothing).
pub const IDENTITY_CHANGE_KIND: &str = "IDENTITY_CHANGE";
pub const MARKETING_UPDATE_KIND: &str = "MARKETING_UPDATE";
/// The bridge's own notice that a customer's file did not reach Salesforce
/// (`outbound::upload_failures`).
pub const UPLOAD_FAILED_KIND: &str = "UPLOAD_FAILED";

/// Whether a stored message kind is a notice, not the customer writing.
pub fn is_notice(kind: &str) -> bool {
    [IDENTITY_CHANGE_KIND, MARKETING_UPDATE_KIND, UPLOAD_FAILED_KIND].contains(&kind)
}

/// A notification the bridge acts on.
#[derive(Debug, Clone)]
pub enum Notification {
    /// The notice for the agent, stored and delivered like the customer's messages.
    IdentityChanged(InboundMessage),
    /// The customer stopped (`stop`) or resumed marketing messages; with the agent's notice.
    Marketing { stop: bool, notice: InboundMessage },
}

impl Notification {
    pub fn notice(&self) -> &InboundMessage {
        match self {
            Notification::IdentityChanged(n) | Notification::Marketing { notice: n, .. } => n,
        }
    }
}

/// A notice for the agent, delivered in the conversation like a text of the customer's.
pub fn notice(
    kind: &str,
    id: String,
    user: String,
    business: String,
    text: &str,
    at: Option<NaiveDateTime>,
) -> InboundMessage {
    let raw = serde_json::json!({
        "from": user, "to": business, "messageId": id, "message": { "type": "TEXT", "text": text },
    });
    InboundMessage { message_id: id, from: user, to: business, received_at: at, kind: kind.into(), raw }
}

fn text(v: &Value, pointer: &str) -> Option<String> {
    v.pointer(pointer).and_then(Value::as_str).map(str::trim).filter(|s| !s.is_empty()).map(str::to_owned)
}

fn time(v: &Value) -> Option<NaiveDateTime> {
    let raw = v.get("createdAt")?.as_str()?;
    chrono::DateTime::parse_from_str(raw, "%Y-%m-%dT%H:%M:%S%.f%z").ok().map(|t| t.naive_utc())
}

/// Parses a notification; `Ok(None)` for a type the bridge does not act on (acknowledged,
/// not refused, so Infobip does not post it again).
pub fn parse(body: &[u8]) -> Result<Option<Notification>, ParseError> {
    let v: Value = serde_json::from_slice(body).map_err(|e| ParseError(format!("body is not JSON: {e}")))?;
    let content = v.get("content").filter(|c| c.is_object()).ok_or_else(|| ParseError("content is missing".into()))?;
    let business = text(&v, "/from").ok_or_else(|| ParseError("from (the sender number) is missing".into()))?;
    let created = v.get("createdAt").and_then(Value::as_str).unwrap_or_default().to_owned();
    if let Some(status) = text(content, "/notificationMessagesStatus") {
        let stop = match status.to_ascii_lowercase().as_str() {
            "stop" => true,
            "resume" => false,
            _ => return Err(ParseError("content.notificationMessagesStatus must be stop or resume".into())),
        };
        let user = text(content, "/from").ok_or_else(|| ParseError("content.from (the customer) is missing".into()))?;
        let id = format!("marketing-{status}:{user}:{created}");
        let text = if stop { MARKETING_STOP_NOTICE } else { MARKETING_RESUME_NOTICE };
        return Ok(Some(Notification::Marketing {
            stop,
            notice: notice(MARKETING_UPDATE_KIND, id, user, business, text, time(&v)),
        }));
    }
    let kind = text(&v, "/content/type").ok_or_else(|| ParseError("content.type is missing".into()))?;
    if kind != "user_identity_changed" {
        return Ok(None);
    }
    let user = text(&v, "/content/userNumber")
        .or_else(|| text(&v, "/content/userId"))
        .ok_or_else(|| ParseError("content.userNumber is missing".into()))?;
    let hash = text(&v, "/content/hash").unwrap_or_default();
    // One notice per change: Infobip may post it again, and the hash and time name it.
    let id = format!("identity-change:{user}:{hash}:{created}");
    Ok(Some(Notification::IdentityChanged(notice(
        IDENTITY_CHANGE_KIND,
        id,
        user,
        business,
        IDENTITY_WARNING,
        time(&v),
    ))))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_vendors_identity_change_example_becomes_a_warning_for_the_agent() {
        let example = br#"{"from":"41793026731","content":{"description":"Security code changed.","hash":"eU2Fdi4EMUw=","type":"user_identity_changed","userNumber":"385919998888","userId":"HR.123123123"},"createdAt":"2022-01-18T23:23:09.206+0000"}"#;
        let Some(Notification::IdentityChanged(notice)) = parse(example).unwrap() else { panic!("an identity change") };
        assert_eq!((notice.from.as_str(), notice.to.as_str()), ("385919998888", "41793026731"));
        assert_eq!(notice.kind, IDENTITY_CHANGE_KIND);
        assert_eq!(notice.raw["message"]["text"], IDENTITY_WARNING);
        assert!(notice.received_at.is_some());
        assert_eq!(
            parse(example).unwrap().unwrap().notice().message_id,
            notice.message_id,
            "the same report, the same id"
        );
        let other =
            br#"{"from":"41793026731","content":{"type":"something_new"},"createdAt":"2022-01-18T23:23:09.206+0000"}"#;
        assert!(parse(other).unwrap().is_none());
        assert!(parse(br#"{"from":"1"}"#).unwrap_err().0.contains("content"));
    }

    #[test]
    fn the_vendors_marketing_stop_and_resume_examples_become_consent() {
        let stop = br#"{"from":"41793026731","content":{"sender":"41793026731","from":"385919998888","notificationMessagesStatus":"stop","description":"User requested to stop marketing messages"},"createdAt":"2024-01-01T01:00:00.000+0000"}"#;
        let Some(Notification::Marketing { stop: true, notice }) = parse(stop).unwrap() else { panic!("a stop") };
        assert_eq!((notice.from.as_str(), notice.to.as_str()), ("385919998888", "41793026731"));
        assert_eq!(notice.raw["message"]["text"], MARKETING_STOP_NOTICE);
        let resume = String::from_utf8_lossy(stop).replace("\"stop\"", "\"resume\"");
        assert!(matches!(parse(resume.as_bytes()).unwrap(), Some(Notification::Marketing { stop: false, .. })));
        let odd = String::from_utf8_lossy(stop).replace("\"stop\"", "\"maybe\"");
        assert!(parse(odd.as_bytes()).unwrap_err().0.contains("stop or resume"));
    }
}
