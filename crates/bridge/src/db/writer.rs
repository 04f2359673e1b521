//! SQLite's one writer, with group commit.
//!
//! SQLite lets one connection write at a time; pooled connections that all write end up in
//! its busy handler, which sleeps 1…100 ms per try, so the process idles while callers wait.
//! Here one thread owns the only connection that writes. Callers hand it their work and wait;
//! the writer runs every piece of work that has queued up and commits them together, and one
//! failing leaves the others' changes in (see [`batch`] for how, without paying for a
//! savepoint per piece). Each caller hears back
//! only after the commit that holds its changes, so an answer still means "on disk", and a
//! burst of webhooks costs one commit per batch instead of one each. With
//! `synchronous = FULL` the log is synced beside the writer ([`super::wal_sync`]), and callers
//! are answered after that sync.

use std::panic::AssertUnwindSafe;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc;
use std::time::Instant;

use diesel::connection::{AnsiTransactionManager, TransactionManager};
use diesel::sqlite::SqliteConnection;

use super::checkpoint;
use super::wal_sync::{self, Committed, Finish};
use super::{DbConn, DbError};

/// Work queued while a batch runs joins it, up to this many pieces per commit.
const MAX_BATCH: usize = 512;

enum Work {
    /// Runs inside the batch's transaction, then answers its caller once that is over.
    InBatch(Box<dyn Pending>),
    /// Runs alone, outside any transaction (migrations manage their own).
    Alone(Box<dyn FnOnce(&mut DbConn) + Send>),
}

/// What the writer has done, for `/metrics`: how close it is to being the bottleneck.
#[derive(Debug, Default)]
pub struct WriterStats {
    /// Transactions committed (or rolled back).
    pub batches: AtomicU64,
    /// Pieces of work they held.
    pub writes: AtomicU64,
    /// Time spent running and committing them, in microseconds.
    pub busy_micros: AtomicU64,
    /// Syncs of the write-ahead log beside the writer (`synchronous = FULL`), and their time.
    pub syncs: AtomicU64,
    pub sync_micros: AtomicU64,
}

impl WriterStats {
    /// One transaction of `writes` pieces, begun at `started`.
    fn record(&self, writes: u64, started: Instant) {
        self.batches.fetch_add(1, Ordering::Relaxed);
        self.writes.fetch_add(writes, Ordering::Relaxed);
        let busy = u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX);
        self.busy_micros.fetch_add(busy, Ordering::Relaxed);
    }
}

/// The handle callers send work through. Cheap to clone; the thread ends with the last one.
#[derive(Clone)]
pub struct Writer {
    queue: mpsc::Sender<Work>,
    stats: Arc<WriterStats>,
}

impl Writer {
    /// Starts the writer thread; `open` makes its connection (again after a failure). With
    /// `sync_wal`, the connection commits without syncing and each batch is answered once
    /// that log file is synced (see [`wal_sync`]). With `checkpoint`, a connection that
    /// thread opens checkpoints the log after commits (see [`checkpoint`]).
    pub fn start(
        open: impl Fn() -> Result<DbConn, DbError> + Send + 'static,
        sync_wal: Option<PathBuf>,
        checkpoint: Option<checkpoint::Opener>,
    ) -> Result<Self, DbError> {
        let (queue, work) = mpsc::channel();
        let stats = Arc::new(WriterStats::default());
        let cannot_start =
            |e: std::io::Error| DbError::Other(anyhow::anyhow!("could not start the SQLite writer: {e}"));
        let answers = match sync_wal {
            Some(wal) => {
                let kept = stats.clone();
                let synced = move |took: std::time::Duration| {
                    kept.syncs.fetch_add(1, Ordering::Relaxed);
                    let micros = u64::try_from(took.as_micros()).unwrap_or(u64::MAX);
                    kept.sync_micros.fetch_add(micros, Ordering::Relaxed);
                };
                Answers::AfterSync(wal_sync::start(wal, synced).map_err(cannot_start)?)
            }
            None => Answers::AfterCommit,
        };
        let checkpoints = checkpoint.map(checkpoint::start).transpose().map_err(cannot_start)?;
        let after = After { answers, checkpoints };
        let kept = stats.clone();
        std::thread::Builder::new()
            .name("sqlite-writer".into())
            .spawn(move || run(&work, &open, &kept, &after))
            .map_err(cannot_start)?;
        Ok(Self { queue, stats })
    }

    pub fn stats(&self) -> &WriterStats {
        &self.stats
    }

    /// Runs `f` in the next batch's transaction and returns its result once that commits.
    /// `f` may run twice (a write beside it failed, see [`batch`]): only the changes of its
    /// last run are kept, and it must not act outside the database.
    pub async fn write<T, F>(&self, f: F) -> Result<T, DbError>
    where
        T: Send + 'static,
        F: FnMut(&mut DbConn) -> Result<T, DbError> + Send + 'static,
    {
        self.submit(f)?.await.map_err(|_| stopped())?
    }

    /// Queues `f`; the receiver gets its result once its batch is committed.
    fn submit<T, F>(&self, f: F) -> Result<tokio::sync::oneshot::Receiver<Result<T, DbError>>, DbError>
    where
        T: Send + 'static,
        F: FnMut(&mut DbConn) -> Result<T, DbError> + Send + 'static,
    {
        let (answer, answered) = tokio::sync::oneshot::channel();
        let write = Write { f, span: tracing::Span::current(), result: None, answer };
        self.queue.send(Work::InBatch(Box::new(write))).map_err(|_| stopped())?;
        Ok(answered)
    }

    /// Runs `f` on the writer's connection with nothing else running and no transaction open.
    pub async fn alone<T, F>(&self, f: F) -> Result<T, DbError>
    where
        T: Send + 'static,
        F: FnOnce(&mut DbConn) -> Result<T, DbError> + Send + 'static,
    {
        let (answer, answered) = tokio::sync::oneshot::channel();
        let work = Work::Alone(Box::new(move |conn: &mut DbConn| {
            let _ = answer.send(f(conn));
        }));
        self.queue.send(work).map_err(|_| stopped())?;
        answered.await.map_err(|_| stopped())?
    }
}

/// What follows a batch: its callers' answers, and the checkpointing thread hearing of it.
struct After {
    answers: Answers,
    checkpoints: Option<mpsc::SyncSender<()>>,
}

impl After {
    fn batch(&self, finishes: Vec<Finish>, failure: Option<String>) {
        if failure.is_none()
            && let Some(checkpoints) = &self.checkpoints
        {
            // Full means one is due already; gone means it stopped, and SQLite's own
            // checkpoint in the writer's commits keeps the log in bounds.
            let _ = checkpoints.try_send(());
        }
        self.answers.give(finishes, failure);
    }
}

/// When a batch's callers hear back.
enum Answers {
    /// As soon as it is committed (`synchronous = NORMAL`, or FULL inside the commit).
    AfterCommit,
    /// Once the syncing thread has written the log to disk.
    AfterSync(mpsc::Sender<Committed>),
}

impl Answers {
    fn give(&self, finishes: Vec<Finish>, failure: Option<String>) {
        let (finishes, failure) = match self {
            Answers::AfterCommit => (finishes, failure),
            Answers::AfterSync(syncer) => match syncer.send(Committed { finishes, failure }) {
                Ok(()) => return,
                // The syncing thread is gone (it panicked): nothing can be promised on disk.
                Err(mpsc::SendError(Committed { finishes, failure })) => {
                    (finishes, Some(failure.unwrap_or_else(|| "the write-ahead log is no longer synced".to_owned())))
                }
            },
        };
        for finish in finishes {
            finish(failure.as_deref());
        }
    }
}

/// One caller's write, kept until its batch is over: it may have to run again.
trait Pending: Send {
    /// Runs the write in the batch's open transaction; in a savepoint of its own when
    /// `own_savepoint`, so that failing undoes only its changes. Returns whether it succeeded.
    fn run(&mut self, conn: &mut DbConn, own_savepoint: bool) -> bool;
    /// How to answer the caller once the batch is over: its last run's result, unless the
    /// batch as a whole failed (the answer's argument) after it succeeded.
    fn finish(self: Box<Self>) -> Finish;
}

struct Write<T, F> {
    f: F,
    span: tracing::Span,
    result: Option<Result<T, DbError>>,
    answer: tokio::sync::oneshot::Sender<Result<T, DbError>>,
}

impl<T, F> Pending for Write<T, F>
where
    T: Send + 'static,
    F: FnMut(&mut DbConn) -> Result<T, DbError> + Send + 'static,
{
    fn run(&mut self, conn: &mut DbConn, own_savepoint: bool) -> bool {
        let _entered = self.span.enter();
        let result = if own_savepoint { conn.write_transaction(&mut self.f) } else { (self.f)(conn) };
        let succeeded = result.is_ok();
        self.result = Some(result);
        succeeded
    }

    fn finish(self: Box<Self>) -> Finish {
        let Write { result, answer, .. } = *self;
        Box::new(move |failure: Option<&str>| {
            let result = match (failure, result) {
                (_, Some(Err(own))) => Err(own),
                (None, Some(Ok(value))) => Ok(value),
                (Some(why), _) => Err(DbError::Commit(why.to_owned())),
                (None, None) => Err(DbError::Commit("the write did not run".to_owned())),
            };
            let _ = answer.send(result);
        })
    }
}

fn stopped() -> DbError {
    DbError::Other(anyhow::anyhow!("the SQLite writer stopped"))
}

fn run(work: &mpsc::Receiver<Work>, open: &dyn Fn() -> Result<DbConn, DbError>, stats: &WriterStats, after: &After) {
    let mut conn: Option<DbConn> = None;
    while let Ok(first) = work.recv() {
        let c = match conn.take().map_or_else(open, Ok) {
            Ok(c) => conn.insert(c),
            Err(e) => {
                // Nothing can be written now; say so to everyone waiting, try again next time.
                let why = format!("{:#}", anyhow::Error::from(e));
                fail(first, &why);
                while let Ok(next) = work.try_recv() {
                    fail(next, &why);
                }
                continue;
            }
        };
        let started = Instant::now();
        let healthy = match first {
            Work::Alone(f) => {
                let healthy = std::panic::catch_unwind(AssertUnwindSafe(|| f(c))).is_ok();
                stats.record(1, started);
                healthy
            }
            Work::InBatch(piece) => batch(c, piece, work, stats, started, after),
        };
        if !healthy {
            // A panic or a broken transaction: start again from a fresh connection.
            conn = None;
        }
    }
}

/// Gives up on work that cannot run: dropping it drops its answer channel, which tells
/// its caller the write was not done.
fn fail(work: Work, why: &str) {
    drop(work);
    tracing::error!(error = why, "SQLite write not done: the database cannot be opened");
}

/// One transaction: `first` and whatever queues up meanwhile, counted in `stats` before any
/// caller hears back (so what a caller reads of them includes its own write). Returns whether
/// the connection is still good.
///
/// A savepoint per piece would let each fail alone, but SQLite then copies every page a
/// piece changes into its sub-journal first: a fifth of the writer's time at full load. So
/// pieces run in the transaction itself, and only when one fails is it rolled back and run
/// again from the start, the pieces before the failure each in a savepoint of its own (the one
/// that failed keeps its failure and is not run again), and so are those after it.
fn batch(
    c: &mut DbConn,
    first: Box<dyn Pending>,
    work: &mpsc::Receiver<Work>,
    stats: &WriterStats,
    started: Instant,
    after: &After,
) -> bool {
    if let Err(e) = begin(c) {
        tracing::error!(error = %e, "SQLite writer could not begin a transaction");
        stats.record(0, started);
        after.batch(vec![first.finish()], Some(e));
        return false;
    }
    let mut done: Vec<Box<dyn Pending>> = Vec::new();
    let mut next = Some(first);
    let mut deferred: Option<Work> = None;
    let mut own_savepoints = false;
    let mut failure: Option<String> = None;
    while let Some(mut piece) = next.take() {
        match std::panic::catch_unwind(AssertUnwindSafe(|| piece.run(c, own_savepoints))) {
            Ok(true) => {}
            Ok(false) if !own_savepoints => {
                own_savepoints = true;
                failure = again_in_savepoints(c, &mut done).err();
            }
            Ok(false) => {}
            // Its savepoint is in an unknown state: the whole batch is given up below.
            Err(_) => failure = Some("a write panicked".to_owned()),
        }
        done.push(piece);
        if failure.is_some() || done.len() >= MAX_BATCH {
            break;
        }
        match work.try_recv() {
            Ok(Work::InBatch(piece)) => next = Some(piece),
            Ok(alone) => deferred = Some(alone),
            Err(_) => {}
        }
        if deferred.is_some() {
            break;
        }
    }
    let outcome = match failure {
        Some(why) => Err(why),
        None => commit(c),
    };
    if outcome.is_err() {
        rollback(c);
    }
    stats.record(done.len() as u64, started);
    let healthy = outcome.is_ok();
    after.batch(done.into_iter().map(|piece| piece.finish()).collect(), outcome.err());
    if let Some(Work::Alone(f)) = deferred
        && healthy
    {
        let alone = Instant::now();
        let healthy = std::panic::catch_unwind(AssertUnwindSafe(|| f(c))).is_ok();
        stats.record(1, alone);
        return healthy;
    }
    healthy
}

/// A piece failed with its changes mixed into the others': the transaction starts over and
/// the pieces that had succeeded run again, each in a savepoint of its own.
fn again_in_savepoints(c: &mut DbConn, done: &mut [Box<dyn Pending>]) -> Result<(), String> {
    rollback(c);
    begin(c)?;
    for piece in done.iter_mut() {
        if std::panic::catch_unwind(AssertUnwindSafe(|| piece.run(c, true))).is_err() {
            return Err("a write panicked".to_owned());
        }
    }
    Ok(())
}

fn begin(c: &mut DbConn) -> Result<(), String> {
    let DbConn::Sqlite(sqlite) = c else { return Err("not SQLite".into()) };
    AnsiTransactionManager::begin_transaction_sql(sqlite, "BEGIN IMMEDIATE")
        .map_err(|e| format!("could not begin a transaction: {e}"))
}

fn commit(c: &mut DbConn) -> Result<(), String> {
    let DbConn::Sqlite(sqlite) = c else { return Err("not SQLite".into()) };
    <AnsiTransactionManager as TransactionManager<SqliteConnection>>::commit_transaction(sqlite)
        .map_err(|e| format!("the commit failed: {e}"))
}

fn rollback(c: &mut DbConn) {
    if let DbConn::Sqlite(sqlite) = c {
        let _ = <AnsiTransactionManager as TransactionManager<SqliteConnection>>::rollback_transaction(sqlite);
    }
}

#[cfg(test)]
mod tests {
    use diesel::connection::SimpleConnection;
    use diesel::prelude::*;

    use super::*;

    /// A writer whose first connection opens only when `gate` is released, so that the test
    /// can queue work first: all of it then meets in one batch.
    fn gated_writer(dir: &std::path::Path) -> (Writer, std::sync::mpsc::Sender<()>) {
        gated_writer_syncing(dir, None)
    }

    fn gated_writer_syncing(dir: &std::path::Path, wal: Option<PathBuf>) -> (Writer, std::sync::mpsc::Sender<()>) {
        let path = dir.join("w.db").display().to_string();
        let (gate, opened) = std::sync::mpsc::channel::<()>();
        let opened = std::sync::Mutex::new(opened);
        let writer = Writer::start(
            move || {
                let _ = opened.lock().map(|o| o.recv());
                let mut c = SqliteConnection::establish(&path).map_err(DbError::Connect)?;
                c.batch_execute(
                    "PRAGMA journal_mode = WAL; CREATE TABLE IF NOT EXISTS t (x INTEGER PRIMARY KEY, v TEXT UNIQUE);",
                )?;
                Ok(DbConn::Sqlite(c))
            },
            wal,
            None,
        )
        .unwrap();
        (writer, gate)
    }

    fn insert(x: i64, v: &str) -> impl FnMut(&mut DbConn) -> Result<i64, DbError> + Send + 'static {
        let v = v.to_owned();
        move |c: &mut DbConn| {
            diesel::sql_query(format!("INSERT INTO t (x, v) VALUES ({x}, '{v}')")).execute(c)?;
            Ok(x)
        }
    }

    fn rows(dir: &std::path::Path) -> Vec<i64> {
        #[derive(QueryableByName)]
        struct Row {
            #[diesel(sql_type = diesel::sql_types::BigInt)]
            x: i64,
        }
        let mut c = SqliteConnection::establish(&dir.join("w.db").display().to_string()).unwrap();
        diesel::sql_query("SELECT x FROM t ORDER BY x").load::<Row>(&mut c).unwrap().into_iter().map(|r| r.x).collect()
    }

    #[tokio::test]
    async fn writes_queued_together_share_one_commit_and_each_fails_alone() {
        let dir = tempfile::tempdir().unwrap();
        let (writer, gate) = gated_writer(dir.path());
        let mut answers = Vec::new();
        for x in 0..10 {
            let answer = match x {
                // Inserts, then fails: its row must go, the others' stay.
                4 => writer.submit(move |c: &mut DbConn| {
                    insert(4, "four")(c)?;
                    Err::<i64, _>(DbError::Other(anyhow::anyhow!("refused after writing")))
                }),
                // A constraint violation of the database itself.
                7 => writer.submit(insert(7, "v0")),
                _ => writer.submit(insert(x, &format!("v{x}"))),
            };
            answers.push(answer.unwrap());
        }
        gate.send(()).unwrap();
        let mut results = Vec::new();
        for answer in answers {
            results.push(answer.await.unwrap());
        }
        let failed: Vec<usize> = results.iter().enumerate().filter(|(_, r)| r.is_err()).map(|(i, _)| i).collect();
        assert_eq!(failed, [4, 7]);
        assert!(
            results[7].as_ref().unwrap_err().to_string().contains("UNIQUE constraint failed"),
            "the cause is named"
        );
        assert_eq!(rows(dir.path()), [0, 1, 2, 3, 5, 6, 8, 9], "committed when answered, failures rolled back alone");
        let stats = writer.stats();
        assert_eq!((stats.batches.load(Ordering::Relaxed), stats.writes.load(Ordering::Relaxed)), (1, 10));
    }

    /// Without a savepoint per write, a failure rolls the batch back: the writes before it run
    /// again, each in a savepoint, the failed one keeps its failure, and only the changes of
    /// each write's last run are kept.
    #[tokio::test]
    async fn after_a_failure_the_writes_before_it_run_again_and_the_failed_one_does_not() {
        use std::sync::atomic::AtomicUsize;
        let dir = tempfile::tempdir().unwrap();
        let (writer, gate) = gated_writer(dir.path());
        let runs: Vec<Arc<AtomicUsize>> = (0..6).map(|_| Arc::new(AtomicUsize::new(0))).collect();
        let mut answers = Vec::new();
        for (x, counted) in runs.iter().enumerate() {
            let (x, counted) = (x as i64, counted.clone());
            let mut write = insert(x, &format!("v{x}"));
            answers.push(
                writer
                    .submit(move |c: &mut DbConn| {
                        counted.fetch_add(1, Ordering::Relaxed);
                        let inserted = write(c)?;
                        // The third writes its row, then fails: nothing of it may stay.
                        if x == 2 {
                            Err(DbError::Other(anyhow::anyhow!("refused after writing")))
                        } else {
                            Ok(inserted)
                        }
                    })
                    .unwrap(),
            );
        }
        gate.send(()).unwrap();
        let mut results = Vec::new();
        for answer in answers {
            results.push(answer.await.unwrap().map_err(|e| e.to_string()));
        }
        assert_eq!(results, [Ok(0), Ok(1), Err("refused after writing".to_owned()), Ok(3), Ok(4), Ok(5)]);
        let counts: Vec<usize> = runs.iter().map(|r| r.load(Ordering::Relaxed)).collect();
        assert_eq!(counts, [2, 2, 1, 1, 1, 1], "those before the failure ran again, the failed one did not");
        assert_eq!(rows(dir.path()), [0, 1, 3, 4, 5]);
        let stats = writer.stats();
        assert_eq!((stats.batches.load(Ordering::Relaxed), stats.writes.load(Ordering::Relaxed)), (1, 6));
    }

    #[tokio::test]
    async fn with_the_log_synced_beside_it_writes_are_answered_after_the_sync() {
        let dir = tempfile::tempdir().unwrap();
        let wal = super::wal_sync::wal_path(&dir.path().join("w.db"));
        let (writer, gate) = gated_writer_syncing(dir.path(), Some(wal));
        let answers: Vec<_> = (0..4).map(|x| writer.submit(insert(x, &format!("v{x}"))).unwrap()).collect();
        let refused = writer.submit(insert(9, "v0")).unwrap();
        gate.send(()).unwrap();
        for (x, answer) in answers.into_iter().enumerate() {
            assert_eq!(answer.await.unwrap().unwrap(), x as i64);
        }
        assert!(refused.await.unwrap().is_err(), "a write's own failure still reaches its caller");
        let stats = writer.stats();
        assert_eq!(stats.batches.load(Ordering::Relaxed), 1);
        assert_eq!(stats.syncs.load(Ordering::Relaxed), 1, "one sync answered the batch");
        assert_eq!(rows(dir.path()), [0, 1, 2, 3]);
    }

    #[tokio::test]
    async fn a_panicking_write_fails_its_batch_and_the_writer_goes_on() {
        let dir = tempfile::tempdir().unwrap();
        let (writer, gate) = gated_writer(dir.path());
        let before = writer.submit(insert(1, "a")).unwrap();
        let panicking =
            writer.submit(|_: &mut DbConn| -> Result<(), DbError> { panic!("a bug in one write") }).unwrap();
        gate.send(()).unwrap();
        // Opening again after the panic must not wait for the gate.
        drop(gate);
        assert!(matches!(before.await.unwrap(), Err(DbError::Commit(_))), "its batch was rolled back");
        assert!(
            matches!(panicking.await, Ok(Err(DbError::Commit(why))) if why.contains("panicked")),
            "the panicking caller hears why"
        );
        assert_eq!(writer.write(insert(2, "b")).await.unwrap(), 2, "a fresh connection takes the next write");
        assert_eq!(rows(dir.path()), [2]);
    }
}
