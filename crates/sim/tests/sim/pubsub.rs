//! The Pub/Sub API simulator, driven through the generated tonic client over real HTTP/2.

use std::collections::BTreeMap;
use std::time::Duration;

use byoc_sim::pubsub::avro::EventRecord;
use byoc_sim::pubsub::{PubSubSim, PubSubSimConfig, static_credentials};
use pubsub_wire::avro;
use pubsub_wire::error_codes;
use pubsub_wire::proto::pub_sub_client::PubSubClient;
use pubsub_wire::proto::{
    FetchRequest, FetchResponse, ProducerEvent, PublishRequest, ReplayPreset, SchemaRequest, TopicRequest,
};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_stream::wrappers::ReceiverStream;
use tokio_util::sync::CancellationToken;
use tonic::transport::Channel;
use tonic::{Code, Request, Status, Streaming};

const TOKEN: &str = "00Dsim!token";
const INSTANCE: &str = "https://sim.my.salesforce.com";
const TENANT: &str = "00D000000000062EAA";
const EVENT: &str = "ns__BYOC_Event__e";
const TOPIC: &str = "/event/ns__BYOC_Event__e";
/// Long enough that a keep-alive never interferes with a test that does not want one.
const NO_KEEPALIVE: Duration = Duration::from_secs(600);
const WAIT: Duration = Duration::from_secs(5);
const SILENCE: Duration = Duration::from_millis(300);

struct Harness {
    sim: PubSubSim,
    client: PubSubClient<Channel>,
    cancel: CancellationToken,
    server: JoinHandle<Result<(), byoc_sim::pubsub::SimError>>,
}

async fn start(retention: Duration, keepalive_interval: Duration) -> Harness {
    start_with(PubSubSimConfig { retention, keepalive_interval, ..Default::default() }).await
}

async fn start_with(config: PubSubSimConfig) -> Harness {
    let sim = PubSubSim::new(config, static_credentials(TOKEN, INSTANCE, TENANT));
    sim.register_platform_event(EVENT, "ns__EventType__c", "ns__Payload__c").unwrap();
    let cancel = CancellationToken::new();
    let (addr, server) = sim.spawn("127.0.0.1:0".parse().unwrap(), cancel.clone()).await.unwrap();
    let client = PubSubClient::connect(format!("http://{addr}")).await.unwrap();
    Harness { sim, client, cancel, server }
}

fn with_auth<T>(message: T, token: &str, tenant: &str) -> Request<T> {
    let mut request = Request::new(message);
    let md = request.metadata_mut();
    md.insert("accesstoken", token.parse().unwrap());
    md.insert("instanceurl", INSTANCE.parse().unwrap());
    if !tenant.is_empty() {
        md.insert("tenantid", tenant.parse().unwrap());
    }
    request
}

fn record(n: usize) -> EventRecord {
    EventRecord {
        created_date: 1_700_000_000_000 + n as i64,
        created_by_id: "005000000000001AAA".into(),
        fields: BTreeMap::from([
            ("ns__EventType__c".to_owned(), Some("Interaction".to_owned())),
            ("ns__Payload__c".to_owned(), Some(format!(r#"{{"n":{n}}}"#))),
        ]),
    }
}

fn publish_n(sim: &PubSubSim, n: usize) -> Vec<Vec<u8>> {
    (0..n).map(|i| sim.publish(TOPIC, &record(i)).unwrap()).collect()
}

/// An open Subscribe call: `requests` sends more FetchRequests, `responses` reads the stream.
struct Subscription {
    requests: mpsc::Sender<FetchRequest>,
    responses: Streaming<FetchResponse>,
}

impl Subscription {
    async fn open(h: &Harness, preset: ReplayPreset, replay_id: Vec<u8>, num_requested: i32) -> Result<Self, Status> {
        let (requests, rx) = mpsc::channel(16);
        let first = FetchRequest {
            topic_name: TOPIC.into(),
            replay_preset: preset as i32,
            replay_id,
            num_requested,
            ..Default::default()
        };
        requests.send(first).await.unwrap();
        let responses =
            h.client.clone().subscribe(with_auth(ReceiverStream::new(rx), TOKEN, TENANT)).await?.into_inner();
        Ok(Self { requests, responses })
    }

    async fn request(&self, num_requested: i32) {
        self.requests.send(FetchRequest { num_requested, ..Default::default() }).await.unwrap();
    }

    async fn next(&mut self) -> Result<FetchResponse, Status> {
        match tokio::time::timeout(WAIT, self.responses.message()).await.expect("no message in time") {
            Ok(Some(response)) => Ok(response),
            Ok(None) => panic!("stream ended without a status"),
            Err(status) => Err(status),
        }
    }

    async fn assert_silent(&mut self) {
        let next = tokio::time::timeout(SILENCE, self.responses.message()).await;
        assert!(next.is_err(), "expected nothing, got {next:?}");
    }
}

fn error_code(status: &Status) -> &str {
    status.metadata().get("error-code").and_then(|v| v.to_str().ok()).unwrap_or_default()
}

async fn eventually(what: &str, cond: impl Fn() -> bool) {
    let deadline = tokio::time::Instant::now() + WAIT;
    while !cond() {
        assert!(tokio::time::Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test]
async fn schema_from_get_topic_and_get_schema_decodes_a_received_event() {
    let h = start(Duration::from_secs(3600), NO_KEEPALIVE).await;
    let mut client = h.client.clone();
    let topic = client.get_topic(with_auth(TopicRequest { topic_name: TOPIC.into() }, TOKEN, TENANT)).await.unwrap();
    let topic = topic.into_inner();
    assert!(topic.can_subscribe);
    assert_eq!(Some(topic.schema_id.clone()), h.sim.schema_id(TOPIC));
    let schema = client.get_schema(with_auth(SchemaRequest { schema_id: topic.schema_id.clone() }, TOKEN, TENANT));
    let schema = schema.await.unwrap().into_inner();
    assert_eq!(schema.schema_id, topic.schema_id);

    h.sim.publish(TOPIC, &record(7)).unwrap();
    let mut sub = Subscription::open(&h, ReplayPreset::Earliest, vec![], 10).await.unwrap();
    let batch = sub.next().await.unwrap();
    let [received] = batch.events.as_slice() else { panic!("one event expected: {batch:?}") };
    let event = received.event.as_ref().unwrap();
    assert_eq!(event.schema_id, topic.schema_id);
    let decoded = avro::decode_with_schema_json(&schema.schema_json, &event.payload).unwrap();
    // Read back with the bridge's decoder: what one side writes, the other reads.
    let read = avro::EventRecord::from_value(decoded).unwrap();
    let sent = record(7);
    assert_eq!(
        (read.created_date, &read.created_by_id, &read.fields),
        (sent.created_date, &sent.created_by_id, &sent.fields)
    );
    assert_eq!(batch.latest_replay_id, received.replay_id);
    assert_eq!(batch.pending_num_requested, 9);
}

#[tokio::test]
async fn flow_control_caps_credit_at_100_and_delivers_250_events_once_in_order() {
    let h = start(Duration::from_secs(3600), NO_KEEPALIVE).await;
    let published = publish_n(&h.sim, 250);
    let mut received: Vec<Vec<u8>> = Vec::new();

    // 500 requested at once counts as 100: exactly 100 arrive, then nothing.
    let mut sub = Subscription::open(&h, ReplayPreset::Earliest, vec![], 500).await.unwrap();
    while received.len() < 100 {
        let batch = sub.next().await.unwrap();
        received.extend(batch.events.into_iter().map(|e| e.replay_id));
        assert_eq!(batch.pending_num_requested as usize, 100 - received.len());
    }
    assert_eq!(received.len(), 100);
    sub.assert_silent().await;

    // Then in chunks of 30, topping up whenever fewer than 10 are still owed.
    let mut granted = 100usize;
    sub.request(30).await;
    granted += 30;
    while received.len() < 250 {
        let batch = sub.next().await.unwrap();
        assert!(!batch.events.is_empty());
        received.extend(batch.events.into_iter().map(|e| e.replay_id));
        assert!(received.len() <= granted, "{} received, {granted} granted", received.len());
        assert!(received.len() + batch.pending_num_requested as usize <= granted);
        assert!(batch.pending_num_requested <= 100);
        if batch.pending_num_requested < 10 && granted < 250 {
            sub.request(30).await;
            granted += 30;
        }
    }
    assert_eq!(received, published);
    sub.assert_silent().await;
}

#[tokio::test]
async fn custom_replay_id_resumes_strictly_after_it() {
    let h = start(Duration::from_secs(3600), NO_KEEPALIVE).await;
    let published = publish_n(&h.sim, 10);
    let stored = published[3].clone();
    let mut sub = Subscription::open(&h, ReplayPreset::Custom, stored, 100).await.unwrap();
    let mut received = Vec::new();
    while received.len() < 6 {
        received.extend(sub.next().await.unwrap().events.into_iter().map(|e| e.replay_id));
    }
    assert_eq!(received, published[4..]);
    sub.assert_silent().await;

    // The resumed stream also carries what is published afterwards.
    let live = h.sim.publish(TOPIC, &record(10)).unwrap();
    let batch = sub.next().await.unwrap();
    assert_eq!(batch.events.iter().map(|e| e.replay_id.clone()).collect::<Vec<_>>(), [live]);
}

#[tokio::test]
async fn expired_unknown_or_malformed_replay_ids_fail_with_the_documented_trailer() {
    let h = start(Duration::from_millis(200), NO_KEEPALIVE).await;
    let expired = h.sim.publish(TOPIC, &record(0)).unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let kept = h.sim.publish(TOPIC, &record(1)).unwrap();
    assert_eq!(h.sim.event_count(TOPIC), 1);

    for replay_id in [expired, 99u64.to_be_bytes().to_vec()] {
        let mut sub = Subscription::open(&h, ReplayPreset::Custom, replay_id, 10).await.unwrap();
        let status = sub.next().await.unwrap_err();
        assert_eq!(status.code(), Code::InvalidArgument);
        assert_eq!(error_code(&status), error_codes::REPLAY_ID_CORRUPTED);
    }
    let mut sub = Subscription::open(&h, ReplayPreset::Custom, vec![1, 2, 3], 10).await.unwrap();
    let status = sub.next().await.unwrap_err();
    assert_eq!(error_code(&status), error_codes::REPLAY_ID_VALIDATION_FAILED);

    // The client's fallback, EARLIEST, gets what is still retained.
    let mut sub = Subscription::open(&h, ReplayPreset::Earliest, vec![], 10).await.unwrap();
    assert_eq!(sub.next().await.unwrap().events[0].replay_id, kept);
}

#[tokio::test]
async fn missing_or_wrong_credentials_are_refused() {
    let h = start(Duration::from_secs(3600), NO_KEEPALIVE).await;
    let mut client = h.client.clone();
    let topic = || TopicRequest { topic_name: TOPIC.into() };

    let status = client.get_topic(Request::new(topic())).await.unwrap_err();
    assert_eq!(status.code(), Code::Unauthenticated);
    assert_eq!(error_code(&status), error_codes::AUTH_ERROR);
    let status = client.get_topic(with_auth(topic(), "wrong", TENANT)).await.unwrap_err();
    assert_eq!(status.code(), Code::Unauthenticated);
    let status = client.get_topic(with_auth(topic(), TOKEN, "")).await.unwrap_err();
    assert_eq!(status.code(), Code::PermissionDenied);
    let status = client.get_topic(with_auth(topic(), TOKEN, "00D000000000099EAA")).await.unwrap_err();
    assert_eq!(status.code(), Code::PermissionDenied);
    // The 15-character org id is as good as the 18-character one.
    client.get_topic(with_auth(topic(), TOKEN, &TENANT[..15])).await.unwrap();

    let (tx, rx) = mpsc::channel(1);
    tx.send(FetchRequest { topic_name: TOPIC.into(), num_requested: 1, ..Default::default() }).await.unwrap();
    let status = client.subscribe(with_auth(ReceiverStream::new(rx), "wrong", TENANT)).await.unwrap_err();
    assert_eq!(status.code(), Code::Unauthenticated);
    let schema = SchemaRequest { schema_id: h.sim.schema_id(TOPIC).unwrap() };
    assert_eq!(client.get_schema(Request::new(schema)).await.unwrap_err().code(), Code::Unauthenticated);
}

#[tokio::test]
async fn idle_stream_gets_keepalives_carrying_the_latest_replay_id() {
    let h = start(Duration::from_secs(3600), Duration::from_millis(150)).await;
    let published = publish_n(&h.sim, 2);
    let mut sub = Subscription::open(&h, ReplayPreset::Latest, vec![], 10).await.unwrap();
    let keepalive = sub.next().await.unwrap();
    assert!(keepalive.events.is_empty());
    assert_eq!(keepalive.latest_replay_id, published[1]);
    assert_eq!(keepalive.pending_num_requested, 10);

    // LATEST: only what comes after the subscription started.
    let live = h.sim.publish(TOPIC, &record(2)).unwrap();
    let batch = sub.next().await.unwrap();
    assert_eq!(batch.events.len(), 1);
    assert_eq!(batch.latest_replay_id, live);
    let keepalive = sub.next().await.unwrap();
    assert!(keepalive.events.is_empty());
    assert_eq!(keepalive.latest_replay_id, live);
}

/// The npm client crashed on a keep-alive without a replay id: a topic without events still
/// has a position, and a client can resume from it.
#[tokio::test]
async fn keepalives_on_a_topic_without_events_carry_a_position_to_resume_from() {
    let h = start(Duration::from_secs(3600), Duration::from_millis(150)).await;
    let mut sub = Subscription::open(&h, ReplayPreset::Latest, vec![], 10).await.unwrap();
    let keepalive = sub.next().await.unwrap();
    assert!(keepalive.events.is_empty());
    assert!(!keepalive.latest_replay_id.is_empty(), "a keep-alive always carries latest_replay_id");
    drop(sub);
    let first = h.sim.publish(TOPIC, &record(0)).unwrap();
    let mut resumed = Subscription::open(&h, ReplayPreset::Custom, keepalive.latest_replay_id, 10).await.unwrap();
    let batch = resumed.next().await.unwrap();
    assert_eq!(batch.events.iter().map(|e| e.replay_id.clone()).collect::<Vec<_>>(), [first]);
}

/// With its credit used up, a stream gets no keep-alives; the client has a while to ask for
/// more (Salesforce: 60 s after the last response), else the stream closes.
#[tokio::test]
async fn a_stream_whose_credit_is_used_up_waits_for_more_then_closes() {
    let h = start_with(PubSubSimConfig {
        keepalive_interval: Duration::from_millis(100),
        credit_timeout: Duration::from_secs(3),
        ..Default::default()
    })
    .await;
    publish_n(&h.sim, 3);
    let mut sub = Subscription::open(&h, ReplayPreset::Earliest, vec![], 2).await.unwrap();
    let batch = sub.next().await.unwrap();
    assert_eq!((batch.events.len(), batch.pending_num_requested), (2, 0));
    // Asking again in time: the stream goes on, with the third event.
    sub.request(5).await;
    let batch = sub.next().await.unwrap();
    assert_eq!((batch.events.len(), batch.pending_num_requested), (1, 4));
    // Credit left and nothing to send: keep-alives.
    assert!(sub.next().await.unwrap().events.is_empty());
    // Used up and not renewed: no keep-alive, then the end of the stream.
    publish_n(&h.sim, 4);
    let batch = sub.next().await.unwrap();
    assert_eq!((batch.events.len(), batch.pending_num_requested), (4, 0));
    let end = tokio::time::timeout(WAIT, sub.responses.message()).await.expect("the stream closes in time");
    assert!(matches!(end, Ok(None)), "closed without an error: {end:?}");
}

#[tokio::test]
async fn break_streams_ends_open_streams_with_unavailable() {
    let h = start(Duration::from_secs(3600), NO_KEEPALIVE).await;
    let mut sub = Subscription::open(&h, ReplayPreset::Latest, vec![], 10).await.unwrap();
    eventually("the stream to open", || h.sim.open_streams() == 1).await;
    h.sim.break_streams();
    let status = sub.next().await.unwrap_err();
    assert_eq!(status.code(), Code::Unavailable);
    assert_eq!(error_code(&status), error_codes::SERVICE_UNAVAILABLE);
    eventually("the stream to close", || h.sim.open_streams() == 0).await;

    // After a break, new streams work; an armed fault breaks them after N events.
    publish_n(&h.sim, 5);
    h.sim.break_streams_after_events(3);
    let mut sub = Subscription::open(&h, ReplayPreset::Earliest, vec![], 100).await.unwrap();
    let mut received = 0;
    let status = loop {
        match sub.next().await {
            Ok(batch) => received += batch.events.len(),
            Err(status) => break status,
        }
    };
    assert_eq!((received, status.code()), (3, Code::Unavailable));
}

#[tokio::test]
async fn topic_rules_publish_and_graceful_stop() {
    let h = start(Duration::from_secs(3600), NO_KEEPALIVE).await;
    let mut client = h.client.clone();
    let unknown = TopicRequest { topic_name: "/event/Nope__e".into() };
    assert_eq!(client.get_topic(with_auth(unknown, TOKEN, TENANT)).await.unwrap_err().code(), Code::NotFound);

    // Publish over gRPC is stored as given and delivered to subscribers.
    let mut sub = Subscription::open(&h, ReplayPreset::Earliest, vec![], 5).await.unwrap();
    let event = ProducerEvent { id: "evt-1".into(), payload: vec![0xff], ..Default::default() };
    let publish = PublishRequest { topic_name: TOPIC.into(), events: vec![event], ..Default::default() };
    let result = client.publish(with_auth(publish, TOKEN, TENANT)).await.unwrap().into_inner();
    assert_eq!(result.results[0].correlation_key, "evt-1");
    let batch = sub.next().await.unwrap();
    assert_eq!(batch.events[0].replay_id, result.results[0].replay_id);

    // A later request naming another topic is refused.
    let other = FetchRequest { topic_name: "/event/Other__e".into(), num_requested: 1, ..Default::default() };
    sub.requests.send(other).await.unwrap();
    assert_eq!(sub.next().await.unwrap_err().code(), Code::InvalidArgument);

    // Stopping the server ends open streams, then the server task itself.
    let mut sub = Subscription::open(&h, ReplayPreset::Latest, vec![], 5).await.unwrap();
    eventually("the stream to open", || h.sim.open_streams() == 1).await;
    h.cancel.cancel();
    assert_eq!(sub.next().await.unwrap_err().code(), Code::Unavailable);
    tokio::time::timeout(WAIT, h.server).await.expect("server stops").unwrap().unwrap();
}
