//! Chatbot handovers and proactive conversations: one row each, found again by its natural
//! key so that a repeated call changes nothing.

use chrono::NaiveDateTime;
use diesel::prelude::*;

use super::schema::{handovers, messages, proactive_conversations};
use super::{DbConn, DbError, HandoverStatus, ImportMethod, ProactiveStatus};

#[derive(Debug, Clone, PartialEq, Eq, Queryable, Selectable, Insertable)]
#[diesel(table_name = handovers)]
pub struct Handover {
    pub id: String,
    pub app_id: String,
    pub infobip_conversation_id: String,
    pub conversation_id: i64,
    /// JSON object of routing attributes for Salesforce.
    pub routing_attributes: String,
    /// `accepted` → `importing` (transcript fetched and stored) → `imported`, or `failed`.
    pub status: HandoverStatus,
    /// How the transcript goes in, once decided.
    pub method: Option<ImportMethod>,
    pub transcript_messages: i32,
    pub imported_messages: i32,
    pub error: Option<String>,
    pub created_at: NaiveDateTime,
    pub updated_at: NaiveDateTime,
    /// The transcript a bot other than Infobip's sent with the handover (a JSON array of
    /// messages in the shape of Infobip's Conversations API); `None`: read it from Infobip.
    pub transcript: Option<String>,
}

/// Inserts `new` unless the app already has a handover of that Infobip conversation;
/// returns the stored row and whether it is new.
pub fn insert_or_find(conn: &mut DbConn, new: &Handover) -> Result<(Handover, bool), DbError> {
    let inserted = crate::dispatch!(conn, |c| diesel::insert_into(handovers::table)
        .values(new)
        .on_conflict_do_nothing()
        .execute(c)?);
    let row = handovers::table
        .filter(handovers::app_id.eq(&new.app_id))
        .filter(handovers::infobip_conversation_id.eq(&new.infobip_conversation_id))
        .select(Handover::as_select())
        .first(conn)?;
    Ok((row, inserted == 1))
}

pub fn find(conn: &mut DbConn, id: &str) -> Result<Option<Handover>, DbError> {
    Ok(handovers::table.find(id).select(Handover::as_select()).first(conn).optional()?)
}

pub fn set_progress(
    conn: &mut DbConn,
    id: &str,
    status: HandoverStatus,
    method: Option<ImportMethod>,
    transcript_messages: i32,
    imported_messages: i32,
) -> Result<(), DbError> {
    diesel::update(handovers::table.find(id))
        .set((
            handovers::status.eq(status),
            handovers::method.eq(method),
            handovers::transcript_messages.eq(transcript_messages),
            handovers::imported_messages.eq(imported_messages),
            handovers::error.eq(None::<String>),
            handovers::updated_at.eq(super::now()),
        ))
        .execute(conn)?;
    Ok(())
}

pub fn set_failed(conn: &mut DbConn, id: &str, error: &str) -> Result<(), DbError> {
    diesel::update(handovers::table.find(id))
        .set((
            handovers::status.eq(HandoverStatus::Failed),
            handovers::error.eq(error),
            handovers::updated_at.eq(super::now()),
        ))
        .execute(conn)?;
    Ok(())
}

/// The provider id of a transcript message: unique per handover, never a WhatsApp id.
pub fn transcript_message_id(handover: &str, infobip_message: &str) -> String {
    format!("handover:{handover}:{infobip_message}")
}

/// The transcript messages of a handover, in import order.
pub fn transcript(conn: &mut DbConn, handover: &Handover) -> Result<Vec<super::conversations::Message>, DbError> {
    Ok(messages::table
        .filter(messages::conversation_id.eq(handover.conversation_id))
        .filter(messages::kind.like("transcript:%"))
        .filter(messages::provider_message_id.like(format!("handover:{}:%", handover.id)))
        .order(messages::id)
        .select(super::conversations::Message::as_select())
        .load(conn)?)
}

#[derive(Debug, Clone, PartialEq, Eq, Queryable, Selectable, Insertable)]
#[diesel(table_name = proactive_conversations)]
pub struct Proactive {
    pub id: String,
    pub app_id: String,
    pub conversation_id: i64,
    pub routing_attributes: String,
    /// JSON of the template to open with, if any.
    pub template: Option<String>,
    /// `pending` → `established` → `template_sent`, or `failed`.
    pub status: ProactiveStatus,
    pub template_message_id: Option<String>,
    pub error: Option<String>,
    pub created_at: NaiveDateTime,
    pub updated_at: NaiveDateTime,
}

pub fn proactive_for_conversation(conn: &mut DbConn, conversation_id: i64) -> Result<Option<Proactive>, DbError> {
    Ok(proactive_conversations::table
        .filter(proactive_conversations::conversation_id.eq(conversation_id))
        .select(Proactive::as_select())
        .first(conn)
        .optional()?)
}

pub fn find_proactive(conn: &mut DbConn, id: &str) -> Result<Option<Proactive>, DbError> {
    Ok(proactive_conversations::table.find(id).select(Proactive::as_select()).first(conn).optional()?)
}

/// Stores a new proactive conversation, replacing an earlier one of the same conversation.
pub fn replace_proactive(conn: &mut DbConn, row: &Proactive) -> Result<(), DbError> {
    diesel::delete(
        proactive_conversations::table.filter(proactive_conversations::conversation_id.eq(row.conversation_id)),
    )
    .execute(conn)?;
    diesel::insert_into(proactive_conversations::table).values(row).execute(conn)?;
    Ok(())
}

pub fn set_proactive_status(
    conn: &mut DbConn,
    id: &str,
    status: ProactiveStatus,
    template_message_id: Option<&str>,
    error: Option<&str>,
) -> Result<(), DbError> {
    diesel::update(proactive_conversations::table.find(id))
        .set((
            proactive_conversations::status.eq(status),
            proactive_conversations::template_message_id.eq(template_message_id),
            proactive_conversations::error.eq(error),
            proactive_conversations::updated_at.eq(super::now()),
        ))
        .execute(conn)?;
    Ok(())
}
