//! Writing SQLite's write-ahead log to disk beside the writer, not inside its commits.
//!
//! With `synchronous = FULL` every commit waits for its `fsync`, and the writer can do nothing
//! else meanwhile: on the benchmark's disk that is about a third of its time. Here the writer
//! commits with `synchronous = NORMAL` (SQLite then syncs only around checkpoints, and when
//! the log starts over) and hands the batch's answers to this thread, which syncs the log file
//! and only then answers. Batches committed while a sync runs share the next one. A caller
//! still hears back only once its rows are on disk, exactly as with `FULL`, while the writer
//! already runs the next batch.
//!
//! What readers may see: a pooled reader can read rows committed but not yet synced. Nothing
//! acts on them outside the bridge before they are durable: jobs run only after their claim
//! (a write) was answered, and that answer waits for a sync covering every earlier commit.

use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// What a writer's caller hears once its batch is over: the failure, if there was one.
pub(super) type Finish = Box<dyn FnOnce(Option<&str>) + Send>;

/// One committed (or failed) batch waiting for the disk: its answers and the commit's failure.
pub(super) struct Committed {
    pub finishes: Vec<Finish>,
    pub failure: Option<String>,
}

/// The path of a database's write-ahead log.
pub fn wal_path(database: &Path) -> PathBuf {
    let mut name = database.as_os_str().to_owned();
    name.push("-wal");
    PathBuf::from(name)
}

/// Starts the thread that syncs `wal` and answers the batches sent to it, in order; `synced`
/// is told how long each sync took.
pub(super) fn start(
    wal: PathBuf,
    synced: impl Fn(Duration) + Send + 'static,
) -> std::io::Result<mpsc::Sender<Committed>> {
    let (send, committed) = mpsc::channel::<Committed>();
    std::thread::Builder::new().name("sqlite-wal-sync".into()).spawn(move || run(&committed, &wal, &synced))?;
    Ok(send)
}

fn run(committed: &mpsc::Receiver<Committed>, wal: &Path, synced: &dyn Fn(Duration)) {
    while let Ok(first) = committed.recv() {
        let mut batches = vec![first];
        batches.extend(committed.try_iter());
        // A failed batch was rolled back: it has nothing to write down.
        let outcome = if batches.iter().any(|b| b.failure.is_none()) {
            let started = Instant::now();
            let outcome = sync(wal);
            synced(started.elapsed());
            outcome
        } else {
            Ok(())
        };
        let not_on_disk = outcome.err().map(|e| {
            tracing::error!(error = %e, "SQLite's write-ahead log could not be written to disk");
            format!("the commit could not be written to disk: {e}")
        });
        for batch in batches {
            let why = batch.failure.as_deref().or(not_on_disk.as_deref());
            for finish in batch.finishes {
                finish(why);
            }
        }
    }
}

/// Opened afresh each time: SQLite may delete the log and start a new file (when its last
/// connection closes), and a kept descriptor would then sync a file nobody reads.
fn sync(wal: &Path) -> std::io::Result<()> {
    std::fs::File::open(wal)?.sync_data()
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicU64, Ordering};

    use super::*;

    fn counted() -> (Arc<AtomicU64>, impl Fn(Duration) + Send + 'static) {
        let syncs = Arc::new(AtomicU64::new(0));
        let count = syncs.clone();
        (syncs, move |_| {
            count.fetch_add(1, Ordering::Relaxed);
        })
    }

    #[test]
    fn the_log_sits_beside_the_database() {
        assert_eq!(wal_path(Path::new("data/byoc-bridge.db")), PathBuf::from("data/byoc-bridge.db-wal"));
    }

    #[test]
    fn a_log_that_cannot_be_synced_fails_every_batch_waiting_for_it() {
        let dir = tempfile::tempdir().unwrap();
        let (_, synced) = counted();
        let send = start(dir.path().join("missing.db-wal"), synced).unwrap();
        let (tx, rx) = mpsc::channel();
        let answer = |tx: mpsc::Sender<Option<String>>| -> Finish {
            Box::new(move |why| tx.send(why.map(str::to_owned)).unwrap())
        };
        send.send(Committed { finishes: vec![answer(tx.clone()), answer(tx.clone())], failure: None }).unwrap();
        send.send(Committed { finishes: vec![answer(tx)], failure: Some("the commit failed: busy".into()) }).unwrap();
        let heard: Vec<Option<String>> = rx.iter().take(3).collect();
        assert!(
            heard[0].as_deref().is_some_and(|w| w.starts_with("the commit could not be written to disk")),
            "{heard:?}"
        );
        assert_eq!(heard[0], heard[1]);
        assert_eq!(heard[2].as_deref(), Some("the commit failed: busy"), "a batch's own failure is kept");
    }

    #[test]
    fn batches_are_answered_after_a_sync_in_the_order_they_committed() {
        let dir = tempfile::tempdir().unwrap();
        let wal = dir.path().join("w.db-wal");
        std::fs::write(&wal, b"frames").unwrap();
        let (syncs, synced) = counted();
        let send = start(wal, synced).unwrap();
        let (tx, rx) = mpsc::channel();
        for n in 0..5 {
            let tx = tx.clone();
            let finish: Finish = Box::new(move |why| tx.send((n, why.map(str::to_owned))).unwrap());
            send.send(Committed { finishes: vec![finish], failure: None }).unwrap();
        }
        let heard: Vec<(i32, Option<String>)> = rx.iter().take(5).collect();
        assert_eq!(heard, (0..5).map(|n| (n, None)).collect::<Vec<_>>());
        let syncs = syncs.load(Ordering::Relaxed);
        assert!((1..=5).contains(&syncs), "batches waiting together share a sync: {syncs}");
    }
}
