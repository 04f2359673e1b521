//! The `start_proactive` job: establishes the Salesforce conversation, then sends the
//! opening template through Infobip. Each step is recorded, so a retry does only what is
//! left; the template keeps one WhatsApp message id however often it is retried.

use serde_json::{Value, json};

use crate::db::conversations::{self, Conversation, NewMessage};
use crate::db::handovers::{self, Proactive};
use crate::db::jobs::Job;
use crate::db::{Db, DbError};
use crate::directory::{ActiveApp, Directory};
use crate::infobip::client::InfobipClient;
use crate::infobip::rate::SenderLimiter;
use crate::salesforce::auth::TokenCache;
use crate::salesforce::interactions::{InteractionClient, establish};
use crate::worker::JobFailure;

/// Namespace of the WhatsApp message ids of opening templates (one per proactive conversation).
const TEMPLATE_NAMESPACE: uuid::Uuid = uuid::Uuid::from_u128(0x6279_6f63_2d70_726f_6163_7469_7665_2d74);

#[derive(Clone)]
pub struct Starter {
    pub db: Db,
    pub directory: Directory,
    pub tokens: TokenCache,
    pub interactions: InteractionClient,
    pub infobip: InfobipClient,
    pub limiter: SenderLimiter,
    pub body_retention: std::time::Duration,
}

fn db_failure(e: DbError) -> JobFailure {
    JobFailure::retry(format!("database: {e}"))
}

impl Starter {
    pub async fn run(&self, job: Job) -> Result<(), JobFailure> {
        let payload: Value =
            serde_json::from_str(&job.payload).map_err(|e| JobFailure::permanent(format!("bad job payload: {e}")))?;
        let id = payload
            .get("proactive_id")
            .and_then(Value::as_str)
            .ok_or_else(|| JobFailure::permanent("job has no proactive_id"))?
            .to_owned();
        let lookup = id.clone();
        let (row, conversation) = self
            .db
            .run(move |c| {
                let Some(row) = handovers::find_proactive(c, &lookup)? else { return Ok(None) };
                Ok(conversations::find(c, row.conversation_id)?.map(|conv| (row, conv)))
            })
            .await
            .map_err(db_failure)?
            .ok_or_else(|| JobFailure::permanent("the proactive conversation no longer exists"))?;
        let snapshot = self.directory.snapshot().await.map_err(db_failure)?;
        let app = snapshot
            .by_id_or_name(&row.app_id)
            .ok_or_else(|| JobFailure::permanent(format!("app {} is not active", row.app_id)))?;
        let result = self.start(&app, row, conversation).await;
        if let Err(JobFailure::Permanent { reason }) = &result {
            let reason = reason.clone();
            self.db
                .write(move |c| handovers::set_proactive_status(c, &id, "failed", None, Some(&reason)))
                .await
                .map_err(db_failure)?;
        }
        result
    }

    async fn start(&self, app: &ActiveApp, row: Proactive, conversation: Conversation) -> Result<(), JobFailure> {
        if row.status == "pending" || row.status == "failed" {
            self.establish(app, &row, &conversation).await?;
        }
        let Some(template) = row.template.as_deref().and_then(|t| serde_json::from_str::<Value>(t).ok()) else {
            return Ok(());
        };
        if row.status == "template_sent" {
            return Ok(());
        }
        let account = app
            .account_for_sender(&conversation.sender_number)
            .ok_or_else(|| JobFailure::permanent("the conversation's sender number is not configured for this app"))?;
        let message_id = uuid::Uuid::new_v5(&TEMPLATE_NAMESPACE, row.id.as_bytes()).to_string();
        let body = json!({ "messages": [{
            "from": conversation.sender_number,
            "to": conversation.end_user_id,
            "messageId": message_id,
            "content": template,
        }] });
        self.limiter.acquire(&conversation.sender_number).await;
        self.infobip.send(account, "template", &body).await?;
        let purge =
            crate::db::now() + chrono::Duration::from_std(self.body_retention).unwrap_or(chrono::Duration::zero());
        let stored = body["messages"][0].to_string();
        self.db
            .write(move |c| {
                let now = crate::db::now();
                // Recorded as an outbound message so its delivery reports are kept.
                let inserted = conversations::insert_message(
                    c,
                    &NewMessage {
                        app_id: &row.app_id,
                        conversation_id: row.conversation_id,
                        direction: "outbound",
                        provider_message_id: &message_id,
                        kind: "template",
                        body: Some(&stored),
                        status: "sent",
                        received_at: Some(now),
                        sf_entry_id: None,
                    },
                    now,
                )?;
                if let Some(id) = inserted {
                    conversations::mark_sent(c, id, now, purge)?;
                }
                handovers::set_proactive_status(c, &row.id, "template_sent", Some(&message_id), None)
            })
            .await
            .map_err(db_failure)
    }

    async fn establish(&self, app: &ActiveApp, row: &Proactive, conversation: &Conversation) -> Result<(), JobFailure> {
        let routing: Value = serde_json::from_str(&row.routing_attributes).unwrap_or(Value::Null);
        let established = establish(&self.tokens, &self.interactions, app, &conversation.end_user_id, &routing).await?;
        let (sf_conversation, session) = (established.conversation_identifier, established.messaging_session_id);
        let (id, conversation_id) = (row.id.clone(), conversation.id);
        self.db
            .write(move |c| {
                if let Some(sf) = &sf_conversation {
                    conversations::set_salesforce_ids(c, conversation_id, sf, session.as_deref())?;
                }
                handovers::set_proactive_status(c, &id, "established", None, None)
            })
            .await
            .map_err(db_failure)?;
        tracing::info!(app.id = %app.id, proactive.id = %row.id, "proactive conversation established");
        Ok(())
    }
}
