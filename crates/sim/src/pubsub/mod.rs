//! A Salesforce Pub/Sub API server (`eventbus.v1.PubSub` over plaintext HTTP/2) for tests and
//! local development.
//!
//! The Salesforce HTTP simulator owns one [`PubSubSim`]: it registers the custom platform event
//! as a topic, calls [`PubSubSim::publish`] whenever a simulated agent acts, and serves the gRPC
//! side with [`PubSubSim::serve`]. The bridge's subscriber then talks to it exactly as to
//! `api.pubsub.salesforce.com`, minus TLS.
//!
//! Implemented: `GetTopic`, `GetSchema`, `Subscribe` (replay presets, retention, flow control,
//! keep-alives) and `Publish`; `PublishStream` and `ManagedSubscribe` answer `UNIMPLEMENTED`.

mod auth;
pub mod avro;
mod bus;
mod service;
mod status;
mod subscribe;
pub mod wire;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use futures_util::StreamExt;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tokio_stream::wrappers::TcpListenerStream;
use tokio_util::sync::CancellationToken;

pub use self::auth::{AuthFailure, AuthMetadata, AuthValidator, accept_any, static_credentials};
use self::bus::Bus;
pub use self::service::PubSubService;
pub use self::subscribe::MAX_OUTSTANDING;
use avro::{AvroError, EventRecord};
use pubsub_wire::proto::pub_sub_server::PubSubServer;
use pubsub_wire::proto::{ConsumerEvent, ProducerEvent};

/// Behaviour knobs of the simulator.
#[derive(Debug, Clone)]
pub struct PubSubSimConfig {
    /// How long events stay replayable (Salesforce: 72 hours for high-volume platform events).
    pub retention: Duration,
    /// Idle time after which a stream with credit left gets an empty keep-alive
    /// `FetchResponse` (Salesforce: within 270 s).
    pub keepalive_interval: Duration,
    /// How long a stream whose credit is used up waits for a new `FetchRequest` before it is
    /// closed (Salesforce: 60 s after the last `FetchResponse`).
    pub credit_timeout: Duration,
    /// `TopicInfo.tenant_guid`; empty to echo the caller's `tenantid`.
    pub tenant_guid: String,
}

impl Default for PubSubSimConfig {
    fn default() -> Self {
        Self {
            retention: Duration::from_secs(72 * 3600),
            keepalive_interval: Duration::from_secs(270),
            credit_timeout: Duration::from_secs(60),
            tenant_guid: String::new(),
        }
    }
}

/// Errors of the simulator's own API.
#[derive(Debug, thiserror::Error)]
pub enum SimError {
    #[error("unknown topic {0}")]
    UnknownTopic(String),
    #[error("invalid schema")]
    Schema(#[source] AvroError),
    #[error("cannot encode the event")]
    Encode(#[source] AvroError),
    #[error("cannot bind {addr}")]
    Bind {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("the gRPC server failed")]
    Serve(#[source] tonic::transport::Error),
}

/// State shared by the handle, the service and every stream task.
struct Shared {
    config: PubSubSimConfig,
    validator: AuthValidator,
    bus: Mutex<Bus>,
    /// Bumped on every publish so idle streams look for new events.
    published: watch::Sender<u64>,
    faults: Mutex<Faults>,
    open_streams: AtomicUsize,
    /// Cancelled when serving stops: streams end so that graceful shutdown can finish.
    closed: CancellationToken,
}

struct Faults {
    /// Streams watch the token current when they started; breaking cancels it and starts anew.
    break_token: CancellationToken,
    /// Events still to deliver (over all streams) before every stream is broken.
    break_after: Option<u64>,
}

/// Poisoning only means another thread panicked mid-update; the simulator's data stays usable.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Shared {
    fn bus(&self) -> MutexGuard<'_, Bus> {
        lock(&self.bus)
    }

    fn append(&self, topic: &str, event: ProducerEvent) -> Result<Vec<u8>, SimError> {
        let replay_id = self.bus().append(topic, event, Instant::now())?;
        self.published.send_modify(|n| *n = n.wrapping_add(1));
        Ok(replay_id)
    }

    fn break_token(&self) -> CancellationToken {
        lock(&self.faults).break_token.clone()
    }

    fn break_streams(&self) {
        let old = std::mem::take(&mut lock(&self.faults).break_token);
        old.cancel();
    }

    /// How many of `available` events a stream may send now, and whether sending them uses up
    /// the armed fault countdown (the caller then breaks all streams).
    fn fault_allowance(&self, available: usize) -> (usize, bool) {
        let mut faults = lock(&self.faults);
        let Some(remaining) = faults.break_after else {
            return (available, false);
        };
        let allowed = usize::try_from(remaining).map_or(available, |r| r.min(available));
        let left = remaining.saturating_sub(u64::try_from(allowed).unwrap_or(u64::MAX));
        faults.break_after = (left > 0).then_some(left);
        (allowed, left == 0)
    }
}

/// Handle to a simulated Pub/Sub API; cheap to clone, all clones share one state.
#[derive(Clone)]
pub struct PubSubSim {
    shared: Arc<Shared>,
}

impl PubSubSim {
    /// A simulator with no topics; `validator` judges every call's credentials.
    pub fn new(config: PubSubSimConfig, validator: AuthValidator) -> Self {
        let faults = Faults { break_token: CancellationToken::new(), break_after: None };
        let bus = Mutex::new(Bus::new(config.retention));
        let shared = Shared {
            config,
            validator,
            bus,
            published: watch::Sender::new(0),
            faults: Mutex::new(faults),
            open_streams: AtomicUsize::new(0),
            closed: CancellationToken::new(),
        };
        Self { shared: Arc::new(shared) }
    }

    /// Creates `topic_name` (e.g. `/event/ns__BYOC_Event__e`) with the given Avro schema, or gives
    /// an existing topic a new current schema. Returns the schema id.
    pub fn register_topic(&self, topic_name: &str, schema_json: &str) -> Result<String, SimError> {
        self.shared.bus().register(topic_name, schema_json)
    }

    /// Registers the topic `/event/<event_api_name>` of a BYOC custom platform event with the
    /// schema of [`avro::platform_event_schema_json`]. Returns `(topic_name, schema_id)`.
    pub fn register_platform_event(
        &self,
        event_api_name: &str,
        event_type_field: &str,
        payload_field: &str,
    ) -> Result<(String, String), SimError> {
        let topic = format!("/event/{event_api_name}");
        let schema_json = avro::platform_event_schema_json(event_api_name, event_type_field, payload_field);
        let schema_id = self.register_topic(&topic, &schema_json)?;
        Ok((topic, schema_id))
    }

    /// Publishes a record encoded with the topic's current schema, as Salesforce does when an
    /// agent acts; open subscriptions see it at once. Returns the event's replay id.
    pub fn publish(&self, topic_name: &str, record: &EventRecord) -> Result<Vec<u8>, SimError> {
        let event = {
            let bus = self.shared.bus();
            let (schema_id, schema) =
                bus.schema_of(topic_name).ok_or_else(|| SimError::UnknownTopic(topic_name.to_owned()))?;
            let payload = avro::encode_event(schema, record).map_err(SimError::Encode)?;
            ProducerEvent {
                id: uuid::Uuid::new_v4().to_string(),
                schema_id: schema_id.to_owned(),
                payload,
                headers: vec![],
            }
        };
        self.shared.append(topic_name, event)
    }

    /// Publishes an event exactly as given (e.g. a payload that does not decode).
    pub fn publish_raw(&self, topic_name: &str, event: ProducerEvent) -> Result<Vec<u8>, SimError> {
        self.shared.append(topic_name, event)
    }

    /// Ends every open `Subscribe` stream now with `UNAVAILABLE` and trailer
    /// `error-code: sfdc.platform.eventbus.grpc.service.unavailable`. Later streams work normally.
    pub fn break_streams(&self) {
        self.shared.break_streams();
    }

    /// Arms a fault: once `events` more events have been delivered (counted over all streams),
    /// every open stream breaks as with [`Self::break_streams`]. Zero breaks at the next delivery.
    pub fn break_streams_after_events(&self, events: u64) {
        lock(&self.shared.faults).break_after = Some(events);
        self.shared.published.send_modify(|_| {});
    }

    /// Number of `Subscribe` streams currently open.
    pub fn open_streams(&self) -> usize {
        self.shared.open_streams.load(Ordering::SeqCst)
    }

    /// Number of events a topic still retains (0 for an unknown topic).
    pub fn event_count(&self, topic_name: &str) -> usize {
        self.events(topic_name).len()
    }

    /// The retained events of a topic, oldest first, as a subscriber would receive them.
    pub fn events(&self, topic_name: &str) -> Vec<ConsumerEvent> {
        self.shared.bus().events(topic_name, Instant::now())
    }

    /// Replay id of the newest event published on a topic.
    pub fn latest_replay_id(&self, topic_name: &str) -> Option<Vec<u8>> {
        self.shared.bus().latest_replay_id(topic_name)
    }

    /// Current schema id of a topic.
    pub fn schema_id(&self, topic_name: &str) -> Option<String> {
        self.shared.bus().schema_of(topic_name).map(|(id, _)| id.to_owned())
    }

    /// The gRPC service, to mount in a tonic server of one's own. Whoever serves it must call
    /// [`Self::close`] on shutdown, or the long-lived streams keep graceful shutdown waiting.
    pub fn service(&self) -> PubSubServer<PubSubService> {
        PubSubServer::new(PubSubService { shared: Arc::clone(&self.shared) })
    }

    /// Ends all streams with `UNAVAILABLE` for good: streams opened later fail at once.
    pub fn close(&self) {
        self.shared.closed.cancel();
    }

    /// Serves plaintext gRPC on `listener` until `cancel` fires, then ends the open streams
    /// (see [`Self::close`]) and waits for the connections to finish.
    pub async fn serve(&self, listener: TcpListener, cancel: CancellationToken) -> Result<(), SimError> {
        self.serve_with(listener, cancel, None).await
    }

    /// `serve` over TLS with the given PEM certificate and key, as Salesforce's endpoint speaks.
    pub async fn serve_tls(
        &self,
        listener: TcpListener,
        cancel: CancellationToken,
        cert_pem: &[u8],
        key_pem: &[u8],
    ) -> Result<(), SimError> {
        let identity = tonic::transport::Identity::from_pem(cert_pem, key_pem);
        self.serve_with(listener, cancel, Some(tonic::transport::ServerTlsConfig::new().identity(identity))).await
    }

    async fn serve_with(
        &self,
        listener: TcpListener,
        cancel: CancellationToken,
        tls: Option<tonic::transport::ServerTlsConfig>,
    ) -> Result<(), SimError> {
        // Many small frames go both ways on a stream; Nagle's delay would only slow tests down.
        let incoming = TcpListenerStream::new(listener).map(|conn| {
            conn.inspect(|stream| {
                let _ = stream.set_nodelay(true);
            })
        });
        let sim = self.clone();
        let shutdown = async move {
            cancel.cancelled().await;
            sim.close();
        };
        let mut builder = tonic::transport::Server::builder();
        if let Some(tls) = tls {
            builder = builder.tls_config(tls).map_err(SimError::Serve)?;
        }
        builder
            .add_service(self.service())
            .serve_with_incoming_shutdown(incoming, shutdown)
            .await
            .map_err(SimError::Serve)
    }

    /// Binds `addr` (port 0 for any) and serves in a background task; returns the bound address.
    pub async fn spawn(
        &self,
        addr: SocketAddr,
        cancel: CancellationToken,
    ) -> Result<(SocketAddr, JoinHandle<Result<(), SimError>>), SimError> {
        let listener = TcpListener::bind(addr).await.map_err(|source| SimError::Bind { addr, source })?;
        let local = listener.local_addr().map_err(|source| SimError::Bind { addr, source })?;
        let sim = self.clone();
        let handle = tokio::spawn(async move { sim.serve(listener, cancel).await });
        Ok((local, handle))
    }
}
