//! The durable outbox. Jobs are written in the same transaction as the domain change that
//! causes them, claimed in batches under a lease, and deleted when done.
//!
//! Ordering: jobs sharing an `ordering_key` (one conversation) run in id order. A job is
//! claimable only when no earlier job with its key is running or waiting for a retry; a
//! batch may hold several jobs of one key, which the worker then runs one after another.
//! Dead letters do not block the jobs behind them: a message that cannot be delivered is
//! parked where an operator sees it, and the conversation goes on.

use std::time::Duration;

use chrono::NaiveDateTime;
use diesel::dsl::{exists, not};
use diesel::prelude::*;

use super::schema::jobs;
use super::{DbConn, DbError, JobState};

/// Rows per INSERT on PostgreSQL, well under its parameter limit.
const ENQUEUE_CHUNK: usize = 1_000;

/// Serialises claimers across replicas on PostgreSQL (`pg_advisory_xact_lock` key).
/// Claiming is one short statement per batch, so the lock is held for milliseconds.
const CLAIM_LOCK_KEY: i64 = 0x6279_6f63_6a6f_6273; // "byocjobs"

#[derive(Debug, Clone, PartialEq, Eq, Queryable, Selectable)]
#[diesel(table_name = jobs)]
pub struct Job {
    pub id: i64,
    pub kind: String,
    pub app_id: Option<String>,
    pub ordering_key: Option<String>,
    pub payload: String,
    pub state: JobState,
    pub attempts: i32,
    pub run_at: NaiveDateTime,
    pub lease_owner: Option<String>,
    pub lease_until: Option<NaiveDateTime>,
    pub last_error: Option<String>,
    pub created_at: NaiveDateTime,
    pub dead_at: Option<NaiveDateTime>,
}

/// A job to enqueue.
#[derive(Debug, Clone, Insertable)]
#[diesel(table_name = jobs)]
pub struct NewJob {
    pub kind: String,
    pub app_id: Option<String>,
    pub ordering_key: Option<String>,
    pub payload: String,
    pub state: JobState,
    pub attempts: i32,
    pub run_at: NaiveDateTime,
    pub created_at: NaiveDateTime,
}

impl NewJob {
    pub fn new(kind: &str, payload: &serde_json::Value) -> Self {
        let now = super::now();
        Self {
            kind: kind.to_owned(),
            app_id: None,
            ordering_key: None,
            payload: payload.to_string(),
            state: JobState::Queued,
            attempts: 0,
            run_at: now,
            created_at: now,
        }
    }

    pub fn for_app(mut self, app_id: &str) -> Self {
        self.app_id = Some(app_id.to_owned());
        self
    }

    pub fn ordered_by(mut self, key: impl Into<String>) -> Self {
        self.ordering_key = Some(key.into());
        self
    }

    pub fn run_at(mut self, at: NaiveDateTime) -> Self {
        self.run_at = at;
        self
    }
}

/// Inserts jobs (call inside the caller's transaction). Returns their ids in order.
pub fn enqueue(conn: &mut DbConn, new: &[NewJob]) -> Result<Vec<i64>, DbError> {
    if new.is_empty() {
        return Ok(Vec::new());
    }
    let ids = match conn {
        // SQLite has no multi-row insert with RETURNING in diesel; inside the caller's
        // transaction the per-row inserts reuse one prepared statement and one commit.
        DbConn::Sqlite(c) => new
            .iter()
            .map(|job| diesel::insert_into(jobs::table).values(job).returning(jobs::id).get_result(c))
            .collect::<Result<Vec<i64>, _>>()?,
        // PostgreSQL takes at most 65,535 parameters per statement (8 per row here).
        DbConn::Postgres(c) => {
            let mut ids = Vec::with_capacity(new.len());
            for rows in new.chunks(ENQUEUE_CHUNK) {
                ids.extend(diesel::insert_into(jobs::table).values(rows).returning(jobs::id).get_results::<i64>(c)?);
            }
            ids
        }
    };
    Ok(ids)
}

/// Claims up to `limit` due jobs for `owner`, in id order, and leases them until
/// `now + lease`. Expired leases (a worker died) are returned to the queue first. Call inside
/// a write ([`super::Db::write`]): the claim is one transaction with it.
pub fn claim(
    conn: &mut DbConn,
    owner: &str,
    limit: i64,
    lease: Duration,
    now: NaiveDateTime,
) -> Result<Vec<Job>, DbError> {
    return_expired(conn, now)?;
    take_due(conn, owner, limit, lease, now)
}

/// Queues again the running jobs whose lease ran out before `now`: their worker died, or
/// lost its database for longer than a lease.
pub fn return_expired(conn: &mut DbConn, now: NaiveDateTime) -> Result<usize, DbError> {
    Ok(diesel::update(jobs::table.filter(jobs::state.eq(JobState::Running)).filter(jobs::lease_until.lt(now)))
        .set((
            jobs::state.eq(JobState::Queued),
            jobs::lease_owner.eq(None::<String>),
            jobs::lease_until.eq(None::<NaiveDateTime>),
        ))
        .execute(conn)?)
}

/// [`claim`] without returning expired leases first: for a worker that did that a moment ago
/// (a lease runs for many seconds, so looking again at every claim finds nothing new).
pub fn take_due(
    conn: &mut DbConn,
    owner: &str,
    limit: i64,
    lease: Duration,
    now: NaiveDateTime,
) -> Result<Vec<Job>, DbError> {
    let lease_until = now + chrono::Duration::from_std(lease).unwrap_or(chrono::Duration::MAX);
    if let DbConn::Postgres(c) = conn {
        diesel::sql_query("SELECT pg_advisory_xact_lock($1)")
            .bind::<diesel::sql_types::BigInt, _>(CLAIM_LOCK_KEY)
            .execute(c)?;
    }
    let earlier = diesel::alias!(jobs as earlier);
    let blocking_predecessor = earlier
        .filter(earlier.field(jobs::ordering_key).eq(jobs::ordering_key))
        .filter(earlier.field(jobs::id).lt(jobs::id))
        .filter(
            earlier
                .field(jobs::state)
                .eq(JobState::Running)
                .or(earlier.field(jobs::state).eq(JobState::Queued).and(earlier.field(jobs::run_at).gt(now))),
        );
    let ids: Vec<i64> = crate::dispatch!(&mut *conn, |c| jobs::table
        .filter(jobs::state.eq(JobState::Queued))
        .filter(jobs::run_at.le(now))
        .filter(not(exists(blocking_predecessor)))
        .order(jobs::id)
        .limit(limit)
        .select(jobs::id)
        .load(c)?);
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    let mut claimed: Vec<Job> = crate::dispatch!(conn, |c| diesel::update(jobs::table.filter(jobs::id.eq_any(&ids)))
        .set((
            jobs::state.eq(JobState::Running),
            jobs::lease_owner.eq(owner),
            jobs::lease_until.eq(lease_until),
            jobs::attempts.eq(jobs::attempts + 1),
        ))
        .returning(Job::as_returning())
        .get_results(c)?);
    claimed.sort_by_key(|j| j.id);
    Ok(claimed)
}

/// Extends the leases `owner` holds on these running jobs to `until` (never shortens one).
pub fn renew_leases(conn: &mut DbConn, owner: &str, ids: &[i64], until: NaiveDateTime) -> Result<usize, DbError> {
    Ok(diesel::update(
        jobs::table
            .filter(jobs::id.eq_any(ids))
            .filter(jobs::state.eq(JobState::Running))
            .filter(jobs::lease_owner.eq(owner))
            .filter(jobs::lease_until.lt(until)),
    )
    .set(jobs::lease_until.eq(until))
    .execute(conn)?)
}

/// A finished job is deleted; its effect lives in the domain tables.
pub fn complete(conn: &mut DbConn, ids: &[i64]) -> Result<usize, DbError> {
    if let [id] = ids {
        return complete_one(conn, *id);
    }
    Ok(diesel::delete(jobs::table.filter(jobs::id.eq_any(ids))).execute(conn)?)
}

/// `complete` for one job, by primary key: a statement SQLite prepares once, where a list of
/// ids makes a new one for each length.
pub fn complete_one(conn: &mut DbConn, id: i64) -> Result<usize, DbError> {
    Ok(diesel::delete(jobs::table.find(id)).execute(conn)?)
}

/// Schedules another attempt.
pub fn retry_at(conn: &mut DbConn, id: i64, at: NaiveDateTime, error: &str) -> Result<(), DbError> {
    diesel::update(jobs::table.find(id))
        .set((
            jobs::state.eq(JobState::Queued),
            jobs::run_at.eq(at),
            jobs::lease_owner.eq(None::<String>),
            jobs::lease_until.eq(None::<NaiveDateTime>),
            jobs::last_error.eq(truncate(error)),
        ))
        .execute(conn)?;
    Ok(())
}

/// Keeps a running job's progress in its payload, so that its next attempt starts where this
/// one stopped (the files of a message that were already sent are not sent again).
pub fn save_payload(conn: &mut DbConn, id: i64, payload: &serde_json::Value) -> Result<(), DbError> {
    diesel::update(jobs::table.find(id)).set(jobs::payload.eq(payload.to_string())).execute(conn)?;
    Ok(())
}

/// Gives back claimed jobs that were not attempted (an earlier job of their key failed, or
/// the worker is stopping): they keep their place and their attempt count.
pub fn release(conn: &mut DbConn, ids: &[i64]) -> Result<(), DbError> {
    if ids.is_empty() {
        return Ok(());
    }
    diesel::update(jobs::table.filter(jobs::id.eq_any(ids)).filter(jobs::state.eq(JobState::Running)))
        .set((
            jobs::state.eq(JobState::Queued),
            jobs::attempts.eq(jobs::attempts - 1),
            jobs::lease_owner.eq(None::<String>),
            jobs::lease_until.eq(None::<NaiveDateTime>),
        ))
        .execute(conn)?;
    Ok(())
}

/// Queues the running jobs `owner` holds, attempts unchanged (the attempt did happen): for
/// the jobs of a process that died under this owner's name.
pub fn reclaim(conn: &mut DbConn, owner: &str) -> Result<usize, DbError> {
    Ok(diesel::update(jobs::table.filter(jobs::lease_owner.eq(owner)).filter(jobs::state.eq(JobState::Running)))
        .set((
            jobs::state.eq(JobState::Queued),
            jobs::lease_owner.eq(None::<String>),
            jobs::lease_until.eq(None::<NaiveDateTime>),
        ))
        .execute(conn)?)
}

/// Turns a job into a visible dead letter with its reason.
pub fn bury(conn: &mut DbConn, id: i64, error: &str, now: NaiveDateTime) -> Result<(), DbError> {
    diesel::update(jobs::table.find(id))
        .set((
            jobs::state.eq(JobState::Dead),
            jobs::dead_at.eq(now),
            jobs::lease_owner.eq(None::<String>),
            jobs::lease_until.eq(None::<NaiveDateTime>),
            jobs::last_error.eq(truncate(error)),
        ))
        .execute(conn)?;
    Ok(())
}

/// Puts dead letters back in the queue with a fresh attempt budget: one by id, or all.
pub fn resurrect(conn: &mut DbConn, id: Option<i64>, now: NaiveDateTime) -> Result<usize, DbError> {
    let changes = (
        jobs::state.eq(JobState::Queued),
        jobs::attempts.eq(0),
        jobs::run_at.eq(now),
        jobs::dead_at.eq(None::<NaiveDateTime>),
    );
    let dead = jobs::table.filter(jobs::state.eq(JobState::Dead));
    let n = match id {
        Some(id) => diesel::update(dead.filter(jobs::id.eq(id))).set(changes).execute(conn)?,
        None => diesel::update(dead).set(changes).execute(conn)?,
    };
    Ok(n)
}

pub fn dead_letters(conn: &mut DbConn, limit: i64) -> Result<Vec<Job>, DbError> {
    Ok(jobs::table
        .filter(jobs::state.eq(JobState::Dead))
        .order(jobs::id)
        .limit(limit)
        .select(Job::as_select())
        .load(conn)?)
}

/// The dead letters of one app, the latest first.
pub fn dead_letters_of_app(conn: &mut DbConn, app_id: &str, limit: i64) -> Result<Vec<Job>, DbError> {
    Ok(jobs::table
        .filter(jobs::state.eq(JobState::Dead))
        .filter(jobs::app_id.eq(app_id))
        .order(jobs::id.desc())
        .limit(limit)
        .select(Job::as_select())
        .load(conn)?)
}

/// The jobs of one ordering key (a conversation) still in the outbox: waiting, running or
/// dead, in the order they run.
pub fn of_key(conn: &mut DbConn, key: &str, limit: i64) -> Result<Vec<Job>, DbError> {
    Ok(jobs::table
        .filter(jobs::ordering_key.eq(key))
        .order(jobs::id)
        .limit(limit)
        .select(Job::as_select())
        .load(conn)?)
}

/// Queue depth of one app (the console's), like [`depth`] for the whole table: counted in
/// the database, whatever the backlog.
pub fn depth_of_app(conn: &mut DbConn, app_id: &str, now: NaiveDateTime) -> Result<QueueDepth, DbError> {
    let of_app = jobs::table.filter(jobs::app_id.eq(app_id));
    let by_state: Vec<(JobState, i64)> =
        of_app.group_by(jobs::state).select((jobs::state, diesel::dsl::count_star())).load(conn)?;
    let due: i64 =
        of_app.filter(jobs::state.eq(JobState::Queued)).filter(jobs::run_at.le(now)).count().get_result(conn)?;
    let mut depth = QueueDepth { due, ..QueueDepth::default() };
    for (state, n) in by_state {
        match state {
            JobState::Queued => depth.scheduled = n - due,
            JobState::Running => depth.running = n,
            JobState::Dead => depth.dead = n,
        }
    }
    Ok(depth)
}

pub fn find(conn: &mut DbConn, id: i64) -> Result<Option<Job>, DbError> {
    Ok(jobs::table.find(id).select(Job::as_select()).first(conn).optional()?)
}

/// Queue depth by state, for metrics and the readiness page.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct QueueDepth {
    pub due: i64,
    pub scheduled: i64,
    pub running: i64,
    pub dead: i64,
}

/// One pass over the table, whatever the backlog: a count per state, and how many of the
/// queued ones are due.
pub fn depth(conn: &mut DbConn, now: NaiveDateTime) -> Result<QueueDepth, DbError> {
    use diesel::sql_types::{BigInt, Text, Timestamp};
    #[derive(QueryableByName)]
    struct Row {
        #[diesel(sql_type = Text)]
        state: String,
        #[diesel(sql_type = BigInt)]
        due: i64,
        #[diesel(sql_type = BigInt)]
        total: i64,
    }
    let sql = |placeholder: &str| {
        format!(
            "SELECT state, CAST(COALESCE(SUM(CASE WHEN run_at <= {placeholder} THEN 1 ELSE 0 END), 0) AS BIGINT) AS due, \
             CAST(COUNT(*) AS BIGINT) AS total FROM jobs GROUP BY state"
        )
    };
    let rows: Vec<Row> = match conn {
        DbConn::Sqlite(c) => diesel::sql_query(sql("?")).bind::<Timestamp, _>(now).load(c)?,
        DbConn::Postgres(c) => diesel::sql_query(sql("$1")).bind::<Timestamp, _>(now).load(c)?,
    };
    let mut depth = QueueDepth::default();
    for row in rows {
        match row.state.parse::<JobState>() {
            Ok(JobState::Queued) => {
                depth.due = row.due;
                depth.scheduled = row.total - row.due;
            }
            Ok(JobState::Running) => depth.running = row.total,
            Ok(JobState::Dead) => depth.dead = row.total,
            _ => {}
        }
    }
    Ok(depth)
}

/// Error texts are kept short: they are shown to operators, not archived.
pub(crate) fn truncate(error: &str) -> String {
    const MAX: usize = 2000;
    if error.len() <= MAX {
        return error.to_owned();
    }
    let mut end = MAX;
    while !error.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &error[..end])
}
