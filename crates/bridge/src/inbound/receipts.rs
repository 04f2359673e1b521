//! Delivery and seen reports for the agents' messages become Salesforce acknowledgements
//! (`Delivered`, `Read`), at most 25 per call as the API allows; a report that WhatsApp did
//! not deliver one becomes a `MessageDeliveryFailed` entry on it, so the agent sees why.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::db::conversations;
use crate::db::jobs;
use crate::db::{DbConn, DbError};
use crate::infobip::webhook::{Report, ReportKind};
use crate::jobs::JobContext;
use crate::salesforce::requests::{Acknowledgement, AcknowledgementRequest, Participant};
use crate::worker::{Attempt, BackgroundJob, JobFailure};

const MAX_PER_CALL: usize = 25;

const ACK_NAMESPACE: uuid::Uuid = uuid::Uuid::from_u128(0x6279_6f63_2d61_636b_6e6f_776c_6564_6765);

/// One receipt of one of the agent's entries.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ack {
    pub entry_id: String,
    /// `Delivered` or `Read`.
    pub kind: String,
    pub at_ms: i64,
}

/// The `acknowledge` job: up to 25 receipts of one conversation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Acknowledge {
    pub conversation_id: i64,
    pub acks: Vec<Ack>,
}

/// The `report_delivery_failure` job: tells the agent that WhatsApp did not deliver the
/// stored outbound message `message_id`, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReportDeliveryFailure {
    pub message_id: i64,
    /// `WHATSAPP_<Infobip's error name>`.
    pub code: String,
    /// In the agent's words.
    pub reason: String,
}

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct ReceiptsStored {
    pub acknowledged: usize,
    pub failed: usize,
    /// Reports of messages the bridge did not send (or already forgot).
    pub unknown: usize,
}

/// Records the reports and enqueues the acknowledgements (inside one write transaction).
pub fn store(conn: &mut DbConn, app_id: &str, reports: &[Report]) -> Result<ReceiptsStored, DbError> {
    let now = crate::db::now();
    let mut stored = ReceiptsStored::default();
    let mut by_conversation: BTreeMap<i64, Vec<Ack>> = BTreeMap::new();
    let mut failures = Vec::new();
    for report in reports {
        let Some(message) = conversations::outbound_by_provider_id(conn, app_id, &report.message_id)? else {
            stored.unknown += 1;
            continue;
        };
        let at = report.at.unwrap_or(now);
        let kind = match &report.kind {
            ReportKind::Delivered => "Delivered",
            ReportKind::Seen => "Read",
            ReportKind::Pending => continue,
            ReportKind::Failed(failure) => {
                conversations::mark_failed(conn, message.id, &failure.summary(), now, now)?;
                stored.failed += 1;
                // An agent's entry gets the failure on it; a template from the panel shows its
                // status there instead.
                if message.sf_entry_id.is_some() {
                    let job = ReportDeliveryFailure {
                        message_id: message.id,
                        code: failure.code(),
                        reason: failure.explain(),
                    };
                    failures
                        .push(job.to_job()?.for_app(app_id).ordered_by(super::ordering_key(message.conversation_id)));
                }
                continue;
            }
        };
        conversations::mark_receipt(conn, message.id, kind == "Read", at)?;
        if let Some(entry_id) = message.sf_entry_id {
            by_conversation.entry(message.conversation_id).or_default().push(Ack {
                entry_id,
                kind: kind.to_owned(),
                at_ms: at.and_utc().timestamp_millis(),
            });
            stored.acknowledged += 1;
        }
    }
    let mut new_jobs = Vec::new();
    for (conversation_id, acks) in by_conversation {
        for chunk in acks.chunks(MAX_PER_CALL) {
            let job = Acknowledge { conversation_id, acks: chunk.to_vec() };
            new_jobs.push(job.to_job()?.for_app(app_id).ordered_by(super::ordering_key(conversation_id)));
        }
    }
    new_jobs.extend(failures);
    jobs::enqueue(conn, &new_jobs)?;
    Ok(stored)
}

impl BackgroundJob for Acknowledge {
    const KIND: &'static str = "acknowledge";
    type Context = JobContext;

    async fn run(self, ctx: &JobContext, _attempt: &Attempt) -> Result<(), JobFailure> {
        let id = self.conversation_id;
        let conversation = ctx
            .db
            .run(move |c| conversations::find(c, id))
            .await?
            .ok_or_else(|| JobFailure::permanent("the conversation no longer exists"))?;
        let Some(sf_conversation) = conversation.sf_conversation_id.clone() else {
            return Err(JobFailure::permanent("the conversation has no Salesforce identifier yet"));
        };
        let app = ctx.active_app(&conversation.app_id).await?;
        let request = AcknowledgementRequest {
            sender: Participant::end_user(&conversation.end_user_id),
            conversation_identifier: sf_conversation,
            acknowledgements: self
                .acks
                .iter()
                .map(|a| Acknowledgement {
                    acknowledgement_timestamp: a.at_ms.to_string(),
                    acknowledgement_type: a.kind.clone(),
                    acknowledged_conversation_entry_identifier: a.entry_id.clone(),
                    acknowledgment_created_conversation_entry_identifier: uuid::Uuid::new_v5(
                        &ACK_NAMESPACE,
                        format!("{}/{}", a.entry_id, a.kind).as_bytes(),
                    )
                    .to_string(),
                })
                .collect(),
        };
        ctx.salesforce.acknowledge(&app.salesforce, &request).await?;
        Ok(())
    }
}

impl BackgroundJob for ReportDeliveryFailure {
    const KIND: &'static str = "report_delivery_failure";
    type Context = JobContext;

    async fn run(self, ctx: &JobContext, _attempt: &Attempt) -> Result<(), JobFailure> {
        let id = self.message_id;
        let (message, conversation) = ctx
            .db
            .run(move |c| conversations::message_with_conversation(c, id))
            .await?
            .ok_or_else(|| JobFailure::permanent(format!("message {id} no longer exists")))?;
        let entry =
            message.sf_entry_id.ok_or_else(|| JobFailure::permanent("the message carries no Salesforce entry"))?;
        let app = ctx.active_app(&message.app_id).await?;
        ctx.salesforce
            .report_delivery_failure(&app.salesforce, &conversation.end_user_id, &entry, &self.code, &self.reason)
            .await?;
        tracing::info!(app.id = %app.id, message.id = id, code = %self.code, "the agent was told WhatsApp did not deliver");
        Ok(())
    }
}
