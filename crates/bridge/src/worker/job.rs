//! Typed jobs, in the shape of crates.io's `BackgroundJob`: each kind is a struct whose
//! fields are its payload (stored as JSON in the outbox) and whose `run` gets one shared
//! context. A [`Registry`] maps the stored kinds back to their types.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use serde::Serialize;
use serde::de::DeserializeOwned;

use super::JobFailure;
use crate::db::jobs::{self, Job, NewJob};
use crate::db::{DbConn, DbError};

/// A kind of background job.
pub trait BackgroundJob: Serialize + DeserializeOwned + Send + Sync + 'static {
    /// The `kind` stored with the job.
    const KIND: &'static str;
    /// What every job of the kind runs with (the service's [`crate::jobs::JobContext`];
    /// tests bring their own).
    type Context: Clone + Send + Sync + 'static;

    fn run(self, ctx: &Self::Context, attempt: &Attempt) -> impl Future<Output = Result<(), JobFailure>> + Send;

    /// The outbox row for this job (add `for_app` and `ordered_by` as it needs).
    fn to_job(&self) -> Result<NewJob, serde_json::Error> {
        Ok(NewJob::new(Self::KIND, &serde_json::to_value(self)?))
    }
}

/// What a running job knows of its outbox row.
#[derive(Debug, Clone)]
pub struct Attempt {
    pub job_id: i64,
    /// This attempt's number, 1 for the first.
    pub number: i32,
    /// The worker's clock for this attempt (tests drive it forward past retry delays).
    pub now: chrono::NaiveDateTime,
    completed: Arc<AtomicBool>,
}

impl Attempt {
    pub(super) fn new(job_id: i64, number: i32, now: chrono::NaiveDateTime, completed: Arc<AtomicBool>) -> Self {
        Self { job_id, number, now, completed }
    }

    /// What lets the job delete its own outbox row in the transaction of its last write.
    pub fn completion(&self) -> Completion {
        Completion { job_id: self.job_id, completed: self.completed.clone() }
    }
}

/// A job's own completion, recorded in the transaction of its last write: the outcome and
/// the end of the job commit together, and the runner saves a write of its own (one of the
/// few per message on the hot path). A job that never calls it is completed by the runner.
#[derive(Debug, Clone)]
pub struct Completion {
    job_id: i64,
    completed: Arc<AtomicBool>,
}

impl Completion {
    /// Deletes the outbox row; call inside the write that records the job's outcome. Should
    /// that write fail, the job fails and the runner handles it as any failure.
    pub fn record(&self, conn: &mut DbConn) -> Result<(), DbError> {
        jobs::complete_one(conn, self.job_id)?;
        self.completed.store(true, Ordering::Release);
        Ok(())
    }
}

pub(super) type JobFuture = Pin<Box<dyn Future<Output = Result<(), JobFailure>> + Send>>;
/// Runs one claimed job at the worker's clock; sets the flag when the job recorded its own
/// completion.
pub(super) type Handler = Arc<dyn Fn(Job, chrono::NaiveDateTime, Arc<AtomicBool>) -> JobFuture + Send + Sync>;

/// The job kinds a runner executes, each bound to its context.
pub struct Registry<C> {
    context: C,
    handlers: HashMap<&'static str, Handler>,
}

impl<C: Clone + Send + Sync + 'static> Registry<C> {
    pub fn new(context: C) -> Self {
        Self { context, handlers: HashMap::new() }
    }

    pub fn register<J: BackgroundJob<Context = C>>(mut self) -> Self {
        let context = self.context.clone();
        let handler: Handler = Arc::new(move |row: Job, now, completed| {
            let context = context.clone();
            Box::pin(async move {
                let job: J = serde_json::from_str(&row.payload)
                    .map_err(|e| JobFailure::permanent(format!("bad {} payload: {e}", J::KIND)))?;
                job.run(&context, &Attempt::new(row.id, row.attempts, now, completed)).await
            })
        });
        self.handlers.insert(J::KIND, handler);
        self
    }

    pub fn context(&self) -> &C {
        &self.context
    }
}

/// The registered kinds, without their types: what the runner looks jobs up in.
#[derive(Clone, Default)]
pub struct Handlers {
    pub(super) by_kind: HashMap<&'static str, Handler>,
}

impl<C> From<Registry<C>> for Handlers {
    fn from(registry: Registry<C>) -> Self {
        Self { by_kind: registry.handlers }
    }
}
