//! Outbox semantics: order per key, retries, dead letters, leases.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use byoc_bridge::db::jobs::{self, NewJob};
use byoc_bridge::db::{Db, now};
use byoc_bridge::metrics::Metrics;
use byoc_bridge::worker::{Attempt, BackgroundJob, JobFailure, Registry, Runner};
use chrono::{Duration, NaiveDateTime};
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::helpers::TestDb;

crate::on_both_backends!(
    order_is_kept_per_key_when_a_job_fails,
    permanent_failures_become_dead_letters_that_do_not_block,
    retries_end_in_a_dead_letter,
    expired_leases_are_reclaimed,
    leases_are_renewed_while_their_jobs_run,
    many_keys_with_random_failures_deliver_everything_once_in_order,
    enqueue_and_claim_work_inside_a_callers_transaction,
    a_panicking_job_is_a_failed_attempt_and_the_worker_goes_on,
    a_slow_job_holds_up_its_own_conversation_only,
    jobs_claimed_ahead_are_given_back_when_the_worker_stops,
    ten_thousand_jobs_enqueue_at_once_and_are_claimed_in_order,
    a_job_completed_in_its_own_write_ends_with_that_write
);

/// More rows than one PostgreSQL statement has parameters for (65,535 / 8 columns).
async fn ten_thousand_jobs_enqueue_at_once_and_are_claimed_in_order(test_db: TestDb) {
    let db = test_db.services().await.db;
    let ids = db
        .write(|c| {
            let batch: Vec<NewJob> = (0..10_000).map(|i| NewJob::new("bulk", &json!({ "i": i }))).collect();
            jobs::enqueue(c, &batch)
        })
        .await
        .unwrap();
    assert_eq!(ids.len(), 10_000);
    assert!(ids.windows(2).all(|w| w[0] < w[1]), "ids in the order given");
    let claimed = db.write(|c| jobs::claim(c, "w", 64, std::time::Duration::from_secs(30), now())).await.unwrap();
    assert_eq!(claimed.iter().map(|j| j.id).collect::<Vec<_>>(), ids[..64]);
}

/// Records `(key, seq)` of every successful run; fails according to `plan`.
type Log = Arc<Mutex<Vec<(String, i64)>>>;
type Plan = Arc<dyn Fn(&str, i64, i32) -> Option<JobFailure> + Send + Sync>;

/// What the test jobs run with: where they log, and when they fail.
#[derive(Clone)]
struct TestCtx {
    log: Log,
    plan: Plan,
    /// Jobs of this key wait for a permit before they finish.
    hold: Option<(String, Arc<tokio::sync::Semaphore>)>,
    /// Told of every finished job.
    finished: Option<tokio::sync::mpsc::UnboundedSender<(String, i64)>>,
}

/// A job of conversation `key`, the `seq`-th of it.
#[derive(Serialize, Deserialize)]
struct TestJob {
    key: String,
    seq: i64,
}

impl BackgroundJob for TestJob {
    const KIND: &'static str = "test";
    type Context = TestCtx;

    async fn run(self, ctx: &TestCtx, attempt: &Attempt) -> Result<(), JobFailure> {
        if let Some(failure) = (ctx.plan)(&self.key, self.seq, attempt.number) {
            return Err(failure);
        }
        if let Some((key, gate)) = &ctx.hold
            && *key == self.key
        {
            gate.acquire().await.unwrap().forget();
        }
        ctx.log.lock().unwrap().push((self.key.clone(), self.seq));
        if let Some(finished) = &ctx.finished {
            finished.send((self.key, self.seq)).unwrap();
        }
        Ok(())
    }
}

fn runner(db: &Db, test_db: &TestDb, log: Log, plan: Plan, extra: &[(&str, &str)]) -> Runner {
    let registry = Registry::new(TestCtx { log, plan, hold: None, finished: None }).register::<TestJob>();
    let settings = test_db.settings_with(extra);
    Runner::new(db.clone(), registry, Arc::new(Metrics::new()), settings.worker)
}

async fn enqueue(db: &Db, keys: &[&str], per_key: i64) {
    let mut new = Vec::new();
    // Interleaved, as messages of many conversations arrive.
    for seq in 0..per_key {
        for key in keys {
            let job = TestJob { key: (*key).to_owned(), seq };
            new.push(job.to_job().unwrap().ordered_by(format!("conv:{key}")));
        }
    }
    db.write(move |c| jobs::enqueue(c, &new)).await.unwrap();
}

fn sequence(log: &Log, key: &str) -> Vec<i64> {
    log.lock().unwrap().iter().filter(|(k, _)| k == key).map(|(_, s)| *s).collect()
}

fn later(t: NaiveDateTime, hours: i64) -> NaiveDateTime {
    t + Duration::hours(hours)
}

async fn order_is_kept_per_key_when_a_job_fails(test_db: TestDb) {
    let db = test_db.services().await.db;
    let log: Log = Arc::default();
    // A's second job fails once.
    let plan: Plan = Arc::new(|key, seq, attempts| {
        (key == "a" && seq == 1 && attempts == 1).then(|| JobFailure::retry("salesforce 503"))
    });
    let runner = runner(&db, &test_db, log.clone(), plan, &[]);
    enqueue(&db, &["a", "b"], 5).await;

    let t0 = now();
    let report = runner.drain_at(t0).await.unwrap();
    assert_eq!(report.retried, 1);
    assert_eq!(report.released, 3, "a2..a4 were handed back unattempted");
    assert_eq!(sequence(&log, "a"), [0], "nothing of a overtakes the failed job");
    assert_eq!(sequence(&log, "b"), [0, 1, 2, 3, 4]);

    let stored = db.run(move |c| jobs::depth(c, t0)).await.unwrap();
    // a1 waits for its retry; a2..a4 are due but queued behind it.
    assert_eq!((stored.due, stored.scheduled, stored.running, stored.dead), (3, 1, 0, 0));

    runner.drain_at(later(t0, 1)).await.unwrap();
    assert_eq!(sequence(&log, "a"), [0, 1, 2, 3, 4]);
    let left = db.run(move |c| jobs::depth(c, later(t0, 1))).await.unwrap();
    assert_eq!(left, jobs::QueueDepth::default(), "finished jobs are deleted");
}

async fn permanent_failures_become_dead_letters_that_do_not_block(test_db: TestDb) {
    let db = test_db.services().await.db;
    let log: Log = Arc::default();
    let poisoned = Arc::new(Mutex::new(true));
    let flag = poisoned.clone();
    let plan: Plan = Arc::new(move |key, seq, _| {
        (key == "a" && seq == 1 && *flag.lock().unwrap()).then(|| JobFailure::permanent("400 invalid recipient"))
    });
    let runner = runner(&db, &test_db, log.clone(), plan, &[]);
    enqueue(&db, &["a"], 4).await;

    let t0 = now();
    runner.drain_at(t0).await.unwrap();
    runner.drain_at(t0).await.unwrap();
    // Policy: a dead letter is parked and the conversation goes on.
    assert_eq!(sequence(&log, "a"), [0, 2, 3]);
    let dead = db.run(|c| jobs::dead_letters(c, 10)).await.unwrap();
    assert_eq!(dead.len(), 1);
    assert_eq!(dead[0].last_error.as_deref(), Some("400 invalid recipient"));
    assert!(dead[0].dead_at.is_some());

    // Retried by command once the cause is fixed.
    *poisoned.lock().unwrap() = false;
    let id = dead[0].id;
    assert_eq!(db.write(move |c| jobs::resurrect(c, Some(id), now())).await.unwrap(), 1);
    runner.drain_at(later(t0, 1)).await.unwrap();
    assert_eq!(sequence(&log, "a"), [0, 2, 3, 1]);
    assert!(db.run(|c| jobs::dead_letters(c, 10)).await.unwrap().is_empty());
}

async fn retries_end_in_a_dead_letter(test_db: TestDb) {
    let db = test_db.services().await.db;
    let log: Log = Arc::default();
    let plan: Plan = Arc::new(|_, _, _| Some(JobFailure::retry("timeout")));
    let runner = runner(&db, &test_db, log.clone(), plan, &[("BYOC__WORKER__MAX_ATTEMPTS", "3")]);
    enqueue(&db, &["a"], 1).await;

    let t0 = now();
    let mut reports = Vec::new();
    for hour in 0..5 {
        reports.push(runner.drain_at(later(t0, hour)).await.unwrap());
    }
    assert_eq!(reports.iter().map(|r| r.retried).sum::<usize>(), 2);
    assert_eq!(reports.iter().map(|r| r.dead).sum::<usize>(), 1);
    let dead = db.run(|c| jobs::dead_letters(c, 10)).await.unwrap();
    assert_eq!(dead.len(), 1);
    assert_eq!(dead[0].attempts, 3);
    assert!(dead[0].last_error.as_deref().unwrap().contains("gave up after 3 attempts: timeout"));
}

async fn expired_leases_are_reclaimed(test_db: TestDb) {
    let db = test_db.services().await.db;
    let log: Log = Arc::default();
    let runner = runner(&db, &test_db, log.clone(), Arc::new(|_, _, _| None), &[("BYOC__WORKER__LEASE_SECS", "60")]);
    enqueue(&db, &["a"], 2).await;

    // Another worker claims and dies without finishing.
    let t0 = now();
    let claimed =
        db.write(move |c| jobs::claim(c, "dead-worker", 10, std::time::Duration::from_secs(60), t0)).await.unwrap();
    assert_eq!(
        claimed.iter().map(|j| j.attempts).collect::<Vec<_>>(),
        [1, 1],
        "one batch may hold a key's run of due jobs"
    );
    assert!(claimed[0].id < claimed[1].id);

    // While the lease holds, nothing of that key runs.
    assert!(runner.drain_at(t0 + Duration::seconds(30)).await.unwrap().is_idle());
    // After it expires, the job is taken over, then its successor.
    runner.drain_at(t0 + Duration::seconds(61)).await.unwrap();
    assert_eq!(sequence(&log, "a"), [0, 1]);
}

/// Lets a test hold a job while it runs.
#[derive(Clone)]
struct Gate {
    started: Arc<tokio::sync::Notify>,
    finish: Arc<tokio::sync::Notify>,
}

/// Runs until the test lets it finish.
#[derive(Serialize, Deserialize)]
struct SlowJob;

impl BackgroundJob for SlowJob {
    const KIND: &'static str = "slow";
    type Context = Gate;

    async fn run(self, gate: &Gate, _attempt: &Attempt) -> Result<(), JobFailure> {
        gate.started.notify_one();
        gate.finish.notified().await;
        Ok(())
    }
}

#[derive(Serialize, Deserialize)]
struct QuickJob;

impl BackgroundJob for QuickJob {
    const KIND: &'static str = "quick";
    type Context = Gate;

    async fn run(self, _gate: &Gate, _attempt: &Attempt) -> Result<(), JobFailure> {
        Ok(())
    }
}

async fn leases_are_renewed_while_their_jobs_run(test_db: TestDb) {
    let db = test_db.services().await.db;
    // The job runs until the test lets it finish.
    let (started, finish) = (Arc::new(tokio::sync::Notify::new()), Arc::new(tokio::sync::Notify::new()));
    let settings = test_db.settings_with(&[("BYOC__WORKER__LEASE_SECS", "1"), ("BYOC__WORKER__SLICE_MS", "100")]);
    let registry = Registry::new(Gate { started: started.clone(), finish: finish.clone() })
        .register::<SlowJob>()
        .register::<QuickJob>();
    let holder = Runner::new(db.clone(), registry, Arc::new(Metrics::new()), settings.worker);
    let first = SlowJob.to_job().unwrap().ordered_by("conv:a");
    let next = QuickJob.to_job().unwrap().ordered_by("conv:a");
    let ids = db.write(move |c| jobs::enqueue(c, &[first.clone(), next.clone()])).await.unwrap();

    let step = tokio::spawn(async move { holder.step().await.unwrap() });
    started.notified().await;
    let leased =
        |db: Db, id: i64| async move { db.run(move |c| jobs::find(c, id)).await.unwrap().unwrap().lease_until };
    let claimed_until = leased(db.clone(), ids[0]).await.unwrap();
    // The holder renews every third of the lease; wait for it (bounded), not a fixed time.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while leased(db.clone(), ids[0]).await.unwrap() <= claimed_until {
        assert!(std::time::Instant::now() < deadline, "the lease was never renewed");
        tokio::task::yield_now().await;
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    for id in ids.clone() {
        assert!(leased(db.clone(), id).await.unwrap() > claimed_until, "the whole batch stays leased");
    }
    // Past the first lease, another worker takes nothing: the jobs are still held.
    let other = runner(&db, &test_db, Arc::default(), Arc::new(|_, _, _| None), &[]);
    let taken = other.step_at(claimed_until + Duration::milliseconds(1)).await.unwrap();
    assert!(taken.is_idle(), "{taken:?}");

    finish.notify_one();
    let report = step.await.unwrap();
    assert_eq!((report.claimed, report.completed), (2, 2));
    // Once the step is over nothing of it is leased any more.
    let left = db.run(|c| jobs::depth(c, now())).await.unwrap();
    assert_eq!(left, jobs::QueueDepth::default());
}

async fn many_keys_with_random_failures_deliver_everything_once_in_order(test_db: TestDb) {
    let db = test_db.services().await.db;
    let log: Log = Arc::default();
    let rng = Arc::new(Mutex::new(fastrand::Rng::with_seed(7)));
    let plan: Plan = Arc::new(move |_, _, _| {
        let roll = rng.lock().unwrap().u8(0..100);
        match roll {
            0..=14 => Some(JobFailure::retry("503")),
            15..=19 => Some(JobFailure::Retry { reason: "429".into(), after: Some(std::time::Duration::from_secs(5)) }),
            _ => None,
        }
    });
    let runner = runner(&db, &test_db, log.clone(), plan, &[("BYOC__WORKER__MAX_ATTEMPTS", "100")]);
    let keys: Vec<String> = (0..20).map(|i| format!("k{i}")).collect();
    let key_refs: Vec<&str> = keys.iter().map(String::as_str).collect();
    enqueue(&db, &key_refs, 10).await;

    let mut t = now();
    for _ in 0..200 {
        runner.drain_at(t).await.unwrap();
        let depth = db.run(move |c| jobs::depth(c, t)).await.unwrap();
        if depth == jobs::QueueDepth::default() {
            break;
        }
        t += Duration::minutes(15);
    }
    let mut seen: HashMap<String, Vec<i64>> = HashMap::new();
    for (k, s) in log.lock().unwrap().iter() {
        seen.entry(k.clone()).or_default().push(*s);
    }
    for key in &keys {
        assert_eq!(seen.get(key).map(Vec::as_slice), Some(&(0..10).collect::<Vec<_>>()[..]), "key {key}");
    }
}

async fn enqueue_and_claim_work_inside_a_callers_transaction(test_db: TestDb) {
    let db = test_db.services().await.db;
    // The domain write and its job commit together…
    let claimed = db
        .write(|c| {
            jobs::enqueue(c, &[NewJob::new("test", &json!({})).ordered_by("conv:x")])?;
            // …and claiming nests (a savepoint) inside an open write transaction.
            jobs::claim(c, "w", 10, std::time::Duration::from_secs(60), now())
        })
        .await
        .unwrap();
    assert_eq!(claimed.len(), 1);

    // A failing caller rolls back the job it enqueued.
    let failed: Result<(), _> = db
        .write(|c| {
            jobs::enqueue(c, &[NewJob::new("test", &json!({}))])?;
            Err(byoc_bridge::db::DbError::Other(anyhow::anyhow!("domain write failed")))
        })
        .await;
    assert!(failed.is_err());
    let depth = db.run(|c| jobs::depth(c, now())).await.unwrap();
    assert_eq!((depth.due, depth.running), (0, 1), "only the first job exists");
}

/// Panics on its first attempt.
#[derive(Serialize, Deserialize)]
struct FlakyJob;

impl BackgroundJob for FlakyJob {
    const KIND: &'static str = "flaky";
    type Context = Log;

    async fn run(self, log: &Log, attempt: &Attempt) -> Result<(), JobFailure> {
        assert!(attempt.number > 1, "a bug on the first attempt");
        log.lock().unwrap().push(("flaky".into(), i64::from(attempt.number)));
        Ok(())
    }
}

async fn a_panicking_job_is_a_failed_attempt_and_the_worker_goes_on(test_db: TestDb) {
    let db = test_db.services().await.db;
    let log: Log = Arc::default();
    let registry = Registry::new(log.clone()).register::<FlakyJob>();
    let runner = Runner::new(db.clone(), registry, Arc::new(Metrics::new()), test_db.settings().worker);
    let job = FlakyJob.to_job().unwrap().ordered_by("conv:p");
    let id = db.write(move |c| jobs::enqueue(c, std::slice::from_ref(&job))).await.unwrap()[0];

    let t0 = now();
    let first = runner.drain_at(t0).await.unwrap();
    assert_eq!((first.claimed, first.retried), (1, 1), "the panic is recorded as a failed attempt");
    let waiting = db.run(move |c| jobs::depth(c, later(t0, 1))).await.unwrap();
    assert_eq!((waiting.due, waiting.running, waiting.dead), (1, 0, 0));
    let stored = db.run(move |c| jobs::find(c, id)).await.unwrap().unwrap();
    assert!(stored.last_error.unwrap().contains("the job panicked: a bug on the first attempt"));

    runner.drain_at(later(t0, 1)).await.unwrap();
    assert_eq!(sequence(&log, "flaky"), [2], "the same worker ran the retry");
}

/// A worker that waited for its whole batch before claiming again would stop here: the slow
/// job shares the first claim with one other, and the rest of the queue only comes in later
/// claims, which a running worker makes as each slot frees up.
async fn a_slow_job_holds_up_its_own_conversation_only(test_db: TestDb) {
    let db = test_db.services().await.db;
    let gate = Arc::new(tokio::sync::Semaphore::new(0));
    let (finished, mut finishing) = tokio::sync::mpsc::unbounded_channel();
    let ctx = TestCtx {
        log: Arc::default(),
        plan: Arc::new(|_, _, _| None),
        hold: Some(("slow".into(), gate.clone())),
        finished: Some(finished),
    };
    let settings = test_db.settings_with(&[("BYOC__WORKER__CLAIM_BATCH", "2"), ("BYOC__WORKER__CONCURRENCY", "4")]);
    let registry = Registry::new(ctx).register::<TestJob>();
    let runner = Runner::new(db.clone(), registry, Arc::new(Metrics::new()), settings.worker);
    enqueue(&db, &["slow"], 2).await;
    let others: Vec<String> = (0..10).map(|i| format!("k{i}")).collect();
    enqueue(&db, &others.iter().map(String::as_str).collect::<Vec<_>>(), 1).await;

    let cancel = tokio_util::sync::CancellationToken::new();
    let running = tokio::spawn(runner.run(cancel.clone()));
    let within = std::time::Duration::from_secs(30);
    let mut done = Vec::new();
    while done.len() < others.len() {
        let (key, _) = tokio::time::timeout(within, finishing.recv()).await.expect("the others finish").unwrap();
        assert_ne!(key, "slow", "the slow job is still held");
        done.push(key);
    }
    done.sort();
    let mut expected = others.clone();
    expected.sort();
    assert_eq!(done, expected, "every other conversation went on while one job was slow");

    // Its conversation kept its order behind it.
    gate.add_permits(2);
    for seq in 0..2 {
        let got = tokio::time::timeout(within, finishing.recv()).await.expect("the slow ones finish").unwrap();
        assert_eq!(got, ("slow".to_owned(), seq));
    }
    cancel.cancel();
    running.await.unwrap();
}

/// A running worker claims ahead of its free slots (so a slot that frees up starts at once);
/// stopping gives those jobs back untouched, for the next worker to take without waiting
/// for their leases.
async fn jobs_claimed_ahead_are_given_back_when_the_worker_stops(test_db: TestDb) {
    let db = test_db.services().await.db;
    let gate = Arc::new(tokio::sync::Semaphore::new(0));
    let (started, mut starts) = tokio::sync::mpsc::unbounded_channel::<String>();
    let log: Log = Arc::default();
    let ctx = TestCtx {
        log: log.clone(),
        plan: Arc::new(move |key, _, _| {
            let _ = started.send(key.to_owned());
            None
        }),
        hold: Some(("slow".into(), gate.clone())),
        finished: None,
    };
    let settings = test_db.settings_with(&[("BYOC__WORKER__CONCURRENCY", "1")]);
    let registry = Registry::new(ctx).register::<TestJob>();
    let runner = Runner::new(db.clone(), registry, Arc::new(Metrics::new()), settings.worker);
    enqueue(&db, &["slow"], 1).await;
    enqueue(&db, &["k0", "k1", "k2"], 1).await;

    let cancel = tokio_util::sync::CancellationToken::new();
    let running = tokio::spawn(runner.run(cancel.clone()));
    let within = std::time::Duration::from_secs(30);
    let first = tokio::time::timeout(within, starts.recv()).await.expect("the first job starts").unwrap();
    assert_eq!(first, "slow");
    // Its claim brought the next job too: it waits for the one slot, leased to this worker.
    let depth = db.run(|c| jobs::depth(c, now())).await.unwrap();
    assert_eq!((depth.running, depth.due), (2, 2), "one running, one claimed ahead, two queued");

    cancel.cancel();
    gate.add_permits(1);
    running.await.unwrap();
    assert_eq!(sequence(&log, "slow"), [0], "the running job finished");
    let left = db.run(|c| jobs::of_key(c, "conv:k0", 10)).await.unwrap();
    assert_eq!(left.len(), 1);
    let k0 = &left[0];
    assert_eq!((k0.state, k0.attempts, k0.lease_owner.as_deref()), (byoc_bridge::db::JobState::Queued, 0, None));
    let depth = db.run(|c| jobs::depth(c, now())).await.unwrap();
    assert_eq!((depth.running, depth.due), (0, 3), "nothing is left leased");
    assert!(starts.try_recv().is_err(), "no job started after the stop");
}

/// Records its outcome and its own completion in one write; with `fail_in_write`, that
/// write fails after recording both on the first attempt.
#[derive(Serialize, Deserialize)]
struct SelfCompletingJob {
    seq: i64,
    fail_in_write: bool,
}

#[derive(Clone)]
struct OwnCtx {
    db: Db,
    log: Log,
}

impl BackgroundJob for SelfCompletingJob {
    const KIND: &'static str = "self_completing";
    type Context = OwnCtx;

    async fn run(self, ctx: &OwnCtx, attempt: &Attempt) -> Result<(), JobFailure> {
        let completion = attempt.completion();
        let fail = self.fail_in_write && attempt.number == 1;
        ctx.db
            .write(move |c| {
                completion.record(c)?;
                if fail {
                    return Err(byoc_bridge::db::DbError::Other(anyhow::anyhow!("the outcome could not be stored")));
                }
                Ok(())
            })
            .await?;
        ctx.log.lock().unwrap().push(("own".into(), self.seq));
        Ok(())
    }
}

async fn a_job_completed_in_its_own_write_ends_with_that_write(test_db: TestDb) {
    let db = test_db.services().await.db;
    let log: Log = Arc::default();
    let registry = Registry::new(OwnCtx { db: db.clone(), log: log.clone() }).register::<SelfCompletingJob>();
    let runner = Runner::new(db.clone(), registry, Arc::new(Metrics::new()), test_db.settings().worker);
    let new: Vec<NewJob> = (0..3)
        .map(|seq| SelfCompletingJob { seq, fail_in_write: seq == 1 }.to_job().unwrap().ordered_by("conv:own"))
        .collect();
    db.write(move |c| jobs::enqueue(c, &new)).await.unwrap();

    let t0 = now();
    let first = runner.drain_at(t0).await.unwrap();
    assert_eq!((first.completed, first.retried, first.released), (1, 1, 1));
    let waiting = db.run(move |c| jobs::depth(c, later(t0, 1))).await.unwrap();
    assert_eq!(
        (waiting.due, waiting.running),
        (2, 0),
        "the failed write took its completion with it: the job is still there to retry"
    );

    let second = runner.drain_at(later(t0, 1)).await.unwrap();
    assert_eq!(second.completed, 2);
    assert_eq!(sequence(&log, "own"), [0, 1, 2], "in order, each once");
    let left = db.run(move |c| jobs::depth(c, later(t0, 1))).await.unwrap();
    assert_eq!(left, jobs::QueueDepth::default(), "each job ended with its own write");
}
