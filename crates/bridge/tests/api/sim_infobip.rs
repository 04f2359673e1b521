//! Contract tests of the Infobip simulator.

use std::sync::{Arc, Mutex};

use actix_web::{App, HttpRequest, HttpResponse, HttpServer, web};
use byoc_bridge::infobip::account::NEEDED_SCOPES as BRIDGE_SCOPES;
use byoc_bridge::infobip::signature::{self, verify};
use byoc_sim::faults::Fault;
use byoc_sim::infobip::webhooks::{Encoding, HmacAlgorithm};
use byoc_sim::infobip::webhooks::{WebhookAuth, WebhookSender, inbound_envelope, inbound_result};
use byoc_sim::infobip::{InfobipSim, MediaFile};
use byoc_sim::server::Running;
use serde_json::{Value, json};

pub const KEY: &str = "test-api-key";
pub const SENDER: &str = "441134960000";

pub struct Account {
    pub sim: InfobipSim,
    pub running: Running,
    pub http: reqwest::Client,
}

impl Account {
    pub async fn start() -> Self {
        let sim = InfobipSim::default();
        sim.add_api_key(KEY, BRIDGE_SCOPES);
        sim.add_api_key("no-scopes", &[]);
        sim.add_sender(SENDER);
        let running = sim.start("127.0.0.1", 0).unwrap();
        Self { sim, running, http: reqwest::Client::new() }
    }

    pub fn get(&self, path: &str) -> reqwest::RequestBuilder {
        self.http.get(format!("{}{path}", self.running.base_url)).header("Authorization", format!("App {KEY}"))
    }

    pub async fn post(&self, path: &str, body: &Value, key: Option<&str>) -> (u16, Value) {
        let mut req = self.http.post(format!("{}{path}", self.running.base_url)).json(body);
        if let Some(key) = key {
            req = req.header("Authorization", format!("App {key}"));
        }
        let res = req.send().await.unwrap();
        (res.status().as_u16(), res.json().await.unwrap_or(Value::Null))
    }
}

fn text(to: &str) -> Value {
    json!({ "from": SENDER, "to": to, "content": { "text": "Hello" }, "messageId": "m-1" })
}

#[tokio::test]
async fn text_send_is_accepted_and_answered_per_contract() {
    let account = Account::start().await;
    let specs = crate::helpers::specs();
    let (status, body) = account.post("/whatsapp/1/message/text", &text("447700900001"), Some(KEY)).await;
    assert_eq!(status, 200, "{body}");
    specs.whatsapp.validate_response("post", "/whatsapp/1/message/text", 200, &body).unwrap();
    assert_eq!(body["messageId"], "m-1");
    let sent = account.sim.sent();
    assert_eq!((sent.len(), sent[0].kind.as_str(), sent[0].to.as_str()), (1, "text", "447700900001"));
}

#[tokio::test]
async fn refusals_use_infobip_envelopes_and_send_nothing() {
    let account = Account::start().await;
    let specs = crate::helpers::specs();
    let path = "/whatsapp/1/message/text";
    let (status, body) = account.post(path, &text("4477"), None).await;
    assert_eq!((status, body["requestError"]["serviceException"]["messageId"].as_str()), (401, Some("UNAUTHORIZED")));
    specs.whatsapp.validate_response("post", path, 401, &body).unwrap();
    let (status, _) = account.post(path, &text("4477"), Some("wrong")).await;
    assert_eq!(status, 401);
    let (status, body) = account.post(path, &text("4477"), Some("no-scopes")).await;
    assert_eq!((status, body["requestError"]["serviceException"]["messageId"].as_str()), (403, Some("FORBIDDEN")));

    let (status, body) = account.post(path, &json!({ "from": SENDER, "to": "4477", "content": {} }), Some(KEY)).await;
    assert_eq!(status, 400);
    specs.whatsapp.validate_response("post", path, 400, &body).unwrap();
    assert!(body["requestError"]["serviceException"]["validationErrors"]["content"].is_array(), "{body}");

    let long = json!({ "from": SENDER, "to": "4477", "content": { "text": "x".repeat(4097) } });
    let (status, body) = account.post(path, &long, Some(KEY)).await;
    assert_eq!(status, 400);
    assert!(body["requestError"]["serviceException"]["validationErrors"]["content.text"].is_array(), "{body}");

    let mut stranger = text("4477");
    stranger["from"] = json!("449999999999");
    let (status, body) = account.post(path, &stranger, Some(KEY)).await;
    assert_eq!(status, 400);
    assert!(body["requestError"]["serviceException"]["validationErrors"]["from"].is_array());

    let (status, _) = account.post("/whatsapp/1/message/nonsense", &text("4477"), Some(KEY)).await;
    assert_eq!(status, 404);
    assert!(account.sim.sent().is_empty());
    assert_eq!(account.sim.refused(), 7);
}

#[tokio::test]
async fn the_vendors_own_send_examples_are_accepted() {
    let account = Account::start().await;
    let specs = crate::helpers::specs();
    let mut accepted = 0;
    for kind in [
        "text",
        "image",
        "document",
        "audio",
        "video",
        "location",
        "interactive/buttons",
        "interactive/list",
        "template",
    ] {
        let path = format!("/whatsapp/1/message/{kind}");
        for (name, example) in specs.whatsapp.request_examples("post", &path) {
            let messages = if kind == "template" {
                example["messages"].as_array().cloned().unwrap()
            } else {
                vec![example.clone()]
            };
            for m in &messages {
                account.sim.add_sender(m["from"].as_str().unwrap());
                if kind == "template" {
                    let placeholders = m
                        .pointer("/content/templateData/body/placeholders")
                        .and_then(Value::as_array)
                        .map_or(0, Vec::len);
                    let text: String = (1..=placeholders).map(|i| format!("{{{{{i}}}}} ")).collect();
                    account.sim.add_template(
                        m["from"].as_str().unwrap(),
                        json!({ "name": m["content"]["templateName"], "language": m["content"]["language"], "status": "APPROVED",
                                "category": "UTILITY", "structure": { "body": { "text": text } } }),
                    );
                }
            }
            let (status, body) = account.post(&path, &example, Some(KEY)).await;
            // This example contradicts its own schema (string `data` values where the schema
            // wants objects): the schema is the contract, so the simulator refuses it.
            if name == "Flow button with flow token and data template message" {
                assert_eq!(status, 400, "{body}");
                continue;
            }
            assert_eq!(status, 200, "{kind} example {name:?}: {body}");
            specs.whatsapp.validate_response("post", &path, 200, &body).unwrap();
            accepted += 1;
        }
    }
    assert!(accepted >= 9, "{accepted}");
}

#[tokio::test]
async fn templates_must_exist_be_approved_and_get_their_placeholders() {
    let account = Account::start().await;
    account.sim.add_template(
        SENDER,
        json!({ "id": "1", "name": "order_update", "language": "en", "status": "APPROVED", "category": "UTILITY",
                "structure": { "body": { "text": "Hi {{1}}, order {{2}} shipped." }, "type": "TEXT" } }),
    );
    account.sim.add_template(
        SENDER,
        json!({ "id": "2", "name": "promo", "language": "en", "status": "REJECTED", "category": "MARKETING",
                "structure": { "body": { "text": "Sale!" }, "type": "TEXT" } }),
    );
    let send = |name: &str, placeholders: Value| {
        json!({ "messages": [{ "from": SENDER, "to": "447700900001",
                "content": { "templateName": name, "language": "en", "templateData": { "body": { "placeholders": placeholders } } } }] })
    };
    let (status, body) =
        account.post("/whatsapp/1/message/template", &send("order_update", json!(["Ann", "42"])), Some(KEY)).await;
    assert_eq!(status, 200, "{body}");
    for (case, body) in [
        ("missing placeholder", send("order_update", json!(["Ann"]))),
        ("not approved", send("promo", json!([]))),
        ("unknown template", send("nope", json!([]))),
    ] {
        let (status, body) = account.post("/whatsapp/1/message/template", &body, Some(KEY)).await;
        assert_eq!(status, 400, "{case}: {body}");
    }
    let listed: Value =
        account.get(&format!("/whatsapp/2/senders/{SENDER}/templates")).send().await.unwrap().json().await.unwrap();
    assert_eq!(listed["templates"].as_array().unwrap().len(), 2);
    assert_eq!(account.get("/whatsapp/2/senders/440000/templates").send().await.unwrap().status(), 404);
}

#[tokio::test]
async fn per_sender_rate_limit_answers_429() {
    let account = Account::start().await;
    account.sim.set_rate_limit(2);
    let mut statuses = Vec::new();
    for _ in 0..3 {
        statuses.push(account.post("/whatsapp/1/message/text", &text("4477"), Some(KEY)).await.0);
    }
    assert_eq!(statuses, [200, 200, 429]);
    assert_eq!(account.sim.sent().len(), 2);
}

#[tokio::test]
async fn numbers_balance_and_conversation_pages() {
    let account = Account::start().await;
    let specs = crate::helpers::specs();
    let numbers: Value = account.get("/numbers/1/numbers").send().await.unwrap().json().await.unwrap();
    specs.numbers.validate_response("get", "/numbers/1/numbers", 200, &numbers).unwrap();
    assert_eq!(numbers["numbers"][0]["number"], SENDER);
    let balance: Value = account.get("/account/1/balance").send().await.unwrap().json().await.unwrap();
    specs.account.validate_response("get", "/account/1/balance", 200, &balance).unwrap();

    let messages: Vec<Value> = (0..25)
        .map(|i| json!({ "id": format!("msg-{i:02}"), "channel": "WHATSAPP", "from": "447700900001", "to": SENDER,
                         "direction": "INBOUND", "conversationId": "conv-1", "authorType": "CUSTOMER",
                         "createdAt": "2026-11-21T10:00:00.000+00:00", "contentType": "TEXT", "content": { "text": format!("m{i}") } }))
        .collect();
    account.sim.add_conversation("conv-1", messages);
    let mut seen = Vec::new();
    for page in 0..3 {
        let body: Value = account
            .get(&format!("/ccaas/1/conversations/conv-1/messages?limit=10&page={page}"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        specs
            .conversations
            .validate_response("get", "/ccaas/1/conversations/{conversationId}/messages", 200, &body)
            .unwrap();
        assert_eq!(body["pagination"]["totalItems"], 25);
        seen.extend(body["messages"].as_array().unwrap().iter().map(|m| m["id"].as_str().unwrap().to_owned()));
    }
    assert_eq!(seen, (0..25).map(|i| format!("msg-{i:02}")).collect::<Vec<_>>());
    assert_eq!(account.get("/ccaas/1/conversations/none/messages").send().await.unwrap().status(), 404);
}

#[tokio::test]
async fn media_needs_the_key_and_may_redirect() {
    let account = Account::start().await;
    let direct = account.sim.add_media(
        SENDER,
        MediaFile { bytes: b"jpeg bytes".to_vec(), content_type: "image/jpeg".into(), redirect: false },
    );
    let redirected = account.sim.add_media(
        SENDER,
        MediaFile { bytes: b"ogg bytes".to_vec(), content_type: "audio/ogg".into(), redirect: true },
    );
    assert_eq!(account.http.get(&direct).send().await.unwrap().status(), 401, "no key, no media");
    for (url, bytes, mime) in [(direct, &b"jpeg bytes"[..], "image/jpeg"), (redirected, &b"ogg bytes"[..], "audio/ogg")]
    {
        let res = account.http.get(&url).header("Authorization", format!("App {KEY}")).send().await.unwrap();
        assert_eq!(res.status(), 200);
        assert_eq!(res.headers()["content-type"], mime);
        assert_eq!(&res.bytes().await.unwrap()[..], bytes);
    }
    let missing = format!("{}/whatsapp/1/senders/{SENDER}/media/unknown", account.running.base_url);
    assert_eq!(
        account.http.get(missing).header("Authorization", format!("App {KEY}")).send().await.unwrap().status(),
        404
    );
}

#[tokio::test]
async fn injected_faults_use_the_infobip_error_body() {
    let account = Account::start().await;
    account.sim.faults.script("/whatsapp/1/message", Fault::ServerError);
    let (status, body) = account.post("/whatsapp/1/message/text", &text("4477"), Some(KEY)).await;
    assert_eq!((status, body["requestError"]["serviceException"]["messageId"].as_str()), (503, Some("GENERAL_ERROR")));
    let (status, _) = account.post("/whatsapp/1/message/text", &text("4477"), Some(KEY)).await;
    assert_eq!(status, 200);
}

/// A receiver that verifies signatures and fails the first `failures` posts.
async fn receiver(secret: &'static str, failures: usize) -> (Running, Arc<Mutex<Vec<(bool, Value)>>>) {
    let received: Arc<Mutex<Vec<(bool, Value)>>> = Arc::default();
    let log = received.clone();
    let counter = Arc::new(Mutex::new(0usize));
    let (listener, port) = byoc_sim::server::bind("127.0.0.1", 0).unwrap();
    let server = HttpServer::new(move || {
        let log = log.clone();
        let counter = counter.clone();
        App::new().default_service(web::to(move |req: HttpRequest, body: web::Bytes| {
            let log = log.clone();
            let counter = counter.clone();
            async move {
                let signature = req.headers().get("X-Test-Signature").and_then(|v| v.to_str().ok()).unwrap_or_default();
                let valid = verify(signature::HmacAlgorithm::HmacSha512, &[secret.as_bytes()], &body, signature);
                log.lock().unwrap().push((valid, serde_json::from_slice(&body).unwrap_or(Value::Null)));
                let mut n = counter.lock().unwrap();
                *n += 1;
                if *n <= failures { HttpResponse::InternalServerError().finish() } else { HttpResponse::Ok().finish() }
            }
        }))
    })
    .listen(listener)
    .unwrap()
    .workers(1)
    .disable_signals()
    .run();
    (Running::start(server, port), received)
}

#[tokio::test]
async fn webhook_sender_signs_and_retries_until_accepted() {
    let (running, received) = receiver("hook-secret", 2).await;
    let sender = WebhookSender::new(
        &format!("{}/hook", running.base_url),
        WebhookAuth::Hmac {
            algorithm: HmacAlgorithm::HmacSha512,
            secret: "hook-secret".into(),
            header: "X-Test-Signature".into(),
            encoding: Encoding::Base64,
            prefix: true,
        },
    );
    let body = inbound_envelope(vec![inbound_result(
        "447700900001",
        SENDER,
        "wamid.1",
        json!({ "type": "TEXT", "text": "hi" }),
    )]);
    let delivery = sender.post(&body).await;
    assert_eq!(delivery.statuses, [500, 500, 200]);
    assert!(delivery.succeeded());
    let received = received.lock().unwrap().clone();
    assert_eq!(received.len(), 3);
    assert!(received.iter().all(|(valid, value)| *valid && value == &body), "every attempt is the same signed body");
    running.stop().await;
}

#[tokio::test]
async fn webhook_sender_delivers_every_documented_inbound_type_and_report() {
    let specs = crate::helpers::specs();
    let (running, received) = receiver("s", 0).await;
    let sender = WebhookSender::new(
        &format!("{}/hook", running.base_url),
        WebhookAuth::Hmac {
            algorithm: HmacAlgorithm::HmacSha512,
            secret: "s".into(),
            header: "X-Test-Signature".into(),
            encoding: Encoding::Hex,
            prefix: false,
        },
    );
    let mut sent = 0;
    for (prefix, webhook) in [
        ("whatsapp-inbound.", "receive-inbound-whatsapp-messages"),
        ("whatsapp-dlr.", "receive-whatsapp-delivery-reports"),
        ("whatsapp-seen.", "receive-whatsapp-seen-reports"),
    ] {
        for (name, example) in specs.infobip_examples(prefix).unwrap() {
            match specs.whatsapp.validate_webhook(webhook, &example) {
                Ok(()) => {}
                // Infobip's own example uses a type its enum lacks (noted in the reference):
                // the sender delivers it all the same, and the bridge must keep it.
                Err(e) if name.contains("interactive-payment-acknowledgement") => {
                    assert!(e.iter().all(|v| v.path == "results[0].message.type"), "{name}: {e:?}");
                }
                // The flow reply's example gives a string where the schema says every value of
                // `response` is an object; WhatsApp sends what the flow's form holds, so the
                // sender delivers it and the bridge keeps it.
                Err(e) if name.contains("interactive-flow-reply") => {
                    assert!(e.iter().all(|v| v.path.starts_with("results[0].message.response.")), "{name}: {e:?}");
                }
                Err(e) => panic!("{name}: {e:?}"),
            }
            assert!(sender.post(&example).await.succeeded(), "{name}");
            sent += 1;
        }
    }
    assert!(sent >= 24, "{sent}");
    // The simulator's own builders produce documents of the same contract.
    let built = inbound_envelope(vec![inbound_result(
        "447700900001",
        SENDER,
        "wamid.2",
        json!({ "type": "TEXT", "text": "hi" }),
    )]);
    specs.whatsapp.validate_webhook("receive-inbound-whatsapp-messages", &built).unwrap();
    let dlr = byoc_sim::infobip::webhooks::delivery_report("m-1", "447700900001", true);
    specs.whatsapp.validate_webhook("receive-whatsapp-delivery-reports", &dlr).unwrap();
    let seen = byoc_sim::infobip::webhooks::seen_report("m-1", "447700900001", SENDER);
    specs.whatsapp.validate_webhook("receive-whatsapp-seen-reports", &seen).unwrap();
    let received = received.lock().unwrap().clone();
    assert_eq!(received.len(), sent);
    assert!(received.iter().all(|(valid, _)| *valid));
    running.stop().await;
}

#[tokio::test]
async fn slow_responses_outlast_a_short_client_timeout() {
    let account = Account::start().await;
    account.sim.faults.script("/account/1/balance", Fault::Slow(std::time::Duration::from_millis(400)));
    let impatient = reqwest::Client::builder().timeout(std::time::Duration::from_millis(100)).build().unwrap();
    let res = impatient
        .get(format!("{}/account/1/balance", account.running.base_url))
        .header("Authorization", format!("App {KEY}"))
        .send()
        .await;
    assert!(res.unwrap_err().is_timeout());
    assert_eq!(account.get("/account/1/balance").send().await.unwrap().status(), 200);
}
