//! Failed job attempts, kept after their job is done so the operations console can show a
//! message's path: which attempt failed, when, why, and what came next. Rows are written in
//! the transaction that records the failure (never on the happy path) and purged with the
//! message records.

use chrono::NaiveDateTime;
use diesel::prelude::*;

use super::jobs::Job;
use super::schema::job_attempts;
use super::{AttemptOutcome, DbConn, DbError};

#[derive(Debug, Clone, PartialEq, Eq, Queryable, Selectable)]
#[diesel(table_name = job_attempts)]
pub struct JobAttempt {
    pub id: i64,
    pub job_id: i64,
    pub kind: String,
    pub app_id: Option<String>,
    pub ordering_key: Option<String>,
    /// The message the job works on, when it works on one.
    pub message_id: Option<i64>,
    pub attempt: i32,
    pub outcome: AttemptOutcome,
    pub error: String,
    pub at: NaiveDateTime,
}

#[derive(Insertable)]
#[diesel(table_name = job_attempts)]
struct NewAttempt<'a> {
    job_id: i64,
    kind: &'a str,
    app_id: Option<&'a str>,
    ordering_key: Option<&'a str>,
    message_id: Option<i64>,
    attempt: i32,
    outcome: AttemptOutcome,
    error: &'a str,
    at: NaiveDateTime,
}

/// What of a job its attempts are filed under (taken before the job runs, which consumes it).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct JobRef {
    pub job_id: i64,
    pub kind: String,
    pub app_id: Option<String>,
    pub ordering_key: Option<String>,
    pub message_id: Option<i64>,
}

impl JobRef {
    pub fn of(job: &Job) -> Self {
        Self {
            job_id: job.id,
            kind: job.kind.clone(),
            app_id: job.app_id.clone(),
            ordering_key: job.ordering_key.clone(),
            message_id: message_id_of(&job.payload),
        }
    }
}

/// The `message_id` of a job's JSON payload, when it has one at its top level (inbound
/// delivery, outbound relay, receipts). A scan rather than a parse: it runs for every job.
pub fn message_id_of(payload: &str) -> Option<i64> {
    let rest = payload.split_once("\"message_id\":")?.1.trim_start();
    let digits = rest.find(|c: char| !c.is_ascii_digit()).map_or(rest, |end| &rest[..end]);
    digits.parse().ok()
}

/// Files one attempt of `job` and what came of it.
pub fn record(
    conn: &mut DbConn,
    job: &JobRef,
    attempt: i32,
    outcome: AttemptOutcome,
    error: &str,
    at: NaiveDateTime,
) -> Result<(), DbError> {
    let error = super::jobs::truncate(error);
    let row = NewAttempt {
        job_id: job.job_id,
        kind: &job.kind,
        app_id: job.app_id.as_deref(),
        ordering_key: job.ordering_key.as_deref(),
        message_id: job.message_id,
        attempt,
        outcome,
        error: &error,
        at,
    };
    diesel::insert_into(job_attempts::table).values(row).execute(conn)?;
    Ok(())
}

/// Which dead letters to put back in the queue.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Requeue {
    One(i64),
    All,
}

/// Puts dead letters back in the queue with a fresh attempt budget, filing for each who did
/// it (the trace shows it): `which` of them, of `app_id` only when given. Returns how many.
pub fn requeue(
    conn: &mut DbConn,
    which: Requeue,
    app_id: Option<&str>,
    actor: &str,
    now: NaiveDateTime,
) -> Result<usize, DbError> {
    use super::schema::jobs;
    let mut dead = jobs::table.filter(jobs::state.eq(super::JobState::Dead)).into_boxed();
    if let Requeue::One(id) = which {
        dead = dead.filter(jobs::id.eq(id));
    }
    if let Some(app) = app_id {
        dead = dead.filter(jobs::app_id.eq(app));
    }
    let found: Vec<Job> = dead.select(Job::as_select()).load(conn)?;
    let note = format!("put back in the queue by {actor}");
    for job in &found {
        record(conn, &JobRef::of(job), job.attempts, AttemptOutcome::Requeued, &note, now)?;
        super::jobs::resurrect(conn, Some(job.id), now)?;
    }
    Ok(found.len())
}

/// The attempts filed under one ordering key (a conversation), oldest first.
pub fn of_key(conn: &mut DbConn, key: &str, limit: i64) -> Result<Vec<JobAttempt>, DbError> {
    Ok(job_attempts::table
        .filter(job_attempts::ordering_key.eq(key))
        .order(job_attempts::id)
        .limit(limit)
        .select(JobAttempt::as_select())
        .load(conn)?)
}

/// Deletes attempts filed before `before`; returns how many.
pub fn purge_before(conn: &mut DbConn, before: NaiveDateTime) -> Result<usize, DbError> {
    Ok(diesel::delete(job_attempts::table.filter(job_attempts::at.lt(before))).execute(conn)?)
}

#[cfg(test)]
mod tests {
    use super::message_id_of;

    #[test]
    fn the_message_id_is_read_from_the_payload_and_only_from_a_number() {
        assert_eq!(message_id_of(r#"{"message_id":42}"#), Some(42));
        assert_eq!(message_id_of(r#"{"message_id": 7,"parts_sent":1}"#), Some(7));
        assert_eq!(message_id_of(r#"{"handover_id":"h1"}"#), None);
        assert_eq!(message_id_of(r#"{"message_id":"x"}"#), None);
    }
}
