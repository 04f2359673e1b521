//! Typed jobs, in the shape of crates.io's `BackgroundJob`: each kind is a struct whose
//! fields are its payload (stored as JSON in the outbox) and whose `run` gets one shared
//! context. A [`Registry`] maps the stored kinds back to their types.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use serde::Serialize;
use serde::de::DeserializeOwned;

use super::JobFailure;
use crate::db::jobs::{Job, NewJob};

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
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attempt {
    pub job_id: i64,
    /// This attempt's number, 1 for the first.
    pub number: i32,
    /// The worker's clock for this attempt (tests drive it forward past retry delays).
    pub now: chrono::NaiveDateTime,
}

pub(super) type JobFuture = Pin<Box<dyn Future<Output = Result<(), JobFailure>> + Send>>;
pub(super) type Handler = Arc<dyn Fn(Job, chrono::NaiveDateTime) -> JobFuture + Send + Sync>;

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
        let handler: Handler = Arc::new(move |row: Job, now| {
            let context = context.clone();
            Box::pin(async move {
                let job: J = serde_json::from_str(&row.payload)
                    .map_err(|e| JobFailure::permanent(format!("bad {} payload: {e}", J::KIND)))?;
                job.run(&context, &Attempt { job_id: row.id, number: row.attempts, now }).await
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
