//! What an operator alerts on: the figures `/metrics` gives per app.

use byoc_sim::faults::Fault;

use crate::bridge::Bridge;
use crate::helpers::TestDb;

crate::on_both_backends!(
    subscription_and_token_health_are_gauges_per_app,
    org_limits_are_read_per_app_and_the_bridges_own_use_is_counted,
    each_vendors_answer_time_is_a_histogram
);

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

/// The org's limits are read per app and kept as gauges, with a warning while one runs low;
/// the bridge counts its own Interaction API requests.
async fn org_limits_are_read_per_app_and_the_bridges_own_use_is_counted(db: TestDb) {
    let bridge = Bridge::start(db).await;
    bridge.open_conversation("447700900630").await;
    let metrics = scrape(&bridge).await;
    let counted = metrics
        .lines()
        .find_map(|l| l.strip_prefix(r#"byoc_salesforce_interaction_requests_total{app="acme"} "#))
        .and_then(|n| n.parse::<u64>().ok());
    assert!(counted.is_some_and(|n| n >= 2), "capabilities and the message at least: {metrics}");

    bridge.sf.set_limit("DailyApiRequests", 15_000, 1_200);
    let settings = bridge.settings();
    let salesforce = byoc_bridge::salesforce::Client::new(&settings.salesforce).unwrap();
    let watched = byoc_bridge::metrics::Metrics::new();
    let read = byoc_bridge::worker::limits::check_once(&bridge.app.directory, &salesforce, &watched).await;
    assert_eq!(read.len(), 1, "{read:?}");
    let (app, limits) = &read[0];
    assert_eq!(app, "acme");
    let api = limits.iter().find(|l| l.name == "DailyApiRequests").unwrap();
    assert_eq!((api.max, api.remaining, api.low()), (15_000, 1_200, true));
    let events = limits.iter().find(|l| l.name == "DailyDeliveredPlatformEvents").unwrap();
    assert!(!events.low(), "{events:?}");
    let text = watched.encode().unwrap();
    assert!(has_line(&text, r#"byoc_salesforce_limit_remaining{app="acme",limit="DailyApiRequests"} 1200"#), "{text}");
    assert!(has_line(&text, r#"byoc_salesforce_limit_max{app="acme",limit="DailyApiRequests"} 15000"#), "{text}");
}

/// Where a job's time goes: the vendors' share of it is measured per vendor.
async fn each_vendors_answer_time_is_a_histogram(db: TestDb) {
    let count = |metrics: &str, vendor: &str| {
        metrics
            .lines()
            .find_map(|l| l.strip_prefix(&format!(r#"byoc_vendor_request_seconds_count{{vendor="{vendor}"}} "#)))
            .and_then(|n| n.parse::<u64>().ok())
    };
    let bridge = Bridge::start(db).await;
    let before = scrape(&bridge).await;
    assert_eq!(count(&before, "infobip"), None, "nothing sent to Infobip yet: {before}");

    let conversation = bridge.open_conversation("447700900640").await;
    let _subscription = bridge.subscribe().await;
    bridge.sf.agent_send_text(&conversation, "on its way").unwrap();
    bridge.until_relays_queued(1).await;
    bridge.drain_all().await;
    assert_eq!(bridge.ib.sent().len(), 1);

    let metrics = scrape(&bridge).await;
    let salesforce = count(&metrics, "salesforce").unwrap_or_default();
    assert!(salesforce >= 2, "capabilities and the customer's message at least: {metrics}");
    assert_eq!(count(&metrics, "infobip"), Some(1), "the agent's reply: {metrics}");
    let all_buckets = metrics.lines().find(|l| {
        l.starts_with("byoc_vendor_request_seconds_bucket{")
            && l.contains(r#"vendor="infobip""#)
            && l.contains(r#"le="+Inf""#)
    });
    assert!(all_buckets.is_some_and(|l| l.ends_with(" 1")), "{metrics}");
}
