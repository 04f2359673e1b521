//! The `start_proactive` job: establishes the Salesforce conversation, then sends the
//! opening template through Infobip. Each step is recorded, so a retry does only what is
//! left; the template keeps one WhatsApp message id however often it is retried.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::db::conversations::{self, Conversation, NewMessage};
use crate::db::handovers::{self, Proactive};
use crate::db::{Direction, MessageStatus, ProactiveStatus};
use crate::directory::ActiveApp;
use crate::infobip::messages::{TemplateContent, TemplateMessage};
use crate::jobs::JobContext;
use crate::worker::{Attempt, BackgroundJob, JobFailure};

/// Namespace of the WhatsApp message ids of opening templates (one per proactive conversation).
const TEMPLATE_NAMESPACE: uuid::Uuid = uuid::Uuid::from_u128(0x6279_6f63_2d70_726f_6163_7469_7665_2d74);

/// Starts the proactive conversation `proactive_id`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StartProactive {
    pub proactive_id: String,
}

impl BackgroundJob for StartProactive {
    const KIND: &'static str = "start_proactive";
    type Context = JobContext;

    async fn run(self, ctx: &JobContext, _attempt: &Attempt) -> Result<(), JobFailure> {
        let id = self.proactive_id;
        let lookup = id.clone();
        let (row, conversation) = ctx
            .db
            .run(move |c| {
                let Some(row) = handovers::find_proactive(c, &lookup)? else { return Ok(None) };
                Ok(conversations::find(c, row.conversation_id)?.map(|conv| (row, conv)))
            })
            .await?
            .ok_or_else(|| JobFailure::permanent("the proactive conversation no longer exists"))?;
        let app = ctx.active_app(&row.app_id).await?;
        let result = start(ctx, &app, row, conversation).await;
        if let Err(JobFailure::Permanent { reason }) = &result {
            let reason = reason.clone();
            ctx.db
                .write(move |c| handovers::set_proactive_status(c, &id, ProactiveStatus::Failed, None, Some(&reason)))
                .await?;
        }
        result
    }
}

async fn start(
    ctx: &JobContext,
    app: &ActiveApp,
    row: Proactive,
    conversation: Conversation,
) -> Result<(), JobFailure> {
    if row.status == ProactiveStatus::Pending || row.status == ProactiveStatus::Failed {
        establish(ctx, app, &row, &conversation).await?;
    }
    let Some(template) = row.template.as_deref().and_then(|t| serde_json::from_str::<TemplateContent>(t).ok()) else {
        return Ok(());
    };
    if row.status == ProactiveStatus::TemplateSent {
        return Ok(());
    }
    let account = app
        .account_for_sender(&conversation.sender_number)
        .ok_or_else(|| JobFailure::permanent("the conversation's sender number is not configured for this app"))?;
    let message_id = uuid::Uuid::new_v5(&TEMPLATE_NAMESPACE, row.id.as_bytes()).to_string();
    let message = TemplateMessage {
        from: &conversation.sender_number,
        to: &conversation.end_user_id,
        message_id: &message_id,
        content: &template,
    };
    ctx.limiter.acquire(&conversation.sender_number).await;
    ctx.infobip.send_template(account, &message).await?;
    let purge = ctx.purge_after_delivery();
    let stored = serde_json::to_string(&message).map_err(|e| JobFailure::retry(e.to_string()))?;
    ctx.db
        .write(move |c| {
            let now = crate::db::now();
            // Recorded as an outbound message so its delivery reports are kept.
            let inserted = conversations::insert_message(
                c,
                &NewMessage {
                    app_id: &row.app_id,
                    conversation_id: row.conversation_id,
                    direction: Direction::Outbound,
                    provider_message_id: &message_id,
                    kind: "template",
                    body: Some(&stored),
                    status: MessageStatus::Sent,
                    received_at: Some(now),
                    sf_entry_id: None,
                },
                now,
            )?;
            if let Some(id) = inserted {
                conversations::mark_sent(c, id, now, purge)?;
            }
            handovers::set_proactive_status(c, &row.id, ProactiveStatus::TemplateSent, Some(&message_id), None)
        })
        .await?;
    Ok(())
}

async fn establish(
    ctx: &JobContext,
    app: &ActiveApp,
    row: &Proactive,
    conversation: &Conversation,
) -> Result<(), JobFailure> {
    let routing: BTreeMap<String, String> = serde_json::from_str(&row.routing_attributes).unwrap_or_default();
    let established = ctx.salesforce.establish(&app.salesforce, &conversation.end_user_id, &routing).await?;
    let (sf_conversation, session) = (established.conversation_identifier, established.messaging_session_id);
    let (id, conversation_id) = (row.id.clone(), conversation.id);
    ctx.db
        .write(move |c| {
            if let Some(sf) = &sf_conversation {
                conversations::set_salesforce_ids(c, conversation_id, sf, session.as_deref())?;
            }
            handovers::set_proactive_status(c, &id, ProactiveStatus::Established, None, None)
        })
        .await?;
    tracing::info!(app.id = %app.id, proactive.id = %row.id, "proactive conversation established");
    Ok(())
}
