//! The one error of every call to Infobip, and what the caller should do about it.

use std::time::Duration;

use serde_json::Value;

/// Why a call to Infobip failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// The request did not complete (refused connection, timeout, reset). Whether Infobip
    /// received it is unknown.
    #[error("Infobip is temporarily unavailable: request failed: {0}")]
    Transport(String),
    /// 429 or 5xx: Infobip asks to come back later.
    #[error("Infobip is temporarily unavailable: {detail}")]
    Unavailable { status: u16, detail: String, retry_after: Option<Duration> },
    /// Any other refusal: the request will not succeed as sent. `scope` is the scope the
    /// call needs, for a 403.
    #[error("Infobip refused the request: {detail}")]
    Refused { status: u16, detail: String, scope: Option<&'static str> },
    /// The account's base URL cannot make a request URL.
    #[error("Infobip refused the request: bad Infobip base URL: {0}")]
    BadUrl(String),
}

impl Error {
    /// Will repeating the call never help?
    pub fn is_permanent(&self) -> bool {
        matches!(self, Error::Refused { .. } | Error::BadUrl(_))
    }

    /// How long Infobip asked the caller to wait (`Retry-After`).
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            Error::Unavailable { retry_after, .. } => *retry_after,
            _ => None,
        }
    }

    /// The HTTP status Infobip answered with, if it answered.
    pub fn status(&self) -> Option<u16> {
        match self {
            Error::Unavailable { status, .. } | Error::Refused { status, .. } => Some(*status),
            Error::Transport(_) | Error::BadUrl(_) => None,
        }
    }

    /// What went wrong, without the "unavailable"/"refused" verdict.
    pub fn detail(&self) -> String {
        match self {
            Error::Transport(e) => format!("request failed: {e}"),
            Error::Unavailable { detail, .. } | Error::Refused { detail, .. } => detail.clone(),
            Error::BadUrl(e) => format!("bad Infobip base URL: {e}"),
        }
    }

    /// The key was not accepted at all (401).
    pub fn is_wrong_key(&self) -> bool {
        self.status() == Some(401)
    }

    /// The scope the key lacks, when Infobip answered 403 to a call that needs one.
    pub fn missing_scope(&self) -> Option<&'static str> {
        match self {
            Error::Refused { status: 403, scope, .. } => *scope,
            _ => None,
        }
    }
}

/// Both of Infobip's error envelopes, in one readable line.
pub fn describe(status: u16, body: &Value) -> String {
    if let Some(e) = body.pointer("/requestError/serviceException") {
        let mut text = format!(
            "{status} {}: {}",
            e["messageId"].as_str().unwrap_or("ERROR"),
            crate::redact::vendor_text(e["text"].as_str().unwrap_or_default())
        );
        if let Some(fields) = e.get("validationErrors").and_then(Value::as_object) {
            for (field, problems) in fields {
                let problems: Vec<String> = problems
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(Value::as_str)
                    .map(crate::redact::vendor_text)
                    .collect();
                text.push_str(&format!("; {field}: {}", problems.join(", ")));
            }
        }
        return text;
    }
    if let Some(code) = body.get("errorCode").and_then(Value::as_str) {
        return format!(
            "{status} {code}: {}",
            crate::redact::vendor_text(body["description"].as_str().unwrap_or_default())
        );
    }
    format!("{status}")
}
