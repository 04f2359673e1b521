//! Agent actions in the Salesforce simulator become the platform events (and change events)
//! that a subscriber receives over the Pub/Sub API, in the vendor's documented shapes.

use std::time::Duration;

use byoc_sim::salesforce::agent::{CDC_TOPIC, Choice};
use pubsub_wire::avro;
use pubsub_wire::proto::pub_sub_client::PubSubClient;
use pubsub_wire::proto::{FetchRequest, ReplayPreset, SchemaRequest, TopicRequest};
use reqwest::multipart::{Form, Part};
use serde_json::Value;
use tokio_util::sync::CancellationToken;
use tonic::Request;

use crate::salesforce::{Org, text_interaction};

struct Console {
    org: Org,
    token: String,
    client: PubSubClient<tonic::transport::Channel>,
    _cancel: tokio_util::sync::DropGuard,
}

impl Console {
    async fn start() -> Self {
        let org = Org::start().await;
        org.sim.add_user("agent@acme.example", "Ada Agent", "Agent");
        let cancel = CancellationToken::new();
        let addr = org.sim.start_pubsub("127.0.0.1", 0, cancel.clone()).await.unwrap();
        let client = PubSubClient::connect(format!("http://{addr}")).await.unwrap();
        let token = org.token().await;
        Self { org, token, client, _cancel: cancel.drop_guard() }
    }

    fn request<T>(&self, message: T, tenant: &str) -> Request<T> {
        let mut request = Request::new(message);
        let md = request.metadata_mut();
        md.insert("accesstoken", self.token.parse().unwrap());
        md.insert("instanceurl", self.org.running.base_url.parse().unwrap());
        md.insert("tenantid", tenant.parse().unwrap());
        request
    }

    /// Reads `n` events of `topic` from the beginning and decodes them.
    async fn read(&mut self, topic: &str, n: usize) -> Vec<apache_avro::types::Value> {
        let org_id = self.org.sim.org_id().to_owned();
        let topic_info = self
            .client
            .get_topic(self.request(TopicRequest { topic_name: topic.into() }, &org_id))
            .await
            .unwrap()
            .into_inner();
        let schema = self
            .client
            .get_schema(self.request(SchemaRequest { schema_id: topic_info.schema_id.clone() }, &org_id))
            .await
            .unwrap()
            .into_inner();
        let first = FetchRequest {
            topic_name: topic.into(),
            replay_preset: ReplayPreset::Earliest as i32,
            num_requested: n as i32,
            ..Default::default()
        };
        let mut stream =
            self.client.subscribe(self.request(tokio_stream::iter(vec![first]), &org_id)).await.unwrap().into_inner();
        let mut events = Vec::new();
        while events.len() < n {
            let response =
                tokio::time::timeout(Duration::from_secs(5), stream.message()).await.unwrap().unwrap().unwrap();
            for e in response.events {
                let event = e.event.unwrap();
                assert_eq!(event.schema_id, schema.schema_id);
                events.push(avro::decode_with_schema_json(&schema.schema_json, &event.payload).unwrap());
            }
        }
        events
    }
}

fn field(record: &apache_avro::types::Value, name: &str) -> Option<String> {
    use apache_avro::types::Value as A;
    let A::Record(fields) = record else { return None };
    fields.iter().find(|(n, _)| n == name).and_then(|(_, v)| match v {
        A::Union(_, inner) => match inner.as_ref() {
            A::String(s) => Some(s.clone()),
            _ => None,
        },
        A::String(s) => Some(s.clone()),
        _ => None,
    })
}

#[tokio::test]
async fn agent_actions_arrive_as_platform_events_in_the_documented_shape() {
    let mut console = Console::start().await;
    let form = Form::new().part(
        "json",
        Part::text(text_interaction("447700900001", "hi").to_string()).mime_str("application/json").unwrap(),
    );
    let res =
        console.org.api(reqwest::Method::POST, "/interactions", &console.token).multipart(form).send().await.unwrap();
    let conversation = res.json::<Value>().await.unwrap()["conversationIdentifier"].as_str().unwrap().to_owned();
    let sim = console.org.sim.clone();

    sim.agent_join(&conversation).unwrap();
    sim.agent_typing(&conversation, true).unwrap();
    let text_id = sim.agent_send_text(&conversation, "Hello, how can I help?").unwrap();
    sim.agent_send_attachment(
        &conversation,
        "invoice.pdf",
        "application/pdf",
        b"%PDF-1.4".to_vec(),
        Some("your invoice"),
    )
    .unwrap();
    let options = [Choice { id: "yes".into(), title: "Yes".into() }, Choice { id: "no".into(), title: "No".into() }];
    sim.agent_send_choices(&conversation, "Buttons", "Solved?", &options).unwrap();
    sim.agent_send_choices(&conversation, "ListPicker", "Pick a topic", &options).unwrap();
    sim.agent_end(&conversation).unwrap();

    let events = console.read(&sim.event_topic(), 7).await;
    let specs = crate::contract::specs();
    let mut kinds = Vec::new();
    let mut payloads = Vec::new();
    for event in &events {
        assert_eq!(field(event, "EventType__c").as_deref(), Some("Interaction"));
        let payload: Value = serde_json::from_str(&field(event, "Payload__c").unwrap()).unwrap();
        specs.events.validate_component("InteractionEvent", &payload).unwrap_or_else(|e| panic!("{payload}: {e:?}"));
        let entry = &payload["payload"]["entryPayload"];
        specs.events.validate_discriminated("AbstractEntry", entry).unwrap_or_else(|e| panic!("{entry}: {e:?}"));
        if let Some(message) = entry.get("abstractMessage") {
            specs
                .events
                .validate_discriminated("AbstractMessage", message)
                .unwrap_or_else(|e| panic!("{message}: {e:?}"));
            if let Some(choices) = message.get("choices") {
                specs
                    .events
                    .validate_discriminated("AbstractChoices", choices)
                    .unwrap_or_else(|e| panic!("{choices}: {e:?}"));
            }
        }
        assert_eq!(payload["recipient"]["subject"], "447700900001");
        assert_eq!(payload["conversationIdentifier"], conversation);
        kinds.push(payload["payload"]["entryType"].as_str().unwrap().to_owned());
        payloads.push(payload);
    }
    assert_eq!(
        kinds,
        [
            "ParticipantChanged",
            "TypingStartedIndicator",
            "Message",
            "Message",
            "Message",
            "Message",
            "SessionStatusChanged"
        ]
    );
    assert_eq!(payloads[2]["payload"]["identifier"], text_id.as_str());

    // The attachment's link works without credentials, like a content distribution link.
    let url = payloads[3]["payload"]["entryPayload"]["abstractMessage"]["staticContent"]["attachments"][0]["url"]
        .as_str()
        .unwrap()
        .to_owned();
    let file = reqwest::get(&url).await.unwrap();
    assert_eq!(file.headers()["content-type"], "application/pdf");
    assert_eq!(&file.bytes().await.unwrap()[..], b"%PDF-1.4");

    // The end of the session also shows on the change-data-capture channel.
    let changes = console.read(CDC_TOPIC, 1).await;
    assert_eq!(field(&changes[0], "Status").as_deref(), Some("Ended"));
    assert_eq!(sim.conversation_for("447700900001").unwrap().session_status, "Ended");
}

#[tokio::test]
async fn pubsub_checks_the_orgs_credentials() {
    let mut console = Console::start().await;
    let topic = console.org.sim.event_topic();
    let denied = console
        .client
        .get_topic(console.request(TopicRequest { topic_name: topic.clone() }, "00D000000000000"))
        .await
        .unwrap_err();
    assert_eq!(denied.code(), tonic::Code::PermissionDenied);
    console.org.sim.expire_all_tokens();
    let org_id = console.org.sim.org_id().to_owned();
    let expired =
        console.client.get_topic(console.request(TopicRequest { topic_name: topic }, &org_id)).await.unwrap_err();
    assert_eq!(expired.code(), tonic::Code::Unauthenticated);
}

#[tokio::test]
async fn the_agent_page_shows_conversations_and_its_forms_act() {
    let console = Console::start().await;
    let form = Form::new().part(
        "json",
        Part::text(text_interaction("447700900002", "Where is my order?").to_string())
            .mime_str("application/json")
            .unwrap(),
    );
    let res =
        console.org.api(reqwest::Method::POST, "/interactions", &console.token).multipart(form).send().await.unwrap();
    let conversation = res.json::<Value>().await.unwrap()["conversationIdentifier"].as_str().unwrap().to_owned();

    let page = reqwest::get(console.org.url("/__sim/agent")).await.unwrap().text().await.unwrap();
    assert!(page.contains(&format!("/__sim/agent/{conversation}/feed")) && page.contains("447700900002"), "{page}");
    let feed = console.org.url(&format!("/__sim/agent/{conversation}/feed"));
    let page = reqwest::get(&feed).await.unwrap().text().await.unwrap();
    assert!(page.contains("Where is my order?"), "{page}");

    let client = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
    let res = client
        .post(console.org.url(&format!("/__sim/agent/{conversation}/text")))
        .form(&[("text", "On its way")])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 303);
    let upload =
        Form::new().part("file", Part::bytes(vec![1u8, 2, 3]).file_name("photo.png").mime_str("image/png").unwrap());
    let res = client
        .post(console.org.url(&format!("/__sim/agent/{conversation}/attachment")))
        .multipart(upload)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 303);
    assert_eq!(console.org.sim.pubsub.event_count(&console.org.sim.event_topic()), 2);
    let page = reqwest::get(&feed).await.unwrap().text().await.unwrap();
    assert!(page.contains("On its way") && page.contains("photo.png"), "{page}");
    let res = client.post(console.org.url("/__sim/agent/nope/text")).form(&[("text", "x")]).send().await.unwrap();
    assert_eq!(res.status(), 404);
}
