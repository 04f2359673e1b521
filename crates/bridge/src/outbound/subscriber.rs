//! The Pub/Sub API subscription of each active app to its platform event.
//!
//! One task per app: sign in, fetch the topic's schema, subscribe from the stored replay
//! position, and keep credit topped up so the stream never stalls (Salesforce's demos stop
//! after their first 100 events). Each batch is stored with the new position in one
//! transaction. On any error the task resubscribes with backoff; a position Salesforce no
//! longer retains restarts from the earliest retained event, and the gap is logged and
//! counted.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use futures_util::FutureExt;
use pubsub_wire::avro;
use pubsub_wire::proto::{ConsumerEvent, FetchRequest, ReplayPreset};
use pubsub_wire::{error_codes, metadata};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_stream::wrappers::ReceiverStream;
use tokio_util::sync::CancellationToken;

use super::AgentEntry;
use super::received::{Received, take_ready};
use super::reconnect::{Ended as StreamEnd, Reconnect, is_server_goaway};
use crate::db::{Db, cursors};
use crate::directory::{ActiveApp, Directory};
use crate::metrics::Metrics;
use crate::salesforce::pubsub::PubSub;
/// Credit asked for; Salesforce caps what is outstanding at 100.
const BATCH: i32 = 100;
/// Ask for more when fewer than this many events are still owed.
const TOP_UP_BELOW: i32 = 50;
/// How far Salesforce's clock may be behind ours when a "listening since" is compared with
/// events' creation times: an event up to this long before the first subscription may be
/// relayed (it is an answer from just before the bridge listened), none after it is missed.
const CLOCK_SKEW_MS: i64 = 10_000;
/// How often a replica without the lease looks whether it is free.
const STANDBY_POLL: Duration = Duration::from_secs(1);

#[derive(Debug, thiserror::Error)]
pub enum SubscribeError {
    #[error("{0}")]
    Salesforce(#[from] crate::salesforce::Error),
    #[error("the stored replay position is no longer retained")]
    ReplayExpired,
    #[error("the subscription stream ended")]
    Ended,
    #[error("database: {0}")]
    Db(#[from] crate::db::DbError),
    #[error("cannot decode an event: {0}")]
    Decode(String),
    #[error("another replica took over the subscription")]
    LeaseLost,
    #[error("the org does not provide {0}")]
    TopicUnavailable(String),
}

/// How a subscription task ended on its own terms.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ended {
    /// Told to stop (the app was switched off, or the service is stopping).
    Cancelled,
    /// The org has no such topic (change data capture is optional): nothing to restart.
    TopicUnavailable,
}

/// The subscription tasks of one app, one per topic.
struct AppTasks {
    cancel: CancellationToken,
    topics: Vec<String>,
    running: Vec<(String, JoinHandle<Ended>)>,
}

impl AppTasks {
    /// Starts the topics without a task, and again those whose task ended unexpectedly (a
    /// panic): a subscription never stops silently.
    async fn supervise(&mut self, spawn: impl Fn(&str, CancellationToken) -> JoinHandle<Ended>) {
        let mut still = Vec::new();
        for (topic, handle) in std::mem::take(&mut self.running) {
            if !handle.is_finished() {
                still.push((topic, handle));
                continue;
            }
            match handle.await {
                Ok(Ended::TopicUnavailable) => self.topics.retain(|t| *t != topic),
                Ok(Ended::Cancelled) if self.cancel.is_cancelled() => {}
                Ok(Ended::Cancelled) => tracing::warn!(topic, "a subscription stopped by itself; restarting it"),
                Err(e) => tracing::error!(topic, error = %e, "a subscription task failed; restarting it"),
            }
        }
        self.running = still;
        if self.cancel.is_cancelled() {
            return;
        }
        for topic in &self.topics {
            if !self.running.iter().any(|(t, _)| t == topic) {
                self.running.push((topic.clone(), spawn(topic, self.cancel.clone())));
            }
        }
    }
}

#[derive(Clone)]
pub struct Subscriber {
    pub db: Db,
    pub directory: Directory,
    pub salesforce: crate::salesforce::Client,
    pub metrics: Arc<Metrics>,
    /// Wakes the job worker when entries were queued.
    pub wake: Arc<tokio::sync::Notify>,
    /// This process's name in subscription leases.
    pub owner: String,
    /// How long a lease lasts without renewal (renewed at a third of it).
    pub lease: Duration,
}

impl Subscriber {
    /// Keeps one subscription per active app until `cancel`, following apps being switched
    /// on and off.
    pub async fn run(self, cancel: CancellationToken) {
        let mut running: HashMap<String, AppTasks> = HashMap::new();
        loop {
            match self.directory.snapshot().await {
                Ok(snapshot) => {
                    for app in &snapshot.apps {
                        let tasks = running.entry(app.id.clone()).or_insert_with(|| AppTasks {
                            cancel: cancel.child_token(),
                            // Some orgs tell a session's end only through change data capture.
                            topics: vec![
                                format!("/event/{}", app.platform_event),
                                super::SESSION_CHANGE_TOPIC.to_owned(),
                            ],
                            running: Vec::new(),
                        });
                        tasks
                            .supervise(|topic, token| {
                                tokio::spawn(self.clone().keep_subscribed_to(app.clone(), topic.to_owned(), token))
                            })
                            .await;
                    }
                    running.retain(|id, tasks| {
                        let active = snapshot.apps.iter().any(|a| &a.id == id);
                        if !active {
                            tasks.cancel.cancel();
                        }
                        active
                    });
                }
                Err(e) => tracing::warn!(error = %e, "subscriber: cannot read the apps"),
            }
            tokio::select! {
                () = cancel.cancelled() => break,
                () = tokio::time::sleep(Duration::from_secs(5)) => {}
            }
        }
        // Each task lets go of its lease when it stops; wait for them.
        for tasks in running.into_values() {
            for (_, handle) in tasks.running {
                let _ = handle.await;
            }
        }
    }

    /// Subscribes while holding the app's lease, and resubscribes with backoff after every
    /// failure, until cancelled. Without the lease it waits for the holder to stop renewing.
    pub async fn keep_subscribed(self, app: Arc<ActiveApp>, cancel: CancellationToken) -> Ended {
        let topic = format!("/event/{}", app.platform_event);
        self.keep_subscribed_to(app, topic, cancel).await
    }

    /// `keep_subscribed` for any topic: the app's platform event, or the session change events.
    pub async fn keep_subscribed_to(self, app: Arc<ActiveApp>, topic: String, cancel: CancellationToken) -> Ended {
        let mut reconnect = Reconnect::default();
        let mut ended = Ended::Cancelled;
        while !cancel.is_cancelled() {
            let mut healthy = false;
            let delay = match self.renew(&app, &topic).await {
                Ok(true) => match self.subscribe_once_observed(&app, &topic, &cancel, &mut healthy).await {
                    Ok(()) => break,
                    // Not a fault: start again at once from the earliest retained event.
                    Err(SubscribeError::ReplayExpired) => Duration::ZERO,
                    Err(SubscribeError::TopicUnavailable(t)) => {
                        tracing::info!(app.id = %app.id, topic = %t, "the org does not provide this topic; not subscribing to it");
                        ended = Ended::TopicUnavailable;
                        break;
                    }
                    Err(SubscribeError::Salesforce(crate::salesforce::Error::PubSub(status)))
                        if is_server_goaway(&status) =>
                    {
                        tracing::info!(app.id = %app.id, topic = %topic, reason = status.message(), "the Pub/Sub server closed the connection; reconnecting from the stored position");
                        reconnect.after(StreamEnd::Closed, healthy)
                    }
                    Err(e) => {
                        let delay = reconnect.after(StreamEnd::Failed, healthy);
                        tracing::warn!(app.id = %app.id, error = %e, retry_in_ms = delay.as_millis() as u64, "subscription interrupted");
                        delay
                    }
                },
                // Another replica holds it: look again soon, so that a clean stop (which
                // releases the lease) is taken over at once, not when the lease would expire.
                Ok(false) => STANDBY_POLL.min(self.lease / 3),
                Err(e) => {
                    tracing::warn!(app.id = %app.id, error = %e, "cannot read the subscription lease");
                    self.lease / 3
                }
            };
            tokio::select! {
                () = cancel.cancelled() => break,
                () = tokio::time::sleep(delay) => {}
            }
        }
        let (app_id, owner) = (app.id.clone(), self.owner.clone());
        if let Err(e) = self.db.write(move |c| cursors::release_lease(c, &app_id, &topic, &owner)).await {
            tracing::warn!(error = %e, "could not release the subscription lease; it expires by itself");
        }
        ended
    }

    async fn renew(&self, app: &ActiveApp, topic: &str) -> Result<bool, crate::db::DbError> {
        let (app_id, topic, owner) = (app.id.clone(), topic.to_owned(), self.owner.clone());
        let lease = chrono::Duration::from_std(self.lease).unwrap_or(chrono::Duration::seconds(30));
        self.db
            .write(move |c| {
                let now = crate::db::now();
                cursors::acquire_lease(c, &app_id, &topic, &owner, now + lease, now)
            })
            .await
    }

    /// `subscribe_once`, with `/metrics` told that the subscription is up while its stream is
    /// open, and down from the moment it ends.
    async fn subscribe_once_observed(
        &self,
        app: &Arc<ActiveApp>,
        topic: &str,
        cancel: &CancellationToken,
        healthy: &mut bool,
    ) -> Result<(), SubscribeError> {
        let ended = self.subscribe_once(app, topic, cancel, healthy).await;
        self.metrics.subscription(&app.name, topic, false);
        ended
    }

    /// One stream, until it ends; `healthy` turns true once it delivered a response.
    async fn subscribe_once(
        &self,
        app: &Arc<ActiveApp>,
        topic: &str,
        cancel: &CancellationToken,
        healthy: &mut bool,
    ) -> Result<(), SubscribeError> {
        use crate::salesforce::Error as Sf;
        let topic = topic.to_owned();
        let mut client = self.salesforce.pubsub(&app.salesforce).await?;
        let info = match client.topic(&topic).await {
            Ok(info) => info,
            Err(Sf::PubSub(status)) if status.code() == tonic::Code::Unauthenticated => {
                self.salesforce.token_refused(&app.salesforce, &client).await;
                return Err(Sf::PubSub(status).into());
            }
            // Change data capture is optional: an org without it has no such topic.
            Err(Sf::PubSub(status))
                if topic == super::SESSION_CHANGE_TOPIC && status.code() == tonic::Code::NotFound =>
            {
                return Err(SubscribeError::TopicUnavailable(topic));
            }
            Err(e) => return Err(e.into()),
        };
        let mut schemas: HashMap<String, apache_avro::Schema> = HashMap::new();
        self.schema(&mut client, &info.schema_id, &mut schemas).await?;

        let (app_id, t) = (app.id.clone(), topic.clone());
        let cursor = self.db.run(move |c| cursors::get(c, &app_id, &t)).await?;
        let mut created_since = None;
        let (preset, replay_id) = match cursor.as_deref() {
            Some(cursors::EARLIEST) => (ReplayPreset::Earliest, Vec::new()),
            Some(stored) => match cursors::since_of(stored) {
                Some(millis) => {
                    created_since = Some(millis - CLOCK_SKEW_MS);
                    (ReplayPreset::Earliest, Vec::new())
                }
                None => (ReplayPreset::Custom, B64.decode(stored).unwrap_or_default()),
            },
            // A new app starts with what happens from now on, not 72 hours of history; the
            // time is kept at once, so a restart before the first position misses nothing.
            None => {
                let (app_id, t) = (app.id.clone(), topic.clone());
                let since = cursors::since(chrono::Utc::now().timestamp_millis());
                self.db.write(move |c| cursors::set(c, &app_id, &t, &since)).await?;
                (ReplayPreset::Latest, Vec::new())
            }
        };
        let (requests, rx) = mpsc::channel(4);
        let first = FetchRequest {
            topic_name: topic.clone(),
            replay_preset: preset as i32,
            replay_id,
            num_requested: BATCH,
            ..Default::default()
        };
        requests.send(first).await.map_err(|_| SubscribeError::Ended)?;
        let mut stream = client.subscribe(ReceiverStream::new(rx)).await?;
        let endpoint = app.salesforce.pubsub_endpoint.as_deref().unwrap_or(crate::salesforce::pubsub::DEFAULT_ENDPOINT);
        tracing::info!(app.id = %app.id, topic = %topic, endpoint, owner = %self.owner, ?preset, "subscribed");
        self.metrics.subscription(&app.name, &topic, true);
        let default_sender = app.senders.keys().min().cloned();
        let mut renewal = tokio::time::interval(self.lease / 3);
        renewal.tick().await;
        loop {
            let response = tokio::select! {
                () = cancel.cancelled() => return Ok(()),
                _ = renewal.tick() => {
                    if !self.renew(app, &topic).await? {
                        return Err(SubscribeError::LeaseLost);
                    }
                    continue;
                }
                message = stream.message() => message,
            };
            let response = match response {
                Ok(Some(r)) => {
                    *healthy = true;
                    r
                }
                Ok(None) => return Err(SubscribeError::Ended),
                Err(status) => return Err(self.on_error(app, &topic, status).await),
            };
            let Received { events, last: response, ended } = take_ready(response, || stream.message().now_or_never());
            if !events.is_empty() {
                let read = Reading { topic: &topic, default_sender: default_sender.as_deref(), created_since };
                self.store(&mut client, app, &read, events, &mut schemas).await?;
            } else if !response.latest_replay_id.is_empty() {
                // A keep-alive: its position is as good as the last event's and newer, so an
                // idle topic never comes back after the retention window with a stale cursor.
                let (app_id, t, position) = (app.id.clone(), topic.clone(), B64.encode(&response.latest_replay_id));
                self.db.write(move |c| cursors::set(c, &app_id, &t, &position)).await?;
            }
            if response.pending_num_requested < TOP_UP_BELOW {
                let more = FetchRequest {
                    topic_name: topic.clone(),
                    num_requested: BATCH - response.pending_num_requested,
                    ..Default::default()
                };
                requests.send(more).await.map_err(|_| SubscribeError::Ended)?;
            }
            match ended {
                None => {}
                Some(Ok(())) => return Err(SubscribeError::Ended),
                Some(Err(status)) => return Err(self.on_error(app, &topic, status).await),
            }
        }
    }

    /// An expired position restarts from the earliest retained event; the gap is recorded.
    async fn on_error(&self, app: &ActiveApp, topic: &str, status: tonic::Status) -> SubscribeError {
        let code =
            status.metadata().get(metadata::ERROR_CODE).and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned();
        if code == error_codes::REPLAY_ID_CORRUPTED || code == error_codes::REPLAY_ID_VALIDATION_FAILED {
            tracing::error!(app.id = %app.id, topic, "the stored replay position has expired: resuming from the earliest retained event; events in between were missed");
            self.metrics.replay_gap(&app.name);
            let (app_id, topic) = (app.id.clone(), topic.to_owned());
            if let Err(e) = self.db.write(move |c| cursors::set(c, &app_id, &topic, cursors::EARLIEST)).await {
                return e.into();
            }
            return SubscribeError::ReplayExpired;
        }
        crate::salesforce::Error::from(status).into()
    }

    async fn schema<'a>(
        &self,
        client: &mut PubSub,
        schema_id: &str,
        schemas: &'a mut HashMap<String, apache_avro::Schema>,
    ) -> Result<&'a apache_avro::Schema, SubscribeError> {
        if !schemas.contains_key(schema_id) {
            let info = client.schema(schema_id).await?;
            let schema = avro::parse_schema(&info.schema_json).map_err(|e| SubscribeError::Decode(e.to_string()))?;
            schemas.insert(schema_id.to_owned(), schema);
        }
        schemas.get(schema_id).ok_or_else(|| SubscribeError::Decode("schema vanished".into()))
    }

    async fn store(
        &self,
        client: &mut PubSub,
        app: &ActiveApp,
        read: &Reading<'_>,
        events: Vec<ConsumerEvent>,
        schemas: &mut HashMap<String, apache_avro::Schema>,
    ) -> Result<(), SubscribeError> {
        let Reading { topic, default_sender, created_since } = *read;
        // Replaying after a restart that had no position yet: what came before is not ours.
        let before_us = |created: Option<i64>| created_since.zip(created).is_some_and(|(since, at)| at < since);
        let mut entries = Vec::new();
        let mut created = Vec::new();
        let mut ended_sessions = Vec::new();
        let mut last = Vec::new();
        for consumer in events {
            last = consumer.replay_id.clone();
            let Some(event) = consumer.event else { continue };
            let schema = self.schema(client, &event.schema_id, schemas).await?;
            if topic == super::SESSION_CHANGE_TOPIC {
                match avro::decode_datum(schema, &event.payload) {
                    Ok(value) if before_us(commit_timestamp(&value)) => {}
                    Ok(value) => ended_sessions.extend(ended_sessions_of(schema, &value)),
                    Err(e) => {
                        tracing::error!(app.id = %app.id, event.id = %event.id, error = %e, "undecodable change event skipped")
                    }
                }
                continue;
            }
            // The server does not check payloads on publish: a bad one is logged and skipped.
            let record = match avro::decode_event(schema, &event.payload) {
                Ok(r) => r,
                Err(e) => {
                    tracing::error!(app.id = %app.id, event.id = %event.id, error = %e, "undecodable event skipped");
                    self.metrics.outbound(&app.name, "ignored");
                    continue;
                }
            };
            if before_us(Some(record.created_date)) {
                self.metrics.outbound(&app.name, "ignored");
                continue;
            }
            if record.field(&app.event_type_field) != Some("Interaction") {
                self.metrics.outbound(&app.name, "ignored");
                continue;
            }
            match record.field(&app.payload_field).and_then(AgentEntry::parse) {
                Some(entry) => {
                    entries.push(entry);
                    created.push(record.created_date);
                }
                None => {
                    tracing::error!(app.id = %app.id, event.id = %event.id, "event payload is not a conversation entry; skipped");
                    self.metrics.outbound(&app.name, "ignored");
                }
            }
        }
        let (app_id, topic, sender) = (app.id.clone(), topic.to_owned(), default_sender.map(str::to_owned));
        let waiting = app.waiting.clone();
        let position = B64.encode(&last);
        let stored = self
            .db
            .write(move |c| {
                let ends = super::session_ends(c, &app_id, &ended_sessions)?;
                // The write may run twice: the received entries are copied only when ends join them.
                let all = if ends.is_empty() {
                    std::borrow::Cow::Borrowed(&entries)
                } else {
                    std::borrow::Cow::Owned(entries.iter().cloned().chain(ends).collect())
                };
                super::store(c, &app_id, &topic, sender.as_deref(), &waiting, &all, &position)
            })
            .await?;
        let now = chrono::Utc::now().timestamp_millis();
        for at in created {
            self.metrics.pubsub_event_lag_seconds.observe((now - at).max(0) as f64 / 1000.0);
        }
        for _ in 0..stored.duplicates {
            self.metrics.outbound(&app.name, "duplicate");
        }
        for _ in 0..stored.ignored {
            self.metrics.outbound(&app.name, "ignored");
        }
        if stored.queued + stored.notices > 0 {
            self.wake.notify_one();
        }
        Ok(())
    }
}

/// What a stream's events are read for: their topic, the sender an agent's reply goes out
/// from by default, and (replaying after a restart that had no position) the creation time
/// before which events are not this bridge's.
#[derive(Clone, Copy)]
struct Reading<'a> {
    topic: &'a str,
    default_sender: Option<&'a str>,
    created_since: Option<i64>,
}

/// The MessagingSession ids a change event reports as `Ended`. Update events are deltas:
/// `Status` is set only when it changed, and `changedFields` (bitmaps of schema positions,
/// or names) says which fields did.
fn ended_sessions_of(schema: &apache_avro::Schema, value: &apache_avro::types::Value) -> Vec<String> {
    use apache_avro::types::Value as A;
    let strings = |v: Option<&A>| match v {
        Some(A::Array(items)) => items
            .iter()
            .filter_map(|v| match v {
                A::String(s) => Some(s.clone()),
                _ => None,
            })
            .collect(),
        _ => Vec::new(),
    };
    let header = field(value, "ChangeEventHeader");
    let changed = avro::expand_field_bitmaps(schema, &strings(header.and_then(|h| field(h, "changedFields"))));
    let status_changed = changed.is_empty() || changed.iter().any(|f| f == "Status");
    let ended = matches!(field(value, "Status"), Some(A::String(s)) if s == "Ended");
    if !ended || !status_changed {
        return Vec::new();
    }
    strings(header.and_then(|h| field(h, "recordIds")))
}

/// A record's field, looking through a union.
fn field<'a>(record: &'a apache_avro::types::Value, name: &str) -> Option<&'a apache_avro::types::Value> {
    use apache_avro::types::Value as A;
    match record {
        A::Record(fields) => fields.iter().find(|(n, _)| n == name).map(|(_, v)| match v {
            A::Union(_, inner) => inner.as_ref(),
            other => other,
        }),
        _ => None,
    }
}

/// When a change event's transaction was committed (`ChangeEventHeader.commitTimestamp`).
fn commit_timestamp(value: &apache_avro::types::Value) -> Option<i64> {
    use apache_avro::types::Value as A;
    match field(value, "ChangeEventHeader").and_then(|h| field(h, "commitTimestamp")) {
        Some(A::Long(ms) | A::TimestampMillis(ms)) => Some(*ms),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;

    #[tokio::test]
    async fn a_task_that_panics_is_started_again_and_an_unavailable_topic_is_not() {
        let mut tasks = AppTasks {
            cancel: CancellationToken::new(),
            topics: vec!["/event/E__e".into(), "/data/X".into()],
            running: Vec::new(),
        };
        let starts = Arc::new(AtomicUsize::new(0));
        let spawn = |topic: &str, _: CancellationToken| {
            let (n, topic) = (starts.fetch_add(1, Ordering::SeqCst), topic.to_owned());
            tokio::spawn(async move {
                if topic == "/data/X" {
                    return Ended::TopicUnavailable;
                }
                assert!(n > 0, "the first run of the event topic panics");
                std::future::pending::<Ended>().await
            })
        };
        tasks.supervise(spawn).await;
        assert_eq!(starts.load(Ordering::SeqCst), 2);
        // Both first runs end at once: one panics, the other finds no topic.
        while !tasks.running.iter().all(|(_, h)| h.is_finished()) {
            tokio::task::yield_now().await;
        }
        tasks.supervise(spawn).await;
        assert_eq!(starts.load(Ordering::SeqCst), 3, "only the panicked task is started again");
        assert_eq!(tasks.topics, ["/event/E__e"]);
        assert_eq!(tasks.running.len(), 1);
        assert!(!tasks.running[0].1.is_finished());
    }
}
