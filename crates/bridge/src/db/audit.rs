//! The audit log: who changed which configuration, when. Details name the changed fields,
//! never their values (some are secrets).

use chrono::NaiveDateTime;
use diesel::prelude::*;

use super::schema::audit_log;
use super::{DbConn, DbError};

#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = audit_log)]
pub struct AuditEntry {
    pub id: i64,
    pub at: NaiveDateTime,
    pub actor: String,
    pub action: String,
    pub entity: String,
    pub entity_id: String,
    pub details: String,
}

#[derive(Insertable)]
#[diesel(table_name = audit_log)]
struct NewAuditEntry<'a> {
    at: NaiveDateTime,
    actor: &'a str,
    action: &'a str,
    entity: &'a str,
    entity_id: &'a str,
    details: String,
}

pub fn record(
    conn: &mut DbConn,
    actor: &str,
    action: &str,
    entity: &str,
    entity_id: &str,
    details: serde_json::Value,
) -> Result<(), DbError> {
    diesel::insert_into(audit_log::table)
        .values(NewAuditEntry { at: super::now(), actor, action, entity, entity_id, details: details.to_string() })
        .execute(conn)?;
    Ok(())
}

pub fn count(conn: &mut DbConn) -> Result<i64, DbError> {
    Ok(audit_log::table.count().get_result(conn)?)
}

/// When `action` was last done to the entity `entity_id`, if ever.
pub fn last(conn: &mut DbConn, entity_id: &str, action: &str) -> Result<Option<NaiveDateTime>, DbError> {
    Ok(audit_log::table
        .filter(audit_log::entity_id.eq(entity_id))
        .filter(audit_log::action.eq(action))
        .select(diesel::dsl::max(audit_log::at))
        .first::<Option<NaiveDateTime>>(conn)?)
}
