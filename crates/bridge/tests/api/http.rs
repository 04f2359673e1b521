use byoc_bridge::db::jobs::{self, NewJob};
use serde_json::{Value, json};

use crate::helpers::{TestApp, TestDb};

crate::on_both_backends!(
    health_and_readiness_answer,
    readiness_fails_while_migrations_are_pending,
    metrics_report_requests_and_queue_depth,
    status_page_renders,
);

async fn health_and_readiness_answer(test_db: TestDb) {
    let app = TestApp::spawn(&test_db).await;

    let health = app.get("/healthz").await;
    assert_eq!(health.status(), 200);
    let request_id = health.headers()["x-request-id"].to_str().unwrap().to_owned();
    assert_eq!(request_id.len(), 36, "a UUID that support can find in the logs");
    assert_eq!(health.json::<Value>().await.unwrap()["status"], "ok");

    let ready = app.get("/readyz").await;
    assert_eq!(ready.status(), 200);
    let body: Value = ready.json().await.unwrap();
    assert_eq!(body["status"], "ready");
    assert_eq!(body["database"], test_db.backend.to_string());

    assert_eq!(app.get("/no/such/page").await.status(), 404);
    app.stop().await.unwrap();
}

async fn readiness_fails_while_migrations_are_pending(test_db: TestDb) {
    let settings = test_db.settings_with(&[("BYOC__DATABASE__MIGRATE_ON_START", "false")]);
    let app = TestApp::spawn_with(settings).await;

    assert_eq!(app.get("/healthz").await.status(), 200, "alive even when not ready");
    let ready = app.get("/readyz").await;
    assert_eq!(ready.status(), 503);
    let body: Value = ready.json().await.unwrap();
    assert_eq!(body["problem"], "migrations pending");
    assert_eq!(
        body["pending_migrations"],
        json!([
            "20261121000001",
            "20261121000002",
            "20261121000003",
            "20261121000004",
            "20261201000005",
            "20261201000006",
            "20261202000007",
            "20261202000008",
            "20261202000009",
            "20261202000010"
        ])
    );

    byoc_bridge::db::migrations::run_pending(&app.db).await.unwrap();
    assert_eq!(app.get("/readyz").await.status(), 200);
    app.stop().await.unwrap();
}

async fn metrics_report_requests_and_queue_depth(test_db: TestDb) {
    let app = TestApp::spawn(&test_db).await;
    let new = vec![
        NewJob::new("test", &json!({})),
        NewJob::new("test", &json!({})).run_at(byoc_bridge::db::now() + chrono::Duration::hours(1)),
    ];
    app.db.write(move |c| jobs::enqueue(c, &new)).await.unwrap();
    app.get("/healthz").await;

    let res = app.get("/metrics").await;
    assert_eq!(res.status(), 200);
    assert_eq!(
        res.headers()["content-type"].to_str().unwrap(),
        "application/openmetrics-text; version=1.0.0; charset=utf-8",
        "the content type of the format written"
    );
    let text = res.text().await.unwrap();
    assert!(text.ends_with("# EOF\n"), "OpenMetrics text ends so: {text}");
    assert!(text.contains(r#"byoc_http_requests_total{method="GET",route="/healthz",status="200"} 1"#), "{text}");
    assert!(text.contains("byoc_http_request_duration_seconds_bucket"), "{text}");
    assert!(text.contains(r#"byoc_job_queue_depth{state="scheduled"} 1"#), "{text}");
    app.stop().await.unwrap();
}

async fn status_page_renders(test_db: TestDb) {
    let app = TestApp::spawn(&test_db).await;
    let res = app.get("/status").await;
    assert_eq!(res.status(), 200);
    assert!(res.headers()["content-type"].to_str().unwrap().starts_with("text/html"));
    let html = res.text().await.unwrap();
    assert!(html.contains("Service status"));
    assert!(html.contains(&format!("<td>{}</td>", test_db.backend)));
    assert_eq!(app.get("/static/style.css").await.status(), 200);
    app.stop().await.unwrap();
}
