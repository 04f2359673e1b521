//! Storage: one diesel code path over SQLite (default) and PostgreSQL.
//!
//! `DbConn` is a diesel `MultiConnection`, so transactions and plain queries are written
//! once. Queries that need dialect features diesel's multi-backend lacks (`RETURNING`,
//! `ON CONFLICT`, row locks) go through [`dispatch!`], which runs the same body against the
//! concrete connection of each backend. All database work runs on the blocking thread pool
//! (`Db::run`), never on the async workers.

pub mod apps;
pub mod attempts;
pub mod audit;
pub mod checkpoint;
pub mod conversations;
pub mod cursors;
pub mod handovers;
pub mod jobs;
pub mod messages;
pub mod migrations;
pub mod prepared;
pub mod schema;
pub mod states;
pub mod trace;
pub mod wal_sync;
pub mod web;
pub mod writer;

pub use states::{
    AppStatus, AttemptOutcome, Direction, GrantKind, HandoverStatus, ImportMethod, JobState, MessageStatus, OrgType,
    ProactiveStatus, Role,
};

use std::path::Path;
use std::time::Duration;

use diesel::connection::{AnsiTransactionManager, SimpleConnection, TransactionManager};
use diesel::pg::PgConnection;
use diesel::r2d2::R2D2Connection;
use diesel::sqlite::SqliteConnection;
use diesel::{Connection, ConnectionError};

use crate::config::{DatabaseLocation, Settings, SqliteSynchronous};

#[derive(diesel::MultiConnection)]
pub enum DbConn {
    Sqlite(SqliteConnection),
    Postgres(PgConnection),
}

/// Runs `$body` with `$c` bound to the concrete connection of whichever backend is in use.
/// The body is compiled once per backend, so it may use each dialect's full diesel DSL.
#[macro_export]
macro_rules! dispatch {
    ($conn:expr, |$c:ident| $body:expr) => {
        match $conn {
            $crate::db::DbConn::Sqlite($c) => $body,
            $crate::db::DbConn::Postgres($c) => $body,
        }
    };
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

impl std::fmt::Display for Backend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Backend::Sqlite => "sqlite",
            Backend::Postgres => "postgres",
        })
    }
}

#[derive(Debug, thiserror::Error)]
pub enum DbError {
    /// The database's own words are in the message itself (not only a `source`), so every log
    /// line and every job error that shows this error says what the database refused.
    #[error("database query failed: {0}")]
    Query(diesel::result::Error),
    #[error("database write not committed: {0}")]
    Commit(String),
    #[error("no database connection available")]
    Pool(#[from] r2d2::Error),
    #[error("could not open the database")]
    Connect(#[source] ConnectionError),
    #[error("database migration failed: {0}")]
    Migration(String),
    #[error("database task was cancelled or panicked")]
    Task(#[from] tokio::task::JoinError),
    #[error("cannot write a job's payload")]
    Payload(#[from] serde_json::Error),
    #[error("{0}")]
    Other(#[from] anyhow::Error),
}

impl From<diesel::result::Error> for DbError {
    fn from(e: diesel::result::Error) -> Self {
        DbError::Query(e)
    }
}

impl DbConn {
    pub fn backend(&self) -> Backend {
        match self {
            DbConn::Sqlite(_) => Backend::Sqlite,
            DbConn::Postgres(_) => Backend::Postgres,
        }
    }

    /// A transaction for work that writes. On SQLite it starts with `BEGIN IMMEDIATE`, taking
    /// the write lock up front: a deferred transaction that reads and then writes can fail
    /// with `SQLITE_BUSY` instead of waiting when another writer got there first.
    pub fn write_transaction<T, E, F>(&mut self, f: F) -> Result<T, E>
    where
        F: FnOnce(&mut DbConn) -> Result<T, E>,
        E: From<diesel::result::Error>,
    {
        type Multi = <DbConn as Connection>::TransactionManager;
        let started = match self {
            DbConn::Sqlite(c) => match AnsiTransactionManager::begin_transaction_sql(c, "BEGIN IMMEDIATE") {
                Ok(()) => true,
                // Nested inside a caller's transaction: the lock is already held; use a savepoint.
                Err(diesel::result::Error::AlreadyInTransaction) => false,
                Err(e) => return Err(e.into()),
            },
            DbConn::Postgres(_) => false,
        };
        if !started {
            Multi::begin_transaction(self)?;
        }
        match f(self) {
            Ok(value) => {
                Multi::commit_transaction(self)?;
                Ok(value)
            }
            Err(user_error) => match Multi::rollback_transaction(self) {
                Ok(()) | Err(diesel::result::Error::BrokenTransactionManager) => Err(user_error),
                Err(rollback_error) => Err(rollback_error.into()),
            },
        }
    }
}

/// Opens connections of the configured backend and applies per-connection settings.
#[derive(Debug, Clone)]
pub struct ConnectionManager {
    location: DatabaseLocation,
    sqlite_busy_timeout_ms: u64,
    sqlite_synchronous: SqliteSynchronous,
    /// SQLite's pooled connections only read: every write goes through the one writer, and a
    /// write that strays onto a reader fails loudly instead of waiting for the lock.
    sqlite_read_only: bool,
}

impl r2d2::ManageConnection for ConnectionManager {
    type Connection = DbConn;
    type Error = ConnectionError;

    fn connect(&self) -> Result<DbConn, ConnectionError> {
        match &self.location {
            DatabaseLocation::Sqlite(path) => {
                let path = path
                    .to_str()
                    .ok_or_else(|| ConnectionError::InvalidConnectionUrl("SQLite path is not valid UTF-8".into()))?;
                let mut conn = SqliteConnection::establish(path)?;
                conn.batch_execute(&format!(
                    "PRAGMA busy_timeout = {}; PRAGMA journal_mode = WAL; \
                     PRAGMA synchronous = {}; PRAGMA foreign_keys = ON; PRAGMA query_only = {};",
                    self.sqlite_busy_timeout_ms,
                    self.sqlite_synchronous.pragma(),
                    self.sqlite_read_only,
                ))
                .map_err(ConnectionError::CouldntSetupConfiguration)?;
                Ok(DbConn::Sqlite(conn))
            }
            DatabaseLocation::Postgres(url) => {
                let mut conn = PgConnection::establish(&crate::config::postgres_connect_url(url))?;
                // Timestamps are stored as UTC without zone; make the session agree.
                conn.batch_execute("SET TIME ZONE 'UTC'").map_err(ConnectionError::CouldntSetupConfiguration)?;
                Ok(DbConn::Postgres(conn))
            }
        }
    }

    fn is_valid(&self, conn: &mut DbConn) -> Result<(), ConnectionError> {
        conn.ping().map(|_| ()).map_err(ConnectionError::CouldntSetupConfiguration)
    }

    fn has_broken(&self, conn: &mut DbConn) -> bool {
        conn.is_broken()
    }
}

/// The connection pool. Cheap to clone.
#[derive(Clone)]
pub struct Db {
    pool: r2d2::Pool<ConnectionManager>,
    backend: Backend,
    /// SQLite's one writer; PostgreSQL writes through the pool.
    writer: Option<writer::Writer>,
}

impl std::fmt::Debug for Db {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Db").field("backend", &self.backend).finish_non_exhaustive()
    }
}

impl Db {
    /// Builds the pool without opening a connection yet (a down database must not stop
    /// `/healthz` from answering); callers that need the database check it with `ping`.
    pub fn new(settings: &Settings) -> Result<Self, DbError> {
        let location = settings.database_location().map_err(|e| DbError::Other(e.into()))?;
        let manager = ConnectionManager {
            location,
            sqlite_busy_timeout_ms: settings.database.sqlite_busy_timeout_ms,
            sqlite_synchronous: settings.database.sqlite_synchronous,
            sqlite_read_only: true,
        };
        Self::with_manager(manager, settings.database_pool_size(), settings.acquire_timeout())
    }

    fn with_manager(
        manager: ConnectionManager,
        max_connections: u32,
        acquire_timeout: Duration,
    ) -> Result<Self, DbError> {
        let (backend, writer) = match &manager.location {
            DatabaseLocation::Sqlite(path) => {
                create_parent_dir(path)?;
                // FULL is kept by syncing the log beside the writer, not inside each commit.
                let sync_wal =
                    (manager.sqlite_synchronous == SqliteSynchronous::Full).then(|| wal_sync::wal_path(path));
                let writes = ConnectionManager {
                    sqlite_read_only: false,
                    sqlite_synchronous: if sync_wal.is_some() {
                        SqliteSynchronous::Normal
                    } else {
                        manager.sqlite_synchronous
                    },
                    ..manager.clone()
                };
                let logged = sync_wal.is_some();
                let checkpoints = writes.clone();
                let open = move || {
                    let mut conn = r2d2::ManageConnection::connect(&writes).map_err(DbError::Connect)?;
                    if logged {
                        require_wal(&mut conn)?;
                    }
                    // Only a backstop: the checkpointing thread copies the log back first.
                    conn.batch_execute(&format!(
                        "PRAGMA wal_autocheckpoint = {}",
                        checkpoint::WRITER_CHECKPOINT_PAGES
                    ))?;
                    Ok(conn)
                };
                let checkpointing: checkpoint::Opener = Box::new(move || {
                    let mut conn = r2d2::ManageConnection::connect(&checkpoints).map_err(DbError::Connect)?;
                    conn.batch_execute("PRAGMA wal_autocheckpoint = 0")?;
                    Ok(conn)
                });
                (Backend::Sqlite, Some(writer::Writer::start(open, sync_wal, Some(checkpointing))?))
            }
            DatabaseLocation::Postgres(_) => (Backend::Postgres, None),
        };
        let pool = r2d2::Pool::builder()
            .max_size(max_connections)
            .min_idle(Some(0))
            .connection_timeout(acquire_timeout)
            .test_on_check_out(false)
            .build_unchecked(manager);
        Ok(Self { pool, backend, writer })
    }

    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// What SQLite's writer has done (none on PostgreSQL).
    pub fn writer_stats(&self) -> Option<&writer::WriterStats> {
        self.writer.as_ref().map(writer::Writer::stats)
    }

    /// Runs `f` with a pooled connection on the blocking thread pool, keeping the caller's span.
    pub async fn run<T, F>(&self, f: F) -> Result<T, DbError>
    where
        T: Send + 'static,
        F: FnOnce(&mut DbConn) -> Result<T, DbError> + Send + 'static,
    {
        let pool = self.pool.clone();
        let span = tracing::Span::current();
        tokio::task::spawn_blocking(move || {
            let _entered = span.enter();
            let mut conn = pool.get()?;
            f(&mut conn)
        })
        .await?
    }

    /// Runs `f` in a write transaction; returns once it is committed. On SQLite, writes that
    /// arrive together share one commit ([`writer`]); each still succeeds or fails alone, and
    /// `f` may run twice for that (only its last run's changes are kept), so it must not act
    /// outside the database.
    pub async fn write<T, F>(&self, f: F) -> Result<T, DbError>
    where
        T: Send + 'static,
        F: FnMut(&mut DbConn) -> Result<T, DbError> + Send + 'static,
    {
        match &self.writer {
            Some(writer) => writer.write(f).await,
            None => self.run(move |conn| conn.write_transaction(f)).await,
        }
    }

    /// Runs `f` on a connection that may write, outside any transaction and, on SQLite, with
    /// no other write running (migrations, which manage their own transactions).
    pub async fn exclusive<T, F>(&self, f: F) -> Result<T, DbError>
    where
        T: Send + 'static,
        F: FnOnce(&mut DbConn) -> Result<T, DbError> + Send + 'static,
    {
        match &self.writer {
            Some(writer) => writer.alone(f).await,
            None => self.run(f).await,
        }
    }

    /// Checks that a connection can be had and answers.
    pub async fn ping(&self) -> Result<(), DbError> {
        self.run(|conn| {
            conn.ping()?;
            Ok(())
        })
        .await
    }
}

/// Syncing the log file beside the writer is only `FULL` while there is a log: a database
/// SQLite could not switch to WAL (a file system without shared memory) is refused, where it
/// would otherwise commit unsynced.
fn require_wal(conn: &mut DbConn) -> Result<(), DbError> {
    use diesel::RunQueryDsl;
    #[derive(diesel::QueryableByName)]
    struct Mode {
        #[diesel(sql_type = diesel::sql_types::Text)]
        journal_mode: String,
    }
    let mode: Vec<Mode> = diesel::sql_query("PRAGMA journal_mode").load(conn)?;
    match mode.first().map(|m| m.journal_mode.to_ascii_lowercase()) {
        Some(mode) if mode == "wal" => Ok(()),
        other => Err(DbError::Other(anyhow::anyhow!(
            "SQLite could not use its write-ahead log (journal mode {}): put the database on a local file system",
            other.unwrap_or_default()
        ))),
    }
}

fn create_parent_dir(path: &Path) -> Result<(), DbError> {
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent)
            .map_err(|e| DbError::Other(anyhow::anyhow!("could not create directory {}: {e}", parent.display())))?;
    }
    Ok(())
}

/// Current UTC time as stored in `TIMESTAMP` columns, truncated to microseconds so that a
/// value read back from PostgreSQL equals the value written.
pub fn now() -> chrono::NaiveDateTime {
    use chrono::{SubsecRound, Utc};
    Utc::now().naive_utc().trunc_subsecs(6)
}
