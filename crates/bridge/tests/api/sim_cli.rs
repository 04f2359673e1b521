//! `byoc-bridge sim …` as their own processes: everything a test does in-process can be done
//! from outside (HTTPS and Pub/Sub over TLS, faults, webhooks to the bridge, stream breaks).

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};

use serde_json::{Value, json};

use crate::bridge::{API_KEY, Bridge, SENDER};
use crate::helpers::TestDb;

const BIN: &str = env!("CARGO_BIN_EXE_byoc-bridge");

fn fixture(name: &str) -> String {
    format!("{}/tests/fixtures/{name}", env!("CARGO_MANIFEST_DIR"))
}

/// A simulator process, killed when dropped, with the lines it printed at start.
struct SimProcess {
    child: Child,
    banner: Vec<String>,
}

impl SimProcess {
    /// Starts `byoc-bridge sim <args>` and reads its banner (the lines up to the `state:` one).
    fn start(args: &[&str]) -> Self {
        let mut child = Command::new(BIN)
            .arg("sim")
            .args(args)
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        let mut stdout = BufReader::new(child.stdout.take().unwrap());
        let mut banner = Vec::new();
        loop {
            let mut line = String::new();
            assert!(stdout.read_line(&mut line).unwrap() > 0, "the simulator exited: {banner:?}");
            let done = line.trim_start().starts_with("state:");
            banner.push(line.trim().to_owned());
            if done {
                break;
            }
        }
        std::thread::spawn(move || std::io::copy(&mut stdout, &mut std::io::sink()));
        Self { child, banner }
    }

    /// The first URL in the banner line containing `marker`.
    fn url_after(&self, marker: &str) -> String {
        let line = self.banner.iter().find(|l| l.contains(marker)).unwrap_or_else(|| panic!("{:?}", self.banner));
        let start = line.find("http").unwrap();
        line[start..].split([' ', ')', ';']).next().unwrap().to_owned()
    }
}

impl Drop for SimProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[tokio::test]
async fn the_standalone_infobip_sim_posts_signed_webhooks_and_injects_faults() {
    let bridge = Bridge::start(TestDb::sqlite()).await;
    let hook = format!("{}/api/infobip/inbound/messages", bridge.app.address);
    let reports = format!("{}/api/infobip/inbound/reports", bridge.app.address);
    let sim = SimProcess::start(&[
        "infobip",
        "--port=0",
        &format!("--api-key={API_KEY}"),
        &format!("--sender={SENDER}"),
        &format!("--webhook-url={hook}"),
        &format!("--report-webhook-url={reports}"),
        &format!("--webhook-secret={}", bridge.webhook_secret),
        "--fault=/whatsapp/1/message/text=server_error",
    ]);
    let base = sim.url_after("Infobip simulator on");
    let http = reqwest::Client::new();
    let post = |path: &str, body: Value| {
        http.post(format!("{base}{path}")).header("Authorization", format!("App {API_KEY}")).json(&body).send()
    };

    // A message typed "on the phone" reaches the agent through the bridge, signed as configured.
    let user = "447700901200";
    let answer =
        post("/__sim/webhooks/inbound", json!({ "from": user, "text": "from the standalone sim" })).await.unwrap();
    assert_eq!(answer.status(), 200);
    assert_eq!(answer.json::<Value>().await.unwrap()["statuses"], json!([200]), "the bridge accepted the signature");
    bridge.drain().await;
    let entries = bridge.sf.conversation_for(user).expect("a conversation opened").entries;
    assert!(entries.iter().any(|e| e.payload.to_string().contains("from the standalone sim")), "{entries:?}");

    // The scripted fault hits the first send, and only that one.
    let text = json!({ "from": SENDER, "to": user, "content": { "text": "hello" } });
    assert_eq!(post("/whatsapp/1/message/text", text.clone()).await.unwrap().status(), 503);
    let sent = post("/whatsapp/1/message/text", text).await.unwrap();
    assert_eq!(sent.status(), 200);
    let message_id = sent.json::<Value>().await.unwrap()["messageId"].as_str().unwrap().to_owned();
    let faults: Value = http.get(format!("{base}/__sim/faults")).send().await.unwrap().json().await.unwrap();
    assert_eq!((faults["injected"].as_u64(), faults["scripted"].as_array().map(Vec::len)), (Some(1), Some(0)));

    // Reports go to the reports webhook: the bridge knows no such message and still says 2xx.
    let report =
        post("/__sim/webhooks/report", json!({ "messageId": message_id, "status": "delivered" })).await.unwrap();
    assert_eq!(report.json::<Value>().await.unwrap()["statuses"], json!([200]));
    let unknown = post("/__sim/webhooks/report", json!({ "messageId": "nope", "status": "seen" })).await.unwrap();
    assert_eq!(unknown.status(), 404);

    // Faults can be changed at run time, and a wrong one is named.
    let bad = post("/__sim/faults", json!({ "path": "/whatsapp", "fault": "explode" })).await.unwrap();
    assert_eq!(bad.status(), 400);
    assert!(bad.text().await.unwrap().contains("explode"));
    let scripted = post("/__sim/faults", json!({ "path": "/account/1/balance", "fault": "throttle:9", "times": 2 }))
        .await
        .unwrap();
    assert_eq!(scripted.json::<Value>().await.unwrap()["scripted"].as_array().map(Vec::len), Some(2));
    let balance = http.get(format!("{base}/account/1/balance")).header("Authorization", format!("App {API_KEY}"));
    let throttled = balance.send().await.unwrap();
    assert_eq!((throttled.status().as_u16(), throttled.headers()["Retry-After"].to_str().unwrap()), (429, "9"));
}

#[tokio::test]
async fn the_standalone_salesforce_sim_serves_pubsub_over_tls_with_faults() {
    use jsonwebtoken::{Algorithm, EncodingKey, Header};
    use pubsub_wire::proto::{TopicRequest, pub_sub_client::PubSubClient};

    let (consumer_key, username) = ("3MVG9-standalone", "integration@standalone.example");
    let sim = SimProcess::start(&[
        "salesforce",
        "--host=localhost",
        "--port=0",
        "--pubsub-port=0",
        &format!("--certificate={}", fixture("test_certificate.pem")),
        &format!("--tls-cert={}", fixture("tls_cert.pem")),
        &format!("--tls-key={}", fixture("tls_key.pem")),
        &format!("--consumer-key={consumer_key}"),
        &format!("--username={username}"),
        "--sandbox",
        "--fault=/services/oauth2/token=throttle:3",
    ]);
    let base = sim.url_after("Salesforce simulator on");
    let pubsub = sim.url_after("Pub/Sub API");
    assert!(base.starts_with("https://localhost:") && pubsub.starts_with("https://localhost:"), "{base} {pubsub}");
    let ca_pem = std::fs::read(fixture("tls_ca.pem")).unwrap();

    // A sandbox: the JWT names test.salesforce.com. The first token request meets the fault.
    let key = EncodingKey::from_rsa_pem(crate::helpers::test_private_key().as_bytes()).unwrap();
    let claims = json!({
        "iss": consumer_key, "sub": username, "aud": "https://test.salesforce.com",
        "exp": chrono::Utc::now().timestamp() + 170,
    });
    let assertion = jsonwebtoken::encode(&Header::new(Algorithm::RS256), &claims, &key).unwrap();
    let form = [("grant_type", "urn:ietf:params:oauth:grant-type:jwt-bearer"), ("assertion", assertion.as_str())];
    let http = reqwest::Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(&ca_pem).unwrap())
        .build()
        .unwrap();
    let first = http.post(format!("{base}/services/oauth2/token")).form(&form).send().await.unwrap();
    assert_eq!((first.status().as_u16(), first.headers()["Retry-After"].to_str().unwrap()), (429, "3"));
    let token: Value =
        http.post(format!("{base}/services/oauth2/token")).form(&form).send().await.unwrap().json().await.unwrap();
    let access_token = token["access_token"].as_str().expect("a token after the fault").to_owned();

    // The Pub/Sub API answers over TLS, trusting only the test CA.
    let ca = tonic::transport::Certificate::from_pem(&ca_pem);
    let tls = tonic::transport::ClientTlsConfig::new().ca_certificate(ca);
    let channel = tonic::transport::Endpoint::from_shared(pubsub).unwrap().tls_config(tls).unwrap().connect().await;
    let mut client = PubSubClient::new(channel.expect("a TLS connection with the test CA"));
    let mut request = tonic::Request::new(TopicRequest { topic_name: "/event/WhatsApp_Event__e".into() });
    let md = request.metadata_mut();
    md.insert("accesstoken", access_token.parse().unwrap());
    md.insert("instanceurl", token["instance_url"].as_str().unwrap().parse().unwrap());
    md.insert("tenantid", "00D5g00000SimOr".parse().unwrap());
    let topic = client.get_topic(request).await.expect("the topic, with the sim's token").into_inner();
    assert!(topic.can_subscribe);

    // Stream breaks and token expiry, as the in-process tests use them.
    let broken = http.post(format!("{base}/__sim/pubsub/break")).send().await.unwrap();
    assert_eq!(broken.status(), 200);
    let expired = http.post(format!("{base}/__sim/tokens/expire")).send().await.unwrap();
    assert_eq!(expired.json::<Value>().await.unwrap()["tokens_issued"], 1);
    let mut request = tonic::Request::new(TopicRequest { topic_name: "/event/WhatsApp_Event__e".into() });
    request.metadata_mut().insert("accesstoken", access_token.parse().unwrap());
    let refused = client.get_topic(request).await.unwrap_err();
    assert_eq!(refused.code(), tonic::Code::Unauthenticated);
}
