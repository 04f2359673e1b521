//! Where each app's Pub/Sub subscription stands: the replay id of the last event whose work
//! is safely in the outbox.

use diesel::prelude::*;

use super::schema::event_cursors;
use super::{DbConn, DbError};

/// Stored instead of a replay id when the stored one was no longer retained: resume from
/// the earliest retained event.
pub const EARLIEST: &str = "EARLIEST";

/// Stored, with the time in epoch milliseconds, when a subscription started from the latest
/// event and has no position yet (none until the first event or keep-alive, which may be
/// minutes away). A restart then replays from the earliest retained event and skips what was
/// created before that time, instead of starting from the latest again and skipping what was
/// published while it was down.
const SINCE_PREFIX: &str = "SINCE:";

/// The stored form of "listening since `millis`".
pub fn since(millis: i64) -> String {
    format!("{SINCE_PREFIX}{millis}")
}

/// The time of a stored "listening since", if that is what `stored` is.
pub fn since_of(stored: &str) -> Option<i64> {
    stored.strip_prefix(SINCE_PREFIX)?.parse().ok()
}

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

/// Takes or renews the lease on an app's subscription for `owner` until `until`. Returns
/// whether `owner` holds it: with several replicas, exactly one subscribes at a time, and
/// another takes over once a holder stops renewing.
pub fn acquire_lease(
    conn: &mut DbConn,
    app_id: &str,
    topic: &str,
    owner: &str,
    until: chrono::NaiveDateTime,
    now: chrono::NaiveDateTime,
) -> Result<bool, DbError> {
    crate::dispatch!(&mut *conn, |c| diesel::insert_into(event_cursors::table)
        .values((event_cursors::app_id.eq(app_id), event_cursors::topic.eq(topic), event_cursors::updated_at.eq(now)))
        .on_conflict_do_nothing()
        .execute(c)?);
    let taken = diesel::update(
        event_cursors::table.find((app_id, topic)).filter(
            event_cursors::lease_owner
                .is_null()
                .or(event_cursors::lease_owner.eq(owner))
                .or(event_cursors::lease_until.lt(now)),
        ),
    )
    .set((event_cursors::lease_owner.eq(owner), event_cursors::lease_until.eq(until)))
    .execute(conn)?;
    Ok(taken == 1)
}

/// Gives the lease up (on a clean stop), so another replica can take over at once.
pub fn release_lease(conn: &mut DbConn, app_id: &str, topic: &str, owner: &str) -> Result<(), DbError> {
    diesel::update(event_cursors::table.find((app_id, topic)).filter(event_cursors::lease_owner.eq(owner)))
        .set((
            event_cursors::lease_owner.eq(None::<String>),
            event_cursors::lease_until.eq(None::<chrono::NaiveDateTime>),
        ))
        .execute(conn)?;
    Ok(())
}

/// Who holds the lease now (for tests and the status page).
pub fn lease_holder(conn: &mut DbConn, app_id: &str, topic: &str) -> Result<Option<String>, DbError> {
    Ok(event_cursors::table
        .find((app_id, topic))
        .select(event_cursors::lease_owner)
        .first::<Option<String>>(conn)
        .optional()?
        .flatten())
}

/// The lease of a subscription, if one is held now: (owner, until).
pub fn live_lease(
    conn: &mut DbConn,
    app_id: &str,
    topic: &str,
    now: chrono::NaiveDateTime,
) -> Result<Option<(String, chrono::NaiveDateTime)>, DbError> {
    let row = event_cursors::table
        .find((app_id, topic))
        .select((event_cursors::lease_owner, event_cursors::lease_until))
        .first::<(Option<String>, Option<chrono::NaiveDateTime>)>(conn)
        .optional()?;
    Ok(match row {
        Some((Some(owner), Some(until))) if until > now => Some((owner, until)),
        _ => None,
    })
}

/// One subscription's stored state, as the operations console shows it.
#[derive(Debug, Clone, PartialEq, Eq, Queryable, Selectable)]
#[diesel(table_name = event_cursors)]
pub struct Cursor {
    pub app_id: String,
    pub topic: String,
    pub replay_id: Option<String>,
    pub lease_owner: Option<String>,
    pub lease_until: Option<chrono::NaiveDateTime>,
    pub updated_at: chrono::NaiveDateTime,
}

/// Every subscription of an app, by topic.
pub fn of_app(conn: &mut DbConn, app_id: &str) -> Result<Vec<Cursor>, DbError> {
    Ok(event_cursors::table
        .filter(event_cursors::app_id.eq(app_id))
        .order(event_cursors::topic)
        .select(Cursor::as_select())
        .load(conn)?)
}
