//! Prometheus metrics, owned by the application (not a global), so each test app has its own.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct HttpLabels {
    pub method: String,
    /// The matched route pattern (`/api/…/{app}`), never the raw path: bounded cardinality.
    pub route: String,
    pub status: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct JobOutcomeLabels {
    pub kind: String,
    /// `completed`, `retried`, `dead`, `released`.
    pub outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct KindLabels {
    pub kind: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct StateLabels {
    pub state: &'static str,
}

type HistogramFamily<L> = Family<L, Histogram, fn() -> Histogram>;

fn latency_histogram() -> Histogram {
    // 0.5 ms … ~16 s.
    Histogram::new(exponential_buckets(0.0005, 2.0, 16))
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OutcomeLabels {
    /// The app's name.
    pub app: String,
    /// `received`, `duplicate`, `delivered`, `failed`.
    pub outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct AppLabels {
    pub app: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct VendorLabels {
    /// `salesforce` or `infobip`.
    pub vendor: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct LimitLabels {
    pub app: String,
    pub limit: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct SubscriptionLabels {
    pub app: String,
    /// `/event/WhatsApp_Outbound__e`, …
    pub topic: String,
}

pub struct Metrics {
    registry: Registry,
    pub inbound_messages: Family<OutcomeLabels, Counter>,
    /// Agent entries by outcome: `sent`, `typing`, `failed`, `duplicate`, `ignored`.
    pub outbound_entries: Family<OutcomeLabels, Counter>,
    /// Pub/Sub replay positions that had expired: events between were not seen.
    pub pubsub_replay_gaps: Family<AppLabels, Counter>,
    /// 1 while this process reads the app's topic; 0 while it reconnects or another replica
    /// holds the subscription (`max` over replicas is the cluster's view).
    pubsub_subscription_up: Family<SubscriptionLabels, Gauge>,
    /// Token requests Salesforce refused (or that failed), per app.
    salesforce_token_failures: Family<AppLabels, Counter>,
    /// 1 if the app's last token request was granted, 0 if it failed.
    salesforce_token_ok: Family<AppLabels, Gauge>,
    salesforce_limit_remaining: Family<LimitLabels, Gauge>,
    salesforce_limit_max: Family<LimitLabels, Gauge>,
    salesforce_interaction_requests: Family<AppLabels, Counter>,
    /// How long each vendor took to answer an API call: the share of a job's time that is
    /// theirs, and the first sign of a vendor slowing down.
    vendor_request_seconds: HistogramFamily<VendorLabels>,
    /// From the webhook's arrival to Salesforce accepting the message.
    pub inbound_delivery_seconds: Histogram,
    /// From Salesforce creating an agent's entry (its event's `CreatedDate`) to the bridge
    /// storing it: how far the Pub/Sub subscription runs behind.
    pub pubsub_event_lag_seconds: Histogram,
    /// From storing an agent's entry to Infobip taking it.
    pub outbound_relay_seconds: Histogram,
    pub http_requests: Family<HttpLabels, Counter>,
    pub http_duration_seconds: HistogramFamily<HttpLabels>,
    pub jobs_finished: Family<JobOutcomeLabels, Counter>,
    pub job_duration_seconds: HistogramFamily<KindLabels>,
    pub job_queue_depth: Family<StateLabels, Gauge>,
    /// SQLite's writer: transactions, the writes they held, and its busy time, so far.
    sqlite_writer_batches: Gauge,
    sqlite_writer_writes: Gauge,
    sqlite_writer_busy_seconds: Gauge<f64, std::sync::atomic::AtomicU64>,
    /// Syncs of the write-ahead log beside the writer, and their time (`synchronous = full`).
    sqlite_wal_syncs: Gauge,
    sqlite_wal_sync_seconds: Gauge<f64, std::sync::atomic::AtomicU64>,
    /// When the queue depth was last counted: scrapes in between reuse it.
    depth_counted: std::sync::Mutex<Option<std::time::Instant>>,
}

/// What [`Metrics::encode`] writes: OpenMetrics text, which ends in `# EOF`.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// Scrapes this close together share one count of the queue.
const DEPTH_REUSE: std::time::Duration = std::time::Duration::from_secs(1);

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Metrics")
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("byoc");
        let http_requests = Family::<HttpLabels, Counter>::default();
        let http_duration_seconds: HistogramFamily<HttpLabels> = Family::new_with_constructor(latency_histogram);
        let jobs_finished = Family::<JobOutcomeLabels, Counter>::default();
        let job_duration_seconds: HistogramFamily<KindLabels> = Family::new_with_constructor(latency_histogram);
        let job_queue_depth = Family::<StateLabels, Gauge>::default();
        let inbound_messages = Family::<OutcomeLabels, Counter>::default();
        let inbound_delivery_seconds = latency_histogram();
        let pubsub_event_lag_seconds = latency_histogram();
        let outbound_relay_seconds = latency_histogram();
        let outbound_entries = Family::<OutcomeLabels, Counter>::default();
        let pubsub_replay_gaps = Family::<AppLabels, Counter>::default();
        let pubsub_subscription_up = Family::<SubscriptionLabels, Gauge>::default();
        let salesforce_token_failures = Family::<AppLabels, Counter>::default();
        let salesforce_token_ok = Family::<AppLabels, Gauge>::default();
        let salesforce_limit_remaining = Family::<LimitLabels, Gauge>::default();
        let salesforce_limit_max = Family::<LimitLabels, Gauge>::default();
        let salesforce_interaction_requests = Family::<AppLabels, Counter>::default();
        let vendor_request_seconds: HistogramFamily<VendorLabels> = Family::new_with_constructor(latency_histogram);
        registry.register(
            "vendor_request_seconds",
            "Time a vendor took to answer an API call (Salesforce's Interaction API, Infobip's API; not file downloads)",
            vendor_request_seconds.clone(),
        );
        registry.register(
            "salesforce_limit_remaining",
            "What is left today of an org limit (DailyApiRequests, DailyDeliveredPlatformEvents), as last read",
            salesforce_limit_remaining.clone(),
        );
        registry.register(
            "salesforce_limit_max",
            "An org limit's daily maximum, as last read",
            salesforce_limit_max.clone(),
        );
        registry.register(
            "salesforce_interaction_requests",
            "Interaction API requests the bridge made, by app",
            salesforce_interaction_requests.clone(),
        );
        registry.register(
            "pubsub_subscription_up",
            "1 while this process reads the app's Pub/Sub topic (take the max over replicas)",
            pubsub_subscription_up.clone(),
        );
        registry.register(
            "salesforce_token_failures",
            "Salesforce token requests (JWT bearer flow) that were refused or failed",
            salesforce_token_failures.clone(),
        );
        registry.register(
            "salesforce_token_ok",
            "1 if the app's last Salesforce token request was granted, 0 if it failed",
            salesforce_token_ok.clone(),
        );
        registry.register("outbound_entries", "Agent entries from Salesforce by outcome", outbound_entries.clone());
        registry.register(
            "pubsub_replay_gaps",
            "Resubscriptions that found the stored replay position expired",
            pubsub_replay_gaps.clone(),
        );
        registry.register("inbound_messages", "WhatsApp messages from end users by outcome", inbound_messages.clone());
        registry.register(
            "inbound_delivery_seconds",
            "Time from receiving a WhatsApp message to Salesforce accepting it",
            inbound_delivery_seconds.clone(),
        );
        registry.register(
            "pubsub_event_lag_seconds",
            "Time from Salesforce creating an agent's entry to the bridge storing its event",
            pubsub_event_lag_seconds.clone(),
        );
        registry.register(
            "outbound_relay_seconds",
            "Time from storing an agent's entry to Infobip taking the WhatsApp message",
            outbound_relay_seconds.clone(),
        );
        registry.register("http_requests", "HTTP requests handled", http_requests.clone());
        registry.register(
            "http_request_duration_seconds",
            "Time to answer HTTP requests",
            http_duration_seconds.clone(),
        );
        registry.register("jobs_finished", "Outbox job attempts by outcome", jobs_finished.clone());
        registry.register(
            "job_duration_seconds",
            "Time spent executing one outbox job attempt",
            job_duration_seconds.clone(),
        );
        registry.register(
            "job_queue_depth",
            "Outbox jobs by state (due, scheduled, running, dead)",
            job_queue_depth.clone(),
        );
        let sqlite_writer_batches = Gauge::default();
        let sqlite_writer_writes = Gauge::default();
        let sqlite_writer_busy_seconds = Gauge::<f64, std::sync::atomic::AtomicU64>::default();
        let sqlite_wal_syncs = Gauge::default();
        let sqlite_wal_sync_seconds = Gauge::<f64, std::sync::atomic::AtomicU64>::default();
        registry.register(
            "sqlite_wal_syncs",
            "Syncs of SQLite's write-ahead log to disk so far, each answering the batches committed before it",
            sqlite_wal_syncs.clone(),
        );
        registry.register(
            "sqlite_wal_sync_seconds",
            "Time spent syncing SQLite's write-ahead log so far (beside the writer, not inside it)",
            sqlite_wal_sync_seconds.clone(),
        );
        registry.register(
            "sqlite_writer_batches",
            "Transactions SQLite's writer committed so far (each holds the writes queued meanwhile)",
            sqlite_writer_batches.clone(),
        );
        registry.register("sqlite_writer_writes", "Writes SQLite's writer ran so far", sqlite_writer_writes.clone());
        registry.register(
            "sqlite_writer_busy_seconds",
            "Time SQLite's writer spent writing so far; near one second per second it is the bottleneck",
            sqlite_writer_busy_seconds.clone(),
        );
        Self {
            registry,
            sqlite_writer_batches,
            sqlite_writer_writes,
            sqlite_writer_busy_seconds,
            sqlite_wal_syncs,
            sqlite_wal_sync_seconds,
            depth_counted: std::sync::Mutex::default(),
            inbound_messages,
            outbound_entries,
            pubsub_replay_gaps,
            pubsub_subscription_up,
            salesforce_token_failures,
            salesforce_token_ok,
            salesforce_limit_remaining,
            salesforce_limit_max,
            salesforce_interaction_requests,
            vendor_request_seconds,
            inbound_delivery_seconds,
            pubsub_event_lag_seconds,
            outbound_relay_seconds,
            http_requests,
            http_duration_seconds,
            jobs_finished,
            job_duration_seconds,
            job_queue_depth,
        }
    }

    pub fn job_finished(&self, kind: &str, outcome: &'static str) {
        self.jobs_finished.get_or_create(&JobOutcomeLabels { kind: kind.to_owned(), outcome }).inc();
    }

    pub fn inbound(&self, app: &str, outcome: &'static str) {
        self.inbound_messages.get_or_create(&OutcomeLabels { app: app.to_owned(), outcome }).inc();
    }

    pub fn outbound(&self, app: &str, outcome: &'static str) {
        self.outbound_entries.get_or_create(&OutcomeLabels { app: app.to_owned(), outcome }).inc();
    }

    pub fn replay_gap(&self, app: &str) {
        self.pubsub_replay_gaps.get_or_create(&AppLabels { app: app.to_owned() }).inc();
    }

    /// Whether this process reads `topic` for `app` now.
    pub fn subscription(&self, app: &str, topic: &str, up: bool) {
        let labels = SubscriptionLabels { app: app.to_owned(), topic: topic.to_owned() };
        self.pubsub_subscription_up.get_or_create(&labels).set(i64::from(up));
    }

    /// A token request of `app` was granted or not.
    pub fn token_request(&self, app: &str, granted: bool) {
        let labels = AppLabels { app: app.to_owned() };
        if !granted {
            self.salesforce_token_failures.get_or_create(&labels).inc();
        }
        self.salesforce_token_ok.get_or_create(&labels).set(i64::from(granted));
    }

    /// An org limit of `app` as just read.
    pub fn org_limit(&self, app: &str, limit: &crate::salesforce::rest::OrgLimit) {
        let labels = LimitLabels { app: app.to_owned(), limit: limit.name.to_owned() };
        self.salesforce_limit_remaining.get_or_create(&labels).set(limit.remaining);
        self.salesforce_limit_max.get_or_create(&labels).set(limit.max);
    }

    /// One Interaction API request of `app`, answered (or failed) after `took`.
    pub fn interaction_request(&self, app: &str, took: std::time::Duration) {
        self.salesforce_interaction_requests.get_or_create(&AppLabels { app: app.to_owned() }).inc();
        self.vendor_request("salesforce", took);
    }

    /// One API call to `vendor` (`salesforce` or `infobip`), answered (or failed) after `took`.
    pub fn vendor_request(&self, vendor: &'static str, took: std::time::Duration) {
        self.vendor_request_seconds.get_or_create(&VendorLabels { vendor }).observe(took.as_secs_f64());
    }

    pub fn set_queue_depth(&self, depth: &crate::db::jobs::QueueDepth) {
        for (state, value) in
            [("due", depth.due), ("scheduled", depth.scheduled), ("running", depth.running), ("dead", depth.dead)]
        {
            self.job_queue_depth.get_or_create(&StateLabels { state }).set(value);
        }
    }

    /// Whether the queue should be counted for this scrape (at most once per second); takes
    /// the turn when it should.
    pub fn depth_due(&self) -> bool {
        let mut counted = self.depth_counted.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let now = std::time::Instant::now();
        if counted.is_some_and(|at| now.duration_since(at) < DEPTH_REUSE) {
            return false;
        }
        *counted = Some(now);
        true
    }

    pub fn set_writer_stats(&self, stats: &crate::db::writer::WriterStats) {
        use std::sync::atomic::Ordering::Relaxed;
        let count = |v: u64| i64::try_from(v).unwrap_or(i64::MAX);
        self.sqlite_writer_batches.set(count(stats.batches.load(Relaxed)));
        self.sqlite_writer_writes.set(count(stats.writes.load(Relaxed)));
        self.sqlite_writer_busy_seconds.set(stats.busy_micros.load(Relaxed) as f64 / 1e6);
        self.sqlite_wal_syncs.set(count(stats.syncs.load(Relaxed)));
        self.sqlite_wal_sync_seconds.set(stats.sync_micros.load(Relaxed) as f64 / 1e6);
    }

    /// The OpenMetrics text exposition (serve it as [`CONTENT_TYPE`]).
    pub fn encode(&self) -> Result<String, std::fmt::Error> {
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &self.registry)?;
        Ok(out)
    }
}
