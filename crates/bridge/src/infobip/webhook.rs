//! Infobip's WhatsApp webhook documents: inbound messages, delivery reports, seen reports.
//! Parsing is lenient where Infobip is (unknown message types, extra fields, timestamps
//! with `+0000` offsets), strict about what the bridge cannot do without, and refuses a field
//! whose type Infobip's schema does not give it (`shape`).

use chrono::{DateTime, NaiveDateTime, Utc};
use serde_json::Value;

use super::delivery::DeliveryFailure;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("{0}")]
pub struct ParseError(pub String);

/// The `results` of a webhook body. serde's own messages are not used: they quote the value
/// they could not take, and a value here may be a phone number.
fn results(body: &[u8]) -> Result<Vec<Value>, ParseError> {
    let envelope: Value = serde_json::from_slice(body).map_err(|e| {
        ParseError(format!("body is not valid JSON: {:?} at line {} column {}", e.classify(), e.line(), e.column()))
    })?;
    if !envelope.is_object() {
        return Err(ParseError("body must be a JSON object".into()));
    }
    match envelope.get("results") {
        Some(Value::Array(results)) => Ok(results.clone()),
        None | Some(Value::Null) => Err(ParseError("`results` is missing".into())),
        Some(_) => Err(ParseError("`results` must be an array".into())),
    }
}

/// One inbound message as the bridge needs it; `raw` is the whole result, kept until the
/// message is delivered.
#[derive(Debug, Clone, PartialEq)]
pub struct InboundMessage {
    pub message_id: String,
    /// The end user: the phone number, or the business-scoped user id when no number is given.
    pub from: String,
    /// The business's WhatsApp sender number.
    pub to: String,
    pub received_at: Option<NaiveDateTime>,
    /// `message.type`, upper case (`TEXT`, `IMAGE`, …); unknown types are kept as they are.
    pub kind: String,
    pub raw: Value,
}

fn text(v: &Value, pointer: &str) -> Option<String> {
    v.pointer(pointer).and_then(Value::as_str).map(str::trim).filter(|s| !s.is_empty()).map(str::to_owned)
}

/// Parses the body of an inbound-message webhook. Every result must carry a message id, a
/// sender, a recipient and a message type; otherwise the whole body is refused, naming the
/// first problem, so nothing of a malformed delivery is half-stored.
pub fn parse_inbound(body: &[u8]) -> Result<Vec<InboundMessage>, ParseError> {
    results(body)?
        .into_iter()
        .enumerate()
        .map(|(i, raw)| {
            super::shape::check(&raw, i, super::shape::INBOUND).map_err(ParseError)?;
            let missing = |field: &str| ParseError(format!("results[{i}].{field} is missing"));
            let message_id = text(&raw, "/messageId").ok_or_else(|| missing("messageId"))?;
            // Users may be known only by their business-scoped id (no phone number).
            let from = text(&raw, "/from").or_else(|| text(&raw, "/contact/userId")).ok_or_else(|| missing("from"))?;
            let to = text(&raw, "/to").ok_or_else(|| missing("to"))?;
            let kind = text(&raw, "/message/type").ok_or_else(|| missing("message.type"))?.to_ascii_uppercase();
            let received_at = text(&raw, "/receivedAt").and_then(|t| parse_timestamp(&t));
            if text(&raw, "/receivedAt").is_some() && received_at.is_none() {
                return Err(ParseError(format!("results[{i}].receivedAt is not a timestamp")));
            }
            Ok(InboundMessage { message_id, from, to, received_at, kind, raw })
        })
        .collect()
}

/// A delivery or seen report for a message the bridge sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Report {
    pub message_id: String,
    pub kind: ReportKind,
    pub at: Option<NaiveDateTime>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReportKind {
    Delivered,
    Seen,
    /// Not delivered, with Infobip's reason.
    Failed(DeliveryFailure),
    /// Still under way (`PENDING`, `ACCEPTED`): nothing to tell Salesforce yet.
    Pending,
}

/// Parses delivery reports and seen reports (both `{results: [...]}`; a seen report has
/// `seenAt`, a delivery report `status`).
pub fn parse_reports(body: &[u8]) -> Result<Vec<Report>, ParseError> {
    results(body)?
        .into_iter()
        .enumerate()
        .map(|(i, r)| {
            super::shape::check(&r, i, super::shape::REPORT).map_err(ParseError)?;
            let message_id =
                text(&r, "/messageId").ok_or_else(|| ParseError(format!("results[{i}].messageId is missing")))?;
            if let Some(seen) = text(&r, "/seenAt") {
                return Ok(Report { message_id, kind: ReportKind::Seen, at: parse_timestamp(&seen) });
            }
            let group = text(&r, "/status/groupName")
                .ok_or_else(|| ParseError(format!("results[{i}] has neither status nor seenAt")))?;
            let at = text(&r, "/doneAt").and_then(|t| parse_timestamp(&t));
            let kind = match group.as_str() {
                "DELIVERED" => ReportKind::Delivered,
                "PENDING" | "ACCEPTED" => ReportKind::Pending,
                _ => ReportKind::Failed(DeliveryFailure {
                    error_id: r.pointer("/error/id").and_then(Value::as_i64).filter(|id| *id != 0),
                    name: text(&r, "/error/name")
                        .filter(|n| n.as_str() != "NO_ERROR")
                        .or_else(|| text(&r, "/status/name"))
                        .unwrap_or(group.clone()),
                    description: text(&r, "/error/description")
                        .filter(|_| text(&r, "/error/name").as_deref() != Some("NO_ERROR"))
                        .or_else(|| text(&r, "/status/description"))
                        .unwrap_or_default(),
                    permanent: r.pointer("/error/permanent").and_then(Value::as_bool).unwrap_or(true),
                    group,
                }),
            };
            Ok(Report { message_id, kind, at })
        })
        .collect()
}

/// Infobip writes `2025-01-01T10:10:00.000+0000` (no colon in the offset); other products
/// write RFC 3339. Returns UTC.
pub fn parse_timestamp(value: &str) -> Option<NaiveDateTime> {
    for format in ["%Y-%m-%dT%H:%M:%S%.f%z", "%Y-%m-%dT%H:%M:%S%z"] {
        if let Ok(t) = DateTime::parse_from_str(value, format) {
            return Some(t.with_timezone(&Utc).naive_utc());
        }
    }
    DateTime::parse_from_rfc3339(value).ok().map(|t| t.with_timezone(&Utc).naive_utc())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_in_every_spelling() {
        let expected = chrono::NaiveDate::from_ymd_opt(2025, 1, 1).unwrap().and_hms_opt(10, 10, 0).unwrap();
        assert_eq!(parse_timestamp("2025-01-01T10:10:00.000+0000"), Some(expected));
        assert_eq!(parse_timestamp("2025-01-01T10:10:00+0000"), Some(expected));
        assert_eq!(parse_timestamp("2025-01-01T10:10:00.000+00:00"), Some(expected));
        assert_eq!(parse_timestamp("2025-01-01T07:10:00.000-0300"), Some(expected));
        assert_eq!(parse_timestamp("yesterday"), None);
    }

    #[test]
    fn inbound_needs_ids_and_keeps_unknown_types() {
        let body = br#"{"results":[{"from":"385919998888","to":"41793026731","messageId":"w1",
            "receivedAt":"2025-01-01T10:10:00.000+0000","message":{"type":"HOLOGRAM","x":1}}],"messageCount":1}"#;
        let parsed = parse_inbound(body).unwrap();
        assert_eq!(parsed[0].kind, "HOLOGRAM");
        assert_eq!(parsed[0].raw["message"]["x"], 1);

        let no_phone = br#"{"results":[{"to":"41793026731","messageId":"w2","contact":{"userId":"HR.1"},"message":{"type":"TEXT","text":"hi"}}]}"#;
        assert_eq!(parse_inbound(no_phone).unwrap()[0].from, "HR.1");

        for (body, problem) in [
            (&b"not json"[..], "body is not valid JSON"),
            (br#"{"messageCount":0}"#, "`results` is missing"),
            (br#"{"results":[{"from":"1","to":"2","message":{"type":"TEXT"}}]}"#, "results[0].messageId is missing"),
            (br#"{"results":[{"from":"1","to":"2","messageId":"m"}]}"#, "results[0].message.type is missing"),
            (
                br#"{"results":[{"from":"1","to":"2","messageId":"m","receivedAt":"soon","message":{"type":"TEXT"}}]}"#,
                "results[0].receivedAt is not a timestamp",
            ),
        ] {
            let err = parse_inbound(body).unwrap_err();
            assert!(err.0.starts_with(problem), "{err}");
        }
    }

    #[test]
    fn reports() {
        let dlr = br#"{"results":[{"messageId":"a","status":{"groupName":"DELIVERED"},"doneAt":"2019-04-09T16:01:56.494-0300"},
            {"messageId":"b","status":{"groupName":"UNDELIVERABLE","name":"X"},"error":{"name":"EC_NO_SESSION","description":"No session","permanent":true}},
            {"messageId":"c","status":{"groupName":"PENDING"}}]}"#;
        let reports = parse_reports(dlr).unwrap();
        assert_eq!(reports[0].kind, ReportKind::Delivered);
        let ReportKind::Failed(failure) = &reports[1].kind else { panic!("{:?}", reports[1]) };
        assert_eq!(
            (failure.summary().as_str(), failure.error_id, failure.permanent),
            ("EC_NO_SESSION: No session", None, true)
        );
        assert_eq!(reports[2].kind, ReportKind::Pending);
        let seen = br#"{"results":[{"messageId":"a","from":"1","to":"2","seenAt":"2019-04-09T16:01:56.494+0000"}]}"#;
        assert_eq!(parse_reports(seen).unwrap()[0].kind, ReportKind::Seen);
    }
}
