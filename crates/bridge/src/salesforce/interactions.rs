//! The Interaction Service API (`/api/v1`): what the bridge sends into Salesforce's
//! conversations, with the headers Salesforce checks (`OrgId` as 15 characters,
//! `AuthorizationContext`, a fresh `RequestId`) and errors classified for the retry logic.

use std::collections::BTreeMap;
use std::time::Duration;

use reqwest::multipart::{Form, Part};
use secrecy::ExposeSecret;
use serde::Deserialize;
use serde_json::Value;

use super::requests::{
    AcknowledgementRequest, ConsentRequest, ConversationRequest, EntryPayload, HistoryRequest, Interaction,
    InteractionRequest, MessagingSessionRequest, Participant,
};
use super::{AccessToken, Client, Connection, Error};

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

/// Salesforce's ids of an established conversation.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Established {
    pub conversation_identifier: Option<String>,
    pub messaging_session_id: Option<String>,
}

/// Where Interaction API calls go and which channel they are for.
#[derive(Debug, Clone, Copy)]
pub struct Channel<'a> {
    pub scrt_url: &'a str,
    pub org_id: &'a str,
    pub authorization_context: &'a str,
    pub channel_address_identifier: &'a str,
}

impl Connection {
    pub fn channel(&self) -> Channel<'_> {
        Channel {
            scrt_url: &self.scrt_url,
            org_id: &self.org_id,
            authorization_context: &self.authorization_context,
            channel_address_identifier: &self.channel_address_identifier,
        }
    }
}

impl Client {
    fn interaction_request(&self, channel: Channel<'_>, token: &AccessToken, path: &str) -> reqwest::RequestBuilder {
        self.interaction_call(reqwest::Method::POST, channel, token, path)
    }

    fn interaction_call(
        &self,
        method: reqwest::Method,
        channel: Channel<'_>,
        token: &AccessToken,
        path: &str,
    ) -> reqwest::RequestBuilder {
        self.http
            .request(method, format!("{}/api/v1{path}", channel.scrt_url.trim_end_matches('/')))
            .bearer_auth(token.token.expose_secret())
            .header("OrgId", super::org_id_15(channel.org_id))
            .header("AuthorizationContext", channel.authorization_context)
            // Optional on most calls, required on some (conversationHistory); ours is a CCD.
            .header("AuthorizationContextType", "ConversationChannelDefinition")
            .header("RequestId", uuid::Uuid::new_v4().to_string())
    }

    /// Runs `call` with the app's access token, renewing the token once if Salesforce refuses it.
    async fn with_token<T, F, Fut>(&self, app: &Connection, call: F) -> Result<T, Error>
    where
        F: Fn(AccessToken) -> Fut,
        Fut: std::future::Future<Output = Result<T, Error>>,
    {
        for attempt in 0..2 {
            let token = self.tokens.get(app).await?;
            let started = std::time::Instant::now();
            let answered = call(token.clone()).await;
            if let Some(observe) = &self.interaction_observer {
                observe(&app.app_name, started.elapsed());
            }
            match answered {
                Err(Error::TokenRefused { .. }) if attempt == 0 => {
                    tracing::info!(app.id = %app.app_id, "Salesforce refused the access token; renewing it");
                    self.tokens.invalidate(&app.app_id, &token).await;
                }
                other => return other,
            }
        }
        Err(Error::Unavailable {
            status: 401,
            code: None,
            detail: "access token refused twice".into(),
            retry_after: None,
        })
    }

    async fn post_json<T: serde::Serialize>(&self, app: &Connection, path: &str, body: &T) -> Result<Value, Error> {
        self.with_token(app, |token| async move {
            let response =
                self.interaction_request(app.channel(), &token, path).json(body).send().await.map_err(transport)?;
            let bytes = check(response).await?;
            Ok(serde_json::from_slice(&bytes).unwrap_or(Value::Null))
        })
        .await
    }

    /// `POST /interactions`: one interaction from the end user, with at most one file.
    pub async fn post_interaction(
        &self,
        app: &Connection,
        end_user: &str,
        interaction: Interaction,
        attachment: Option<&Attachment>,
    ) -> Result<PostInteractionResponse, Error> {
        let request = InteractionRequest {
            to: app.channel_address_identifier.clone(),
            from: end_user.to_owned(),
            interactions: [interaction],
        };
        let json = serde_json::to_string(&request).map_err(|e| refused(0, format!("unwritable request: {e}")))?;
        self.with_token(app, |token| {
            let json = json.clone();
            async move {
                let json_part = Part::text(json).mime_str("application/json").map_err(transport)?;
                let mut form = Form::new().part("json", json_part);
                if let Some(file) = attachment {
                    let part = Part::bytes(file.bytes.clone())
                        .file_name(file.file_name.clone())
                        .mime_str(&file.mime_type)
                        .map_err(transport)?;
                    form = form.part("attachments", part);
                }
                let response = self
                    .interaction_request(app.channel(), &token, "/interactions")
                    .multipart(form)
                    .send()
                    .await
                    .map_err(transport)?;
                let bytes = check(response).await?;
                serde_json::from_slice(&bytes).map_err(|e| {
                    refused(202, format!("unreadable answer: {}", crate::redact::vendor_text(&e.to_string())))
                })
            }
        })
        .await
    }

    /// Tells the agent that their entry `failed_entry` did not reach the customer, and why.
    pub async fn report_delivery_failure(
        &self,
        app: &Connection,
        end_user: &str,
        failed_entry: &str,
        code: &str,
        reason: &str,
    ) -> Result<PostInteractionResponse, Error> {
        let interaction = Interaction::EntryInteraction {
            timestamp: chrono::Utc::now().timestamp_millis(),
            payload: EntryPayload::MessageDeliveryFailed {
                id: uuid::Uuid::new_v4().to_string(),
                failed_conversation_entry_identifier: failed_entry.to_owned(),
                recipient: Participant::end_user(end_user),
                error_code: code.to_owned(),
                error_message: reason.to_owned(),
            },
        };
        self.post_interaction(app, end_user, interaction, None).await
    }

    /// `POST /conversation`: finds or opens the end user's conversation and messaging session,
    /// with routing attributes (none when empty).
    pub async fn establish(
        &self,
        app: &Connection,
        end_user: &str,
        routing_attributes: &BTreeMap<String, String>,
    ) -> Result<Established, Error> {
        let body = ConversationRequest {
            channel_address_identifier: &app.channel_address_identifier,
            participants: [Participant::end_user(end_user)],
            routing_attributes: Some(routing_attributes).filter(|r| !r.is_empty()),
        };
        let answer = self.post_json(app, "/conversation", &body).await?;
        Ok(serde_json::from_value(answer).unwrap_or_default())
    }

    /// `PATCH /capabilities`: what the channel can show, so Salesforce offers agents only that.
    pub async fn register_capabilities(
        &self,
        app: &Connection,
        request: &super::capabilities::CapabilitiesRequest,
    ) -> Result<(), Error> {
        self.patch_json(app, "/capabilities", request).await
    }

    /// `PATCH /consent`.
    pub async fn update_consent(&self, app: &Connection, request: &ConsentRequest) -> Result<(), Error> {
        self.patch_json(app, "/consent", request).await
    }

    /// A `PATCH` whose 200 may still say `{"success": false, "errorDetail": …}`: a refusal.
    async fn patch_json<T: serde::Serialize>(&self, app: &Connection, path: &str, body: &T) -> Result<(), Error> {
        self.with_token(app, |token| async move {
            let response = self
                .interaction_call(reqwest::Method::PATCH, app.channel(), &token, path)
                .json(body)
                .send()
                .await
                .map_err(transport)?;
            let bytes = check(response).await?;
            let answer: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
            if answer["success"] == Value::Bool(false) {
                return Err(refused(200, format!("{path} refused: {}", answer["errorDetail"])));
            }
            Ok(())
        })
        .await
    }

    /// `POST /acknowledgement`.
    pub async fn acknowledge(&self, app: &Connection, request: &AcknowledgementRequest) -> Result<(), Error> {
        self.post_json(app, "/acknowledgement", request).await.map(|_| ())
    }

    /// `POST /conversationHistory`: returns the ids of the conversation it filled.
    pub async fn conversation_history(&self, app: &Connection, request: &HistoryRequest) -> Result<Established, Error> {
        let answer = self.post_json(app, "/conversationHistory", request).await?;
        Ok(serde_json::from_value(answer).unwrap_or_default())
    }

    /// A harmless call that Salesforce answers only once the token, the org, the
    /// authorization context and the channel are all accepted: ending a conversation that
    /// does not exist (the setup's health check).
    pub async fn probe_channel(&self, channel: Channel<'_>, token: &AccessToken) -> Result<(), Error> {
        let nil = uuid::Uuid::nil().to_string();
        let body = MessagingSessionRequest {
            channel_address_identifier: channel.channel_address_identifier,
            end_user_client_id: "byoc-bridge-health-check",
            conversation_identifier: &nil,
            operation: "End",
            operation_by: "System",
        };
        let response = self
            .interaction_request(channel, token, "/messagingSession")
            .json(&body)
            .send()
            .await
            .map_err(transport)?;
        check(response).await.map(|_| ())
    }
}

fn transport(e: reqwest::Error) -> Error {
    Error::Transport(format!("request failed: {}", crate::redact::http_error(e)))
}

fn refused(status: u16, detail: String) -> Error {
    Error::Refused { status, code: None, detail }
}

/// Classifies a response: success bytes, or the kind of failure.
async fn check(response: reqwest::Response) -> Result<Vec<u8>, Error> {
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
    let message = crate::redact::vendor_text(&body.and_then(|b| b.message).unwrap_or_default());
    let detail = match code {
        Some(c) => format!("{status} code {c}: {message}"),
        None => format!("{status}: {message}"),
    };
    if status == 401 || code == Some(10004) {
        return Err(Error::TokenRefused { status, code });
    }
    if status == 429 || status >= 500 || code.is_some_and(|c| RETRY_LATER_CODES.contains(&c)) {
        return Err(Error::Unavailable { status, code, detail, retry_after });
    }
    Err(Error::Refused { status, code, detail })
}
