//! The npm package `salesforce-pubsub-api-client`, a Pub/Sub API client written by nobody
//! here, against the Salesforce simulator over TLS with the test CA: publish, subscribe to the
//! platform event and to change data capture, decode, replay, flow control, keep-alives on an
//! idle topic. The package is pinned in `tests/npm-pubsub/package-lock.json` and installed by
//! `.ci/run` (`npm ci`); without it the test prints SKIPPED and passes, except with `CI=true`.

use std::collections::BTreeMap;
use std::time::Duration;

use byoc_sim::pubsub::PubSubSimConfig;
use byoc_sim::pubsub::avro::EventRecord;
use byoc_sim::salesforce::SalesforceConfig;
use byoc_sim::server::TlsIdentity;
use reqwest::multipart::{Form, Part};
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

use crate::salesforce::{Org, fixture, text_interaction};

const PACKAGE_DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/npm-pubsub");
const USER_ID: &str = "0055g00000SimUsAAA";
const BULK: usize = 150;

/// Whether node and the installed package are there; outside CI, their absence skips the test.
fn client_installed() -> bool {
    let installed = std::path::Path::new(PACKAGE_DIR).join("node_modules/salesforce-pubsub-api-client").is_dir();
    let node = std::process::Command::new("node").arg("--version").output().is_ok_and(|o| o.status.success());
    if installed && node {
        return true;
    }
    let why = if node { "run `npm ci` in crates/sim/tests/npm-pubsub" } else { "node is not installed" };
    assert!(std::env::var("CI").as_deref() != Ok("true"), "the npm Pub/Sub client is required in CI: {why}");
    eprintln!("SKIPPED the npm Pub/Sub client check: {why}");
    false
}

fn record(event_type: &str, payload: &str) -> EventRecord {
    let fields = BTreeMap::from([
        ("ns__EventType__c".to_owned(), Some(event_type.to_owned())),
        ("ns__Payload__c".to_owned(), Some(payload.to_owned())),
    ]);
    EventRecord { created_date: chrono::Utc::now().timestamp_millis(), created_by_id: USER_ID.into(), fields }
}

/// An 8-byte replay id as the client reads it: a big-endian unsigned number.
fn replay_number(replay_id: &[u8]) -> u64 {
    u64::from_be_bytes(replay_id.try_into().unwrap())
}

#[tokio::test]
async fn the_npm_pubsub_client_works_against_the_simulator() {
    if !client_installed() {
        return;
    }
    let tls = TlsIdentity { cert_pem: fixture("tls_cert.pem").into(), key_pem: fixture("tls_key.pem").into() };
    let config = SalesforceConfig {
        event_type_field: "ns__EventType__c".into(),
        payload_field: "ns__Payload__c".into(),
        platform_event: "ns__BYOC_Event__e".into(),
        pubsub: PubSubSimConfig { keepalive_interval: Duration::from_millis(300), ..PubSubSimConfig::default() },
        ..SalesforceConfig::default()
    };
    let org = Org::start_with(config, Some(&tls)).await;
    let (sim, topic) = (org.sim.clone(), org.sim.event_topic());
    sim.pubsub.register_platform_event("Bulk__e", "ns__EventType__c", "ns__Payload__c").unwrap();
    sim.pubsub.register_platform_event("Idle__e", "ns__EventType__c", "ns__Payload__c").unwrap();
    let listener = tokio::net::TcpListener::bind("localhost:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let cancel = CancellationToken::new();
    let (server, serving) = (sim.pubsub.clone(), cancel.clone());
    tokio::spawn(async move { server.serve_tls(listener, serving, &tls.cert_pem, &tls.key_pem).await });
    let _stop = cancel.drop_guard();

    // An agent's conversation: three replies and the end of the session (a platform event and
    // a MessagingSession change event with bitmaps).
    let token = org.token().await;
    let form = Form::new().part(
        "json",
        Part::text(text_interaction("447700900001", "hi").to_string()).mime_str("application/json").unwrap(),
    );
    let res = org.api(reqwest::Method::POST, "/interactions", &token).multipart(form).send().await.unwrap();
    let conversation = res.json::<Value>().await.unwrap()["conversationIdentifier"].as_str().unwrap().to_owned();
    for text in ["one", "two", "three"] {
        sim.agent_send_text(&conversation, text).unwrap();
    }
    sim.agent_end(&conversation).unwrap();
    for i in 0..BULK {
        sim.pubsub.publish("/event/Bulk__e", &record("Interaction", &i.to_string())).unwrap();
    }
    let before = sim.pubsub.events(&topic);

    let check = json!({
        "ca": format!("{}/tests/fixtures/tls_ca.pem", env!("CARGO_MANIFEST_DIR")),
        "endpoint": format!("localhost:{port}"),
        "accessToken": token,
        "instanceUrl": org.running.base_url,
        "organizationId": sim.org_id(),
        "userId": USER_ID,
        "topic": topic,
        "eventTypeField": "ns__EventType__c",
        "payloadField": "ns__Payload__c",
        "topicEvents": before.len() + 1,
        "replayFromIndex": 1,
        "bulkTopic": "/event/Bulk__e",
        "bulkEvents": BULK,
        "idleTopic": "/event/Idle__e",
        "cdcTopic": byoc_sim::salesforce::agent::CDC_TOPIC,
        "timeoutMs": 60_000,
    });
    let output = tokio::process::Command::new("node")
        .arg("check.mjs")
        .current_dir(PACKAGE_DIR)
        .env("CHECK_CONFIG", check.to_string())
        .output()
        .await
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "the npm client failed:\n{stderr}");
    let report: Value = serde_json::from_slice(&output.stdout).unwrap_or_else(|e| panic!("{e}: {stderr}"));

    // What it published is on the bus, with the replay id it was told.
    let after = sim.pubsub.events(&topic);
    assert_eq!(after.len(), before.len() + 1);
    let published = after.last().unwrap();
    assert_eq!(report["published"], replay_number(&published.replay_id));

    // It decoded every event the agent's actions produced, in order, with their replay ids.
    let events = report["events"].as_array().unwrap();
    let ids: Vec<u64> = events.iter().map(|e| e["replayId"].as_u64().unwrap()).collect();
    assert_eq!(ids, after.iter().map(|e| replay_number(&e.replay_id)).collect::<Vec<_>>());
    let entries: Vec<String> = events
        .iter()
        .map(|e| {
            let payload: Value = serde_json::from_str(e["payload"]["ns__Payload__c"].as_str().unwrap()).unwrap();
            let entry = &payload["payload"];
            let text = &entry["entryPayload"]["abstractMessage"]["staticContent"]["text"];
            text.as_str().or(entry["entryType"].as_str()).or(payload["published"].as_str()).unwrap().to_owned()
        })
        .collect();
    assert_eq!(entries, ["one", "two", "three", "SessionStatusChanged", "by the npm client"]);
    assert!(events.iter().all(|e| e["payload"]["CreatedById"].as_str().is_some()));

    // Replay from the second event gives the third and fourth.
    assert_eq!(report["replayed"], json!(ids[2..4]));

    // Flow control: all 150 in order through re-requests of 100; a bounded client 10 then 5.
    let bulk: Vec<u64> = sim.pubsub.events("/event/Bulk__e").iter().map(|e| replay_number(&e.replay_id)).collect();
    assert_eq!(report["bulk"], json!(bulk));
    assert_eq!(report["bounded"], 15);

    // A keep-alive on a topic without events carried a position (the client crashed without).
    assert_eq!(report["keepAliveReplayId"], 0);

    // The change event's bitmap came out as field names, with the new status.
    let change = &report["change"]["payload"];
    let changed: Vec<&str> =
        change["ChangeEventHeader"]["changedFields"].as_array().unwrap().iter().filter_map(Value::as_str).collect();
    assert!(changed.contains(&"Status"), "{change}");
    assert_eq!(change["Status"], "Ended", "{change}");
}
