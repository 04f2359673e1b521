//! The one error of every call to Salesforce, and what the caller should do about it.

use std::time::Duration;

/// Why a call to Salesforce failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The token endpoint refused the JWT bearer assertion (`invalid_grant`, `invalid_client_id`…).
    #[error("Salesforce refused the token request: {error}: {description}")]
    TokenRequest { status: u16, error: String, description: String },
    /// The token endpoint answered something that is not OAuth.
    #[error("unexpected answer from the token endpoint (status {status})")]
    TokenEndpoint { status: u16 },
    /// The private key cannot sign an assertion.
    #[error("the private key cannot sign: {0}")]
    Key(String),
    /// The login host did not answer.
    #[error("cannot reach the Salesforce login host: {0}")]
    LoginUnreachable(String),
    /// An API host did not answer (the request may or may not have arrived).
    #[error("Salesforce cannot be reached: {0}")]
    Transport(String),
    /// The API refused the access token (401 or code 10004): renew it and try again.
    #[error("access token refused ({status}, code {code:?})")]
    TokenRefused { status: u16, code: Option<i64> },
    /// 5xx, 429 or a code Salesforce documents as "try again later".
    #[error("Salesforce is temporarily unavailable: {detail}")]
    Unavailable { status: u16, code: Option<i64>, detail: String, retry_after: Option<Duration> },
    /// Will not succeed as sent.
    #[error("Salesforce refused the request: {detail}")]
    Refused { status: u16, code: Option<i64>, detail: String },
    /// A Pub/Sub API call failed (its status says why: authentication, a replay id…).
    #[error("Pub/Sub call failed: {0}")]
    PubSub(Box<tonic::Status>),
    /// The token may not use the REST API (401/403 there).
    #[error(
        "the access token may not use the REST API; add the \"Manage user data via APIs (api)\" scope to the connected app"
    )]
    MissingScope,
}

impl Error {
    /// Will repeating the call never help?
    pub fn is_permanent(&self) -> bool {
        match self {
            Error::LoginUnreachable(_)
            | Error::Transport(_)
            | Error::TokenRefused { .. }
            | Error::Unavailable { .. }
            | Error::PubSub(_) => false,
            Error::TokenRequest { status, .. } | Error::TokenEndpoint { status } => *status != 429 && *status < 500,
            Error::Key(_) | Error::Refused { .. } | Error::MissingScope => true,
        }
    }

    /// How long Salesforce asked the caller to wait (`Retry-After`).
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            Error::Unavailable { retry_after, .. } => *retry_after,
            _ => None,
        }
    }

    /// Salesforce's own error code (Interaction API), when it gave one.
    pub fn code(&self) -> Option<i64> {
        match self {
            Error::TokenRefused { code, .. } | Error::Unavailable { code, .. } | Error::Refused { code, .. } => *code,
            _ => None,
        }
    }

    /// What went wrong, without the verdict ("unavailable", "refused").
    pub fn detail(&self) -> String {
        match self {
            Error::Unavailable { detail, .. } | Error::Refused { detail, .. } => detail.clone(),
            other => other.to_string(),
        }
    }
}
