//! Property: whatever bytes reach a webhook, signed or not, the answer is a 200 or a 4xx,
//! never a panic or a 5xx. Inputs are generated (deterministically seeded) from raw bytes and
//! from JSON shaped like Infobip's, so most cases get past the signature into parsing and
//! storage.

use proptest::prelude::*;
use proptest::test_runner::{Config, RngAlgorithm, TestRng, TestRunner};
use serde_json::Value;

use crate::bridge::Bridge;
use crate::helpers::TestDb;

crate::on_both_backends!(any_body_signed_or_not_gets_a_200_or_a_4xx);

const PATHS: [&str; 3] =
    ["/api/infobip/inbound/messages", "/api/infobip/inbound/reports", "/api/infobip/inbound/answers"];

/// Keys Infobip's documents use, so generated objects look like (and often are) webhooks.
const KEYS: &[&str] = &[
    "results",
    "messageId",
    "from",
    "to",
    "receivedAt",
    "message",
    "type",
    "text",
    "url",
    "caption",
    "contact",
    "userId",
    "status",
    "groupName",
    "error",
    "id",
    "permanent",
    "seenAt",
    "doneAt",
    "conversationId",
    "senderNumber",
    "businessNumber",
    "routingAttributes",
    "latitude",
];

fn json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<f64>().prop_filter("finite", |f| f.is_finite()).prop_map(Value::from),
        prop_oneof![
            Just("TEXT".to_owned()),
            Just("2025-01-01T10:10:00.000+0000".to_owned()),
            Just("447700900123".to_owned()),
            "\\PC{0,12}"
        ]
        .prop_map(Value::from),
    ];
    leaf.prop_recursive(4, 48, 6, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            proptest::collection::btree_map(proptest::sample::select(KEYS).prop_map(str::to_owned), inner, 0..6)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

fn body() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        proptest::collection::vec(any::<u8>(), 0..256),
        json().prop_map(|v| v.to_string().into_bytes()),
        proptest::collection::vec(json(), 0..3)
            .prop_map(|results| serde_json::json!({ "results": results }).to_string().into_bytes()),
    ]
}

async fn any_body_signed_or_not_gets_a_200_or_a_4xx(db: TestDb) {
    let bridge = Bridge::start(db).await;
    let handle = tokio::runtime::Handle::current();
    let config = Config { cases: 300, failure_persistence: None, ..Config::default() };
    let mut runner = TestRunner::new_with_rng(config, TestRng::deterministic_rng(RngAlgorithm::ChaCha));
    let outcome = tokio::task::block_in_place(|| {
        runner.run(&(body(), 0..PATHS.len(), any::<bool>()), |(body, path, signed)| {
            let signature = if signed { bridge.signature(&body) } else { "00".to_owned() };
            let shown = String::from_utf8_lossy(&body).into_owned();
            let (status, answer) =
                handle.block_on(bridge.post_raw(PATHS[path], body, &[("X-Infobip-Signature", &signature)]));
            prop_assert!(status == 200 || (400..500).contains(&status), "{status} {answer} for {shown:?}");
            Ok(())
        })
    });
    outcome.unwrap();
    // The bridge is still whole: a plain health check.
    assert_eq!(bridge.app.get("/healthz").await.status(), 200);
}
