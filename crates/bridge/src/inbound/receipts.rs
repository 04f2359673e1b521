//! Delivery and seen reports for the agents' messages become Salesforce acknowledgements
//! (`Delivered`, `Read`), at most 25 per call as the API allows.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::db::conversations;
use crate::db::jobs::{self, Job, NewJob};
use crate::db::{DbConn, DbError};
use crate::directory::Directory;
use crate::infobip::webhook::{Report, ReportKind};
use crate::salesforce::auth::TokenCache;
use crate::salesforce::interactions::{InteractionClient, with_token};
use crate::worker::JobFailure;

pub const ACKNOWLEDGE_JOB: &str = "acknowledge";
const MAX_PER_CALL: usize = 25;

const ACK_NAMESPACE: uuid::Uuid = uuid::Uuid::from_u128(0x6279_6f63_2d61_636b_6e6f_776c_6564_6765);

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Ack {
    entry_id: String,
    kind: String,
    at_ms: i64,
}

#[derive(Debug, Serialize, Deserialize)]
struct AckPayload {
    conversation_id: i64,
    acks: Vec<Ack>,
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
            ReportKind::Failed { reason, .. } => {
                conversations::mark_failed(conn, message.id, reason, now, now)?;
                stored.failed += 1;
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
            let payload = serde_json::to_value(AckPayload { conversation_id, acks: chunk.to_vec() })
                .map_err(|e| DbError::Other(e.into()))?;
            new_jobs.push(
                NewJob::new(ACKNOWLEDGE_JOB, &payload).for_app(app_id).ordered_by(super::ordering_key(conversation_id)),
            );
        }
    }
    jobs::enqueue(conn, &new_jobs)?;
    Ok(stored)
}

/// The `acknowledge` job.
#[derive(Clone)]
pub struct Acknowledger {
    pub db: crate::db::Db,
    pub directory: Directory,
    pub tokens: TokenCache,
    pub interactions: InteractionClient,
}

impl Acknowledger {
    pub async fn run(&self, job: Job) -> Result<(), JobFailure> {
        let payload: AckPayload =
            serde_json::from_str(&job.payload).map_err(|e| JobFailure::permanent(format!("bad job payload: {e}")))?;
        let id = payload.conversation_id;
        let conversation = self
            .db
            .run(move |c| conversations::find(c, id))
            .await
            .map_err(|e| JobFailure::retry(format!("database: {e}")))?
            .ok_or_else(|| JobFailure::permanent("the conversation no longer exists"))?;
        let Some(sf_conversation) = conversation.sf_conversation_id.clone() else {
            return Err(JobFailure::permanent("the conversation has no Salesforce identifier yet"));
        };
        let snapshot = self.directory.snapshot().await.map_err(|e| JobFailure::retry(format!("database: {e}")))?;
        let app = snapshot
            .by_id_or_name(&conversation.app_id)
            .ok_or_else(|| JobFailure::permanent("the app is not active"))?;
        let body = json!({
            "sender": { "appType": "custom", "subject": conversation.end_user_id, "role": "EndUser" },
            "conversationIdentifier": sf_conversation,
            "acknowledgements": payload.acks.iter().map(|a| json!({
                // The vendor schema types the timestamp as a string (of epoch milliseconds).
                "acknowledgementTimestamp": a.at_ms.to_string(),
                "acknowledgementType": a.kind,
                "acknowledgedConversationEntryIdentifier": a.entry_id,
                "acknowledgmentCreatedConversationEntryIdentifier":
                    uuid::Uuid::new_v5(&ACK_NAMESPACE, format!("{}/{}", a.entry_id, a.kind).as_bytes()).to_string(),
            })).collect::<Vec<_>>()
        });
        with_token(&self.tokens, &app, |token| {
            let body = &body;
            let app = &app;
            async move { self.interactions.post_json(app, &token, "/acknowledgement", body).await }
        })
        .await?;
        Ok(())
    }
}
