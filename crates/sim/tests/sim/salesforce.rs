//! Contract tests of the Salesforce simulator: it accepts what Salesforce accepts, answers
//! in the documented shapes, and refuses the rest with Salesforce's own errors.

use byoc_sim::faults::Fault;
use byoc_sim::salesforce::{ConnectedApp, SalesforceConfig, SalesforceSim};
use byoc_sim::server::{Running, TlsIdentity};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use reqwest::multipart::{Form, Part};
use serde_json::{Value, json};

pub const CONSUMER_KEY: &str = "3MVG9-test-consumer-key";
pub const USERNAME: &str = "integration@acme.example";
pub const CHANNEL: &str = "7c0c7f4e-1b1a-4c3f-9a7e-2f4b7a1d5e6f";
pub const CONTEXT: &str = "Partner1_ChannelDefinition1";

pub fn fixture(name: &str) -> String {
    std::fs::read_to_string(format!("{}/tests/fixtures/{name}", env!("CARGO_MANIFEST_DIR"))).unwrap()
}

pub struct Org {
    pub sim: SalesforceSim,
    pub running: Running,
    pub http: reqwest::Client,
}

impl Org {
    pub async fn start() -> Self {
        Self::start_with(SalesforceConfig::default(), None).await
    }

    /// An org with this configuration, on HTTPS on `localhost` when `tls` is given (the
    /// client then trusts the test CA).
    pub async fn start_with(config: SalesforceConfig, tls: Option<&TlsIdentity>) -> Self {
        let sim = SalesforceSim::new(config);
        sim.register_app(ConnectedApp {
            consumer_key: CONSUMER_KEY.into(),
            certificate_pem: fixture("test_certificate.pem"),
            approved_users: vec![USERNAME.into()],
            scopes: vec!["interaction_api".into(), "api".into()],
            callback_urls: vec!["http://127.0.0.1/callback".into()],
        });
        sim.add_user(USERNAME, "Integration User", "System Administrator");
        sim.add_user("stranger@acme.example", "Not Approved", "Agent");
        sim.add_channel(CHANNEL, CONTEXT);
        let Some(tls) = tls else {
            let running = sim.start("127.0.0.1", 0).unwrap();
            return Self { sim, running, http: reqwest::Client::new() };
        };
        let running = sim.start_tls("localhost", 0, tls).unwrap();
        let ca = reqwest::Certificate::from_pem(fixture("tls_ca.pem").as_bytes()).unwrap();
        let http = reqwest::Client::builder().add_root_certificate(ca).build().unwrap();
        Self { sim, running, http }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.running.base_url)
    }

    pub fn assertion(&self, key_file: &str, claims: Value) -> String {
        let key = EncodingKey::from_rsa_pem(fixture(key_file).as_bytes()).unwrap();
        jsonwebtoken::encode(&Header::new(Algorithm::RS256), &claims, &key).unwrap()
    }

    pub fn claims(&self) -> Value {
        json!({
            "iss": CONSUMER_KEY,
            "sub": USERNAME,
            "aud": "https://login.salesforce.com",
            "exp": chrono::Utc::now().timestamp() + 170,
        })
    }

    pub async fn token_response(&self, assertion: &str) -> (u16, Value) {
        let res = self
            .http
            .post(self.url("/services/oauth2/token"))
            .form(&[("grant_type", "urn:ietf:params:oauth:grant-type:jwt-bearer"), ("assertion", assertion)])
            .send()
            .await
            .unwrap();
        (res.status().as_u16(), res.json().await.unwrap())
    }

    pub async fn token(&self) -> String {
        let (status, body) = self.token_response(&self.assertion("test_private_key.pem", self.claims())).await;
        assert_eq!(status, 200, "{body}");
        body["access_token"].as_str().unwrap().to_owned()
    }

    pub fn api(&self, method: reqwest::Method, path: &str, token: &str) -> reqwest::RequestBuilder {
        self.http
            .request(method, self.url(&format!("/api/v1{path}")))
            .bearer_auth(token)
            .header("OrgId", self.sim.org_id())
            .header("AuthorizationContext", CONTEXT)
            .header("RequestId", uuid::Uuid::new_v4().to_string())
    }
}

pub fn text_interaction(from: &str, text: &str) -> Value {
    let id = uuid::Uuid::new_v4().to_string();
    json!({
        "to": CHANNEL,
        "from": from,
        "interactions": [{
            "timestamp": chrono::Utc::now().timestamp_millis(),
            "interactionType": "EntryInteraction",
            "payload": {
                "id": id,
                "entryType": "Message",
                "abstractMessage": { "messageType": "StaticContentMessage", "id": id,
                                     "staticContent": { "formatType": "Text", "text": text } }
            }
        }]
    })
}

fn json_part(value: &Value) -> Part {
    Part::text(value.to_string()).mime_str("application/json").unwrap()
}

async fn send(req: reqwest::RequestBuilder, form: Form) -> (u16, Value) {
    let res = req.multipart(form).send().await.unwrap();
    (res.status().as_u16(), res.json().await.unwrap_or(Value::Null))
}

#[tokio::test]
async fn jwt_bearer_flow_issues_tokens_with_the_real_fields() {
    let org = Org::start().await;
    let (status, body) = org.token_response(&org.assertion("test_private_key.pem", org.claims())).await;
    assert_eq!(status, 200);
    for field in ["access_token", "instance_url", "id", "token_type", "scope", "issued_at"] {
        assert!(body.get(field).is_some(), "{field} missing: {body}");
    }
    assert_eq!(body["token_type"], "Bearer");
    assert_eq!(body["instance_url"], org.running.base_url);
    assert!(body["id"].as_str().unwrap().contains(&format!("/id/{}", org.sim.org_id())));

    let userinfo: Value = org
        .http
        .get(org.url("/services/oauth2/userinfo"))
        .bearer_auth(body["access_token"].as_str().unwrap())
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(userinfo["preferred_username"], USERNAME);
    let org18 = userinfo["organization_id"].as_str().unwrap();
    assert_eq!(org18.len(), 18, "userinfo names the org by its 18-character id");
    assert_eq!(&org18[..15], org.sim.org_id());
}

#[tokio::test]
async fn jwt_bearer_flow_refuses_bad_assertions_with_salesforce_errors() {
    let org = Org::start().await;
    let now = chrono::Utc::now().timestamp();
    let cases: Vec<(&str, Value, &str, &str)> = vec![
        ("other_private_key.pem", org.claims(), "invalid_grant", "invalid assertion"),
        ("test_private_key.pem", json!({ "aud": "https://evil.example" }), "invalid_grant", "audience is invalid"),
        // The host the token is asked from is no audience (the bridge once sent its login URL).
        ("test_private_key.pem", json!({ "aud": org.running.base_url }), "invalid_grant", "audience is invalid"),
        // A production org takes no sandbox audience.
        (
            "test_private_key.pem",
            json!({ "aud": "https://test.salesforce.com" }),
            "invalid_grant",
            "audience is invalid",
        ),
        ("test_private_key.pem", json!({ "exp": now - 10 }), "invalid_grant", "expired assertion"),
        (
            "test_private_key.pem",
            json!({ "exp": now + 3600 }),
            "invalid_grant",
            "invalid assertion: expiration too far in the future",
        ),
        ("test_private_key.pem", json!({ "iss": "unknown" }), "invalid_client_id", "client identifier invalid"),
        (
            "test_private_key.pem",
            json!({ "sub": "stranger@acme.example" }),
            "invalid_grant",
            "user hasn't approved this consumer",
        ),
        ("test_private_key.pem", json!({ "sub": "nobody@acme.example" }), "invalid_grant", "user not found"),
    ];
    for (key, overrides, error, description) in cases {
        let mut claims = org.claims();
        for (k, v) in overrides.as_object().unwrap() {
            claims[k] = v.clone();
        }
        let (status, body) = org.token_response(&org.assertion(key, claims)).await;
        assert_eq!(status, 400, "{body}");
        assert_eq!(body, json!({ "error": error, "error_description": description }));
    }
    assert_eq!(org.sim.tokens_issued(), 0);
}

#[tokio::test]
async fn interactions_create_a_conversation_and_keep_entries_in_order() {
    let org = Org::start().await;
    let token = org.token().await;
    let specs = crate::contract::specs();

    let mut identifiers = Vec::new();
    for text in ["first", "second", "third"] {
        let (status, body) = send(
            org.api(reqwest::Method::POST, "/interactions", &token),
            Form::new().part("json", json_part(&text_interaction("447700900001", text))),
        )
        .await;
        assert_eq!(status, 202, "{body}");
        specs.interaction.validate_response("post", "/interactions", 202, &body).unwrap();
        identifiers.push(body["conversationIdentifier"].as_str().unwrap().to_owned());
        assert_eq!(body["workItemIds"].as_array().unwrap().len(), 1);
    }
    assert!(identifiers.windows(2).all(|w| w[0] == w[1]), "one conversation per end user");
    let conversation = org.sim.conversation_for("447700900001").unwrap();
    let texts: Vec<&str> = conversation
        .entries
        .iter()
        .map(|e| e.payload.pointer("/payload/abstractMessage/staticContent/text").and_then(Value::as_str).unwrap())
        .collect();
    assert_eq!(texts, ["first", "second", "third"]);
    assert!(conversation.messaging_session_id.starts_with("0Mw"));
}

#[tokio::test]
async fn interaction_headers_are_checked() {
    let org = Org::start().await;
    let token = org.token().await;
    let body = || Form::new().part("json", json_part(&text_interaction("447700900001", "hi")));
    let url = org.url("/api/v1/interactions");
    let base = |b: reqwest::RequestBuilder| b.header("RequestId", "r-1");

    let (status, err) = send(
        base(org.http.post(&url)).header("OrgId", org.sim.org_id()).header("AuthorizationContext", CONTEXT),
        body(),
    )
    .await;
    assert_eq!((status, err["code"].as_i64()), (401, Some(10004)), "no token");
    let (status, err) =
        send(base(org.http.post(&url)).bearer_auth(&token).header("AuthorizationContext", CONTEXT), body()).await;
    assert_eq!((status, err["code"].as_i64()), (400, Some(10016)), "no OrgId");
    let org18 = format!("{}AAA", org.sim.org_id());
    let (status, err) = send(
        base(org.http.post(&url)).bearer_auth(&token).header("OrgId", org18).header("AuthorizationContext", CONTEXT),
        body(),
    )
    .await;
    assert_eq!((status, err["code"].as_i64()), (400, Some(10016)), "18-character OrgId");
    let (status, err) = send(
        base(org.http.post(&url))
            .bearer_auth(&token)
            .header("OrgId", org.sim.org_id())
            .header("AuthorizationContext", "Other_Def"),
        body(),
    )
    .await;
    assert_eq!((status, err["code"].as_i64()), (403, Some(10005)), "unknown AuthorizationContext");
    let (status, err) = send(
        org.http
            .post(&url)
            .bearer_auth(&token)
            .header("OrgId", org.sim.org_id())
            .header("AuthorizationContext", CONTEXT),
        body(),
    )
    .await;
    assert_eq!((status, err["code"].as_i64()), (400, Some(10016)), "no RequestId");
    assert_eq!(err["message"], "Enter a valid header. RequestId is missing.");

    org.sim.expire_all_tokens();
    let (status, err) = send(org.api(reqwest::Method::POST, "/interactions", &token), body()).await;
    assert_eq!((status, err["code"].as_i64()), (401, Some(10004)), "expired token");
    assert!(org.sim.conversations().is_empty(), "nothing refused was stored");
}

#[tokio::test]
async fn interaction_bodies_are_checked() {
    let org = Org::start().await;
    let token = org.token().await;
    let mut mismatched = text_interaction("447700900001", "x");
    mismatched["interactions"][0]["payload"]["abstractMessage"]["id"] = json!("another-id");
    let mut agent_type = text_interaction("447700900001", "x");
    agent_type["interactions"][0]["payload"]["abstractMessage"]["messageType"] = json!("ChoicesMessage");
    let mut unknown_channel = text_interaction("447700900001", "x");
    unknown_channel["to"] = json!("00000000-0000-0000-0000-000000000000");
    let mut no_to = text_interaction("447700900001", "x");
    no_to.as_object_mut().unwrap().remove("to");
    let mut two = text_interaction("447700900001", "x");
    let first = two["interactions"][0].clone();
    two["interactions"].as_array_mut().unwrap().push(first);

    for (case, body, code) in [
        ("ids differ", mismatched, 10060),
        ("agent-only message type", agent_type, 10062),
        ("unknown channel", unknown_channel, 10017),
        ("schema: to missing", no_to, 10029),
        ("schema: two interactions", two, 10029),
    ] {
        let (status, err) =
            send(org.api(reqwest::Method::POST, "/interactions", &token), Form::new().part("json", json_part(&body)))
                .await;
        assert_eq!((status, err["code"].as_i64()), (400, Some(code)), "{case}: {err}");
        crate::contract::specs().interaction.validate_response("post", "/interactions", status, &err).unwrap();
    }
    let (status, err) =
        send(org.api(reqwest::Method::POST, "/interactions", &token), Form::new().text("other", "x")).await;
    assert_eq!((status, err["code"].as_i64()), (400, Some(10045)));
    org.sim.set_channel_active(CHANNEL, false);
    let (status, err) = send(
        org.api(reqwest::Method::POST, "/interactions", &token),
        Form::new().part("json", json_part(&text_interaction("4477", "x"))),
    )
    .await;
    assert_eq!((status, err["code"].as_i64()), (400, Some(10031)));
    assert!(org.sim.conversations().is_empty());
}

fn attachment_interaction(content_length: usize) -> Value {
    json!({
        "to": CHANNEL,
        "from": "447700900002",
        "interactions": [{
            "timestamp": chrono::Utc::now().timestamp_millis(),
            "interactionType": "AttachmentInteraction",
            "id": uuid::Uuid::new_v4().to_string(),
            "attachmentIndex": 0,
            "contentLength": content_length,
            "text": "my receipt"
        }]
    })
}

#[tokio::test]
async fn attachments_are_checked_for_length_type_and_size() {
    let org = Org::start().await;
    let token = org.token().await;
    let png = vec![0x89u8; 2048];
    let file = |bytes: Vec<u8>, mime: &str| Part::bytes(bytes).file_name("receipt").mime_str(mime).unwrap();

    let ok = Form::new()
        .part("json", json_part(&attachment_interaction(png.len())))
        .part("attachments", file(png.clone(), "image/png"));
    let (status, body) = send(org.api(reqwest::Method::POST, "/interactions", &token), ok).await;
    assert_eq!(status, 202, "{body}");
    let entry = &org.sim.conversation_for("447700900002").unwrap().entries[0];
    assert_eq!(entry.attachment.as_ref().map(|a| (a.size, a.mime_type.as_str())), Some((2048, "image/png")));

    for (case, form, code) in [
        (
            "wrong contentLength",
            Form::new()
                .part("json", json_part(&attachment_interaction(10)))
                .part("attachments", file(png.clone(), "image/png")),
            10051,
        ),
        (
            "voice note MIME type",
            Form::new()
                .part("json", json_part(&attachment_interaction(png.len())))
                .part("attachments", file(png.clone(), "audio/ogg")),
            10095,
        ),
        ("file missing", Form::new().part("json", json_part(&attachment_interaction(png.len()))), 10011),
        (
            "over 25 MB",
            Form::new()
                .part("json", json_part(&attachment_interaction(25 * 1024 * 1024 + 1)))
                .part("attachments", file(vec![0u8; 25 * 1024 * 1024 + 1], "image/png")),
            10008,
        ),
    ] {
        let (status, err) = send(org.api(reqwest::Method::POST, "/interactions", &token), form).await;
        assert_eq!((status, err["code"].as_i64()), (400, Some(code)), "{case}: {err}");
    }
    assert_eq!(org.sim.conversation_for("447700900002").unwrap().entries.len(), 1);
}

#[tokio::test]
async fn conversation_acknowledgement_session_and_capabilities_endpoints() {
    let org = Org::start().await;
    let token = org.token().await;
    let specs = crate::contract::specs();
    let establish = json!({
        "channelAddressIdentifier": CHANNEL,
        "participants": [{ "subject": "447700900003", "role": "EndUser", "appType": "custom" }],
        "routingAttributes": { "Source": "proactive" }
    });
    let mut ids = Vec::new();
    for _ in 0..2 {
        let res = org.api(reqwest::Method::POST, "/conversation", &token).json(&establish).send().await.unwrap();
        assert_eq!(res.status(), 202);
        let body: Value = res.json().await.unwrap();
        specs.interaction.validate_response("post", "/conversation", 202, &body).unwrap();
        ids.push((body["conversationIdentifier"].clone(), body["messagingSessionId"].clone()));
    }
    assert_eq!(ids[0], ids[1], "establishing is idempotent per end user");
    let conversation_id = ids[0].0.as_str().unwrap().to_owned();

    let ack = |n: usize| {
        json!({
            "sender": { "appType": "custom", "subject": "447700900003", "role": "EndUser" },
            "conversationIdentifier": conversation_id,
            "acknowledgements": (0..n).map(|_| json!({
                // The vendor schema types this as a string (of epoch milliseconds).
                "acknowledgementTimestamp": chrono::Utc::now().timestamp_millis().to_string(),
                "acknowledgementType": "Delivered",
                "acknowledgedConversationEntryIdentifier": uuid::Uuid::new_v4().to_string(),
                "acknowledgmentCreatedConversationEntryIdentifier": uuid::Uuid::new_v4().to_string()
            })).collect::<Vec<_>>()
        })
    };
    let res = org.api(reqwest::Method::POST, "/acknowledgement", &token).json(&ack(25)).send().await.unwrap();
    assert_eq!(res.status(), 200);
    let res = org.api(reqwest::Method::POST, "/acknowledgement", &token).json(&ack(26)).send().await.unwrap();
    assert_eq!(res.status(), 400, "at most 25 per call");
    assert_eq!(org.sim.conversation_for("447700900003").unwrap().acknowledgements.len(), 25);

    let end = json!({ "channelAddressIdentifier": CHANNEL, "endUserClientId": "447700900003",
                      "conversationIdentifier": conversation_id, "operation": "Inactivate", "operationBy": "EndUser" });
    let res = org.api(reqwest::Method::POST, "/messagingSession", &token).json(&end).send().await.unwrap();
    assert_eq!(res.status(), 400, "Inactivate needs sessionId");
    assert_eq!(res.json::<Value>().await.unwrap()["code"], 10106);
    let mut end = end;
    end["operation"] = json!("End");
    let res = org.api(reqwest::Method::POST, "/messagingSession", &token).json(&end).send().await.unwrap();
    assert_eq!(res.json::<Value>().await.unwrap(), json!({ "success": true }));
    assert_eq!(org.sim.conversation_for("447700900003").unwrap().session_status, "Ended");

    let res = org.api(reqwest::Method::POST, "/conversation", &token).body("").send().await.unwrap();
    assert_eq!(res.json::<Value>().await.unwrap()["code"], 10100);
}

/// `PATCH /consent` follows the vendor's rule: refused with 10022 unless the definition's
/// consent belongs to the partner, and checked against `ConsentRequest` like every body.
#[tokio::test]
async fn consent_is_taken_only_where_the_partner_owns_it() {
    let org = Org::start().await;
    let token = org.token().await;
    let consent = json!({ "channelAddressIdentifier": CHANNEL, "endUserClientId": "447700900005",
                          "consentStatus": "OptedOut" });
    let patch = |body: &Value| org.api(reqwest::Method::PATCH, "/consent", &token).json(body).send();
    let res = patch(&consent).await.unwrap();
    assert_eq!(res.status(), 400);
    assert_eq!(res.json::<Value>().await.unwrap()["code"], 10022);
    org.sim.set_consent_owner(CONTEXT, "Partner");
    let res = patch(&json!({ "channelAddressIdentifier": CHANNEL, "endUserClientId": "447700900005",
                             "consentStatus": "Maybe" }))
    .await
    .unwrap();
    assert_eq!(res.json::<Value>().await.unwrap()["code"], 10045, "not a ConsentEnum value");
    let res = patch(&consent).await.unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(res.json::<Value>().await.unwrap(), json!({ "success": true }));
    assert_eq!(org.sim.consents(), [consent]);
}

#[tokio::test]
async fn injected_faults_look_like_salesforce_failing() {
    let org = Org::start().await;
    let token = org.token().await;
    org.sim.faults.script("/api/v1/interactions", Fault::ServerError);
    org.sim.faults.script("/api/v1/interactions", Fault::Throttle { retry_after_secs: 7 });
    let form = || Form::new().part("json", json_part(&text_interaction("447700900004", "x")));

    let res = org.api(reqwest::Method::POST, "/interactions", &token).multipart(form()).send().await.unwrap();
    assert_eq!(res.status(), 503);
    assert_eq!(res.json::<Value>().await.unwrap()["code"], 10094);
    let res = org.api(reqwest::Method::POST, "/interactions", &token).multipart(form()).send().await.unwrap();
    assert_eq!(res.status(), 429);
    assert_eq!(res.headers()["retry-after"], "7");
    let res = org.api(reqwest::Method::POST, "/interactions", &token).multipart(form()).send().await.unwrap();
    assert_eq!(res.status(), 202, "{:?}", res.text().await);
    org.sim.faults.script("/api/v1/interactions", Fault::Drop);
    let dropped =
        async { org.api(reqwest::Method::POST, "/interactions", &token).multipart(form()).send().await?.bytes().await };
    assert!(dropped.await.is_err(), "the connection is cut mid-response");
    assert_eq!(org.sim.faults.injected(), 3);
    assert_eq!(org.sim.conversation_for("447700900004").unwrap().entries.len(), 1, "faulty calls store nothing");
}

fn pkce() -> (String, String) {
    use base64::Engine;
    use sha2::Digest;
    let verifier = format!("verifier-{}", uuid::Uuid::new_v4().simple());
    let challenge = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(sha2::Sha256::digest(verifier.as_bytes()));
    (verifier, challenge)
}

#[tokio::test]
async fn web_server_flow_with_pkce_signs_users_in() {
    let org = Org::start().await;
    org.sim.add_user("agent@acme.example", "Ada Agent", "Agent");
    org.sim.add_user_in_org("admin@globex.example", "Other Org Admin", "System Administrator", "00D5g00000Other");
    let no_redirects = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
    let callback = "http://127.0.0.1/callback";

    // The login page lists the simulated users.
    let (_, challenge) = pkce();
    let page = no_redirects
        .get(org.url("/services/oauth2/authorize"))
        .query(&[
            ("response_type", "code"),
            ("client_id", CONSUMER_KEY),
            ("redirect_uri", callback),
            ("code_challenge", &challenge),
            ("code_challenge_method", "S256"),
        ])
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(page.contains("agent@acme.example") && page.contains("admin@globex.example"), "{page}");

    for (username, org_id) in
        [("agent@acme.example", org.sim.org_id().to_owned()), ("admin@globex.example", "00D5g00000Other".to_owned())]
    {
        let (_, challenge) = pkce();
        let res = no_redirects
            .post(org.url("/services/oauth2/authorize"))
            .form(&[
                ("username", username),
                ("client_id", CONSUMER_KEY),
                ("redirect_uri", callback),
                ("state", "s-1"),
                ("code_challenge", &challenge),
            ])
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 302);
        let location = url::Url::parse(res.headers()["location"].to_str().unwrap()).unwrap();
        let params: std::collections::HashMap<_, _> = location.query_pairs().into_owned().collect();
        assert_eq!(params["state"], "s-1");
        let code = params["code"].clone();
        let exchange = |verifier: String, code: String| {
            org.http.post(org.url("/services/oauth2/token")).form(&[
                ("grant_type", "authorization_code".to_owned()),
                ("code", code),
                ("client_id", CONSUMER_KEY.to_owned()),
                ("redirect_uri", callback.to_owned()),
                ("code_verifier", verifier),
            ])
        };
        let wrong: Value = exchange("wrong-verifier".into(), code.clone()).send().await.unwrap().json().await.unwrap();
        assert_eq!(wrong["error"], "invalid_grant");
        // The failed attempt used the code up, as Salesforce does; sign in again.
        let (verifier, challenge) = pkce();
        let res = no_redirects
            .get(org.url("/services/oauth2/authorize"))
            .query(&[
                ("response_type", "code"),
                ("client_id", CONSUMER_KEY),
                ("redirect_uri", callback),
                ("code_challenge", &challenge),
                ("login_hint", username),
            ])
            .send()
            .await
            .unwrap();
        let location = url::Url::parse(res.headers()["location"].to_str().unwrap()).unwrap();
        let code = location.query_pairs().find(|(k, _)| k == "code").unwrap().1.into_owned();
        let token: Value = exchange(verifier.clone(), code.clone()).send().await.unwrap().json().await.unwrap();
        let access = token["access_token"].as_str().expect("token issued").to_owned();
        let again: Value = exchange(verifier, code).send().await.unwrap().json().await.unwrap();
        assert_eq!(again["error"], "invalid_grant", "a code is good once");
        let info: Value = org
            .http
            .get(org.url("/services/oauth2/userinfo"))
            .bearer_auth(access)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let org18 = info["organization_id"].as_str().unwrap_or_default();
        assert_eq!(
            (info["preferred_username"].as_str(), org18.len(), org18.get(..15)),
            (Some(username), 18, Some(org_id.as_str()))
        );
    }

    let res = no_redirects
        .get(org.url("/services/oauth2/authorize"))
        .query(&[
            ("response_type", "code"),
            ("client_id", CONSUMER_KEY),
            ("redirect_uri", "https://evil.example/cb"),
            ("code_challenge", "x"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 400, "unregistered callback");
    let res = no_redirects
        .get(org.url("/services/oauth2/authorize"))
        .query(&[("response_type", "code"), ("client_id", CONSUMER_KEY), ("redirect_uri", callback)])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 400, "PKCE is required");
}

#[tokio::test]
async fn soql_and_tooling_serve_the_setup_objects() {
    let org = Org::start().await;
    let token = org.token().await;
    let (status, body) = send(
        org.api(reqwest::Method::POST, "/interactions", &token),
        Form::new().part("json", json_part(&text_interaction("447700900009", "hello"))),
    )
    .await;
    assert_eq!(status, 202);
    let session = body["workItemIds"][0].as_str().unwrap().to_owned();

    let soql = format!(
        "SELECT Id, Status, MessagingEndUser.MessagingPlatformKey FROM MessagingSession WHERE Id = '{session}'"
    );
    let result: Value = org
        .http
        .get(org.url("/services/data/v62.0/query"))
        .query(&[("q", soql)])
        .bearer_auth(&token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(result["totalSize"], 1);
    assert_eq!(result["records"][0]["MessagingEndUser"]["MessagingPlatformKey"], "447700900009");
    assert_eq!(result["records"][0]["Id"], session);

    let channels: Value = org
        .http
        .get(org.url("/services/data/v62.0/query"))
        .query(&[(
            "q",
            "SELECT Id, ChannelAddressIdentifier, IsActive FROM MessagingChannel WHERE MessageType = 'Custom'",
        )])
        .bearer_auth(&token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(channels["records"][0]["ChannelAddressIdentifier"], CHANNEL);

    let res = org
        .http
        .get(org.url("/services/data/v62.0/query"))
        .query(&[("q", "SELECT Id FROM Account")])
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 400);
    assert_eq!(res.json::<Value>().await.unwrap()[0]["errorCode"], "INVALID_TYPE");
    let res = org
        .http
        .get(org.url("/services/data/v62.0/query"))
        .query(&[("q", "SELECT Id FROM MessagingChannel")])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 401);
    assert_eq!(res.json::<Value>().await.unwrap()[0]["errorCode"], "INVALID_SESSION_ID");

    let cvi = json!({ "FullName": "infobipBridge", "Metadata": { "developerName": "infobipBridge", "masterLabel": "WhatsApp via Infobip", "vendorType": "BringYourOwnChannelPartner" } });
    let ccd = json!({ "FullName": CONTEXT, "Metadata": { "developerName": CONTEXT, "masterLabel": "WhatsApp", "conversationVendorInfo": "infobipBridge",
        "customPlatformEvent": "WhatsApp_Event__e", "customEventTypeField": "WhatsApp_Event__e.EventType__c",
        "customEventPayloadField": "WhatsApp_Event__e.Payload__c", "routingOwner": "Salesforce", "consentOwner": "Salesforce" } });
    for (sobject, body) in [("ConversationVendorInfo", &cvi), ("ConversationChannelDefinition", &ccd)] {
        let url = org.url(&format!("/services/data/v62.0/tooling/sobjects/{sobject}"));
        let res = org.http.post(&url).bearer_auth(&token).json(body).send().await.unwrap();
        assert_eq!(res.status(), 201);
        assert_eq!(res.json::<Value>().await.unwrap()["success"], true);
        let dup = org.http.post(&url).bearer_auth(&token).json(body).send().await.unwrap();
        assert_eq!(dup.json::<Value>().await.unwrap()[0]["errorCode"], "DUPLICATE_VALUE");
    }
    let incomplete = json!({ "FullName": "x", "Metadata": { "developerName": "x" } });
    let res = org
        .http
        .post(org.url("/services/data/v62.0/tooling/sobjects/ConversationVendorInfo"))
        .bearer_auth(&token)
        .json(&incomplete)
        .send()
        .await
        .unwrap();
    assert_eq!(res.json::<Value>().await.unwrap()[0]["errorCode"], "REQUIRED_FIELD_MISSING");

    let found: Value = org
        .http
        .get(org.url("/services/data/v62.0/tooling/query"))
        .query(&[(
            "q",
            format!("SELECT Id, DeveloperName FROM ConversationChannelDefinition WHERE DeveloperName = '{CONTEXT}'"),
        )])
        .bearer_auth(&token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(found["totalSize"], 1);
    assert!(found["records"][0]["Id"].as_str().unwrap().starts_with("11v"));
    assert_eq!(org.sim.tooling_records().len(), 2);
}

#[tokio::test]
async fn platform_events_fields_and_object_permissions_are_made_through_the_apis() {
    let org = Org::start().await;
    let token = org.token().await;
    let call = |method: reqwest::Method, path: &str| {
        org.http.request(method, org.url(&format!("/services/data/v62.0{path}"))).bearer_auth(&token)
    };
    let describe = call(reqwest::Method::GET, "/sobjects/Order_Event__e/describe").send().await.unwrap();
    assert_eq!(describe.status(), 404);
    assert_eq!(describe.json::<Value>().await.unwrap()[0]["errorCode"], "NOT_FOUND");

    // A channel definition may only name an event that exists, with its fields.
    let ccd = json!({ "FullName": "Partner1_Orders", "Metadata": { "developerName": "Partner1_Orders", "masterLabel": "Orders",
        "customPlatformEvent": "Order_Event__e", "customEventTypeField": "Order_Event__e.EventType__c",
        "customEventPayloadField": "Order_Event__e.Payload__c", "routingOwner": "Salesforce", "consentOwner": "Salesforce" } });
    let res =
        call(reqwest::Method::POST, "/tooling/sobjects/ConversationChannelDefinition").json(&ccd).send().await.unwrap();
    assert_eq!(res.status(), 400);
    assert_eq!(res.json::<Value>().await.unwrap()[0]["errorCode"], "FIELD_INTEGRITY_EXCEPTION");

    let event = json!({ "FullName": "Order_Event__e", "Metadata": { "label": "Order Event", "pluralLabel": "Order Events",
        "eventType": "HighVolume", "publishBehavior": "PublishAfterCommit", "deploymentStatus": "Deployed" } });
    let res = call(reqwest::Method::POST, "/tooling/sobjects/CustomObject").json(&event).send().await.unwrap();
    assert_eq!(res.status(), 201);
    assert!(res.json::<Value>().await.unwrap()["id"].as_str().unwrap().starts_with("01I"));
    let field = |name: &str| json!({ "FullName": format!("Order_Event__e.{name}"), "Metadata": { "label": name, "type": "Text", "length": 250 } });
    for name in ["EventType__c", "Payload__c"] {
        let res = call(reqwest::Method::POST, "/tooling/sobjects/CustomField").json(&field(name)).send().await.unwrap();
        assert_eq!(res.status(), 201, "{name}");
    }
    let res =
        call(reqwest::Method::POST, "/tooling/sobjects/CustomField").json(&field("Payload__c")).send().await.unwrap();
    assert_eq!(res.json::<Value>().await.unwrap()[0]["errorCode"], "DUPLICATE_DEVELOPER_NAME");
    let described: Value =
        call(reqwest::Method::GET, "/sobjects/Order_Event__e/describe").send().await.unwrap().json().await.unwrap();
    let names: Vec<&str> = described["fields"].as_array().unwrap().iter().filter_map(|f| f["name"].as_str()).collect();
    assert!(names.contains(&"EventType__c") && names.contains(&"Payload__c"), "{names:?}");
    let res =
        call(reqwest::Method::POST, "/tooling/sobjects/ConversationChannelDefinition").json(&ccd).send().await.unwrap();
    assert_eq!(res.status(), 201);

    // The messaging platform's permission set gets Read and Create on the event.
    let sets: Value = call(reqwest::Method::GET, "/query")
        .query(&[("q", "SELECT Id FROM PermissionSet WHERE Name = 'sfdc_scrt2'")])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let set = sets["records"][0]["Id"].as_str().unwrap().to_owned();
    let grant = json!({ "ParentId": set, "SobjectType": "Order_Event__e", "PermissionsRead": true, "PermissionsCreate": false });
    let res = call(reqwest::Method::POST, "/sobjects/ObjectPermissions").json(&grant).send().await.unwrap();
    assert_eq!(res.status(), 201);
    let id = res.json::<Value>().await.unwrap()["id"].as_str().unwrap().to_owned();
    let res = call(reqwest::Method::PATCH, &format!("/sobjects/ObjectPermissions/{id}"))
        .json(&json!({ "PermissionsCreate": true }))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 204);
    let soql = format!(
        "SELECT Id, PermissionsRead, PermissionsCreate FROM ObjectPermissions WHERE ParentId = '{set}' AND SobjectType = 'Order_Event__e'"
    );
    let rows: Value =
        call(reqwest::Method::GET, "/query").query(&[("q", soql)]).send().await.unwrap().json().await.unwrap();
    assert_eq!(rows["records"][0]["PermissionsCreate"], true);
    let unknown = json!({ "ParentId": set, "SobjectType": "Nothing__e", "PermissionsRead": true });
    let res = call(reqwest::Method::POST, "/sobjects/ObjectPermissions").json(&unknown).send().await.unwrap();
    assert_eq!(res.status(), 400);
}

#[tokio::test]
async fn a_sandbox_takes_tokens_for_the_sandbox_login_host_only() {
    let sim = SalesforceSim::new(SalesforceConfig { sandbox: true, ..SalesforceConfig::default() });
    sim.register_app(ConnectedApp {
        consumer_key: CONSUMER_KEY.into(),
        certificate_pem: fixture("test_certificate.pem"),
        approved_users: vec![USERNAME.into()],
        scopes: vec!["interaction_api".into()],
        callback_urls: vec![],
    });
    sim.add_user(USERNAME, "Integration User", "System Administrator");
    let org = Org { running: sim.start("127.0.0.1", 0).unwrap(), sim, http: reqwest::Client::new() };
    let with_audience = |aud: &str| {
        let mut claims = org.claims();
        claims["aud"] = json!(aud);
        org.assertion("test_private_key.pem", claims)
    };
    let (status, body) = org.token_response(&with_audience("https://login.salesforce.com")).await;
    assert_eq!((status, body["error_description"].as_str()), (400, Some("audience is invalid")));
    let (status, body) = org.token_response(&with_audience("https://test.salesforce.com")).await;
    assert_eq!(status, 200, "{body}");
}
