//! An Infobip account as the bridge sees it: WhatsApp sends, templates, numbers, balance,
//! Conversations history, inbound media, and a webhook sender that plays Infobip posting
//! inbound messages and reports to the bridge.

mod api;
mod control;
mod phone;
mod portal;
pub mod webhooks;

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Instant;

use actix_web::web;
use serde::Serialize;
use serde_json::Value;

use super::contract::Specs;
use super::faults::{FaultBodies, Faults};
use super::server::Running;

/// One message the simulator accepted for sending.
#[derive(Debug, Clone, Serialize)]
pub struct SentMessage {
    /// The endpoint's last path segments: `text`, `image`, `interactive/buttons`, `template`, …
    pub kind: String,
    pub message_id: String,
    pub from: String,
    pub to: String,
    /// The request body as received (for templates: the one message of `messages[]`).
    pub body: Value,
}

#[derive(Debug, Clone)]
pub struct MediaFile {
    pub bytes: Vec<u8>,
    pub content_type: String,
    /// Served through a 302 to a CDN-like URL, as Infobip does for cached media.
    pub redirect: bool,
}

#[derive(Debug, Default)]
pub(crate) struct State {
    pub keys: HashMap<String, Vec<String>>,
    pub senders: Vec<String>,
    pub templates: HashMap<String, Vec<Value>>,
    pub sent: Vec<SentMessage>,
    pub conversations: HashMap<String, Vec<Value>>,
    pub media: HashMap<(String, String), MediaFile>,
    pub cdn: HashMap<String, (String, String)>,
    /// Send timestamps per sender in the last second, for the rate limit.
    pub recent_sends: HashMap<String, Vec<Instant>>,
    pub refused: u64,
    /// Events sent (typing indicators): (end user, event type).
    pub events: Vec<(String, String)>,
    /// The simulated phones' chats, in order.
    pub chat: Vec<phone::ChatLine>,
    /// Ids of the inbound messages posted to the bridge (what mark-as-read may name).
    pub inbound_ids: std::collections::HashSet<String>,
    /// Messages marked read through the API: (sender, message id), in order.
    pub read_marks: Vec<(String, String)>,
    /// Where the simulated phone posts inbound messages (the bridge's webhook).
    pub webhook: Option<webhooks::WebhookSender>,
    /// Where delivery and seen reports are posted (`/__sim/webhooks/report`).
    pub report_webhook: Option<webhooks::WebhookSender>,
    /// Where notifications such as identity changes are posted (`/__sim/webhooks/identity-change`).
    pub notification_webhook: Option<webhooks::WebhookSender>,
    /// Pages of conversations read: (conversation id, page, limit).
    pub conversation_reads: Vec<(String, usize, usize)>,
    /// Template lists served.
    pub template_reads: u64,
}

#[derive(Debug, Clone)]
pub struct InfobipConfig {
    /// Sends per second per sender before 429.
    pub sends_per_second_per_sender: usize,
    pub balance: f64,
}

impl Default for InfobipConfig {
    fn default() -> Self {
        Self { sends_per_second_per_sender: 1000, balance: 47.5 }
    }
}

#[derive(Clone)]
pub struct InfobipSim {
    pub(crate) config: Arc<Mutex<InfobipConfig>>,
    pub(crate) state: Arc<Mutex<State>>,
    pub(crate) specs: Option<Arc<Specs>>,
    pub faults: Faults,
    /// Sees each WhatsApp message the moment it is accepted for sending.
    pub tap: crate::tap::Tap,
    base_url: Arc<Mutex<String>>,
}

impl Default for InfobipSim {
    fn default() -> Self {
        Self::new(InfobipConfig::default())
    }
}

impl InfobipSim {
    pub fn new(config: InfobipConfig) -> Self {
        Self {
            config: Arc::new(Mutex::new(config)),
            state: Arc::default(),
            specs: Specs::shared(),
            faults: Faults::default(),
            tap: crate::tap::Tap::default(),
            base_url: Arc::default(),
        }
    }

    pub(crate) fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    pub(crate) fn config(&self) -> InfobipConfig {
        self.config.lock().map(|c| c.clone()).unwrap_or_default()
    }

    pub fn set_rate_limit(&self, sends_per_second_per_sender: usize) {
        if let Ok(mut c) = self.config.lock() {
            c.sends_per_second_per_sender = sends_per_second_per_sender;
        }
    }

    pub fn base_url(&self) -> String {
        self.base_url.lock().map(|u| u.clone()).unwrap_or_default()
    }

    /// An API key with these scopes (the operations' `x-scopes` decide what each may call).
    pub fn add_api_key(&self, key: &str, scopes: &[&str]) {
        self.state().keys.insert(key.to_owned(), scopes.iter().map(|s| (*s).to_owned()).collect());
    }

    /// A WhatsApp sender number of the account.
    pub fn add_sender(&self, number: &str) {
        self.state().senders.push(number.to_owned());
    }

    /// The number is no longer a WhatsApp sender of the account (sends from it are refused).
    pub fn remove_sender(&self, number: &str) {
        self.state().senders.retain(|s| s != number);
    }

    /// A registered template (a `TemplateApiResponse` document) of a sender; replaces one
    /// with the same name and language.
    pub fn add_template(&self, sender: &str, template: Value) {
        let mut state = self.state();
        let templates = state.templates.entry(sender.to_owned()).or_default();
        templates.retain(|t| t.get("name") != template.get("name") || t.get("language") != template.get("language"));
        templates.push(template);
    }

    /// Messages of a Conversations (CCaaS) conversation, oldest first.
    pub fn add_conversation(&self, id: &str, messages: Vec<Value>) {
        self.state().conversations.insert(id.to_owned(), messages);
    }

    /// Stores media an end user sent; returns the URL Infobip puts in the webhook.
    pub fn add_media(&self, sender: &str, file: MediaFile) -> String {
        let id = uuid::Uuid::new_v4().simple().to_string();
        self.state().media.insert((sender.to_owned(), id.clone()), file);
        format!("{}/whatsapp/1/senders/{sender}/media/{id}", self.base_url())
    }

    /// Where inbound messages are posted (from the simulated phone, `/__sim/phone`, and
    /// `/__sim/webhooks/inbound`).
    pub fn set_webhook(&self, sender: webhooks::WebhookSender) {
        self.state().webhook = Some(sender);
    }

    /// Where delivery and seen reports are posted.
    pub fn set_notification_webhook(&self, sender: webhooks::WebhookSender) {
        self.state().notification_webhook = Some(sender);
    }

    pub fn set_report_webhook(&self, sender: webhooks::WebhookSender) {
        self.state().report_webhook = Some(sender);
    }

    /// Events (typing indicators) the bridge sent: (end user, event type).
    pub fn events(&self) -> Vec<(String, String)> {
        self.state().events.clone()
    }

    /// Pages of Conversations read, in order: (conversation id, page, limit).
    pub fn conversation_reads(&self) -> Vec<(String, usize, usize)> {
        self.state().conversation_reads.clone()
    }

    /// How many template lists were served.
    pub fn template_reads(&self) -> u64 {
        self.state().template_reads
    }

    pub fn sent(&self) -> Vec<SentMessage> {
        self.state().sent.clone()
    }

    /// Requests refused with a 4xx (auth, scope, validation, rate limit).
    /// Counts `message_id` as an inbound message Infobip delivered (for a test that posts the
    /// webhook itself), so the bridge may mark it read.
    pub fn record_inbound(&self, message_id: &str) {
        self.state().inbound_ids.insert(message_id.to_owned());
    }

    /// Messages the bridge marked read: (sender, message id), in order.
    pub fn read_marks(&self) -> Vec<(String, String)> {
        self.state().read_marks.clone()
    }

    pub fn refused(&self) -> u64 {
        self.state().refused
    }

    pub fn configure(&self, cfg: &mut web::ServiceConfig) {
        cfg.app_data(web::Data::new(self.clone()))
            .app_data(web::Data::new(self.faults.clone()))
            .app_data(web::Data::new(FaultBodies {
                server_error: api::legacy_error("GENERAL_ERROR", "Something went wrong.", None),
                throttle: api::legacy_error("TOO_MANY_REQUESTS", "Too many requests", None),
                refusal: |quoted| {
                    let mut fields = serde_json::Map::new();
                    fields.insert("content".into(), serde_json::json!([format!("\"{quoted}\" is not valid")]));
                    api::legacy_error("BAD_REQUEST", "Bad request", Some(fields))
                },
            }))
            .app_data(web::JsonConfig::default().limit(1024 * 1024))
            .configure(api::configure)
            .configure(phone::configure)
            .configure(portal::configure)
            .configure(control::configure)
            .configure(crate::control::configure);
    }

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
