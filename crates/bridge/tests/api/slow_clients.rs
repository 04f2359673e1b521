//! Slow and crowding clients against the real binary: a thousand-fold stalled body cannot take
//! the file descriptors that signed webhooks and health checks need.

use std::process::Stdio;
use std::time::Duration;

use byoc_sim::infobip::webhooks::{Encoding, HmacAlgorithm, format_signature, inbound_envelope, inbound_result};
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::bridge::SENDER;
use crate::helpers::TestDb;
use crate::process::{BIN, Provisioned, command_of, provisioned, serving};

crate::on_both_backends!(stalled_bodies_are_cut_off_while_signed_webhooks_are_served);

const STALLED: usize = 300;

async fn stalled_bodies_are_cut_off_while_signed_webhooks_are_served(test_db: TestDb) {
    let Provisioned { vendors: _vendors, services, key_env: (_, master_key), webhook_secret: secret } =
        provisioned(&test_db).await;
    // A small container's file limit: fewer descriptors than stalled clients.
    let mut cmd = command_of(&test_db, "prlimit", &["--nofile=256:256", BIN, "serve"]);
    cmd.stdout(Stdio::null());
    let env = [
        ("BYOC__SECURITY__MASTER_KEY", master_key),
        ("BYOC__SERVER__BODY_READ_SECS", "2".to_owned()),
        ("BYOC__SERVER__MAX_REQUESTS_PER_CLIENT", "32".to_owned()),
        ("BYOC__SALESFORCE__SUBSCRIBE", "false".to_owned()),
        ("BYOC__WORKER__ENABLED", "false".to_owned()),
    ];
    let mut bridge = serving(cmd, &test_db, &env);
    let address: std::net::SocketAddr = format!("127.0.0.1:{}", bridge.port).parse().unwrap();

    // Clients from another address send headers and the start of a body, then stall.
    let mut stalled = Vec::new();
    for _ in 0..STALLED {
        let socket = tokio::net::TcpSocket::new_v4().unwrap();
        socket.bind("127.0.0.2:0".parse().unwrap()).unwrap();
        // A server that stopped accepting leaves connections unanswered: it is saturated.
        let Ok(Ok(mut stream)) = tokio::time::timeout(Duration::from_secs(2), socket.connect(address)).await else {
            break;
        };
        let head = "POST /api/infobip/inbound/messages HTTP/1.1\r\nHost: bridge\r\nContent-Type: application/json\r\n\
                    Content-Length: 100000\r\nX-Infobip-Signature: 00\r\n\r\n{\"results\":[";
        if stream.write_all(head.as_bytes()).await.is_ok() {
            stalled.push(stream);
        }
    }
    assert!(stalled.len() > 256, "more stalled clients than file descriptors: {}", stalled.len());

    // Signed webhooks and the health check are served meanwhile.
    let client = reqwest::Client::builder().timeout(Duration::from_secs(20)).build().unwrap();
    for i in 0..5 {
        let body = inbound_envelope(vec![inbound_result(
            "447700900901",
            SENDER,
            &format!("wamid.slow{i}"),
            json!({ "type": "TEXT", "text": "still served" }),
        )])
        .to_string();
        let signature =
            format_signature(HmacAlgorithm::HmacSha256, secret.as_bytes(), body.as_bytes(), Encoding::Hex, false);
        let res = client
            .post(format!("http://{address}/api/infobip/inbound/messages"))
            .header("Content-Type", "application/json")
            .header("X-Infobip-Signature", signature)
            .body(body)
            .send()
            .await
            .expect("a signed webhook is served while clients stall");
        assert_eq!(res.status(), 200);
    }
    let health = client.get(format!("http://{address}/healthz")).send().await.expect("the health check is served");
    assert_eq!(health.status(), 200);

    // Every stalled client is cut off: a 408 (its body's time ran out) or a 503 (its address
    // had its share), then the connection closes.
    let answers = futures_util::future::join_all(stalled.into_iter().map(|mut stream| async move {
        let mut answer = Vec::new();
        stream.read_to_end(&mut answer).await.ok();
        String::from_utf8_lossy(&answer).into_owned()
    }));
    let answers =
        tokio::time::timeout(Duration::from_secs(30), answers).await.expect("every stalled client was cut off");
    let timed_out = answers.iter().filter(|a| a.starts_with("HTTP/1.1 408")).count();
    let refused = answers.iter().filter(|a| a.starts_with("HTTP/1.1 503")).count();
    assert!(timed_out > 0 && timed_out <= 32, "408s: {timed_out}");
    assert!(refused > 0, "503s: {refused}");
    let stored = services
        .db
        .run(|c| {
            use byoc_bridge::db::schema::jobs;
            use diesel::prelude::*;
            Ok(jobs::table.filter(jobs::kind.eq("deliver_inbound")).count().get_result::<i64>(c)?)
        })
        .await
        .unwrap();
    assert_eq!(stored, 5, "the five signed messages, and nothing of the stalled ones");
    bridge.child.kill().unwrap();
    bridge.child.wait().unwrap();
}
