//! A Salesforce org as the bridge sees it: the OAuth token endpoint (JWT bearer flow), the
//! Interaction Service API, and inspection endpoints for tests. Everything it received is
//! recorded: conversations and their entries in order, and a request log.

pub mod agent;
mod control;
mod errors;
mod interaction;
mod oauth;
mod page;
mod rest;
pub mod schema;
mod setup_page;
mod signin;

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use actix_web::web;
use serde::Serialize;
use serde_json::Value;

use tokio_util::sync::CancellationToken;

use super::contract::Specs;
use super::faults::{FaultBodies, Faults};
use super::pubsub::{AuthFailure, AuthMetadata, AuthValidator, PubSubSim, PubSubSimConfig};
use super::server::Running;

pub use errors::SfError;
pub(crate) use signin::escape;

/// A connected app registered in the simulated org.
#[derive(Debug, Clone)]
pub struct ConnectedApp {
    pub consumer_key: String,
    /// PEM of the X.509 certificate (or bare public key) whose private key signs the JWTs.
    pub certificate_pem: String,
    /// Users pre-authorised for the app ("Admin approved users are pre-authorized").
    pub approved_users: Vec<String>,
    /// Scopes granted in tokens; `interaction_api` is needed for the Interaction API.
    pub scopes: Vec<String>,
    /// Callback URLs allowed in the web-server (authorization code) flow.
    pub callback_urls: Vec<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct User {
    pub id: String,
    pub username: String,
    pub display_name: String,
    /// `System Administrator` or `Agent`.
    pub profile: String,
    pub org_id: String,
}

/// A BYOC messaging channel (MessagingChannel + its ConversationChannelDefinition).
#[derive(Debug, Clone, Serialize)]
pub struct Channel {
    pub address_identifier: String,
    pub channel_definition: String,
    pub active: bool,
}

#[derive(Debug, Clone, Serialize)]
pub struct Attachment {
    pub file_name: String,
    pub mime_type: String,
    pub size: usize,
}

/// One conversation entry as Salesforce stored it.
#[derive(Debug, Clone, Serialize)]
pub struct Entry {
    pub id: String,
    pub entry_type: String,
    /// `EndUser` for what the partner sent, `Agent` for agent actions.
    pub sender_role: String,
    /// The interaction (or entry payload) as received.
    pub payload: Value,
    pub attachment: Option<Attachment>,
    pub request_id: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct Acknowledgement {
    pub acknowledgement_type: String,
    pub acknowledged_entry_id: String,
    pub timestamp: i64,
}

#[derive(Debug, Clone, Serialize)]
pub struct Conversation {
    pub identifier: String,
    pub channel_address_identifier: String,
    pub end_user: String,
    pub messaging_session_id: String,
    pub session_status: String,
    pub routing_attributes: Value,
    pub entries: Vec<Entry>,
    pub acknowledgements: Vec<Acknowledgement>,
    /// Posts of an entry id already stored (retries after timeouts), not stored again.
    pub repeated_posts: usize,
}

/// One request as received (authorisation redacted).
#[derive(Debug, Clone, Serialize)]
pub struct LoggedRequest {
    pub method: String,
    pub path: String,
    pub status: u16,
    pub code: Option<i64>,
    pub headers: Vec<(String, String)>,
    pub body: Value,
}

#[derive(Debug, Clone)]
pub(crate) struct Token {
    pub user_id: String,
    pub scopes: Vec<String>,
    pub expires_at: std::time::Instant,
}

/// An authorization code waiting to be exchanged (web-server flow with PKCE).
#[derive(Debug, Clone)]
pub(crate) struct PendingCode {
    pub client_id: String,
    pub redirect_uri: String,
    pub code_challenge: String,
    pub user_id: String,
    pub expires_at: std::time::Instant,
}

/// A setup record created through the Tooling API (ConversationVendorInfo, ConversationChannelDefinition).
#[derive(Debug, Clone, Serialize)]
pub struct ToolingRecord {
    pub id: String,
    pub sobject: String,
    pub full_name: String,
    pub metadata: Value,
}

#[derive(Debug, Default)]
pub(crate) struct State {
    pub codes: HashMap<String, PendingCode>,
    /// Files agents sent, by the token in their URL: (MIME type, bytes).
    pub files: HashMap<String, (String, Vec<u8>)>,
    pub tooling: Vec<ToolingRecord>,
    /// Custom objects and platform events with their custom fields (`Payload__c`, …).
    pub custom_objects: HashMap<String, Vec<String>>,
    /// `ObjectPermissions` rows of the org's permission sets.
    pub object_permissions: Vec<Value>,
    pub apps: HashMap<String, ConnectedApp>,
    pub users: Vec<User>,
    pub channels: Vec<Channel>,
    pub tokens: HashMap<String, Token>,
    pub conversations: Vec<Conversation>,
    pub capabilities: Vec<Value>,
    /// The `PATCH /consent` bodies accepted, in order.
    pub consents: Vec<Value>,
    pub log: Vec<LoggedRequest>,
    /// What the org knows of an end user: (display name, contact name, account name).
    pub end_users: HashMap<String, (String, Option<String>, Option<String>)>,
    pub tokens_issued: u64,
    /// The component the console shows beside a conversation (the bridge's template panel),
    /// `{id}` standing for the Messaging Session id.
    pub console_panel: Option<String>,
    /// Names the admin gave connected apps in Setup, by consumer key.
    pub app_names: HashMap<String, String>,
    /// Where the org's Pub/Sub API listens, once it does.
    pub pubsub_url: Option<String>,
    /// REST and Tooling requests served today (the `DailyApiRequests` used).
    pub api_requests: i64,
    /// Platform events published to subscribers today (the `DailyDeliveredPlatformEvents` used).
    pub events_published: i64,
    /// Limits set by a test: name → (max, remaining), instead of the defaults.
    pub limits: HashMap<String, (i64, i64)>,
}

/// Settings of the simulated org.
#[derive(Debug, Clone)]
pub struct SalesforceConfig {
    /// 15-character org id.
    pub org_id: String,
    /// How long issued access tokens stay valid.
    pub token_ttl: Duration,
    /// Whether the org is a sandbox. Salesforce takes a JWT bearer assertion only for the
    /// login host of the org's kind, `https://test.salesforce.com` for a sandbox and
    /// `https://login.salesforce.com` otherwise, whichever host the token is asked from.
    pub sandbox: bool,
    /// The custom platform event carrying conversation entries, and its two fields.
    pub platform_event: String,
    pub event_type_field: String,
    pub payload_field: String,
    /// Pub/Sub retention and keep-alive.
    pub pubsub: PubSubSimConfig,
    /// Whether ending a session publishes `SessionStatusChanged` on the custom event (orgs
    /// differ; the change event on `/data/MessagingSessionChangeEvent` is always published).
    pub session_status_on_event: bool,
    /// Whether the org lets this channel use `POST /conversationHistory` (Salesforce
    /// reserves it for BYOC for CCaaS; a BYOC for Messaging org answers 10057).
    pub history_api: bool,
    /// Whether the org already has the platform event and its two fields (an admin made
    /// them); otherwise the setup wizard creates them.
    pub platform_event_deployed: bool,
}

impl Default for SalesforceConfig {
    fn default() -> Self {
        Self {
            org_id: "00D5g00000SimOr".to_owned(),
            token_ttl: Duration::from_secs(7200),
            sandbox: false,
            platform_event: "WhatsApp_Event__e".into(),
            event_type_field: "EventType__c".into(),
            payload_field: "Payload__c".into(),
            pubsub: PubSubSimConfig::default(),
            session_status_on_event: true,
            history_api: false,
            platform_event_deployed: true,
        }
    }
}

/// The simulator. Cheap to clone; all clones share one org.
#[derive(Clone)]
pub struct SalesforceSim {
    pub(crate) config: Arc<SalesforceConfig>,
    pub(crate) state: Arc<Mutex<State>>,
    pub(crate) specs: Option<Arc<Specs>>,
    pub faults: Faults,
    /// The Pub/Sub API of the org, publishing agent actions as platform events.
    pub pubsub: PubSubSim,
    /// Sees each end user's entry the moment it is first accepted (not its repeats).
    pub tap: crate::tap::Tap,
    base_url: Arc<Mutex<String>>,
}

impl SalesforceSim {
    pub fn new(config: SalesforceConfig) -> Self {
        let state: Arc<Mutex<State>> = Arc::default();
        let base_url: Arc<Mutex<String>> = Arc::default();
        let pubsub = PubSubSim::new(config.pubsub.clone(), pubsub_validator(&config, &state, &base_url));
        let sim = Self {
            config: Arc::new(config),
            state,
            specs: Specs::shared(),
            faults: Faults::default(),
            pubsub,
            tap: crate::tap::Tap::default(),
            base_url,
        };
        // Both topics exist from the start: the org's custom event and the CDC channel.
        let c = &sim.config;
        if c.platform_event_deployed {
            let fields = vec![c.event_type_field.clone(), c.payload_field.clone()];
            sim.state().custom_objects.insert(c.platform_event.clone(), fields);
        }
        if let Err(e) = sim.pubsub.register_platform_event(&c.platform_event, &c.event_type_field, &c.payload_field) {
            tracing::error!(error = %e, "simulator: cannot register the platform event topic");
        }
        if let Err(e) = sim.pubsub.register_topic(agent::CDC_TOPIC, &agent::messaging_session_change_schema()) {
            tracing::error!(error = %e, "simulator: cannot register the change event topic");
        }
        sim
    }

    /// `/event/<platform event>`.
    pub fn event_topic(&self) -> String {
        format!("/event/{}", self.config.platform_event)
    }

    /// Serves the Pub/Sub API (gRPC, plaintext) on `host:port` until `cancel` fires; returns
    /// the bound address.
    pub async fn start_pubsub(
        &self,
        host: &str,
        port: u16,
        cancel: CancellationToken,
    ) -> std::io::Result<std::net::SocketAddr> {
        let addr: std::net::SocketAddr =
            format!("{host}:{port}").parse().map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e))?;
        let (bound, _task) = self.pubsub.spawn(addr, cancel).await.map_err(std::io::Error::other)?;
        self.set_pubsub_url(&format!("http://{bound}"));
        Ok(bound)
    }

    pub(crate) fn state(&self) -> MutexGuard<'_, State> {
        // A panicking test thread must not wedge every later request.
        self.state.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    pub fn org_id(&self) -> &str {
        &self.config.org_id
    }

    /// The URL the simulator serves on (login host, instance URL and SCRT URL at once).
    pub fn base_url(&self) -> String {
        self.base_url.lock().map(|u| u.clone()).unwrap_or_default()
    }

    /// Shows `url` (with `{id}` replaced by the Messaging Session id) beside each conversation
    /// of the console, as a Lightning page shows an iframe component on the record.
    pub fn set_console_panel(&self, url: &str) {
        self.state().console_panel = Some(url.to_owned());
    }

    /// Where the org's Pub/Sub API listens (shown on its Setup page).
    pub fn set_pubsub_url(&self, url: &str) {
        self.state().pubsub_url = Some(url.to_owned());
    }

    /// Connected apps created, by consumer key and name (in Setup, or registered).
    pub fn connected_apps(&self) -> Vec<ConnectedApp> {
        self.state().apps.values().cloned().collect()
    }

    pub fn register_app(&self, app: ConnectedApp) {
        self.state().apps.insert(app.consumer_key.clone(), app);
    }

    /// Adds a user of this org; returns its 18-character id.
    /// Links an end user (by messaging platform key) to a name, contact and account.
    pub fn set_end_user(&self, end_user: &str, name: &str, contact: Option<&str>, account: Option<&str>) {
        self.state()
            .end_users
            .insert(end_user.to_owned(), (name.to_owned(), contact.map(str::to_owned), account.map(str::to_owned)));
    }

    /// A registered connected app, by consumer key.
    pub fn connected_app(&self, consumer_key: &str) -> Option<ConnectedApp> {
        self.state().apps.get(consumer_key).cloned()
    }

    pub fn add_user(&self, username: &str, display_name: &str, profile: &str) -> String {
        self.add_user_in_org(username, display_name, profile, &self.config.org_id.clone())
    }

    /// Adds a user belonging to another org (what a sign-in from the wrong org looks like).
    pub fn add_user_in_org(&self, username: &str, display_name: &str, profile: &str, org_id: &str) -> String {
        let mut state = self.state();
        let id = salesforce_id("005", state.users.len() + 1);
        state.users.push(User {
            id: id.clone(),
            username: username.to_owned(),
            display_name: display_name.to_owned(),
            profile: profile.to_owned(),
            org_id: org_id.to_owned(),
        });
        id
    }

    pub fn add_channel(&self, address_identifier: &str, channel_definition: &str) {
        self.state().channels.push(Channel {
            address_identifier: address_identifier.to_owned(),
            channel_definition: channel_definition.to_owned(),
            active: true,
        });
    }

    pub fn set_channel_active(&self, address_identifier: &str, active: bool) {
        for c in self.state().channels.iter_mut().filter(|c| c.address_identifier == address_identifier) {
            c.active = active;
        }
    }

    /// Makes every token issued so far invalid at once (tests of the refresh path).
    pub fn expire_all_tokens(&self) {
        let now = std::time::Instant::now();
        for token in self.state().tokens.values_mut() {
            token.expires_at = now;
        }
    }

    pub fn tokens_issued(&self) -> u64 {
        self.state().tokens_issued
    }

    pub fn conversations(&self) -> Vec<Conversation> {
        self.state().conversations.clone()
    }

    pub fn conversation_for(&self, end_user: &str) -> Option<Conversation> {
        self.state().conversations.iter().find(|c| c.end_user == end_user).cloned()
    }

    /// Sets what `/limits` answers for `name` (e.g. `DailyApiRequests`) from now on.
    pub fn set_limit(&self, name: &str, max: i64, remaining: i64) {
        self.state().limits.insert(name.to_owned(), (max, remaining));
    }

    /// The `PATCH /capabilities` bodies accepted, in order.
    pub fn capabilities(&self) -> Vec<Value> {
        self.state().capabilities.clone()
    }

    /// The `PATCH /consent` bodies accepted, in order.
    pub fn consents(&self) -> Vec<Value> {
        self.state().consents.clone()
    }

    /// Who owns consent on the channel definition `developer_name` (`Salesforce` unless set).
    pub fn consent_owner(&self, developer_name: &str) -> String {
        let state = self.state();
        let record = state
            .tooling
            .iter()
            .find(|r| r.sobject == "ConversationChannelDefinition" && r.full_name == developer_name);
        record.and_then(|r| r.metadata["consentOwner"].as_str()).unwrap_or("Salesforce").to_owned()
    }

    /// Gives consent on the definition `developer_name` to `owner`, as a CCaaS package's
    /// definition would (the Tooling API refuses a partner owner for BYOC Messaging).
    pub fn set_consent_owner(&self, developer_name: &str, owner: &str) {
        let mut state = self.state();
        let count = state.tooling.len();
        let record = state
            .tooling
            .iter_mut()
            .find(|r| r.sobject == "ConversationChannelDefinition" && r.full_name == developer_name);
        match record {
            Some(r) => r.metadata["consentOwner"] = Value::from(owner),
            None => state.tooling.push(ToolingRecord {
                id: salesforce_id("11v", count + 1),
                sobject: "ConversationChannelDefinition".into(),
                full_name: developer_name.to_owned(),
                metadata: serde_json::json!({ "developerName": developer_name, "masterLabel": developer_name, "consentOwner": owner }),
            }),
        }
    }

    pub fn tooling_records(&self) -> Vec<ToolingRecord> {
        self.state().tooling.clone()
    }

    /// The org's custom objects and platform events, with their custom fields.
    pub fn custom_objects(&self) -> HashMap<String, Vec<String>> {
        self.state().custom_objects.clone()
    }

    /// `ObjectPermissions` rows (`ParentId`, `SobjectType`, `PermissionsRead`, `PermissionsCreate`).
    pub fn object_permissions(&self) -> Vec<Value> {
        self.state().object_permissions.clone()
    }

    pub fn request_log(&self) -> Vec<LoggedRequest> {
        self.state().log.clone()
    }

    /// Registers the HTTP routes on an actix app (used by `start` and the sandbox).
    pub fn configure(&self, cfg: &mut web::ServiceConfig) {
        cfg.app_data(web::Data::new(self.clone()))
            .app_data(web::Data::new(self.faults.clone()))
            .app_data(web::Data::new(FaultBodies {
                server_error: errors::body(10094, None),
                throttle: serde_json::json!({ "message": "Interaction request rate limit exceeded.", "code": 429 }),
                refusal: |quoted| errors::body(10045, Some(&format!("Cannot read the entry \"{quoted}\"."))),
            }))
            .app_data(web::PayloadConfig::new(30 * 1024 * 1024))
            .app_data(web::JsonConfig::default().limit(1024 * 1024))
            .configure(oauth::configure)
            .configure(signin::configure)
            .configure(rest::configure)
            .configure(schema::configure)
            .configure(interaction::configure)
            .route("/__sim/state", web::get().to(inspect))
            .route("/__sim/files/{token}", web::get().to(file))
            .configure(page::configure)
            .configure(setup_page::configure)
            .configure(control::configure)
            .configure(crate::control::configure);
    }

    /// Serves on `host:port` (0 = any free port) on the current runtime.
    pub fn start(&self, host: &str, port: u16) -> std::io::Result<Running> {
        let sim = self.clone();
        super::server::serve(host, port, &self.base_url, move |cfg| sim.configure(cfg))
    }

    /// [`Self::start`] over HTTPS, as the real service speaks.
    pub fn start_tls(&self, host: &str, port: u16, tls: &super::server::TlsIdentity) -> std::io::Result<Running> {
        let sim = self.clone();
        super::server::serve_with(host, port, Some(tls), &self.base_url, move |cfg| sim.configure(cfg))
    }
}

/// What tests (or a curious person) can read about the simulator's state.
async fn inspect(sim: web::Data<SalesforceSim>) -> web::Json<Value> {
    let state = sim.state();
    web::Json(serde_json::json!({
        "org_id": sim.config.org_id,
        "conversations": state.conversations,
        "channels": state.channels,
        "capabilities": state.capabilities,
        "consents": state.consents,
        "tokens_issued": state.tokens_issued,
        "requests": state.log.len(),
    }))
}

/// The Pub/Sub metadata check: a live token of this org, its instance URL, its org id.
fn pubsub_validator(
    config: &SalesforceConfig,
    state: &Arc<Mutex<State>>,
    base_url: &Arc<Mutex<String>>,
) -> AuthValidator {
    let state = state.clone();
    let base_url = base_url.clone();
    let org15 = config.org_id.clone();
    let org18 = crate::ids::id_18(&org15);
    Arc::new(move |meta: &AuthMetadata| {
        let live = state
            .lock()
            .map(|s| s.tokens.get(&meta.access_token).is_some_and(|t| t.expires_at > std::time::Instant::now()))
            .unwrap_or(false);
        if !live {
            return Err(AuthFailure::Unauthenticated("invalid or expired access token".into()));
        }
        let url = base_url.lock().map(|u| u.clone()).unwrap_or_default();
        if meta.instance_url.trim_end_matches('/') != url {
            return Err(AuthFailure::Unauthenticated(format!("instanceurl {} is not this org's", meta.instance_url)));
        }
        if meta.tenant_id != org15 && meta.tenant_id != org18 {
            return Err(AuthFailure::PermissionDenied(format!("org {} is not this org", meta.tenant_id)));
        }
        Ok(())
    })
}

/// A file an agent sent, behind its unguessable link.
async fn file(sim: web::Data<SalesforceSim>, token: web::Path<String>) -> actix_web::HttpResponse {
    match sim.state().files.get(token.as_str()) {
        Some((mime, bytes)) => actix_web::HttpResponse::Ok().content_type(mime.as_str()).body(bytes.clone()),
        None => actix_web::HttpResponse::NotFound().finish(),
    }
}

/// The token of an `Authorization: Bearer …` header ("" when there is none).
pub(crate) fn bearer(req: &actix_web::HttpRequest) -> &str {
    req.headers()
        .get("Authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or_default()
}

/// A plausible 18-character Salesforce id with the given key prefix.
pub(crate) fn salesforce_id(prefix: &str, n: usize) -> String {
    let id15 = format!("{prefix}{:0>12}", format!("{n:X}"));
    let id15: String = id15.chars().take(15).collect();
    crate::ids::id_18(&id15)
}
