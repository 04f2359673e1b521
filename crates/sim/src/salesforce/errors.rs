//! Interaction Service API errors: `{"message", "code"}` with the codes and texts of the
//! vendor's error table. HTTP statuses are not in that table; the mapping below is ours
//! (authentication 401, authorisation 403, retry-later 503, the rest 400).

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, ResponseError};

use super::SalesforceSim;
use serde_json::{Value, json};

/// Texts from the vendor's table (`interaction-error-codes.json`).
pub fn message(code: i64) -> &'static str {
    match code {
        10001 => {
            "The AuthorizationContext in the request isn't valid for the provided value in the \"to\"/\"channelAddressIdentifier\" field."
        }
        10003 => {
            "The supplied Authorization access token is missing the required Connected App scope. Required value: interaction_api."
        }
        10004 => "The supplied Authorization access token is not valid.",
        10005 => {
            "The AuthorizationContext for the request isn't valid based on the supplied Authorization access token."
        }
        10008 => "The file size exceeds the maximum limit of 25 MB.",
        10011 => {
            "The number of interactions of type AttachmentInteraction does not match the number of attachment files."
        }
        10016 => "Enter a valid header.",
        10017 => "The channelAddressIdentifier provided does not exist.",
        10019 => "The service is in read-only mode because an org migration is in progress. Try again later.",
        10022 => "Cannot update Consent Status where the Consent Owner of the channel is not set to Partner.",
        10027 => "The provided \"to\" field isn't valid.",
        10028 => "The provided \"from\" field isn't valid.",
        10029 => "The provided interaction list isn't valid.",
        10031 => "The channelAddressIdentifier provided is not active.",
        10045 => "Provide a valid message entry format.",
        10046 => "Invalid clientTimestamp. Send messages within the allowed response time frame.",
        10051 => "The file size (in bytes) of uploaded attachment is incorrect.",
        10052 => "The \"channelAddressIdentifier\" field set in post conversation request isn't valid.",
        10053 => "The \"participants\" field set in post conversation request is either invalid or empty.",
        10054 => "Invalid subject of participant in conversation request.",
        10055 => "Conversation precondition failed. Please retry.",
        10057 => {
            "Looks like you don't have access to the ConversationHistory API. Only Bring Your Own Channel for CCaaS partners can access them. Your Salesforce admin can help with that."
        }
        10059 => "Interaction ID or Message ID is empty.",
        10060 => "Interaction ID and Message ID are mismatched.",
        10062 => {
            "Invalid message type. Only StaticContentMessage, ChoicesResponseMessage, and FormResponseMessage types are supported for messages sent from an end user."
        }
        10094 => "The request failed due to a timeout from a downstream service. Please try again later.",
        10095 => "The MIME type of the uploaded file cannot be determined. Please check the file and try again.",
        10100 => {
            "A request body is required and can't be empty. Provide a valid payload and ensure data is included and correctly formatted."
        }
        10106 => "Messaging Session ID is missing for Inactivate Messaging Session API.",
        _ => "An internal server error occurred. Please contact Salesforce Support.",
    }
}

pub fn body(code: i64, detail: Option<&str>) -> Value {
    let text = match detail {
        Some(d) => format!("{} {d}", message(code)),
        None => message(code).to_owned(),
    };
    json!({ "message": text, "code": code })
}

/// An Interaction API refusal.
#[derive(Debug, Clone)]
pub struct SfError {
    pub code: i64,
    pub detail: Option<String>,
}

impl SfError {
    pub fn new(code: i64) -> Self {
        Self { code, detail: None }
    }

    pub fn with(code: i64, detail: impl Into<String>) -> Self {
        Self { code, detail: Some(detail.into()) }
    }
}

impl std::fmt::Display for SfError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} ({})", message(self.code), self.code)
    }
}

impl ResponseError for SfError {
    fn status_code(&self) -> StatusCode {
        match self.code {
            10003 | 10004 => StatusCode::UNAUTHORIZED,
            10001 | 10005 | 10057 => StatusCode::FORBIDDEN,
            10019 | 10055 | 10056 | 10094 => StatusCode::SERVICE_UNAVAILABLE,
            c if c >= 20000 || c == 500 => StatusCode::INTERNAL_SERVER_ERROR,
            _ => StatusCode::BAD_REQUEST,
        }
    }

    fn error_response(&self) -> HttpResponse {
        HttpResponse::build(self.status_code()).json(body(self.code, self.detail.as_deref()))
    }
}

pub(crate) fn rest_error(status: u16, code: &str, message: &str) -> HttpResponse {
    let status = actix_web::http::StatusCode::from_u16(status).unwrap_or(actix_web::http::StatusCode::BAD_REQUEST);
    HttpResponse::build(status).json(json!([{ "message": message, "errorCode": code, "fields": [] }]))
}

/// A valid bearer token with the `api` scope.
pub(crate) fn authorize(sim: &SalesforceSim, req: &HttpRequest) -> Result<(), HttpResponse> {
    let token = super::bearer(req);
    let mut state = sim.state();
    match state.tokens.get(token) {
        Some(t) if t.expires_at > std::time::Instant::now() => {
            if t.scopes.iter().any(|s| s == "api" || s == "full") {
                state.api_requests += 1;
                Ok(())
            } else {
                Err(rest_error(403, "INSUFFICIENT_ACCESS", "This session is not valid for use with the REST API"))
            }
        }
        _ => Err(rest_error(401, "INVALID_SESSION_ID", "Session expired or invalid")),
    }
}
