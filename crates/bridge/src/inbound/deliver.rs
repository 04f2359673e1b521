//! The `deliver_inbound` job: one stored WhatsApp message becomes one interaction in the
//! end user's Salesforce conversation.

use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use secrecy::ExposeSecret;
use serde_json::{Value, json};

use super::render::{Rendered, render};
use crate::db::conversations::{self, Conversation, Message};
use crate::db::jobs::Job;
use crate::db::{Db, DbError};
use crate::directory::{ActiveApp, Directory};
use crate::handover::transcript::labelled;
use crate::metrics::Metrics;
use crate::salesforce::auth::TokenCache;
use crate::salesforce::interactions::{
    Attachment, CallError, InteractionClient, MAX_ATTACHMENT_BYTES, SUPPORTED_ATTACHMENT_TYPES, with_token,
};
use crate::worker::JobFailure;

/// Namespace of the entry ids derived from WhatsApp message ids: a retried delivery sends
/// the same entry id again.
const ENTRY_NAMESPACE: uuid::Uuid = uuid::Uuid::from_u128(0x6279_6f63_2d69_6e62_6f75_6e64_2d65_6e74);

#[derive(Clone)]
pub struct Deliverer {
    pub db: Db,
    pub directory: Directory,
    pub tokens: TokenCache,
    pub interactions: InteractionClient,
    /// For media downloads from Infobip.
    pub http: reqwest::Client,
    pub body_retention: Duration,
    pub metrics: Arc<Metrics>,
}

fn db_failure(e: DbError) -> JobFailure {
    JobFailure::retry(format!("database: {e}"))
}

/// The interaction's `json` part, and the file when there is one.
struct Outgoing {
    entry_id: String,
    json: Value,
    attachment: Option<Attachment>,
}

impl Deliverer {
    pub async fn run(&self, job: Job) -> Result<(), JobFailure> {
        let payload: Value =
            serde_json::from_str(&job.payload).map_err(|e| JobFailure::permanent(format!("bad job payload: {e}")))?;
        let message_id = payload
            .get("message_id")
            .and_then(Value::as_i64)
            .ok_or_else(|| JobFailure::permanent("job has no message_id"))?;
        let (message, conversation, reply_target) =
            self.db
                .run(move |c| {
                    let Some(message) = conversations::message(c, message_id)? else { return Ok(None) };
                    let Some(conversation) = conversations::find(c, message.conversation_id)? else { return Ok(None) };
                    // A button or list reply answers the agent's choices if the bridge sent them.
                    let context =
                        message.body.as_deref().and_then(|b| serde_json::from_str::<Value>(b).ok()).and_then(|raw| {
                            raw.pointer("/message/context/id").and_then(Value::as_str).map(str::to_owned)
                        });
                    let reply_target = match context {
                        Some(id) => {
                            conversations::outbound_by_provider_id(c, &message.app_id, &id)?.and_then(|m| m.sf_entry_id)
                        }
                        None => None,
                    };
                    Ok(Some((message, conversation, reply_target)))
                })
                .await
                .map_err(db_failure)?
                .ok_or_else(|| JobFailure::permanent(format!("message {message_id} no longer exists")))?;
        if message.status == "delivered" {
            return Ok(());
        }
        let snapshot = self.directory.snapshot().await.map_err(db_failure)?;
        let app = snapshot.by_id_or_name(&message.app_id).ok_or_else(|| {
            JobFailure::permanent(format!("app {} is not active; activate it, then retry this job", message.app_id))
        })?;
        self.deliver(&app, message, &conversation, reply_target.as_deref()).await
    }

    /// Turns one stored message into an interaction, posts it, and records the outcome.
    pub async fn deliver(
        &self,
        app: &ActiveApp,
        message: Message,
        conversation: &Conversation,
        reply_target: Option<&str>,
    ) -> Result<(), JobFailure> {
        let outgoing = self.prepare(app, &message, conversation, reply_target).await?;
        match self.post(app, &outgoing).await {
            Ok(response) => {
                let now = crate::db::now();
                let purge = now + chrono::Duration::from_std(self.body_retention).unwrap_or(chrono::Duration::zero());
                let entry_id = outgoing.entry_id.clone();
                let session = response.work_item_ids.first().cloned();
                let sf_conversation = response.conversation_identifier.clone();
                let changed = sf_conversation.is_some()
                    && (conversation.sf_conversation_id != sf_conversation
                        || conversation.messaging_session_id != session);
                let conversation_id = conversation.id;
                self.db
                    .write(move |c| {
                        if changed {
                            if let Some(id) = &sf_conversation {
                                conversations::set_salesforce_ids(c, conversation_id, id, session.as_deref())?;
                            }
                        }
                        conversations::mark_delivered(c, message.id, &entry_id, now, purge)
                    })
                    .await
                    .map_err(db_failure)?;
                let latency = (now - message.created_at).num_milliseconds().max(0) as f64 / 1000.0;
                self.metrics.inbound_delivery_seconds.observe(latency);
                self.metrics.inbound("delivered");
                Ok(())
            }
            Err(CallError::Refused { detail, .. }) => {
                let now = crate::db::now();
                let purge = now + chrono::Duration::from_std(self.body_retention).unwrap_or(chrono::Duration::zero());
                let reason = format!("Salesforce refused the message: {detail}");
                let error = reason.clone();
                self.db
                    .write(move |c| conversations::mark_failed(c, message.id, &error, now, purge))
                    .await
                    .map_err(db_failure)?;
                self.metrics.inbound("failed");
                Err(JobFailure::permanent(reason))
            }
            Err(CallError::Retry { detail, retry_after }) => {
                Err(JobFailure::Retry { reason: detail, after: retry_after })
            }
            Err(e @ CallError::TokenRefused { .. }) => Err(JobFailure::retry(e.to_string())),
        }
    }

    async fn post(
        &self,
        app: &ActiveApp,
        outgoing: &Outgoing,
    ) -> Result<crate::salesforce::interactions::PostInteractionResponse, CallError> {
        with_token(&self.tokens, app, |token| async move {
            let attachment = outgoing.attachment.as_ref().map(|a| Attachment {
                bytes: a.bytes.clone(),
                mime_type: a.mime_type.clone(),
                file_name: a.file_name.clone(),
            });
            self.interactions.post_interaction(app, &token, &outgoing.json, attachment).await
        })
        .await
    }

    /// The Salesforce entry id of a stored message: derived from its provider id, so a
    /// retried delivery repeats it.
    pub fn entry_id(&self, app: &ActiveApp, message: &Message) -> String {
        uuid::Uuid::new_v5(&ENTRY_NAMESPACE, format!("{}/{}", app.id, message.provider_message_id).as_bytes())
            .to_string()
    }

    async fn prepare(
        &self,
        app: &ActiveApp,
        message: &Message,
        conversation: &Conversation,
        reply_target: Option<&str>,
    ) -> Result<Outgoing, JobFailure> {
        let raw: Value = message
            .body
            .as_deref()
            .and_then(|b| serde_json::from_str(b).ok())
            .ok_or_else(|| JobFailure::permanent("the message body is no longer stored"))?;
        let entry_id = self.entry_id(app, message);
        let envelope = |interaction: Value| json!({ "to": app.channel_address_identifier, "from": conversation.end_user_id, "interactions": [interaction] });
        let now = chrono::Utc::now().timestamp_millis();
        let text_entry = |text: &str| {
            envelope(json!({
                "timestamp": now,
                "interactionType": "EntryInteraction",
                "payload": { "id": entry_id, "entryType": "Message", "abstractMessage": {
                    "messageType": "StaticContentMessage", "id": entry_id,
                    "staticContent": { "formatType": "Text", "text": text } } }
            }))
        };
        let outgoing = |json, attachment| Outgoing { entry_id: entry_id.clone(), json, attachment };
        // A chatbot transcript's turns carry their speaker, put before what they said.
        let kind = message.kind.strip_prefix(crate::handover::TRANSCRIPT_KIND_PREFIX).unwrap_or(&message.kind);
        let speaker = raw.get("speaker").and_then(Value::as_str);
        match render(kind, &raw, reply_target) {
            Rendered::Text(text) => Ok(outgoing(text_entry(&labelled(speaker, &text)), None)),
            Rendered::Choice { in_reply_to, option, title } => Ok(outgoing(
                envelope(json!({
                    "timestamp": now,
                    "interactionType": "EntryInteraction",
                    "payload": { "id": entry_id, "entryType": "Message", "abstractMessage": {
                        "messageType": "ChoicesResponseMessage", "id": entry_id, "inReplyToMessageId": in_reply_to,
                        "choicesResponse": { "formatType": "Selections", "selectedOptions": [{ "optionIdentifier": option, "title": title }] } } }
                })),
                None,
            )),
            Rendered::Media { url, caption, label } => {
                let original_caption = caption.clone();
                let described = move |why: &str| {
                    let caption = original_caption.as_deref().map(|c| format!(": “{c}”")).unwrap_or_default();
                    labelled(speaker, &format!("{label}{caption}\n({why})"))
                };
                let caption = match speaker {
                    Some(_) => Some(labelled(speaker, caption.as_deref().unwrap_or_default())),
                    None => caption,
                };
                match self.download(app, &conversation.sender_number, &url).await? {
                    Download::File { bytes, mime_type } if SUPPORTED_ATTACHMENT_TYPES.contains(&mime_type.as_str()) => {
                        let mut interaction = json!({
                            "timestamp": now, "interactionType": "AttachmentInteraction", "id": entry_id,
                            "attachmentIndex": 0, "contentLength": bytes.len()
                        });
                        if let Some(c) = &caption {
                            interaction["text"] = json!(c);
                        }
                        let file_name =
                            format!("{}.{}", label.to_ascii_lowercase().replace(' ', "-"), extension(&mime_type));
                        Ok(outgoing(envelope(interaction), Some(Attachment { bytes, mime_type, file_name })))
                    }
                    Download::File { mime_type, .. } => Ok(outgoing(
                        text_entry(&described(&format!(
                            "sent as {mime_type}, a format Salesforce cannot display; ask the customer to send it another way"
                        ))),
                        None,
                    )),
                    Download::TooLarge => {
                        Ok(outgoing(text_entry(&described("larger than the 25 MB Salesforce accepts")), None))
                    }
                    Download::Gone => Ok(outgoing(text_entry(&described("no longer available from WhatsApp")), None)),
                }
            }
        }
    }

    /// Fetches inbound media with the account's API key. Redirects are followed; reqwest
    /// drops the `Authorization` header when one leads to another host.
    async fn download(&self, app: &ActiveApp, sender: &str, url: &str) -> Result<Download, JobFailure> {
        let account = app
            .account_for_sender(sender)
            .ok_or_else(|| JobFailure::permanent("the message's sender number is not configured for this app"))?;
        let response = self
            .http
            .get(url)
            .header("Authorization", format!("App {}", account.api_key.expose_secret()))
            .send()
            .await
            .map_err(|e| JobFailure::retry(format!("media download failed: {e}")))?;
        let status = response.status().as_u16();
        if status == 404 || status == 410 {
            return Ok(Download::Gone);
        }
        if status == 429 || status >= 500 {
            return Err(JobFailure::retry(format!("media download: Infobip answered {status}")));
        }
        if !(200..300).contains(&status) {
            return Err(JobFailure::permanent(format!(
                "media download refused with {status} (check the Infobip API key's scopes)"
            )));
        }
        if response.content_length().is_some_and(|l| l > MAX_ATTACHMENT_BYTES as u64) {
            return Ok(Download::TooLarge);
        }
        let mime_type = response
            .headers()
            .get("Content-Type")
            .and_then(|v| v.to_str().ok())
            .map(|v| v.split(';').next().unwrap_or_default().trim().to_ascii_lowercase())
            .unwrap_or_default();
        let mut bytes = Vec::new();
        let mut stream = response.bytes_stream();
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.map_err(|e| JobFailure::retry(format!("media download interrupted: {e}")))?;
            if bytes.len() + chunk.len() > MAX_ATTACHMENT_BYTES {
                return Ok(Download::TooLarge);
            }
            bytes.extend_from_slice(&chunk);
        }
        Ok(Download::File { bytes, mime_type })
    }
}

enum Download {
    File { bytes: Vec<u8>, mime_type: String },
    TooLarge,
    Gone,
}

fn extension(mime: &str) -> &str {
    match mime {
        "image/jpeg" => "jpg",
        "image/png" => "png",
        "image/gif" => "gif",
        "image/bmp" => "bmp",
        "application/pdf" => "pdf",
        "video/mp4" | "audio/mp4" => "mp4",
        "audio/mpeg" => "mp3",
        "video/mpeg" => "mpeg",
        "video/3gpp" | "audio/3gpp" => "3gp",
        "video/3gpp2" | "audio/3gpp2" => "3g2",
        _ => "bin",
    }
}
