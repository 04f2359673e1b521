//! The Interaction Service API client: `POST /api/v1/interactions` and friends, with the
//! headers Salesforce checks (`OrgId` as 15 characters, `AuthorizationContext`, a fresh
//! `RequestId`) and errors classified for the retry logic.

use std::time::Duration;

use reqwest::multipart::{Form, Part};
use secrecy::ExposeSecret;
use serde::Deserialize;
use serde_json::Value;

use super::auth::AccessToken;
use crate::directory::ActiveApp;

/// File types the Interaction Service accepts as attachments.
pub const SUPPORTED_ATTACHMENT_TYPES: &[&str] = &[
    "image/jpeg",
    "image/gif",
    "image/bmp",
    "image/png",
    "application/pdf",
    "video/3gpp2",
    "audio/3gpp2",
    "video/3gpp",
    "audio/3gpp",
    "video/mpeg",
    "audio/mpeg",
    "video/mp4",
    "audio/mp4",
];

/// The attachment size limit.
pub const MAX_ATTACHMENT_BYTES: usize = 25 * 1024 * 1024;

/// Codes Salesforce documents as "try again later".
const RETRY_LATER_CODES: &[i64] = &[10019, 10055, 10056, 10094];

#[derive(Debug, thiserror::Error)]
pub enum CallError {
    /// The token was refused (401 or code 10004): get a new one and try again.
    #[error("access token refused ({status}, code {code:?})")]
    TokenRefused { status: u16, code: Option<i64> },
    /// Temporary: 5xx, 429, timeouts, "retry later" codes.
    #[error("Salesforce is temporarily unavailable: {detail}")]
    Retry { detail: String, retry_after: Option<Duration> },
    /// Will not succeed as sent.
    #[error("Salesforce refused the request: {detail}")]
    Refused { status: u16, code: Option<i64>, detail: String },
}

#[derive(Debug, Deserialize)]
struct ErrorBody {
    message: Option<String>,
    code: Option<i64>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PostInteractionResponse {
    pub conversation_identifier: Option<String>,
    #[serde(default)]
    pub work_item_ids: Vec<String>,
}

/// A file to upload with an `AttachmentInteraction`.
pub struct Attachment {
    pub bytes: Vec<u8>,
    pub mime_type: String,
    pub file_name: String,
}

#[derive(Clone)]
pub struct InteractionClient {
    http: reqwest::Client,
}

impl InteractionClient {
    pub fn new(http: reqwest::Client) -> Self {
        Self { http }
    }

    fn request(
        &self,
        app: &ActiveApp,
        token: &AccessToken,
        method: reqwest::Method,
        path: &str,
    ) -> reqwest::RequestBuilder {
        self.http
            .request(method, format!("{}/api/v1{path}", app.scrt_url.trim_end_matches('/')))
            .bearer_auth(token.token.expose_secret())
            .header("OrgId", super::org_id_15(&app.org_id))
            .header("AuthorizationContext", &app.authorization_context)
            // Optional on most calls, required on some (conversationHistory); ours is a CCD.
            .header("AuthorizationContextType", "ConversationChannelDefinition")
            .header("RequestId", uuid::Uuid::new_v4().to_string())
    }

    /// Posts one interaction (`json` is the `json` part), with at most one file.
    pub async fn post_interaction(
        &self,
        app: &ActiveApp,
        token: &AccessToken,
        json: &Value,
        attachment: Option<Attachment>,
    ) -> Result<PostInteractionResponse, CallError> {
        let json_part = Part::text(json.to_string()).mime_str("application/json").map_err(transport)?;
        let mut form = Form::new().part("json", json_part);
        if let Some(file) = attachment {
            let part =
                Part::bytes(file.bytes).file_name(file.file_name).mime_str(&file.mime_type).map_err(transport)?;
            form = form.part("attachments", part);
        }
        let response = self
            .request(app, token, reqwest::Method::POST, "/interactions")
            .multipart(form)
            .send()
            .await
            .map_err(transport)?;
        let bytes = check(response).await?;
        serde_json::from_slice(&bytes).map_err(|e| CallError::Refused {
            status: 202,
            code: None,
            detail: format!("unreadable answer: {e}"),
        })
    }

    /// Posts a JSON body (`/conversation`, `/acknowledgement`, `/messagingSession`).
    pub async fn post_json(
        &self,
        app: &ActiveApp,
        token: &AccessToken,
        path: &str,
        body: &Value,
    ) -> Result<Value, CallError> {
        let response =
            self.request(app, token, reqwest::Method::POST, path).json(body).send().await.map_err(transport)?;
        let bytes = check(response).await?;
        Ok(serde_json::from_slice(&bytes).unwrap_or(Value::Null))
    }
}

/// Runs `call` with the app's access token, renewing the token once if Salesforce refuses it.
pub async fn with_token<T, F, Fut>(tokens: &super::auth::TokenCache, app: &ActiveApp, call: F) -> Result<T, CallError>
where
    F: Fn(AccessToken) -> Fut,
    Fut: std::future::Future<Output = Result<T, CallError>>,
{
    for attempt in 0..2 {
        let token = tokens.get(app).await.map_err(|e| {
            if e.is_transient() {
                CallError::Retry { detail: e.to_string(), retry_after: None }
            } else {
                CallError::Refused { status: 0, code: None, detail: e.to_string() }
            }
        })?;
        match call(token.clone()).await {
            Err(CallError::TokenRefused { .. }) if attempt == 0 => {
                tracing::info!(app.id = %app.id, "Salesforce refused the access token; renewing it");
                tokens.invalidate(&app.id, &token).await;
            }
            other => return other,
        }
    }
    Err(CallError::Retry { detail: "access token refused twice".into(), retry_after: None })
}

/// Salesforce's ids of an established conversation.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Established {
    pub conversation_identifier: Option<String>,
    pub messaging_session_id: Option<String>,
}

/// `POST /conversation`: finds or opens the end user's conversation and messaging session,
/// with routing attributes (a JSON object; empty or null sends none).
pub async fn establish(
    tokens: &super::auth::TokenCache,
    client: &InteractionClient,
    app: &ActiveApp,
    end_user: &str,
    routing_attributes: &Value,
) -> Result<Established, CallError> {
    let mut body = serde_json::json!({
        "channelAddressIdentifier": app.channel_address_identifier,
        "participants": [{ "subject": end_user, "role": "EndUser", "appType": "custom" }],
    });
    if routing_attributes.as_object().is_some_and(|o| !o.is_empty()) {
        body["routingAttributes"] = routing_attributes.clone();
    }
    let answer = with_token(tokens, app, |token| {
        let body = &body;
        async move { client.post_json(app, &token, "/conversation", body).await }
    })
    .await?;
    let text = |field: &str| answer.get(field).and_then(Value::as_str).map(str::to_owned);
    Ok(Established {
        conversation_identifier: text("conversationIdentifier"),
        messaging_session_id: text("messagingSessionId"),
    })
}

impl From<CallError> for crate::worker::JobFailure {
    fn from(e: CallError) -> Self {
        match e {
            CallError::Retry { detail, retry_after } => {
                crate::worker::JobFailure::Retry { reason: detail, after: retry_after }
            }
            CallError::TokenRefused { .. } => crate::worker::JobFailure::retry(e.to_string()),
            CallError::Refused { .. } => crate::worker::JobFailure::permanent(e.to_string()),
        }
    }
}

fn transport(e: reqwest::Error) -> CallError {
    CallError::Retry { detail: format!("request failed: {e}"), retry_after: None }
}

/// Classifies a response: success bytes, or the kind of failure.
async fn check(response: reqwest::Response) -> Result<Vec<u8>, CallError> {
    let status = response.status().as_u16();
    let retry_after = response
        .headers()
        .get("Retry-After")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok())
        .map(Duration::from_secs);
    let bytes = response.bytes().await.map_err(transport)?.to_vec();
    if (200..300).contains(&status) {
        return Ok(bytes);
    }
    let body: Option<ErrorBody> = serde_json::from_slice(&bytes).ok();
    let code = body.as_ref().and_then(|b| b.code);
    let message = body.and_then(|b| b.message).unwrap_or_default();
    let detail = match code {
        Some(c) => format!("{status} code {c}: {message}"),
        None => format!("{status}: {message}"),
    };
    if status == 401 || code == Some(10004) {
        return Err(CallError::TokenRefused { status, code });
    }
    if status == 429 || status >= 500 || code.is_some_and(|c| RETRY_LATER_CODES.contains(&c)) {
        return Err(CallError::Retry { detail, retry_after });
    }
    Err(CallError::Refused { status, code, detail })
}
