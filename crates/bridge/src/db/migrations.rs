//! Embedded migrations, one folder per backend with matching names.

use diesel_migrations::{EmbeddedMigrations, MigrationHarness, embed_migrations};

use super::{Db, DbConn, DbError};

const SQLITE: EmbeddedMigrations = embed_migrations!("migrations/sqlite");
const POSTGRES: EmbeddedMigrations = embed_migrations!("migrations/postgres");

fn source(conn: &DbConn) -> EmbeddedMigrations {
    match conn {
        DbConn::Sqlite(_) => SQLITE,
        DbConn::Postgres(_) => POSTGRES,
    }
}

fn err(e: impl std::fmt::Display) -> DbError {
    DbError::Migration(e.to_string())
}

/// Applies pending migrations; returns the versions applied now.
pub async fn run_pending(db: &Db) -> Result<Vec<String>, DbError> {
    db.exclusive(|conn| {
        let migrations = source(conn);
        let applied = crate::dispatch!(conn, |c| c
            .run_pending_migrations(migrations)
            .map_err(err)?
            .into_iter()
            .map(|v| v.to_string())
            .collect());
        Ok(applied)
    })
    .await
}

/// Versions embedded in this binary that the database has not applied yet.
pub async fn pending(db: &Db) -> Result<Vec<String>, DbError> {
    db.exclusive(|conn| {
        let migrations = source(conn);
        let pending = crate::dispatch!(conn, |c| c
            .pending_migrations(migrations)
            .map_err(err)?
            .iter()
            .map(|m| m.name().version().to_string())
            .collect());
        Ok(pending)
    })
    .await
}

/// Reverts every migration (tests use it to check that `down.sql` really undoes `up.sql`).
pub async fn revert_all(db: &Db) -> Result<usize, DbError> {
    db.exclusive(|conn| {
        let migrations = source(conn);
        let reverted = crate::dispatch!(conn, |c| c.revert_all_migrations(migrations).map_err(err)?.len());
        Ok(reverted)
    })
    .await
}
