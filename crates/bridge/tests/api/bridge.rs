//! The whole bridge against both simulators, with one provisioned, active app.

use byoc_bridge::infobip::account::NEEDED_SCOPES as BRIDGE_SCOPES;
use byoc_bridge::provisioning::{self as prov, AppSpec, Ctx};
use byoc_bridge::worker::StepReport;
use byoc_sim::infobip::InfobipSim;
use byoc_sim::infobip::webhooks::{Encoding, HmacAlgorithm, format_signature};
use byoc_sim::salesforce::{ConnectedApp, SalesforceConfig, SalesforceSim};
use byoc_sim::server::Running;
use secrecy::{ExposeSecret, SecretString};
use serde_json::Value;

use crate::helpers::{TestApp, TestDb, test_private_key};

pub const CONSUMER_KEY: &str = "3MVG9-bridge-test";
pub const USERNAME: &str = "integration@acme.example";
pub const CHANNEL: &str = "7c0c7f4e-1b1a-4c3f-9a7e-2f4b7a1d5e6f";
pub const CONTEXT: &str = "Partner1_ChannelDefinition1";
pub const SENDER: &str = "447860099299";
pub const API_KEY: &str = "bridge-test-key";

pub struct Bridge {
    /// Kept alive for the test's duration: dropping it deletes the database.
    _db: TestDb,
    pub app: TestApp,
    pub sf: SalesforceSim,
    pub ib: InfobipSim,
    pub app_id: String,
    pub webhook_secret: String,
    _sf_running: Running,
    _ib_running: Running,
    _pubsub: tokio_util::sync::DropGuard,
    settings: byoc_bridge::config::Settings,
}

impl Bridge {
    /// Stops the bridge and starts it again on the same database, as a redeploy would.
    pub async fn restart(mut self) -> Self {
        self.app.stop().await.unwrap();
        self.app = TestApp::spawn_with(self.settings.clone()).await;
        self
    }

    pub async fn start(db: TestDb) -> Self {
        Self::start_with(db, &[]).await
    }

    pub async fn start_with(db: TestDb, settings: &[(&str, &str)]) -> Self {
        Self::start_full(db, settings, SalesforceConfig::default()).await
    }

    pub async fn start_full(db: TestDb, settings: &[(&str, &str)], org: SalesforceConfig) -> Self {
        let vendors = Vendors::start(org).await;
        let mut env: Vec<(&str, &str)> =
            vec![("BYOC__SALESFORCE__REQUEST_TIMEOUT_MS", "2000"), ("BYOC__INFOBIP__REQUEST_TIMEOUT_MS", "2000")];
        env.extend_from_slice(settings);
        let bridge_settings = db.settings_with(&env);
        let app = TestApp::spawn_with(bridge_settings.clone()).await;
        let cipher = byoc_bridge::startup::Services::open(&db.settings()).await.unwrap().cipher;
        let (app_id, webhook_secret) = vendors.provision(&app.db, cipher).await;
        // Activation queued the capabilities registration: done before the test begins, so
        // each test starts with an empty outbox.
        app.runner.drain_at(byoc_bridge::db::now()).await.unwrap();
        let Vendors { sf, sf_running, ib, ib_running, pubsub, .. } = vendors;
        Self {
            _db: db,
            app,
            sf,
            ib,
            app_id,
            webhook_secret,
            _sf_running: sf_running,
            _ib_running: ib_running,
            _pubsub: pubsub,
            settings: bridge_settings,
        }
    }

    /// The end user writes first; returns the Salesforce conversation that opened.
    pub async fn open_conversation(&self, user: &str) -> String {
        use byoc_sim::infobip::webhooks::{inbound_envelope, inbound_result};
        let first = inbound_result(
            user,
            SENDER,
            &format!("wamid.open.{user}"),
            serde_json::json!({ "type": "TEXT", "text": "hello" }),
        );
        let (status, _) = self.post_inbound(&inbound_envelope(vec![first])).await;
        assert_eq!(status, 200);
        self.drain().await;
        self.sf.conversation_for(user).unwrap().identifier
    }

    /// The `MessageDeliveryFailed` entries the agent sees in the user's conversation (their
    /// inner payloads).
    pub fn delivery_failures(&self, user: &str) -> Vec<Value> {
        let entries = self.sf.conversation_for(user).map(|c| c.entries).unwrap_or_default();
        entries
            .into_iter()
            .filter(|e| e.entry_type == "MessageDeliveryFailed")
            .map(|e| e.payload["payload"].clone())
            .collect()
    }

    /// Changes the app "acme" through the provisioning module, as `byoc-bridge app …` would.
    pub async fn change_app<T, F>(&self, change: F) -> T
    where
        T: Send + 'static,
        F: FnMut(
                &mut byoc_bridge::db::DbConn,
                &Ctx<'_>,
                &mut byoc_bridge::db::apps::AppRow,
            ) -> Result<T, prov::ProvisionError>
            + Send
            + 'static,
    {
        let cipher = byoc_bridge::startup::Services::open(&self.settings()).await.unwrap().cipher;
        let mut change = change;
        let changed = self
            .app
            .db
            .write(move |c| {
                let ctx = Ctx { cipher: &cipher, actor: "test" };
                let mut row = prov::find_app(c, "acme").map_err(anyhow::Error::from)?;
                change(c, &ctx, &mut row).map_err(anyhow::Error::from).map_err(Into::into)
            })
            .await
            .unwrap();
        // As the wizard does after a change: the service sees it at once.
        self.app.directory.invalidate();
        changed
    }

    /// The app's stored row.
    pub async fn app_row(&self) -> byoc_bridge::db::apps::AppRow {
        let id = self.app_id.clone();
        self.app.db.run(move |c| byoc_bridge::db::apps::find(c, &id)).await.unwrap().unwrap()
    }

    pub fn settings(&self) -> byoc_bridge::config::Settings {
        self._db.settings()
    }

    pub fn signature(&self, body: &[u8]) -> String {
        format_signature(HmacAlgorithm::HmacSha256, self.webhook_secret.as_bytes(), body, Encoding::Hex, false)
    }

    /// Posts a signed inbound webhook; returns status and JSON body.
    pub async fn post_inbound(&self, body: &Value) -> (u16, Value) {
        let bytes = body.to_string().into_bytes();
        let signature = self.signature(&bytes);
        self.post_raw("/api/infobip/inbound/messages", bytes, &[("X-Infobip-Signature", &signature)]).await
    }

    pub async fn post_raw(&self, path: &str, body: Vec<u8>, headers: &[(&str, &str)]) -> (u16, Value) {
        let mut req = self
            .app
            .client
            .post(format!("{}{path}", self.app.address))
            .header("Content-Type", "application/json")
            .body(body);
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        let res = req.send().await.unwrap();
        (res.status().as_u16(), res.json().await.unwrap_or(Value::Null))
    }

    /// Starts the app's Pub/Sub subscription in the background and waits until it is open.
    pub async fn subscribe(&self) -> tokio_util::sync::DropGuard {
        let app = self.app.subscriber.directory.snapshot().await.unwrap().by_id_or_name(&self.app_id).unwrap();
        let cancel = tokio_util::sync::CancellationToken::new();
        let before = self.sf.pubsub.open_streams();
        tokio::spawn(self.app.subscriber.clone().keep_subscribed(app, cancel.clone()));
        self.until("the subscription is open", || self.sf.pubsub.open_streams() > before).await;
        cancel.drop_guard()
    }

    /// Starts the app's subscription to the session change events (change data capture).
    pub async fn subscribe_sessions(&self) -> tokio_util::sync::DropGuard {
        let app = self.app.subscriber.directory.snapshot().await.unwrap().by_id_or_name(&self.app_id).unwrap();
        let cancel = tokio_util::sync::CancellationToken::new();
        let before = self.sf.pubsub.open_streams();
        let topic = byoc_bridge::outbound::SESSION_CHANGE_TOPIC.to_owned();
        tokio::spawn(self.app.subscriber.clone().keep_subscribed_to(app, topic, cancel.clone()));
        self.until("the session subscription is open", || self.sf.pubsub.open_streams() > before).await;
        cancel.drop_guard()
    }

    /// Waits (at most 10 s) for a condition that another task makes true.
    pub async fn until(&self, what: &str, condition: impl Fn() -> bool) {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while !condition() {
            assert!(std::time::Instant::now() < deadline, "timed out waiting until {what}");
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
    }

    /// Waits until `n` relay jobs are queued.
    pub async fn until_relays_queued(&self, n: i64) {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        loop {
            let queued = self
                .app
                .db
                .run(|c| {
                    use byoc_bridge::db::schema::jobs;
                    use diesel::prelude::*;
                    Ok(jobs::table
                        .filter(jobs::kind.eq(
                            <byoc_bridge::outbound::relay::RelayOutbound as byoc_bridge::worker::BackgroundJob>::KIND,
                        ))
                        .count()
                        .get_result::<i64>(c)?)
                })
                .await
                .unwrap();
            if queued >= n {
                return;
            }
            assert!(std::time::Instant::now() < deadline, "timed out: {queued} of {n} relay jobs queued");
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
    }

    /// Runs the worker until nothing more is due now.
    pub async fn drain(&self) -> StepReport {
        self.app.runner.drain_at(byoc_bridge::db::now()).await.unwrap()
    }

    /// Runs the worker, moving its clock forward past retry delays, until the outbox is empty.
    pub async fn drain_all(&self) {
        let mut t = byoc_bridge::db::now();
        for _ in 0..500 {
            self.app.runner.drain_at(t).await.unwrap();
            let depth = self.app.db.run(move |c| byoc_bridge::db::jobs::depth(c, t)).await.unwrap();
            if depth.due + depth.scheduled + depth.running == 0 {
                return;
            }
            t += chrono::Duration::minutes(10);
        }
        panic!("the outbox did not empty");
    }
}

/// Both simulated vendors, running.
pub struct Vendors {
    pub sf: SalesforceSim,
    pub sf_running: Running,
    pub ib: InfobipSim,
    pub ib_running: Running,
    pub pubsub_addr: std::net::SocketAddr,
    pub pubsub: tokio_util::sync::DropGuard,
}

impl Vendors {
    pub async fn start(org: SalesforceConfig) -> Self {
        let sf = SalesforceSim::new(org);
        sf.register_app(ConnectedApp {
            consumer_key: CONSUMER_KEY.into(),
            certificate_pem: std::fs::read_to_string(concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/tests/fixtures/test_certificate.pem"
            ))
            .unwrap(),
            approved_users: vec![USERNAME.into()],
            scopes: vec!["interaction_api".into(), "api".into()],
            callback_urls: vec![],
        });
        sf.add_user(USERNAME, "Integration User", "System Administrator");
        sf.add_channel(CHANNEL, CONTEXT);
        let sf_running = sf.start("127.0.0.1", 0).unwrap();
        let cancel = tokio_util::sync::CancellationToken::new();
        let pubsub_addr = sf.start_pubsub("127.0.0.1", 0, cancel.clone()).await.unwrap();
        let ib = InfobipSim::default();
        ib.add_api_key(API_KEY, BRIDGE_SCOPES);
        ib.add_sender(SENDER);
        let ib_running = ib.start("127.0.0.1", 0).unwrap();
        Self { sf, sf_running, ib, ib_running, pubsub_addr, pubsub: cancel.drop_guard() }
    }

    /// Provisions the active app "acme" pointing at these simulators; returns its id and
    /// webhook secret.
    pub async fn provision(&self, db: &byoc_bridge::db::Db, cipher: byoc_bridge::crypto::Cipher) -> (String, String) {
        let org_id = self.sf.org_id().to_owned();
        let sf_url = self.sf_running.base_url.clone();
        let ib_url = self.ib_running.base_url.clone();
        let pubsub_addr = self.pubsub_addr;
        db.write(move |c| {
            let ctx = Ctx { cipher: &cipher, actor: "test" };
            let spec = AppSpec {
                org_id: Some(org_id.clone()),
                login_url: Some(sf_url.clone()),
                consumer_key: Some(CONSUMER_KEY.into()),
                integration_username: Some(USERNAME.into()),
                private_key: Some(SecretString::from(test_private_key())),
                scrt_url: Some(sf_url.clone()),
                channel_address_identifier: Some(CHANNEL.into()),
                authorization_context: Some(CONTEXT.into()),
                platform_event: Some("WhatsApp_Event__e".into()),
                pubsub_endpoint: Some(format!("http://{pubsub_addr}")),
                welcome_message: Some("Hang tight, an agent will join shortly.".into()),
                closing_message: Some("Thanks for chatting with us.".into()),
                ..AppSpec::default()
            };
            let mut row = prov::create_app(c, &ctx, "acme", &spec).map_err(anyhow::Error::from)?;
            let key = SecretString::from(API_KEY.to_owned());
            prov::upsert_account(c, &ctx, &row, "main", Some(&ib_url), Some(&key)).map_err(anyhow::Error::from)?;
            prov::add_sender(c, &ctx, &row, SENDER, "main").map_err(anyhow::Error::from)?;
            let active = AppSpec { status: Some("active".into()), ..AppSpec::default() };
            prov::update_app(c, &ctx, &mut row, &active).map_err(anyhow::Error::from)?;
            let secret = prov::webhook_secret(&ctx, &row).map_err(anyhow::Error::from)?;
            Ok((row.id, secret.expose_secret().to_owned()))
        })
        .await
        .unwrap()
    }
}
