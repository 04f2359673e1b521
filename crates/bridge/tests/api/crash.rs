//! kill -9 under load, both ways: the release-like binary is killed with SIGKILL several times
//! while customers write and agents answer across many conversations, and restarted on the
//! same data directory each time. Every message must arrive once and in order, in Salesforce
//! and on WhatsApp.
//!
//! Sized for CI; `BYOC_CRASH_USERS=40 BYOC_CRASH_KILLS=10 cargo test --test api crash` is the
//! larger run (see the README).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use byoc_sim::infobip::webhooks::{
    Encoding, HmacAlgorithm, delivery_report, format_signature, inbound_envelope, inbound_result,
};
use serde_json::{Value, json};

use crate::bridge::SENDER;
use crate::helpers::TestDb;
use crate::process::{Provisioned, Replica, command, provisioned, serving_in};

crate::on_both_backends!(kill_9_under_load_loses_nothing_doubles_nothing_and_keeps_order);

/// Messages each way per user and round.
const PER_ROUND: usize = 3;

fn scale(name: &str, default: usize) -> usize {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

/// Infobip's side of the bridge's webhooks: signed posts to the bridge, wherever it is now.
#[derive(Clone)]
struct Infobip {
    url: String,
    secret: String,
    http: reqwest::Client,
}

impl Infobip {
    /// Posts until the bridge answers 200, as Infobip retries; a killed bridge just takes longer.
    async fn post(&self, path: &str, body: &Value) {
        let bytes = body.to_string();
        let signature =
            format_signature(HmacAlgorithm::HmacSha256, self.secret.as_bytes(), bytes.as_bytes(), Encoding::Hex, false);
        let deadline = Instant::now() + Duration::from_secs(120);
        loop {
            let sent = self
                .http
                .post(format!("{}{path}", self.url))
                .header("Content-Type", "application/json")
                .header("X-Infobip-Signature", &signature)
                .body(bytes.clone())
                .send()
                .await;
            match sent {
                Ok(res) if res.status() == 200 => return,
                Ok(res) => assert!(res.status().is_server_error(), "{path}: {}", res.status()),
                Err(_) => {}
            }
            assert!(Instant::now() < deadline, "the bridge never took {path}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

fn entry_text(entry: &byoc_sim::salesforce::Entry) -> String {
    entry.payload["payload"]["abstractMessage"]["staticContent"]["text"].as_str().unwrap_or_default().to_owned()
}

async fn kill_9_under_load_loses_nothing_doubles_nothing_and_keeps_order(test_db: TestDb) {
    let (users, kills) = (scale("BYOC_CRASH_USERS", 6), scale("BYOC_CRASH_KILLS", 4));
    let Provisioned { vendors, services: _, key_env: (_, master_key), webhook_secret: secret } =
        provisioned(&test_db).await;
    // One port for every restart, so Infobip's webhooks find the bridge again.
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let env = [
        ("BYOC__SECURITY__MASTER_KEY", master_key),
        ("BYOC__SERVER__PORT", port.to_string()),
        ("BYOC__INFOBIP__UNKNOWN_OUTCOME_WAIT_SECS", "5".to_owned()),
        ("BYOC__WORKER__POLL_INTERVAL_MS", "50".to_owned()),
    ];
    let data = test_db.dir.path().join("replica");
    let start = || serving_in(command(&test_db, &["serve"]), &data, &env);
    let mut bridge: Replica = start();
    let infobip = Infobip {
        url: format!("http://127.0.0.1:{port}"),
        secret,
        http: reqwest::Client::builder().timeout(Duration::from_secs(10)).build().unwrap(),
    };

    // Infobip reports each WhatsApp message it took, as it does, until the test ends.
    let done = Arc::new(AtomicBool::new(false));
    let reports = tokio::spawn({
        let (ib, infobip, done) = (vendors.ib.clone(), infobip.clone(), done.clone());
        async move {
            let mut reported = std::collections::HashSet::new();
            while !done.load(Ordering::Relaxed) {
                for m in ib.sent() {
                    let id = m.body["messageId"].as_str().unwrap_or_default().to_owned();
                    if reported.insert(id.clone()) {
                        let to = m.body["to"].as_str().unwrap_or_default().to_owned();
                        infobip.post("/api/infobip/inbound/reports", &delivery_report(&id, &to, true)).await;
                    }
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    });

    let user_ids: Vec<String> = (0..users).map(|u| format!("4477009{:05}", 20_000 + u)).collect();
    let write = |user: String, from: usize, to: usize| {
        let infobip = infobip.clone();
        async move {
            // In order per user: the next only once Infobip has the bridge's 200 for this one.
            for i in from..to {
                let message = inbound_result(
                    &user,
                    SENDER,
                    &format!("wamid.crash.{user}.{i}"),
                    json!({ "type": "TEXT", "text": format!("in {i}") }),
                );
                infobip.post("/api/infobip/inbound/messages", &inbound_envelope(vec![message])).await;
            }
        }
    };
    futures_util::future::join_all(user_ids.iter().map(|u| write(u.clone(), 0, 1))).await;
    let deadline = Instant::now() + Duration::from_secs(60);
    while user_ids.iter().any(|u| vendors.sf.conversation_for(u).is_none()) {
        assert!(Instant::now() < deadline, "the first messages never reached Salesforce");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let conversations: BTreeMap<String, String> =
        user_ids.iter().map(|u| (u.clone(), vendors.sf.conversation_for(u).unwrap().identifier)).collect();

    let mut owners = Vec::new();
    let mut next_in = 1;
    let mut next_out = 0;
    for round in 0..kills {
        // Agents answer (published on the Pub/Sub topic whether or not the bridge is up) while
        // customers write; the kill comes at a different point of the work each round.
        for conversation in conversations.values() {
            for i in next_out..next_out + PER_ROUND {
                vendors.sf.agent_send_text(conversation, &format!("out {i}")).unwrap();
            }
        }
        next_out += PER_ROUND;
        let writing =
            futures_util::future::join_all(user_ids.iter().map(|u| write(u.clone(), next_in, next_in + PER_ROUND)));
        let kill_after = Duration::from_millis(40 + 70 * round as u64);
        tokio::join!(writing, async {
            tokio::time::sleep(kill_after).await;
            owners.extend(bridge.owner.lock().unwrap().clone());
            bridge.child.kill().unwrap();
            bridge.child.wait().unwrap();
            bridge = start();
        });
        next_in += PER_ROUND;
    }

    // Everything arrives, in order, once: in Salesforce and on WhatsApp.
    let expected_in: Vec<String> = (0..next_in).map(|i| format!("in {i}")).collect();
    let expected_out: Vec<String> = (0..next_out).map(|i| format!("out {i}")).collect();
    let inbound = |user: &str| -> Vec<String> {
        // The customer's messages; the conversation also holds the agents' own entries.
        let entries = vendors.sf.conversation_for(user).map(|c| c.entries).unwrap_or_default();
        entries.iter().map(entry_text).filter(|t| t.starts_with("in ")).collect()
    };
    let outbound = |user: &str| -> Vec<String> {
        let texts = vendors.ib.sent().into_iter().filter(|m| m.body["to"] == user);
        texts
            .filter_map(|m| m.body["content"]["text"].as_str().map(str::to_owned))
            .filter(|t| t.starts_with("out "))
            .collect()
    };
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let complete = user_ids.iter().all(|u| inbound(u).len() >= next_in && outbound(u).len() >= next_out);
        if complete || Instant::now() > deadline {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    done.store(true, Ordering::Relaxed);
    reports.await.unwrap();
    let (mut lost, mut doubled, mut misordered) = (0, 0, 0);
    for user in &user_ids {
        for (got, expected) in [(inbound(user), &expected_in), (outbound(user), &expected_out)] {
            let unique: std::collections::BTreeSet<&String> = got.iter().collect();
            lost += expected.iter().filter(|e| !unique.contains(e)).count();
            doubled += got.len() - unique.len();
            if got != *expected && got.len() == unique.len() && unique.len() == expected.len() {
                misordered += 1;
            }
        }
    }
    let messages = users * (next_in + next_out);
    eprintln!("crash test: {messages} messages, {kills} kills: {lost} lost, {doubled} doubled, {misordered} reordered");
    assert_eq!((lost, doubled, misordered), (0, 0, 0), "{messages} messages, {kills} kills");
    for user in &user_ids {
        assert_eq!(inbound(user), expected_in, "{user} in Salesforce");
        assert_eq!(outbound(user), expected_out, "{user} on WhatsApp");
    }
    // Each restart was the same replica: it took its own subscription lease back.
    owners.extend(bridge.owner.lock().unwrap().clone());
    assert!(owners.len() > 1 && owners.iter().all(|o| *o == owners[0]), "{owners:?}");
    bridge.child.kill().unwrap();
    bridge.child.wait().unwrap();
}
