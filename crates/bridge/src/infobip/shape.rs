//! The JSON type Infobip's webhook schemas give each field the bridge may read or keep
//! (`InboundMessagePushko` and its `WhatsAppInbound*Content` branches, `DeliveryReport`,
//! `SeenReport` in `whatsapp.json`). A field of another type is refused before anything is
//! stored, naming the field and never echoing its value (it may be a phone number or the
//! customer's words). Fields not listed here are passed through as Infobip adds them.

use serde_json::Value;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    Str,
    Number,
    Integer,
    Bool,
    Object,
    Array,
}

impl Kind {
    fn admits(self, value: &Value) -> bool {
        match self {
            Kind::Str => value.is_string(),
            Kind::Number => value.is_number(),
            Kind::Integer => value.is_i64() || value.is_u64(),
            Kind::Bool => value.is_boolean(),
            Kind::Object => value.is_object(),
            Kind::Array => value.is_array(),
        }
    }

    fn name(self) -> &'static str {
        match self {
            Kind::Str => "a string",
            Kind::Number => "a number",
            Kind::Integer => "an integer",
            Kind::Bool => "true or false",
            Kind::Object => "an object",
            Kind::Array => "an array",
        }
    }
}

use Kind::{Array, Bool, Integer, Number, Object, Str};

/// `InboundMessagePushko` with its contact, price and identity, and the fields of every
/// content branch (a name has one type across all of them).
pub(crate) const INBOUND: &[(&str, Kind)] = &[
    ("applicationId", Str),
    ("callbackData", Str),
    ("entityId", Str),
    ("from", Str),
    ("integrationType", Str),
    ("keyword", Str),
    ("messageId", Str),
    ("pairedMessageId", Str),
    ("receivedAt", Str),
    ("to", Str),
    ("contact", Object),
    ("contact.name", Str),
    ("contact.parentUserId", Str),
    ("contact.phoneNumber", Str),
    ("contact.userId", Str),
    ("contact.username", Str),
    ("price", Object),
    ("price.currency", Str),
    ("price.pricePerMessage", Number),
    ("identity", Object),
    ("identity.acknowledged", Bool),
    ("identity.createdAt", Str),
    ("identity.hash", Str),
    ("message", Object),
    ("message.type", Str),
    ("message.text", Str),
    ("message.caption", Str),
    ("message.url", Str),
    ("message.payload", Str),
    ("message.id", Str),
    ("message.title", Str),
    ("message.description", Str),
    ("message.address", Str),
    ("message.name", Str),
    ("message.latitude", Number),
    ("message.longitude", Number),
    ("message.emoji", Str),
    ("message.malware", Str),
    ("message.catalogId", Str),
    ("message.contacts", Array),
    ("message.productItems", Array),
    ("message.response", Object),
    ("message.context", Object),
    ("message.context.from", Str),
    ("message.context.id", Str),
    ("message.context.groupId", Str),
    ("message.referral", Object),
    ("message.referral.body", Str),
    ("message.referral.headline", Str),
    ("message.referral.sourceUrl", Str),
    ("message.referral.sourceId", Str),
    ("message.referral.ctwaClickId", Str),
];

/// `DeliveryReport` (its `Report`, `Status`, `Error`) and `SeenReport`.
pub(crate) const REPORT: &[(&str, Kind)] = &[
    ("messageId", Str),
    ("bulkId", Str),
    ("from", Str),
    ("to", Str),
    ("sentAt", Str),
    ("doneAt", Str),
    ("seenAt", Str),
    ("callbackData", Str),
    ("entityId", Str),
    ("applicationId", Str),
    ("status", Object),
    ("status.groupId", Integer),
    ("status.groupName", Str),
    ("status.id", Integer),
    ("status.name", Str),
    ("status.description", Str),
    ("status.action", Str),
    ("error", Object),
    ("error.groupId", Integer),
    ("error.groupName", Str),
    ("error.id", Integer),
    ("error.name", Str),
    ("error.description", Str),
    ("error.permanent", Bool),
];

/// The first field of `result` (the `index`th of `results`) whose type the schema refuses,
/// as `results[0].receivedAt must be a string`. `null` is taken as absent.
pub(crate) fn check(result: &Value, index: usize, fields: &[(&str, Kind)]) -> Result<(), String> {
    if !result.is_object() {
        return Err(format!("results[{index}] must be an object"));
    }
    for (path, kind) in fields {
        let mut at = Some(result);
        for part in path.split('.') {
            at = at.and_then(|v| v.get(part));
        }
        match at {
            Some(Value::Null) | None => {}
            Some(value) if kind.admits(value) => {}
            Some(_) => return Err(format!("results[{index}].{path} must be {}", kind.name())),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_field_of_the_wrong_type_is_named_without_its_value() {
        let ok = json!({"messageId": "m", "receivedAt": "2025-01-01T10:10:00.000+0000", "message": {"type": "TEXT", "text": "hi"}});
        assert_eq!(check(&ok, 0, INBOUND), Ok(()));
        for (bad, problem) in [
            (json!({"receivedAt": 1_735_725_000}), "results[2].receivedAt must be a string"),
            (
                json!({"message": {"type": "TEXT", "text": {"body": "secret"}}}),
                "results[2].message.text must be a string",
            ),
            (json!({"to": 41_793_026_731_u64}), "results[2].to must be a string"),
            (json!({"message": "hi"}), "results[2].message must be an object"),
            (json!({"message": {"latitude": "45.1"}}), "results[2].message.latitude must be a number"),
            (json!("hi"), "results[2] must be an object"),
        ] {
            let err = check(&bad, 2, INBOUND).unwrap_err();
            assert_eq!(err, problem);
            assert!(!err.contains("secret") && !err.contains("41793026731"), "{err}");
        }
        assert_eq!(
            check(&json!({"error": {"id": "7"}}), 0, REPORT),
            Err("results[0].error.id must be an integer".into())
        );
    }
}
