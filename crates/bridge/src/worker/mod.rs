//! Background execution of outbox jobs: typed job kinds ([`job`]) and the runner.
//!
//! [`Runner::step`] claims one batch, runs it and records the outcomes; tests call it until
//! it reports an idle queue instead of sleeping. [`Runner::run`] claims continuously as slots
//! free up, until cancelled, then lets what runs finish (a safe point: no job is left
//! half-recorded).
//!
//! Within a batch, jobs are grouped by ordering key. Groups run concurrently; a group's jobs
//! run one after another, and when one fails the rest of its group is released untouched,
//! so a conversation never overtakes itself.

pub mod job;
pub mod limits;
pub mod maintenance;
pub mod retry;

use std::collections::HashMap;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use chrono::NaiveDateTime;
use futures_util::{FutureExt, StreamExt};
use tokio::sync::Notify;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use crate::config::WorkerSettings;
use crate::db::attempts::{self, JobRef};
use crate::db::jobs::{self, Job};
use crate::db::{AttemptOutcome, Db, DbError};
use crate::metrics::{KindLabels, Metrics};

pub use job::{Attempt, BackgroundJob, Completion, Handlers, Registry};
pub use retry::Backoff;

/// Why a job attempt failed, and so what happens next.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JobFailure {
    /// Worth trying again (timeouts, 5xx, 429, "retry later" codes), optionally not before `after`.
    Retry { reason: String, after: Option<Duration> },
    /// Will never succeed as is (bad request, unknown recipient): a dead letter now.
    Permanent { reason: String },
    /// Not a failure: the job made progress, has more to do, and gives its lease back so a
    /// long task (a transcript import) never outlives it. It runs again at once, keeping its
    /// place before the later jobs of its key, without using up an attempt.
    Resume { progress: String },
}

impl JobFailure {
    pub fn retry(reason: impl Into<String>) -> Self {
        JobFailure::Retry { reason: reason.into(), after: None }
    }

    pub fn permanent(reason: impl Into<String>) -> Self {
        JobFailure::Permanent { reason: reason.into() }
    }

    /// A vendor's failure: permanent or retried, as the vendor's client says.
    fn from_vendor(permanent: bool, after: Option<Duration>, reason: String) -> Self {
        if permanent { JobFailure::Permanent { reason } } else { JobFailure::Retry { reason, after } }
    }
}

impl From<crate::salesforce::Error> for JobFailure {
    fn from(e: crate::salesforce::Error) -> Self {
        JobFailure::from_vendor(e.is_permanent(), e.retry_after(), e.to_string())
    }
}

impl From<crate::infobip::Error> for JobFailure {
    fn from(e: crate::infobip::Error) -> Self {
        JobFailure::from_vendor(e.is_permanent(), e.retry_after(), e.to_string())
    }
}

/// The database failing is always worth another try.
impl From<DbError> for JobFailure {
    fn from(e: DbError) -> Self {
        JobFailure::retry(format!("database: {e}"))
    }
}

/// What a panic said, for the attempt's error.
fn panic_message(panic: &(dyn std::any::Any + Send)) -> &str {
    panic.downcast_ref::<&str>().copied().or_else(|| panic.downcast_ref::<String>().map(String::as_str)).unwrap_or("")
}

/// What one `step` did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct StepReport {
    pub claimed: usize,
    pub completed: usize,
    pub retried: usize,
    pub dead: usize,
    pub released: usize,
    /// Jobs that did part of their work and were put back to continue.
    pub resumed: usize,
}

impl StepReport {
    pub fn is_idle(&self) -> bool {
        self.claimed == 0
    }

    fn add(&mut self, other: StepReport) {
        self.claimed += other.claimed;
        self.completed += other.completed;
        self.retried += other.retried;
        self.dead += other.dead;
        self.released += other.released;
        self.resumed += other.resumed;
    }
}

#[derive(Clone)]
pub struct Runner {
    db: Db,
    handlers: Arc<Handlers>,
    metrics: Arc<Metrics>,
    settings: WorkerSettings,
    owner: String,
    wake: Arc<Notify>,
    /// When this runner last returned expired leases to the queue (see [`Runner::claim`]).
    expiry_checked: Arc<std::sync::Mutex<Option<NaiveDateTime>>>,
}

/// How often claims also look for expired leases. A lease lasts `worker.lease_secs` (seconds
/// at least), so a job whose worker died waits at most this much longer to run again, while
/// most claims skip a statement that would find nothing.
const EXPIRY_CHECK_EVERY: chrono::Duration = chrono::Duration::seconds(1);

impl Runner {
    pub fn new(db: Db, handlers: impl Into<Handlers>, metrics: Arc<Metrics>, settings: WorkerSettings) -> Self {
        Self {
            db,
            handlers: Arc::new(handlers.into()),
            metrics,
            settings,
            owner: format!("worker-{}", uuid::Uuid::new_v4()),
            wake: Arc::new(Notify::new()),
            expiry_checked: Arc::default(),
        }
    }

    /// Uses a shared waker (so parts built before the runner can wake it).
    pub fn with_waker(mut self, wake: Arc<Notify>) -> Self {
        self.wake = wake;
        self
    }

    /// Leases under this replica's stable name, so a restart can take its own back.
    pub fn with_owner(mut self, owner: String) -> Self {
        self.owner = owner;
        self
    }

    /// Queues again the jobs this replica's previous process held when it died: nobody else
    /// runs under this name, so they are nobody's now, and need not wait for their leases.
    pub async fn reclaim_own_leases(&self) -> Result<usize, DbError> {
        let owner = self.owner.clone();
        self.db.write(move |c| jobs::reclaim(c, &owner)).await
    }

    /// Lets code that just enqueued work wake an idle runner instead of waiting for the poll.
    pub fn waker(&self) -> Arc<Notify> {
        self.wake.clone()
    }

    fn backoff(&self) -> Backoff {
        Backoff {
            initial: Duration::from_millis(self.settings.backoff_initial_ms),
            max: Duration::from_secs(self.settings.backoff_max_secs),
        }
    }

    /// Claims one batch of due jobs, runs it, records the outcomes.
    pub async fn step(&self) -> Result<StepReport, DbError> {
        self.step_at(crate::db::now()).await
    }

    /// `step` as if the clock read `now`: tests move time forward instead of sleeping.
    pub async fn step_at(&self, now: NaiveDateTime) -> Result<StepReport, DbError> {
        let lease = Duration::from_secs(self.settings.lease_secs);
        let claimed = self.claim(self.settings.claim_batch, now).await?;
        if claimed.is_empty() {
            return Ok(StepReport::default());
        }
        let _renewal = self.keep_leased(claimed.iter().map(|j| j.id).collect(), lease);
        let mut report = StepReport { claimed: claimed.len(), ..StepReport::default() };
        let groups = group_by_key(claimed);
        let mut results = futures_util::stream::iter(groups.into_iter().map(|group| self.run_group(group, now)))
            .buffer_unordered(self.settings.concurrency);
        while let Some(result) = results.next().await {
            let group_report = result?;
            report.add(StepReport { claimed: 0, ..group_report });
        }
        Ok(report)
    }

    /// Renews the lease of a claimed batch every third of the lease until the returned guard
    /// is dropped (the step is over). A batch that takes long (slow vendors, rate limits)
    /// stays this worker's, and the lease can be short: the jobs of a worker that died are
    /// taken over within `worker.lease_secs`.
    fn keep_leased(&self, ids: Vec<i64>, lease: Duration) -> tokio_util::sync::DropGuard {
        let stop = CancellationToken::new();
        let (db, owner, stopped) = (self.db.clone(), self.owner.clone(), stop.clone());
        tokio::spawn(async move {
            let every = lease / 3;
            loop {
                tokio::select! {
                    () = stopped.cancelled() => return,
                    () = tokio::time::sleep(every) => {}
                }
                let Some(until) =
                    chrono::Duration::from_std(lease).ok().and_then(|lease| crate::db::now().checked_add_signed(lease))
                else {
                    return;
                };
                let (owner, ids) = (owner.clone(), ids.clone());
                if let Err(e) = db.write(move |c| jobs::renew_leases(c, &owner, &ids, until)).await {
                    tracing::warn!(error.cause_chain = ?anyhow::Error::from(e), "could not renew the job leases");
                }
            }
        });
        stop.drop_guard()
    }

    /// Runs steps until nothing is due at `now`. For tests and command-line draining.
    pub async fn drain_at(&self, now: NaiveDateTime) -> Result<StepReport, DbError> {
        let mut total = StepReport::default();
        loop {
            let report = self.step_at(now).await?;
            if report.is_idle() {
                return Ok(total);
            }
            total.add(report);
        }
    }

    async fn run_group(&self, group: Vec<Job>, now: NaiveDateTime) -> Result<StepReport, DbError> {
        let mut report = StepReport::default();
        let mut jobs = group.into_iter();
        let mut done = Vec::new();
        while let Some(job) = jobs.next() {
            let kind = job.kind.clone();
            let id = job.id;
            let attempts = job.attempts;
            // What a failed attempt is filed under (the job itself goes to its handler).
            let filed = JobRef::of(&job);
            let started = Instant::now();
            let span = tracing::info_span!("job", job.id = id, job.kind = %kind, job.attempt = attempts);
            let completed = Arc::new(AtomicBool::new(false));
            let result = match self.handlers.by_kind.get(kind.as_str()) {
                // A panicking job is a failed attempt, not a dead worker.
                Some(handler) => AssertUnwindSafe(handler(job, now, completed.clone()))
                    .catch_unwind()
                    .instrument(span)
                    .await
                    .unwrap_or_else(|panic| {
                        Err(JobFailure::retry(format!("the job panicked: {}", panic_message(&*panic))))
                    }),
                None => Err(JobFailure::permanent(format!("no handler for job kind {kind:?}"))),
            };
            self.metrics
                .job_duration_seconds
                .get_or_create(&KindLabels { kind: kind.clone() })
                .observe(started.elapsed().as_secs_f64());
            match result {
                Ok(()) => {
                    if !completed.load(Ordering::Acquire) {
                        done.push(id);
                    }
                    report.completed += 1;
                    self.metrics.job_finished(&kind, "completed");
                }
                Err(failure) => {
                    let rest: Vec<i64> = jobs.by_ref().map(|j| j.id).collect();
                    report.released += rest.len();
                    for _ in &rest {
                        self.metrics.job_finished(&kind, "released");
                    }
                    let outcome = self.record_failure(filed, attempts, failure, done, rest, now).await?;
                    match outcome {
                        "dead" => report.dead += 1,
                        "resumed" => report.resumed += 1,
                        _ => report.retried += 1,
                    }
                    self.metrics.job_finished(&kind, outcome);
                    return Ok(report);
                }
            }
        }
        if !done.is_empty() {
            self.db.write(move |conn| jobs::complete(conn, &done).map(|_| ())).await?;
        }
        Ok(report)
    }

    /// Records, in one transaction, the group's successes, the failure (and its attempt, for
    /// the console's traces) and the released rest.
    async fn record_failure(
        &self,
        job: JobRef,
        attempts: i32,
        failure: JobFailure,
        done: Vec<i64>,
        rest: Vec<i64>,
        now: NaiveDateTime,
    ) -> Result<&'static str, DbError> {
        let max_attempts = self.settings.max_attempts;
        let backoff = self.backoff();
        let id = job.job_id;
        self.db
            .write(move |conn| {
                jobs::complete(conn, &done)?;
                jobs::release(conn, &rest)?;
                match &failure {
                    JobFailure::Resume { progress } => {
                        tracing::debug!(job.id = id, %progress, "job continues");
                        jobs::release(conn, &[id])?;
                        Ok("resumed")
                    }
                    JobFailure::Retry { reason, after } if attempts < max_attempts => {
                        let delay = backoff.delay(attempts, *after);
                        let at = now + chrono::Duration::from_std(delay).unwrap_or(chrono::Duration::MAX);
                        tracing::warn!(job.id = id, attempts, retry_in_ms = delay.as_millis() as u64, %reason, "job failed, will retry");
                        jobs::retry_at(conn, id, at, reason)?;
                        attempts::record(conn, &job, attempts, AttemptOutcome::Retry, reason, now)?;
                        Ok("retried")
                    }
                    JobFailure::Retry { reason, .. } => {
                        let reason = format!("gave up after {attempts} attempts: {reason}");
                        tracing::error!(job.id = id, %reason, "job is now a dead letter");
                        jobs::bury(conn, id, &reason, now)?;
                        attempts::record(conn, &job, attempts, AttemptOutcome::Dead, &reason, now)?;
                        Ok("dead")
                    }
                    JobFailure::Permanent { reason } => {
                        tracing::error!(job.id = id, %reason, "job failed permanently, now a dead letter");
                        jobs::bury(conn, id, reason, now)?;
                        attempts::record(conn, &job, attempts, AttemptOutcome::Dead, reason, now)?;
                        Ok("dead")
                    }
                }
            })
            .await
    }

    /// Works until `cancel` fires, keeping every slot busy: up to `worker.concurrency` groups
    /// run at once, and up to as many jobs again are claimed ahead, so a slot that frees up
    /// starts the next group at once instead of waiting for a claim (a write) to come back.
    /// One claim is under way at a time, for what the slots and the claimed-ahead jobs lack.
    /// Idles on the poll interval or until woken. On cancel it stops claiming, gives the
    /// claimed-ahead jobs back and lets the running groups finish, so no job is left
    /// half-recorded.
    pub async fn run(self, cancel: CancellationToken) {
        let poll = Duration::from_millis(self.settings.poll_interval_ms);
        match self.reclaim_own_leases().await {
            Ok(0) => {}
            Ok(n) => tracing::info!(jobs = n, "took back the jobs this replica held when it last stopped"),
            Err(e) => tracing::warn!(error.cause_chain = ?anyhow::Error::from(e), "could not take back own job leases"),
        }
        tracing::info!(worker = %self.owner, "job worker started");
        let concurrency = self.settings.concurrency.max(1);
        let mut running: JoinSet<Result<StepReport, DbError>> = JoinSet::new();
        let mut ahead = ClaimedAhead::default();
        // At most one claim at a time: it asks for what is missing when it starts.
        let mut claims: JoinSet<(Result<Vec<Job>, DbError>, usize)> = JoinSet::new();
        // Whether a claim is worth making: a claim uses the reason up, and a new one comes with
        // new work, a finished group (its key's next job may be free), the poll, or the claim
        // coming back full. One that comes while a claim runs is kept for the next.
        let mut may_find = true;
        while !cancel.is_cancelled() {
            while running.len() < concurrency {
                let Some((group, renewal)) = ahead.take() else { break };
                let runner = self.clone();
                running.spawn(async move {
                    let report = runner.run_group(group, crate::db::now()).await;
                    drop(renewal);
                    report
                });
            }
            let missing = (2 * concurrency).saturating_sub(running.len() + ahead.jobs());
            if claims.is_empty() && may_find && missing > 0 {
                let limit = self.settings.claim_batch.min(i64::try_from(missing).unwrap_or(i64::MAX)).max(1);
                may_find = false;
                let runner = self.clone();
                claims.spawn(async move {
                    let claimed = runner.claim(limit, crate::db::now()).await;
                    (claimed, usize::try_from(limit).unwrap_or(usize::MAX))
                });
            }
            tokio::select! {
                () = cancel.cancelled() => {}
                Some(claimed) = claims.join_next() => match claimed {
                    Ok((Ok(jobs), asked)) => {
                        may_find |= jobs.len() >= asked;
                        if !jobs.is_empty() {
                            let lease = Duration::from_secs(self.settings.lease_secs);
                            let renewal = Arc::new(self.keep_leased(jobs.iter().map(|j| j.id).collect(), lease));
                            ahead.add(group_by_key(jobs), &renewal);
                        }
                    }
                    Ok((Err(e), _)) => {
                        tracing::error!(error.cause_chain = ?anyhow::Error::from(e), "job worker could not claim");
                    }
                    Err(e) => tracing::error!(error = %e, "a job claim's task failed"),
                },
                Some(finished) = running.join_next() => {
                    log_group_outcome(finished);
                    may_find = true;
                }
                () = self.wake.notified() => may_find = true,
                () = tokio::time::sleep(poll), if !may_find => may_find = true,
            }
        }
        // A claim under way is let finish, so that what it took is given back too.
        let mut unstarted = ahead.ids();
        while let Some(claimed) = claims.join_next().await {
            if let Ok((Ok(jobs), _)) = claimed {
                unstarted.extend(jobs.iter().map(|j| j.id));
            }
        }
        if !unstarted.is_empty() {
            let n = unstarted.len();
            match self.db.write(move |c| jobs::release(c, &unstarted)).await {
                Ok(()) => tracing::info!(jobs = n, "gave back the jobs claimed ahead"),
                Err(e) => {
                    tracing::warn!(error.cause_chain = ?anyhow::Error::from(e), "could not give back the jobs claimed ahead; their leases run out")
                }
            }
        }
        drop(ahead);
        while let Some(finished) = running.join_next().await {
            log_group_outcome(finished);
        }
        tracing::info!(worker = %self.owner, "job worker stopped");
    }

    /// Claims due jobs, first returning expired leases to the queue if that was not done in the
    /// last [`EXPIRY_CHECK_EVERY`] (by the worker's clock, which tests move forward).
    async fn claim(&self, limit: i64, now: NaiveDateTime) -> Result<Vec<Job>, DbError> {
        let owner = self.owner.clone();
        let lease = Duration::from_secs(self.settings.lease_secs);
        let check_expiry = {
            let mut checked = self.expiry_checked.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            let due = checked.is_none_or(|at| now < at || now - at >= EXPIRY_CHECK_EVERY);
            if due {
                *checked = Some(now);
            }
            due
        };
        self.db
            .write(move |conn| {
                if check_expiry {
                    jobs::return_expired(conn, now)?;
                }
                jobs::take_due(conn, &owner, limit, lease, now)
            })
            .await
    }
}

/// Groups claimed but not started yet, oldest claim first, each with its claim's lease renewal
/// (kept until the last of that claim's groups is done).
#[derive(Default)]
struct ClaimedAhead {
    groups: std::collections::VecDeque<(Vec<Job>, Arc<tokio_util::sync::DropGuard>)>,
    jobs: usize,
}

impl ClaimedAhead {
    fn add(&mut self, groups: Vec<Vec<Job>>, renewal: &Arc<tokio_util::sync::DropGuard>) {
        for group in groups {
            self.jobs += group.len();
            self.groups.push_back((group, renewal.clone()));
        }
    }

    fn take(&mut self) -> Option<(Vec<Job>, Arc<tokio_util::sync::DropGuard>)> {
        let next = self.groups.pop_front()?;
        self.jobs -= next.0.len();
        Some(next)
    }

    fn jobs(&self) -> usize {
        self.jobs
    }

    fn ids(&self) -> Vec<i64> {
        self.groups.iter().flat_map(|(group, _)| group.iter().map(|j| j.id)).collect()
    }
}

fn log_group_outcome(finished: Result<Result<StepReport, DbError>, tokio::task::JoinError>) {
    match finished {
        Ok(Ok(_)) => {}
        Ok(Err(e)) => tracing::error!(error.cause_chain = ?anyhow::Error::from(e), "could not record job outcomes"),
        Err(e) => tracing::error!(error = %e, "a job group's task failed"),
    }
}

/// Groups jobs by ordering key, keeping id order within each group. Jobs without a key are
/// groups of one.
fn group_by_key(jobs: Vec<Job>) -> Vec<Vec<Job>> {
    let mut groups: Vec<Vec<Job>> = Vec::new();
    let mut index: HashMap<String, usize> = HashMap::new();
    for job in jobs {
        match job.ordering_key.clone() {
            Some(key) => match index.get(&key) {
                Some(&i) => {
                    if let Some(group) = groups.get_mut(i) {
                        group.push(job);
                    }
                }
                None => {
                    index.insert(key, groups.len());
                    groups.push(vec![job]);
                }
            },
            None => groups.push(vec![job]),
        }
    }
    groups
}
