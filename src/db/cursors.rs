//! Where each app's Pub/Sub subscription stands: the replay id of the last event whose work
//! is safely in the outbox.

use diesel::prelude::*;

use super::schema::event_cursors;
use super::{DbConn, DbError};

/// Stored instead of a replay id when the stored one was no longer retained: resume from
/// the earliest retained event.
pub const EARLIEST: &str = "EARLIEST";

pub fn get(conn: &mut DbConn, app_id: &str, topic: &str) -> Result<Option<String>, DbError> {
    Ok(event_cursors::table
        .find((app_id, topic))
        .select(event_cursors::replay_id)
        .first::<Option<String>>(conn)
        .optional()?
        .flatten())
}

/// Stores the position (base64 of the opaque replay id, or [`EARLIEST`]).
pub fn set(conn: &mut DbConn, app_id: &str, topic: &str, replay_id: &str) -> Result<(), DbError> {
    let now = super::now();
    crate::dispatch!(conn, |c| diesel::insert_into(event_cursors::table)
        .values((
            event_cursors::app_id.eq(app_id),
            event_cursors::topic.eq(topic),
            event_cursors::replay_id.eq(replay_id),
            event_cursors::updated_at.eq(now),
        ))
        .on_conflict((event_cursors::app_id, event_cursors::topic))
        .do_update()
        .set((event_cursors::replay_id.eq(replay_id), event_cursors::updated_at.eq(now)))
        .execute(c)?);
    Ok(())
}
