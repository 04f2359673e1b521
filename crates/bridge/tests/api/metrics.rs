//! What an operator alerts on: the figures `/metrics` gives per app.

use byoc_sim::faults::Fault;

use crate::bridge::Bridge;
use crate::helpers::TestDb;

crate::on_both_backends!(subscription_and_token_health_are_gauges_per_app);

async fn scrape(bridge: &Bridge) -> String {
    bridge.app.get("/metrics").await.text().await.unwrap()
}

fn has_line(metrics: &str, line: &str) -> bool {
    metrics.lines().any(|l| l == line)
}

/// What the summary page shows red (no subscription, no token) an alert can see too.
async fn subscription_and_token_health_are_gauges_per_app(db: TestDb) {
    let bridge = Bridge::start(db).await;
    bridge.open_conversation("447700900610").await;
    let up = format!(r#"byoc_pubsub_subscription_up{{app="acme",topic="{}"}}"#, bridge.sf.event_topic());

    let subscription = bridge.subscribe().await;
    let metrics = scrape(&bridge).await;
    assert!(has_line(&metrics, &format!("{up} 1")), "{metrics}");
    assert!(has_line(&metrics, r#"byoc_salesforce_token_ok{app="acme"} 1"#), "{metrics}");
    assert!(!metrics.contains("byoc_salesforce_token_failures_total{"), "none failed yet: {metrics}");

    drop(subscription);
    bridge.until("the subscription stopped", || bridge.sf.pubsub.open_streams() == 0).await;
    let mut metrics = scrape(&bridge).await;
    for _ in 0..500 {
        if has_line(&metrics, &format!("{up} 0")) {
            break;
        }
        // The subscription's task notes its end right after the stream closes.
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        metrics = scrape(&bridge).await;
    }
    assert!(has_line(&metrics, &format!("{up} 0")), "down once its stream ended: {metrics}");

    // The org stops honouring the token and then fails to issue a new one.
    bridge.sf.expire_all_tokens();
    bridge.sf.faults.script("/services/oauth2/token", Fault::ServerError);
    let body = byoc_sim::infobip::webhooks::inbound_envelope(vec![byoc_sim::infobip::webhooks::inbound_result(
        "447700900610",
        crate::bridge::SENDER,
        "wamid.metrics.2",
        serde_json::json!({ "type": "TEXT", "text": "still there?" }),
    )]);
    assert_eq!(bridge.post_inbound(&body).await.0, 200);
    let report = bridge.drain().await;
    assert_eq!(report.retried, 1, "{report:?}");
    let metrics = scrape(&bridge).await;
    assert!(has_line(&metrics, r#"byoc_salesforce_token_ok{app="acme"} 0"#), "{metrics}");
    assert!(has_line(&metrics, r#"byoc_salesforce_token_failures_total{app="acme"} 1"#), "{metrics}");

    bridge.drain_all().await;
    let metrics = scrape(&bridge).await;
    assert!(has_line(&metrics, r#"byoc_salesforce_token_ok{app="acme"} 1"#), "granted again: {metrics}");
    assert!(has_line(&metrics, r#"byoc_inbound_messages_total{app="acme",outcome="delivered"} 2"#), "{metrics}");
}
