//! The one context every background job runs with (crates.io's `Environment`). The job
//! kinds live with their domains (inbound delivery and receipts, outbound relay, handover
//! import, proactive start); `startup` registers them.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};

use crate::config::Settings;
use crate::db::Db;
use crate::directory::{ActiveApp, Directory};
use crate::infobip::rate::SenderLimiter;
use crate::media_links::MediaLinks;
use crate::metrics::Metrics;
use crate::worker::JobFailure;

/// What every job runs with.
#[derive(Clone)]
pub struct JobContext {
    pub db: Db,
    pub directory: Directory,
    pub salesforce: crate::salesforce::Client,
    pub infobip: crate::infobip::Client,
    pub metrics: Arc<Metrics>,
    /// Signed links through which Infobip fetches the files agents send.
    pub media: MediaLinks,
    /// Paces sends per WhatsApp number.
    pub limiter: SenderLimiter,
    pub settings: Arc<Settings>,
    /// Apps whose org refused the `conversationHistory` API: later handovers of theirs go
    /// straight to entries.
    pub history_refused: Arc<Mutex<HashSet<String>>>,
}

impl JobContext {
    /// How long a delivered message's body is kept.
    pub fn body_retention(&self) -> chrono::Duration {
        let hours = i64::try_from(self.settings.retention.message_body_hours).unwrap_or(i64::MAX / 3600);
        chrono::Duration::try_hours(hours).unwrap_or(chrono::Duration::MAX)
    }

    /// When a body delivered now may be purged.
    pub fn purge_after_delivery(&self) -> chrono::NaiveDateTime {
        crate::db::now().checked_add_signed(self.body_retention()).unwrap_or(chrono::NaiveDateTime::MAX)
    }

    /// The active app a job belongs to; a job of an app that was switched off waits as a
    /// dead letter until the app is active again and the job retried.
    pub async fn active_app(&self, app_id: &str) -> Result<Arc<ActiveApp>, JobFailure> {
        let snapshot = self.directory.snapshot().await?;
        snapshot.by_id_or_name(app_id).ok_or_else(|| {
            JobFailure::permanent(format!("app {app_id} is not active; activate it, then retry this job"))
        })
    }
}
