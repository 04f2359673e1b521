//! Periodic housekeeping: retention of message bodies and records.

use std::time::Duration;

use chrono::NaiveDateTime;
use tokio_util::sync::CancellationToken;

use crate::config::RetentionSettings;
use crate::db::messages::{self, PurgeReport};
use crate::db::{Db, DbError};

/// One purge pass as if the clock read `now`.
pub async fn purge(db: &Db, retention: &RetentionSettings, now: NaiveDateTime) -> Result<PurgeReport, DbError> {
    let days = i64::try_from(retention.message_record_days).unwrap_or(i64::MAX / 86_400_000);
    let records_before = now - chrono::Duration::days(days);
    db.write(move |conn| messages::purge_expired(conn, now, records_before)).await
}

/// Purges on the configured interval until cancelled.
pub async fn run(db: Db, retention: RetentionSettings, cancel: CancellationToken) {
    let interval = Duration::from_secs(retention.purge_interval_secs);
    loop {
        match purge(&db, &retention, crate::db::now()).await {
            Ok(r) if r != PurgeReport::default() => {
                tracing::info!(
                    bodies_cleared = r.bodies_cleared,
                    records_deleted = r.records_deleted,
                    attempts_deleted = r.attempts_deleted,
                    "retention purge"
                );
            }
            Ok(_) => {}
            Err(e) => tracing::warn!(error.cause_chain = ?anyhow::Error::from(e), "retention purge failed"),
        }
        tokio::select! {
            () = cancel.cancelled() => return,
            () = tokio::time::sleep(interval) => {}
        }
    }
}
