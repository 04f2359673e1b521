//! Checkpoints of SQLite's write-ahead log beside the writer, not inside its commits.
//!
//! A checkpoint copies the pages committed to the log back into the database file and syncs
//! it. SQLite runs one inside the commit that takes the log past `wal_autocheckpoint` pages,
//! so the writer did it itself: a seventh of its time at full load, with nothing else
//! written meanwhile. Here a thread of its own, on a connection of its own, runs a passive
//! checkpoint (it never blocks a writer or a reader) after commits, at most every
//! [`CHECKPOINT_EVERY`], while the writer goes on appending to the log.
//!
//! The log can start over only once every frame in it is copied back, and under a steady
//! stream of commits a passive checkpoint seldom finishes between two of them. So the writer
//! keeps SQLite's own checkpoint at [`WRITER_CHECKPOINT_PAGES`], a backstop: by then this
//! thread has copied nearly all of the log, the writer copies the last frames and the log
//! starts over, and the log stays within a few megabytes.
//!
//! What it changes on disk: nothing a crash can see. A checkpoint syncs the log before it
//! copies and the database after, whichever connection runs it.

use std::sync::mpsc;
use std::time::{Duration, Instant};

use diesel::connection::SimpleConnection;

use super::{DbConn, DbError};

/// How often, at most, the thread checkpoints: each one covers the commits since the last.
pub const CHECKPOINT_EVERY: Duration = Duration::from_millis(50);

/// The writer's own `wal_autocheckpoint` (pages of the log; SQLite's default is 1,000).
pub const WRITER_CHECKPOINT_PAGES: u32 = 4_000;

/// Opens the checkpointing connection (again after a failure).
pub(super) type Opener = Box<dyn Fn() -> Result<DbConn, DbError> + Send>;

/// Starts the checkpointing thread. The writer tells it of each commit through the returned
/// sender, without waiting; the thread ends when the writer drops it.
pub(super) fn start(open: Opener) -> std::io::Result<mpsc::SyncSender<()>> {
    let (commits, committed) = mpsc::sync_channel::<()>(1);
    std::thread::Builder::new().name("sqlite-checkpoint".into()).spawn(move || run(&committed, &open))?;
    Ok(commits)
}

fn run(committed: &mpsc::Receiver<()>, open: &Opener) {
    let mut conn: Option<DbConn> = None;
    while committed.recv().is_ok() {
        let started = Instant::now();
        match conn.take().map_or_else(open, Ok) {
            Ok(mut c) => match c.batch_execute("PRAGMA wal_checkpoint(PASSIVE)") {
                Ok(()) => conn = Some(c),
                // The writer's own checkpoint still keeps the log in bounds.
                Err(e) => tracing::warn!(error = %e, "could not checkpoint SQLite's write-ahead log"),
            },
            Err(e) => {
                tracing::warn!(error.cause_chain = ?anyhow::Error::from(e), "could not open SQLite to checkpoint");
            }
        }
        std::thread::sleep(CHECKPOINT_EVERY.saturating_sub(started.elapsed()));
    }
}

#[cfg(test)]
mod tests {
    use diesel::connection::SimpleConnection;
    use diesel::prelude::*;
    use diesel::sqlite::SqliteConnection;

    use super::*;

    fn open(path: &str) -> SqliteConnection {
        let mut c = SqliteConnection::establish(path).unwrap();
        c.batch_execute("PRAGMA journal_mode = WAL; PRAGMA wal_autocheckpoint = 0;").unwrap();
        c
    }

    #[test]
    fn after_a_commit_the_thread_copies_the_log_back_and_ends_with_its_sender() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("c.db");
        let path = db.display().to_string();
        let mut writer = open(&path);
        writer.batch_execute("CREATE TABLE t (x INTEGER PRIMARY KEY, v TEXT);").unwrap();
        for i in 0..200 {
            writer.batch_execute(&format!("INSERT INTO t (v) VALUES ('{}')", "x".repeat(i * 10))).unwrap();
        }
        let size = || std::fs::metadata(&db).unwrap().len();
        assert!(size() < 10_000, "the rows are only in the log so far");
        let (ended, end) = mpsc::channel::<()>();
        let commits = start(Box::new(move || {
            let _kept_until_the_thread_ends = &ended;
            Ok(DbConn::Sqlite(open(&path)))
        }))
        .unwrap();
        commits.send(()).unwrap();
        drop(commits);
        // It checkpoints for the commit it heard of, then finds its sender gone and ends,
        // dropping its opener and with it `ended`.
        assert_eq!(end.recv_timeout(Duration::from_secs(30)), Err(mpsc::RecvTimeoutError::Disconnected));
        assert!(size() > 150_000, "the log was copied into the database: {} bytes", size());
    }
}
