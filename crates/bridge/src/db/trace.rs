//! What the operations console reads of a conversation: finding it (by the customer's
//! number or a Salesforce id) and its trace (every message, every failed attempt, and the
//! jobs still in the outbox), read in one go so the parts agree.

use diesel::prelude::*;

use super::attempts::{self, JobAttempt};
use super::conversations::{Conversation, Message};
use super::jobs::{self, Job};
use super::schema::conversations;
use super::{DbConn, DbError};

/// Messages, attempts and jobs a trace shows at most (a long conversation shows its start).
const TRACE_LIMIT: i64 = 500;

/// The app's conversations with the latest activity first.
pub fn recent(conn: &mut DbConn, app_id: &str, limit: i64) -> Result<Vec<Conversation>, DbError> {
    Ok(conversations::table
        .filter(conversations::app_id.eq(app_id))
        .order((conversations::updated_at.desc(), conversations::id.desc()))
        .limit(limit)
        .select(Conversation::as_select())
        .load(conn)?)
}

/// What an admin typed to find a conversation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Query {
    /// The customer's number, whole or its last digits (at least four): what the pages show.
    Number(String),
    /// A Salesforce conversation or messaging session id.
    SalesforceId(String),
}

impl Query {
    /// `None` for a text that can be neither (too few digits, nothing typed).
    pub fn parse(typed: &str) -> Option<Self> {
        let typed = typed.trim().trim_start_matches('…');
        if typed.is_empty() {
            return None;
        }
        let looks_like_number = typed.chars().all(|c| c.is_ascii_digit() || " +-()".contains(c));
        if looks_like_number {
            let digits: String = typed.chars().filter(char::is_ascii_digit).collect();
            return (digits.len() >= 4).then_some(Self::Number(digits));
        }
        Some(Self::SalesforceId(typed.to_owned()))
    }
}

/// The app's conversations that `query` names, the latest first.
pub fn search(conn: &mut DbConn, app_id: &str, query: &Query, limit: i64) -> Result<Vec<Conversation>, DbError> {
    let of_app = conversations::table.filter(conversations::app_id.eq(app_id));
    let found = match query {
        Query::Number(digits) => of_app
            .filter(conversations::end_user_id.like(format!("%{digits}")))
            .order(conversations::updated_at.desc())
            .limit(limit)
            .select(Conversation::as_select())
            .load(conn)?,
        Query::SalesforceId(id) => of_app
            .filter(conversations::sf_conversation_id.eq(id).or(conversations::messaging_session_id.eq(id)))
            .order(conversations::updated_at.desc())
            .limit(limit)
            .select(Conversation::as_select())
            .load(conn)?,
    };
    Ok(found)
}

/// One conversation's path through the bridge.
#[derive(Debug, Clone)]
pub struct Trace {
    pub conversation: Conversation,
    pub messages: Vec<Message>,
    /// Failed attempts filed under the conversation, oldest first.
    pub attempts: Vec<JobAttempt>,
    /// Its jobs still in the outbox (waiting, running or dead), in the order they run.
    pub jobs: Vec<Job>,
}

/// The trace of conversation `id` of `app_id` (`None` when the app has no such one).
pub fn trace(conn: &mut DbConn, app_id: &str, id: i64) -> Result<Option<Trace>, DbError> {
    let Some(conversation) = super::conversations::find(conn, id)?.filter(|c| c.app_id == app_id) else {
        return Ok(None);
    };
    let key = super::conversations::ordering_key(id);
    let mut messages = super::conversations::messages_of(conn, id)?;
    messages.truncate(usize::try_from(TRACE_LIMIT).unwrap_or(usize::MAX));
    let attempts = attempts::of_key(conn, &key, TRACE_LIMIT)?;
    let jobs = jobs::of_key(conn, &key, TRACE_LIMIT)?;
    Ok(Some(Trace { conversation, messages, attempts, jobs }))
}

#[cfg(test)]
mod tests {
    use super::Query;

    #[test]
    fn a_number_is_its_digits_and_anything_else_a_salesforce_id() {
        assert_eq!(Query::parse(" +44 7700 900002 "), Some(Query::Number("447700900002".into())));
        assert_eq!(Query::parse("…0002"), Some(Query::Number("0002".into())));
        assert_eq!(Query::parse("002"), None, "too few digits to name anyone");
        assert_eq!(Query::parse("   "), None);
        assert_eq!(Query::parse("0Mw5g000000abcd"), Some(Query::SalesforceId("0Mw5g000000abcd".into())));
    }
}
