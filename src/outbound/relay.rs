//! The `relay_outbound` job: one agent entry becomes one WhatsApp message. What cannot be
//! delivered is reported back to the agent as a `MessageDeliveryFailed` entry, so it is
//! never lost silently.

use std::sync::Arc;
use std::time::Duration;

use serde_json::{Value, json};

use super::AgentEntry;
use crate::db::conversations::{self, Conversation, Message};
use crate::db::jobs::Job;
use crate::db::{Db, DbError};
use crate::directory::{ActiveApp, Directory};
use crate::infobip::client::{InfobipClient, SendError};
use crate::metrics::Metrics;
use crate::salesforce::auth::TokenCache;
use crate::salesforce::interactions::{InteractionClient, with_token};
use crate::worker::JobFailure;

/// WhatsApp only delivers free-form messages within this time of the user's last message.
const SESSION_WINDOW: chrono::Duration = chrono::Duration::hours(24);

#[derive(Clone)]
pub struct Relayer {
    pub db: Db,
    pub directory: Directory,
    pub infobip: InfobipClient,
    pub tokens: TokenCache,
    pub interactions: InteractionClient,
    pub metrics: Arc<Metrics>,
    pub body_retention: Duration,
    /// The attempt at which a temporary failure is given up and reported to the agent.
    pub max_attempts: i32,
}

/// What the entry becomes on WhatsApp.
enum Plan {
    Text(String),
    /// Nothing to send (an empty welcome message, a participant leaving).
    Nothing,
    /// The agent sent something WhatsApp cannot carry: tell the agent why.
    Unsupported(String),
}

fn db_failure(e: DbError) -> JobFailure {
    JobFailure::retry(format!("database: {e}"))
}

impl Relayer {
    pub async fn run(&self, job: Job) -> Result<(), JobFailure> {
        let payload: Value =
            serde_json::from_str(&job.payload).map_err(|e| JobFailure::permanent(format!("bad job payload: {e}")))?;
        let id = payload
            .get("message_id")
            .and_then(Value::as_i64)
            .ok_or_else(|| JobFailure::permanent("job has no message_id"))?;
        let (message, conversation) = self
            .db
            .run(move |c| {
                let Some(m) = conversations::message(c, id)? else { return Ok(None) };
                Ok(conversations::find(c, m.conversation_id)?.map(|conv| (m, conv)))
            })
            .await
            .map_err(db_failure)?
            .ok_or_else(|| JobFailure::permanent(format!("message {id} no longer exists")))?;
        if message.status != "queued" {
            return Ok(());
        }
        let snapshot = self.directory.snapshot().await.map_err(db_failure)?;
        let app =
            snapshot.by_id_or_name(&message.app_id).ok_or_else(|| JobFailure::permanent("the app is not active"))?;
        let entry = message
            .body
            .as_deref()
            .and_then(AgentEntry::parse)
            .ok_or_else(|| JobFailure::permanent("the entry is no longer stored"))?;
        let agent_authored = entry.entry_type == "Message";
        let plan = plan(&app, &entry);
        let text = match plan {
            Plan::Nothing => return self.finish(&message, "skipped", None).await,
            Plan::Unsupported(reason) => {
                return self.fail(&app, &message, &conversation, "UNSUPPORTED_CONTENT", &reason).await;
            }
            Plan::Text(text) => text,
        };
        let window_open = conversation.last_inbound_at.is_some_and(|t| crate::db::now() - t < SESSION_WINDOW);
        if !window_open {
            if !agent_authored {
                // The customer has gone quiet: an automatic welcome or goodbye is not worth a template.
                return self.finish(&message, "skipped", Some("outside the 24-hour window")).await;
            }
            return self
                .fail(
                    &app,
                    &message,
                    &conversation,
                    "OUTSIDE_24H_WINDOW",
                    "Not sent: the customer's last WhatsApp message is more than 24 hours old, so WhatsApp only delivers approved templates. Send a template instead.",
                )
                .await;
        }
        let account = app
            .account_for_sender(&conversation.sender_number)
            .ok_or_else(|| JobFailure::permanent("the conversation's sender number is not configured for this app"))?;
        let body = json!({
            "from": conversation.sender_number,
            "to": conversation.end_user_id,
            "messageId": message.provider_message_id,
            "callbackData": entry.identifier,
            "content": { "text": text }
        });
        match self.infobip.send(account, "text", &body).await {
            Ok(_) => {
                self.metrics.outbound("sent");
                self.finish(&message, "sent", None).await
            }
            Err(SendError::Refused { detail, .. }) => {
                self.fail(&app, &message, &conversation, "INFOBIP_REFUSED", &detail).await
            }
            Err(SendError::Retry { detail, .. }) if job.attempts >= self.max_attempts => {
                self.fail(
                    &app,
                    &message,
                    &conversation,
                    "RETRIES_EXHAUSTED",
                    &format!("Infobip stayed unavailable: {detail}"),
                )
                .await
            }
            Err(e) => Err(e.into()),
        }
    }

    async fn finish(&self, message: &Message, status: &'static str, note: Option<&str>) -> Result<(), JobFailure> {
        let (id, note) = (message.id, note.map(str::to_owned));
        let purge =
            crate::db::now() + chrono::Duration::from_std(self.body_retention).unwrap_or(chrono::Duration::zero());
        self.db
            .write(move |c| {
                let now = crate::db::now();
                match (status, note) {
                    ("sent", _) => conversations::mark_sent(c, id, now, purge),
                    (_, Some(note)) => conversations::mark_failed(c, id, &note, now, now),
                    _ => conversations::mark_sent(c, id, now, now),
                }
            })
            .await
            .map_err(db_failure)
    }

    /// Tells the agent the message did not go out, records why, and leaves a dead letter.
    async fn fail(
        &self,
        app: &ActiveApp,
        message: &Message,
        conversation: &Conversation,
        code: &str,
        reason: &str,
    ) -> Result<(), JobFailure> {
        let entry_id = message.sf_entry_id.clone().unwrap_or_default();
        let report = json!({
            "to": app.channel_address_identifier,
            "from": conversation.end_user_id,
            "interactions": [{
                "timestamp": chrono::Utc::now().timestamp_millis(),
                "interactionType": "EntryInteraction",
                "payload": {
                    "id": uuid::Uuid::new_v4().to_string(),
                    "entryType": "MessageDeliveryFailed",
                    "failedConversationEntryIdentifier": entry_id,
                    "recipient": { "appType": "custom", "subject": conversation.end_user_id, "role": "EndUser" },
                    "errorCode": code,
                    "errorMessage": reason
                }
            }]
        });
        with_token(&self.tokens, app, |token| {
            let report = &report;
            async move { self.interactions.post_interaction(app, &token, report, None).await }
        })
        .await?;
        let (id, note) = (message.id, format!("{code}: {reason}"));
        self.db
            .write(move |c| {
                let now = crate::db::now();
                conversations::mark_failed(c, id, &note, now, now)
            })
            .await
            .map_err(db_failure)?;
        self.metrics.outbound("failed");
        Err(JobFailure::permanent(format!("{code}: {reason} (reported to the agent)")))
    }
}

fn plan(app: &ActiveApp, entry: &AgentEntry) -> Plan {
    let payload = entry.entry_payload();
    match entry.entry_type.as_str() {
        "Message" => {
            let message = payload.get("abstractMessage").unwrap_or(&Value::Null);
            let format = message.pointer("/staticContent/formatType").and_then(Value::as_str);
            match (message.get("messageType").and_then(Value::as_str), format) {
                (Some("StaticContentMessage"), Some("Text")) => Plan::Text(
                    message.pointer("/staticContent/text").and_then(Value::as_str).unwrap_or_default().to_owned(),
                ),
                (kind, format) => Plan::Unsupported(format!(
                    "This kind of message ({} {}) cannot be sent to WhatsApp by this version of the bridge.",
                    kind.unwrap_or("?"),
                    format.unwrap_or_default()
                )),
            }
        }
        "ParticipantChanged" => {
            let joined = payload.get("entries").and_then(Value::as_array).is_some_and(|e| {
                e.iter().any(|p| {
                    p.get("operation").and_then(Value::as_str) == Some("add")
                        && p.pointer("/participant/role").and_then(Value::as_str) == Some("Agent")
                })
            });
            if joined && !app.welcome_message.trim().is_empty() {
                Plan::Text(app.welcome_message.clone())
            } else {
                Plan::Nothing
            }
        }
        "SessionStatusChanged" if !app.closing_message.trim().is_empty() => Plan::Text(app.closing_message.clone()),
        _ => Plan::Nothing,
    }
}
