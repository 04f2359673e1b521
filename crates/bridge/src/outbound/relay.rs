//! The `relay_outbound` job: one agent entry becomes one WhatsApp message. What cannot be
//! delivered is reported back to the agent as a `MessageDeliveryFailed` entry, so it is
//! never lost silently.

use std::sync::Arc;
use std::time::Duration;

use serde_json::{Value, json};

use super::AgentEntry;
use super::media::MediaLinks;
use super::render::{Plan, plan};
use crate::db::conversations::{self, Conversation, Message};
use crate::db::jobs::{self, Job};
use crate::db::{Db, DbError};
use crate::directory::{ActiveApp, Directory};
use crate::infobip::client::{InfobipClient, SendError};
use crate::infobip::rate::SenderLimiter;
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
    pub media: MediaLinks,
    pub limiter: SenderLimiter,
}

/// The job payload's count of parts already sent.
const PARTS_SENT: &str = "parts_sent";

const PART_NAMESPACE: uuid::Uuid = uuid::Uuid::from_u128(0x6279_6f63_2d70_6172_742d_6f66_2d6d_7367);

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
        let media_url = |i: usize| self.media.url(message.id, i);
        let parts = match plan(&app, &entry, &media_url) {
            Plan::Nothing => return self.finish(&message, "skipped", None).await,
            Plan::Unsupported(reason) => {
                return self.fail(&app, &message, &conversation, "UNSUPPORTED_CONTENT", &reason).await;
            }
            Plan::Typing => return self.typing(&app, &message, &conversation).await,
            Plan::Send(parts) => parts,
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
        let count = parts.len();
        // An earlier attempt may have sent the first files of this message already.
        let sent_before = payload.get(PARTS_SENT).and_then(Value::as_u64).map_or(0, |n| n as usize);
        for (i, part) in parts.into_iter().enumerate().skip(sent_before) {
            // The first part carries the entry's WhatsApp id (receipts and replies map to it).
            let message_id = if i == 0 {
                message.provider_message_id.clone()
            } else {
                uuid::Uuid::new_v5(&PART_NAMESPACE, format!("{}/{i}", message.provider_message_id).as_bytes())
                    .to_string()
            };
            let body = json!({
                "from": conversation.sender_number,
                "to": conversation.end_user_id,
                "messageId": message_id,
                "callbackData": entry.identifier,
                "content": part.content
            });
            self.limiter.acquire(&conversation.sender_number).await;
            match self.infobip.send(account, part.kind, &body).await {
                Ok(_) if i + 1 < count => {
                    let mut progress = payload.clone();
                    progress[PARTS_SENT] = json!(i + 1);
                    let job_id = job.id;
                    self.db.write(move |c| jobs::save_payload(c, job_id, &progress)).await.map_err(db_failure)?;
                }
                Ok(_) => {}
                Err(SendError::Refused { detail, .. }) => {
                    return self.fail(&app, &message, &conversation, "INFOBIP_REFUSED", &detail).await;
                }
                Err(SendError::Retry { detail, .. }) if job.attempts >= self.max_attempts => {
                    let reason = format!("Infobip stayed unavailable: {detail}");
                    return self.fail(&app, &message, &conversation, "RETRIES_EXHAUSTED", &reason).await;
                }
                Err(e) => {
                    if i > 0 {
                        tracing::info!(
                            message.id = message.id,
                            sent = i,
                            of = count,
                            "part of a multi-part message failed; the retry goes on from this part"
                        );
                    }
                    return Err(e.into());
                }
            }
        }
        self.metrics.outbound("sent");
        self.finish(&message, "sent", None).await
    }

    /// A typing indicator is worth showing only now: one that fails is dropped, not retried
    /// (a late "typing…" would mislead), and outside the 24-hour window none is sent.
    async fn typing(&self, app: &ActiveApp, message: &Message, conversation: &Conversation) -> Result<(), JobFailure> {
        let window_open = conversation.last_inbound_at.is_some_and(|t| crate::db::now() - t < SESSION_WINDOW);
        let account = app.account_for_sender(&conversation.sender_number);
        match account {
            Some(account) if window_open => {
                if let Err(e) =
                    self.infobip.typing(account, &conversation.sender_number, &conversation.end_user_id).await
                {
                    tracing::info!(message.id = message.id, error = %e, "typing indicator not shown");
                    return self.finish(message, "skipped", Some("typing indicator not shown")).await;
                }
                self.metrics.outbound("typing");
                self.finish(message, "sent", None).await
            }
            _ => self.finish(message, "skipped", Some("outside the 24-hour window")).await,
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
