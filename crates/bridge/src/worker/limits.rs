//! Watching the org limits a connector can run out of: each active app's `/limits` is read on
//! a schedule (`salesforce.limits_check_secs`), kept as metrics, and a warning is logged while
//! less than a tenth of a limit is left, before the org runs out and messages stop.

use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::directory::Directory;
use crate::metrics::Metrics;
use crate::salesforce::rest::OrgLimit;

/// One reading of every active app's limits: (app name, its limits); an app whose limits
/// cannot be read is logged and left out.
pub async fn check_once(
    directory: &Directory,
    salesforce: &crate::salesforce::Client,
    metrics: &Metrics,
) -> Vec<(String, Vec<OrgLimit>)> {
    let snapshot = match directory.snapshot().await {
        Ok(s) => s,
        Err(e) => {
            tracing::warn!(error = %e, "org limits not read: the apps cannot be loaded");
            return Vec::new();
        }
    };
    let mut read = Vec::new();
    for app in &snapshot.apps {
        match salesforce.org_limits(&app.salesforce).await {
            Ok(limits) => {
                for limit in &limits {
                    metrics.org_limit(&app.name, limit);
                    if limit.low() {
                        tracing::warn!(
                            app.id = %app.id,
                            limit = limit.name,
                            remaining = limit.remaining,
                            max = limit.max,
                            "the org is running out of {} for today",
                            limit.words()
                        );
                    }
                }
                read.push((app.name.clone(), limits));
            }
            Err(e) => tracing::info!(app.id = %app.id, error = %e, "org limits not read"),
        }
    }
    read
}

/// Reads the limits every `interval` until cancelled.
pub async fn run(
    directory: Directory,
    salesforce: crate::salesforce::Client,
    metrics: Arc<Metrics>,
    interval: Duration,
    cancel: CancellationToken,
) {
    loop {
        check_once(&directory, &salesforce, &metrics).await;
        tokio::select! {
            () = cancel.cancelled() => return,
            () = tokio::time::sleep(interval) => {}
        }
    }
}
