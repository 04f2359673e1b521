//! The `relay_outbound` job: one agent entry becomes one WhatsApp message. What cannot be
//! delivered is reported back to the agent as a `MessageDeliveryFailed` entry, so it is
//! never lost silently.

use serde::{Deserialize, Serialize};

use super::AgentEntry;
use super::render::{Plan, plan};
use crate::db::conversations::{self, Conversation, Message};
use crate::db::{MessageStatus, jobs};
use crate::directory::ActiveApp;
use crate::infobip::messages::Message as WhatsAppMessage;
use crate::jobs::JobContext;
use crate::worker::{Attempt, BackgroundJob, Completion, JobFailure};

/// WhatsApp only delivers free-form messages within this time of the user's last message.
const SESSION_WINDOW: chrono::Duration = chrono::Duration::hours(24);

const PART_NAMESPACE: uuid::Uuid = uuid::Uuid::from_u128(0x6279_6f63_2d70_6172_742d_6f66_2d6d_7367);

/// Relays the stored agent entry `message_id`. `parts_sent` is its progress: a message of
/// several files that failed part-way goes on from the failed file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RelayOutbound {
    pub message_id: i64,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub parts_sent: usize,
}

fn is_zero(n: &usize) -> bool {
    *n == 0
}

impl BackgroundJob for RelayOutbound {
    const KIND: &'static str = "relay_outbound";
    type Context = JobContext;

    async fn run(self, ctx: &JobContext, attempt: &Attempt) -> Result<(), JobFailure> {
        let id = self.message_id;
        let (message, conversation) = ctx
            .db
            .run(move |c| conversations::message_with_conversation(c, id))
            .await?
            .ok_or_else(|| JobFailure::permanent(format!("message {id} no longer exists")))?;
        let resend = match message.status {
            MessageStatus::Queued => false,
            // An earlier attempt handed it to Infobip and never learned the outcome.
            MessageStatus::Sending => {
                unknown_outcome(ctx, &message, attempt)?;
                true
            }
            // Sent, or a report of the earlier attempt came since: nothing to repeat.
            _ => return Ok(()),
        };
        let app = ctx.active_app(&message.app_id).await?;
        if resend {
            ctx.metrics.outbound(&app.name, "resent_unknown_outcome");
        }
        let completion = attempt.completion();
        Relay { ctx, app: &app, message: &message, conversation: &conversation, completion }.run(self, attempt).await
    }
}

/// Whether a message whose earlier send has no known outcome may be sent again now: only
/// once no report of it came within `infobip.unknown_outcome_wait_secs` of that send (a report
/// moves it out of `Sending`, and the job then ends without sending). Until then the job waits,
/// holding its conversation's place, so no newer reply goes out before it is settled.
fn unknown_outcome(ctx: &JobContext, message: &Message, attempt: &Attempt) -> Result<(), JobFailure> {
    let wait = chrono::Duration::seconds(ctx.settings.infobip.unknown_outcome_wait_secs as i64);
    let waited = attempt.now - message.updated_at;
    if waited < wait {
        let after = (wait - waited).to_std().unwrap_or_default();
        return Err(JobFailure::Retry {
            reason: "the earlier send's outcome is unknown: waiting for Infobip's report of it".into(),
            after: Some(after),
        });
    }
    tracing::warn!(
        message.id = message.id,
        waited_secs = waited.num_seconds(),
        "no report of the earlier send came: sending again under the same messageId"
    );
    Ok(())
}

/// One relay under way.
struct Relay<'a> {
    ctx: &'a JobContext,
    app: &'a ActiveApp,
    message: &'a Message,
    conversation: &'a Conversation,
    /// The job ends in the transaction that records the message's outcome.
    completion: Completion,
}

impl Relay<'_> {
    async fn run(&self, job: RelayOutbound, attempt: &Attempt) -> Result<(), JobFailure> {
        let (message, conversation) = (self.message, self.conversation);
        let entry = message
            .body
            .as_deref()
            .and_then(AgentEntry::parse)
            .ok_or_else(|| JobFailure::permanent("the entry is no longer stored"))?;
        let agent_authored = entry.entry_type == "Message";
        let media_url = |i: usize| self.ctx.media.url(message.id, i);
        let parts = match plan(self.app, &entry, &media_url) {
            Plan::Nothing => return self.finish(MessageStatus::Skipped, None).await,
            Plan::Unsupported(reason) => return self.fail("UNSUPPORTED_CONTENT", &reason).await,
            Plan::Typing => return self.typing().await,
            Plan::MarkRead(entry) => return self.mark_read(&entry).await,
            Plan::Send(parts) => parts,
        };
        if !self.window_open() {
            if !agent_authored {
                // The customer has gone quiet: an automatic welcome or goodbye is not worth a template.
                return self.finish(MessageStatus::Skipped, Some("outside the 24-hour window")).await;
            }
            return self
                .fail(
                    "OUTSIDE_24H_WINDOW",
                    "Not sent: the customer's last WhatsApp message is more than 24 hours old, so WhatsApp only delivers approved templates. Send a template instead.",
                )
                .await;
        }
        let account = self
            .app
            .account_for_sender(&conversation.sender_number)
            .ok_or_else(|| JobFailure::permanent("the conversation's sender number is not configured for this app"))?;
        let count = parts.len();
        // From here on the outcome may become unknown (a timeout, a crash): say so first.
        let id = message.id;
        let now = attempt.now;
        self.ctx.db.write(move |c| conversations::mark_sending(c, id, now)).await?;
        // An earlier attempt may have sent the first files of this message already.
        for (i, content) in parts.iter().enumerate().skip(job.parts_sent) {
            // The first part carries the entry's WhatsApp id (receipts and replies map to it).
            let message_id = if i == 0 {
                message.provider_message_id.clone()
            } else {
                uuid::Uuid::new_v5(&PART_NAMESPACE, format!("{}/{i}", message.provider_message_id).as_bytes())
                    .to_string()
            };
            let whatsapp = WhatsAppMessage {
                from: &conversation.sender_number,
                to: &conversation.end_user_id,
                message_id: &message_id,
                callback_data: Some(&entry.identifier),
                content,
            };
            self.ctx.limiter.acquire(&conversation.sender_number).await;
            match self.ctx.infobip.send(account, &whatsapp).await {
                Ok(_) if i + 1 < count => {
                    let progress = RelayOutbound { parts_sent: i + 1, ..job.clone() };
                    let payload = serde_json::to_value(&progress).map_err(|e| JobFailure::retry(e.to_string()))?;
                    let job_id = attempt.job_id;
                    self.ctx.db.write(move |c| jobs::save_payload(c, job_id, &payload)).await?;
                }
                Ok(_) => {}
                Err(e) if e.is_permanent() => return self.fail("INFOBIP_REFUSED", &e.detail()).await,
                Err(e) if attempt.number >= self.ctx.settings.worker.max_attempts => {
                    let reason = format!("Infobip stayed unavailable: {}", e.detail());
                    return self.fail("RETRIES_EXHAUSTED", &reason).await;
                }
                Err(e) => {
                    if e.status().is_some() {
                        // Infobip answered: it did not take the message, nothing to wait for.
                        self.ctx.db.write(move |c| conversations::mark_queued(c, id)).await?;
                    }
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
        self.ctx.metrics.outbound(&self.app.name, "sent");
        let took = (crate::db::now() - message.created_at).num_milliseconds().max(0) as f64 / 1000.0;
        self.ctx.metrics.outbound_relay_seconds.observe(took);
        tracing::info!(
            app.id = %self.app.id,
            conversation.id = conversation.id,
            message.id = message.id,
            entry.id = message.sf_entry_id.as_deref().unwrap_or_default(),
            parts = count,
            "message sent to WhatsApp"
        );
        self.finish(MessageStatus::Sent, None).await
    }

    fn window_open(&self) -> bool {
        self.conversation.last_inbound_at.is_some_and(|t| crate::db::now() - t < SESSION_WINDOW)
    }

    /// A typing indicator is worth showing only now: one that fails is dropped, not retried
    /// (a late "typing…" would mislead), and outside the 24-hour window none is sent.
    async fn typing(&self) -> Result<(), JobFailure> {
        let conversation = self.conversation;
        match self.app.account_for_sender(&conversation.sender_number) {
            Some(account) if self.window_open() => {
                if let Err(e) =
                    self.ctx.infobip.typing(account, &conversation.sender_number, &conversation.end_user_id).await
                {
                    tracing::info!(message.id = self.message.id, error = %e, "typing indicator not shown");
                    return self.finish(MessageStatus::Skipped, Some("typing indicator not shown")).await;
                }
                self.ctx.metrics.outbound(&self.app.name, "typing");
                self.finish(MessageStatus::Sent, None).await
            }
            _ => self.finish(MessageStatus::Skipped, Some("outside the 24-hour window")).await,
        }
    }

    /// The agent read the customer's message `entry`: the customer sees it read. Retried while
    /// Infobip is unavailable; a refusal is noted, not reported to the agent (nothing of theirs
    /// was lost).
    async fn mark_read(&self, entry: &str) -> Result<(), JobFailure> {
        let (conversation, entry_id) = (self.conversation.id, entry.to_owned());
        let read = self.ctx.db.run(move |c| conversations::inbound_by_entry(c, conversation, &entry_id)).await?;
        let (Some(read), Some(account)) = (read, self.app.account_for_sender(&self.conversation.sender_number)) else {
            return self.finish(MessageStatus::Skipped, Some("not a message of this customer's")).await;
        };
        match self.ctx.infobip.mark_read(account, &self.conversation.sender_number, &read.provider_message_id).await {
            Ok(_) => {
                self.ctx.metrics.outbound(&self.app.name, "marked_read");
                self.finish(MessageStatus::Sent, None).await
            }
            Err(e) if e.is_permanent() => {
                tracing::info!(message.id = self.message.id, error = %e, "not shown as read on WhatsApp");
                self.finish(MessageStatus::Skipped, Some("Infobip refused to mark it read")).await
            }
            Err(e) => Err(e.into()),
        }
    }

    async fn finish(&self, status: MessageStatus, note: Option<&str>) -> Result<(), JobFailure> {
        let (id, note) = (self.message.id, note.map(str::to_owned));
        let purge = self.ctx.purge_after_delivery();
        let completion = self.completion.clone();
        self.ctx
            .db
            .write(move |c| {
                let now = crate::db::now();
                match (status, note.as_deref()) {
                    (MessageStatus::Sent, _) => conversations::mark_sent(c, id, now, purge)?,
                    (_, Some(note)) => conversations::mark_failed(c, id, note, now, now)?,
                    _ => conversations::mark_sent(c, id, now, now)?,
                }
                completion.record(c)
            })
            .await?;
        Ok(())
    }

    /// Tells the agent the message did not go out, records why, and leaves a dead letter.
    async fn fail(&self, code: &str, reason: &str) -> Result<(), JobFailure> {
        let entry_id = self.message.sf_entry_id.clone().unwrap_or_default();
        self.ctx
            .salesforce
            .report_delivery_failure(&self.app.salesforce, &self.conversation.end_user_id, &entry_id, code, reason)
            .await?;
        let (id, note) = (self.message.id, format!("{code}: {reason}"));
        self.ctx
            .db
            .write(move |c| {
                let now = crate::db::now();
                conversations::mark_failed(c, id, &note, now, now)
            })
            .await?;
        self.ctx.metrics.outbound(&self.app.name, "failed");
        Err(JobFailure::permanent(format!("{code}: {reason} (reported to the agent)")))
    }
}
