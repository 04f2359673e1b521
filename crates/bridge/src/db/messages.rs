//! Message records. Bodies are kept only until the message is delivered plus the configured
//! retention; the records themselves (ids, statuses, times) for longer.

use chrono::NaiveDateTime;
use diesel::prelude::*;

use super::schema::messages;
use super::{DbConn, DbError};

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct PurgeReport {
    pub bodies_cleared: usize,
    pub records_deleted: usize,
    /// Failed job attempts past the record retention (the console's traces).
    pub attempts_deleted: usize,
}

/// Clears bodies whose retention ended by `now`, and deletes body-less records created
/// before `records_before`, with the failed attempts filed before then. A body without `body_purge_after` is still needed (not yet
/// delivered) and is never touched.
pub fn purge_expired(
    conn: &mut DbConn,
    now: NaiveDateTime,
    records_before: NaiveDateTime,
) -> Result<PurgeReport, DbError> {
    let bodies_cleared =
        diesel::update(messages::table.filter(messages::body.is_not_null()).filter(messages::body_purge_after.le(now)))
            .set(messages::body.eq(None::<String>))
            .execute(conn)?;
    let records_deleted = diesel::delete(
        messages::table.filter(messages::body.is_null()).filter(messages::created_at.lt(records_before)),
    )
    .execute(conn)?;
    let attempts_deleted = super::attempts::purge_before(conn, records_before)?;
    Ok(PurgeReport { bodies_cleared, records_deleted, attempts_deleted })
}
