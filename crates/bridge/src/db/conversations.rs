//! Conversations (one per app, end user and sender number) and their message records.

use chrono::NaiveDateTime;
use diesel::prelude::*;

use super::schema::{conversations, messages};
use super::{DbConn, DbError, Direction, MessageStatus, prepared};

#[derive(Debug, Clone, PartialEq, Eq, Queryable, Selectable)]
#[diesel(table_name = conversations)]
pub struct Conversation {
    pub id: i64,
    pub app_id: String,
    pub end_user_id: String,
    pub sender_number: String,
    pub sf_conversation_id: Option<String>,
    pub messaging_session_id: Option<String>,
    pub last_inbound_at: Option<NaiveDateTime>,
    pub state: String,
    pub created_at: NaiveDateTime,
    pub updated_at: NaiveDateTime,
    /// When the customer asked WhatsApp to stop marketing messages from this number (none
    /// since they resumed).
    pub marketing_opted_out_at: Option<NaiveDateTime>,
}

#[derive(Debug, Clone, PartialEq, Eq, Queryable, Selectable)]
#[diesel(table_name = messages)]
pub struct Message {
    pub id: i64,
    pub app_id: String,
    pub conversation_id: i64,
    pub direction: Direction,
    pub provider_message_id: String,
    pub sf_entry_id: Option<String>,
    pub kind: String,
    pub body: Option<String>,
    pub body_purge_after: Option<NaiveDateTime>,
    pub status: MessageStatus,
    pub error: Option<String>,
    pub created_at: NaiveDateTime,
    pub delivered_at: Option<NaiveDateTime>,
    pub read_at: Option<NaiveDateTime>,
    pub updated_at: NaiveDateTime,
    pub received_at: Option<NaiveDateTime>,
}

/// The ordering key of a conversation's jobs (and of their failed attempts).
pub fn ordering_key(conversation_id: i64) -> String {
    format!("conv:{conversation_id}")
}

/// Finds or creates the conversation of (app, end user, sender); returns its id. A conversation
/// that exists is left as it is: a replayed request must change no row.
pub fn upsert(
    conn: &mut DbConn,
    app_id: &str,
    end_user: &str,
    sender: &str,
    now: NaiveDateTime,
) -> Result<i64, DbError> {
    if let Some(id) = find_id(conn, app_id, end_user, sender)? {
        return Ok(id);
    }
    crate::dispatch!(conn, |c| diesel::insert_into(conversations::table)
        .values((
            conversations::app_id.eq(app_id),
            conversations::end_user_id.eq(end_user),
            conversations::sender_number.eq(sender),
            conversations::created_at.eq(now),
            conversations::updated_at.eq(now),
        ))
        // A replica that created it since the lookup wins; its row is the one.
        .on_conflict((conversations::app_id, conversations::end_user_id, conversations::sender_number))
        .do_nothing()
        .execute(c)?);
    find_id(conn, app_id, end_user, sender)?.ok_or(DbError::Query(diesel::result::Error::NotFound))
}

/// The conversation of (app, end user, sender), if there is one.
pub fn find_id(conn: &mut DbConn, app_id: &str, end_user: &str, sender: &str) -> Result<Option<i64>, DbError> {
    Ok(conversations::table
        .filter(conversations::app_id.eq(app_id))
        .filter(conversations::end_user_id.eq(end_user))
        .filter(conversations::sender_number.eq(sender))
        .select(conversations::id)
        .first(conn)
        .optional()?)
}

/// Records the customer's marketing STOP (`Some`, when) or RESUME (`None`).
pub fn set_marketing_opt_out(conn: &mut DbConn, id: i64, at: Option<NaiveDateTime>) -> Result<(), DbError> {
    diesel::update(conversations::table.find(id))
        .set((conversations::marketing_opted_out_at.eq(at), conversations::updated_at.eq(super::now())))
        .execute(conn)?;
    Ok(())
}

/// Moves the end user's last-message time forward (never back: reports may come late).
pub fn touch_inbound(conn: &mut DbConn, id: i64, at: NaiveDateTime) -> Result<(), DbError> {
    crate::dispatch!(conn, |c| prepared::update(
        conversations::table,
        conversations::id
            .eq(id)
            .and(conversations::last_inbound_at.is_null().or(conversations::last_inbound_at.lt(at))),
        conversations::last_inbound_at.eq(at),
    )
    .execute(c)?);
    Ok(())
}

/// A message and its conversation, if both still exist (jobs load them together).
pub fn message_with_conversation(conn: &mut DbConn, id: i64) -> Result<Option<(Message, Conversation)>, DbError> {
    let Some(m) = message(conn, id)? else { return Ok(None) };
    Ok(find(conn, m.conversation_id)?.map(|conversation| (m, conversation)))
}

pub fn find(conn: &mut DbConn, id: i64) -> Result<Option<Conversation>, DbError> {
    Ok(conversations::table.find(id).select(Conversation::as_select()).first(conn).optional()?)
}

pub fn set_salesforce_ids(
    conn: &mut DbConn,
    id: i64,
    conversation: &str,
    session: Option<&str>,
) -> Result<(), DbError> {
    diesel::update(conversations::table.find(id))
        .set((
            conversations::sf_conversation_id.eq(conversation),
            conversations::messaging_session_id.eq(session),
            conversations::updated_at.eq(super::now()),
        ))
        .execute(conn)?;
    Ok(())
}

/// A message to record.
pub struct NewMessage<'a> {
    pub app_id: &'a str,
    pub conversation_id: i64,
    pub direction: Direction,
    pub provider_message_id: &'a str,
    pub kind: &'a str,
    pub body: Option<&'a str>,
    pub status: MessageStatus,
    pub received_at: Option<NaiveDateTime>,
    /// The Salesforce entry an outbound message carries (unique per app, like the provider id).
    pub sf_entry_id: Option<&'a str>,
}

/// Records a message unless one with the same provider id (or, outbound, the same Salesforce
/// entry) exists for the app: `None` means a redelivery or a replay.
pub fn insert_message(conn: &mut DbConn, m: &NewMessage<'_>, now: NaiveDateTime) -> Result<Option<i64>, DbError> {
    let id = crate::dispatch!(conn, |c| diesel::insert_into(messages::table)
        .values((
            messages::app_id.eq(m.app_id),
            messages::conversation_id.eq(m.conversation_id),
            messages::direction.eq(m.direction),
            messages::provider_message_id.eq(m.provider_message_id),
            messages::sf_entry_id.eq(m.sf_entry_id),
            messages::kind.eq(m.kind),
            messages::body.eq(m.body),
            messages::status.eq(m.status),
            messages::received_at.eq(m.received_at),
            messages::created_at.eq(now),
            messages::updated_at.eq(now),
        ))
        // Either unique key (provider id, entry id) means the message is known already.
        .on_conflict_do_nothing()
        .returning(messages::id)
        .get_result::<i64>(c)
        .optional()?);
    if id.is_some() {
        // A new message is news of its conversation (recent conversations come first).
        crate::dispatch!(conn, |c| prepared::update(
            conversations::table,
            conversations::id.eq(m.conversation_id),
            conversations::updated_at.eq(now)
        )
        .execute(c)?);
    }
    Ok(id)
}

pub fn set_status(conn: &mut DbConn, id: i64, status: MessageStatus) -> Result<(), DbError> {
    diesel::update(messages::table.find(id))
        .set((messages::status.eq(status), messages::updated_at.eq(super::now())))
        .execute(conn)?;
    Ok(())
}

pub fn message(conn: &mut DbConn, id: i64) -> Result<Option<Message>, DbError> {
    Ok(messages::table.find(id).select(Message::as_select()).first(conn).optional()?)
}

pub fn messages_of(conn: &mut DbConn, conversation_id: i64) -> Result<Vec<Message>, DbError> {
    Ok(messages::table
        .filter(messages::conversation_id.eq(conversation_id))
        .order(messages::id)
        .select(Message::as_select())
        .load(conn)?)
}

/// An outbound message by the id Infobip knows it under (for reports and reply context).
pub fn outbound_by_provider_id(conn: &mut DbConn, app_id: &str, provider_id: &str) -> Result<Option<Message>, DbError> {
    Ok(messages::table
        .filter(messages::app_id.eq(app_id))
        .filter(messages::direction.eq(Direction::Outbound))
        .filter(messages::provider_message_id.eq(provider_id))
        .select(Message::as_select())
        .first(conn)
        .optional()?)
}

/// The customer's message of a conversation that became the Salesforce entry `entry_id`.
pub fn inbound_by_entry(conn: &mut DbConn, conversation_id: i64, entry_id: &str) -> Result<Option<Message>, DbError> {
    Ok(messages::table
        .filter(messages::conversation_id.eq(conversation_id))
        .filter(messages::direction.eq(Direction::Inbound))
        .filter(messages::sf_entry_id.eq(entry_id))
        .select(Message::as_select())
        .first(conn)
        .optional()?)
}

/// The message reached Salesforce: remember the entry id, and let the body go after `keep_body`.
pub fn mark_delivered(
    conn: &mut DbConn,
    id: i64,
    entry_id: &str,
    now: NaiveDateTime,
    body_purge_after: NaiveDateTime,
) -> Result<(), DbError> {
    crate::dispatch!(conn, |c| prepared::update(
        messages::table,
        messages::id.eq(id),
        (
            messages::status.eq(MessageStatus::Delivered),
            messages::sf_entry_id.eq(entry_id),
            messages::delivered_at.eq(now),
            messages::body_purge_after.eq(body_purge_after),
            messages::error.eq(None::<String>),
            messages::updated_at.eq(now),
        )
    )
    .execute(c)?);
    Ok(())
}

pub fn mark_failed(
    conn: &mut DbConn,
    id: i64,
    error: &str,
    now: NaiveDateTime,
    body_purge_after: NaiveDateTime,
) -> Result<(), DbError> {
    diesel::update(messages::table.find(id))
        .set((
            messages::status.eq(MessageStatus::Failed),
            messages::error.eq(error),
            messages::body_purge_after.eq(body_purge_after),
            messages::updated_at.eq(now),
        ))
        .execute(conn)?;
    Ok(())
}

/// Records a delivery receipt (`delivered_at`) or a read receipt (`read_at`, which implies
/// delivery) for an outbound message; the earliest time wins.
pub fn mark_receipt(conn: &mut DbConn, id: i64, read: bool, at: NaiveDateTime) -> Result<(), DbError> {
    diesel::update(messages::table.find(id).filter(messages::delivered_at.is_null().or(messages::delivered_at.gt(at))))
        .set(messages::delivered_at.eq(at))
        .execute(conn)?;
    if read {
        diesel::update(messages::table.find(id).filter(messages::read_at.is_null().or(messages::read_at.gt(at))))
            .set(messages::read_at.eq(at))
            .execute(conn)?;
    }
    diesel::update(messages::table.find(id).filter(messages::status.ne(MessageStatus::Read)))
        .set((
            messages::status.eq(if read { MessageStatus::Read } else { MessageStatus::Delivered }),
            messages::updated_at.eq(super::now()),
        ))
        .execute(conn)?;
    Ok(())
}

/// The conversation of an end user: the one Salesforce named, else the latest one.
pub fn find_for_end_user(
    conn: &mut DbConn,
    app_id: &str,
    end_user: &str,
    sf_conversation: Option<&str>,
) -> Result<Option<i64>, DbError> {
    if let Some(sf) = sf_conversation {
        let found = conversations::table
            .filter(conversations::app_id.eq(app_id))
            .filter(conversations::sf_conversation_id.eq(sf))
            .select(conversations::id)
            .first::<i64>(conn)
            .optional()?;
        if found.is_some() {
            return Ok(found);
        }
    }
    Ok(conversations::table
        .filter(conversations::app_id.eq(app_id))
        .filter(conversations::end_user_id.eq(end_user))
        .order(conversations::updated_at.desc())
        .select(conversations::id)
        .first::<i64>(conn)
        .optional()?)
}

/// Marks a queued or sending outbound message as being handed to Infobip at `now`.
pub fn mark_sending(conn: &mut DbConn, id: i64, now: NaiveDateTime) -> Result<(), DbError> {
    crate::dispatch!(conn, |c| prepared::update(
        messages::table,
        messages::id
            .eq(id)
            .and(messages::status.eq(MessageStatus::Queued).or(messages::status.eq(MessageStatus::Sending))),
        (messages::status.eq(MessageStatus::Sending), messages::updated_at.eq(now))
    )
    .execute(c)?);
    Ok(())
}

/// Back to queued: Infobip answered the send with a refusal to take it now (5xx, 429), so
/// its outcome is known and the next attempt need not wait for a report.
pub fn mark_queued(conn: &mut DbConn, id: i64) -> Result<(), DbError> {
    diesel::update(messages::table.find(id).filter(messages::status.eq(MessageStatus::Sending)))
        .set(messages::status.eq(MessageStatus::Queued))
        .execute(conn)?;
    Ok(())
}

/// Marks an outbound message as handed to Infobip, unless a report already said more.
pub fn mark_sent(
    conn: &mut DbConn,
    id: i64,
    now: NaiveDateTime,
    body_purge_after: NaiveDateTime,
) -> Result<(), DbError> {
    crate::dispatch!(conn, |c| prepared::update(
        messages::table,
        messages::id
            .eq(id)
            .and(messages::status.eq(MessageStatus::Queued).or(messages::status.eq(MessageStatus::Sending))),
        (
            messages::status.eq(MessageStatus::Sent),
            messages::body_purge_after.eq(body_purge_after),
            messages::updated_at.eq(now),
        )
    )
    .execute(c)?);
    Ok(())
}

/// The conversation whose current messaging session is `session_id`.
pub fn by_session(conn: &mut DbConn, app_id: &str, session_id: &str) -> Result<Option<Conversation>, DbError> {
    Ok(conversations::table
        .filter(conversations::app_id.eq(app_id))
        .filter(conversations::messaging_session_id.eq(session_id))
        .select(Conversation::as_select())
        .first(conn)
        .optional()?)
}

/// Whether Salesforce opened a messaging session for any of the app's conversations (its
/// routing takes them in).
pub fn any_in_a_session(conn: &mut DbConn, app_id: &str) -> Result<bool, DbError> {
    let found = conversations::table
        .filter(conversations::app_id.eq(app_id))
        .filter(conversations::messaging_session_id.is_not_null())
        .select(conversations::id)
        .first::<i64>(conn)
        .optional()?;
    Ok(found.is_some())
}
