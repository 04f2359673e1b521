//! An in-memory view of the active apps with their secrets decrypted: what the webhook
//! handlers need to authenticate a request without a database round trip, and what the
//! delivery jobs need to reach Salesforce and Infobip. Reloaded after a short time, and at
//! once (but at most a few times a second) when a request names something it does not know.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use secrecy::SecretString;

use crate::crypto::Cipher;
use crate::db::{Db, DbError, apps as rows};
use crate::infobip::Account;
use crate::infobip::signature::HmacAlgorithm;
use crate::provisioning::{CTX_API_KEY, CTX_PRIVATE_KEY, CTX_WEBHOOK_BASIC_PASSWORD, CTX_WEBHOOK_SECRET};
use crate::salesforce::Connection;

const MAX_AGE: Duration = Duration::from_secs(5);

/// How Infobip proves a webhook comes from it, for one app.
#[derive(Debug, Clone)]
pub enum WebhookAuth {
    Hmac { algorithm: HmacAlgorithm, header: String, secrets: Vec<SecretString> },
    Basic { username: String, password: SecretString },
}

/// A stored Infobip account with its API key decrypted.
pub fn open_account(cipher: &Cipher, row: rows::InfobipAccountRow) -> Result<Account, crate::crypto::CryptoError> {
    Ok(Account { api_key: cipher.decrypt(CTX_API_KEY, &row.api_key_enc)?, id: row.id, base_url: row.base_url })
}

/// An active app, ready to use.
#[derive(Debug, Clone)]
pub struct ActiveApp {
    pub id: String,
    pub name: String,
    /// How its org is reached.
    pub salesforce: Connection,
    /// The platform event carrying agent entries, and its two fields.
    pub platform_event: String,
    pub event_type_field: String,
    pub payload_field: String,
    pub welcome_message: String,
    pub closing_message: String,
    pub waiting: crate::provisioning::WaitingMessages,
    pub webhook: WebhookAuth,
    /// SHA-256 (hex) of the token for the app's own API, when one was issued.
    pub api_token_hash: Option<String>,
    pub transcript: TranscriptSettings,
    pub accounts: Vec<Account>,
    /// Sender number → account id.
    pub senders: HashMap<String, String>,
}

impl ActiveApp {
    pub fn account_for_sender(&self, sender: &str) -> Option<&Account> {
        let id = self.senders.get(sender)?;
        self.accounts.iter().find(|a| &a.id == id)
    }
}

/// How a chatbot transcript is imported at handover.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TranscriptSettings {
    /// `auto`, `entries` or `history`.
    pub import: String,
    pub labels: crate::provisioning::TranscriptLabels,
}

#[derive(Debug, Default)]
pub struct Snapshot {
    pub apps: Vec<Arc<ActiveApp>>,
}

impl Snapshot {
    pub fn by_id_or_name(&self, key: &str) -> Option<Arc<ActiveApp>> {
        self.apps.iter().find(|a| a.id == key || a.name == key).cloned()
    }
}

struct Cached {
    snapshot: Arc<Snapshot>,
    loaded_at: Instant,
}

#[derive(Clone)]
pub struct Directory {
    db: Db,
    cipher: Cipher,
    cached: Arc<RwLock<Option<Cached>>>,
    reload: Arc<tokio::sync::Mutex<()>>,
}

impl Directory {
    pub fn new(db: Db, cipher: Cipher) -> Self {
        Self { db, cipher, cached: Arc::default(), reload: Arc::default() }
    }

    /// The cached snapshot if it was loaded after `not_before`.
    fn current(&self, not_before: Instant) -> Option<Arc<Snapshot>> {
        let guard = self.cached.read().ok()?;
        guard.as_ref().filter(|c| c.loaded_at >= not_before).map(|c| c.snapshot.clone())
    }

    /// The current snapshot, reloading it when older than a few seconds.
    pub async fn snapshot(&self) -> Result<Arc<Snapshot>, DbError> {
        let not_before = Instant::now().checked_sub(MAX_AGE).unwrap_or_else(Instant::now);
        if let Some(s) = self.current(not_before) {
            return Ok(s);
        }
        self.load(not_before).await
    }

    /// A snapshot loaded no earlier than `since` (when the request arrived), for when a
    /// request names an app or credential the cached one lacks. Requests that arrive during
    /// a reload share it, so a burst of bad requests costs one query, not one each.
    pub async fn refreshed(&self, since: Instant) -> Result<Arc<Snapshot>, DbError> {
        self.load(since).await
    }

    async fn load(&self, not_before: Instant) -> Result<Arc<Snapshot>, DbError> {
        let _one = self.reload.lock().await;
        if let Some(s) = self.current(not_before) {
            return Ok(s);
        }
        let cipher = self.cipher.clone();
        let snapshot = Arc::new(self.db.run(move |conn| load_snapshot(conn, &cipher)).await?);
        if let Ok(mut guard) = self.cached.write() {
            *guard = Some(Cached { snapshot: snapshot.clone(), loaded_at: Instant::now() });
        }
        Ok(snapshot)
    }

    /// Forget the cache (after a configuration change in this process).
    pub fn invalidate(&self) {
        if let Ok(mut guard) = self.cached.write() {
            *guard = None;
        }
    }
}

fn load_snapshot(conn: &mut crate::db::DbConn, cipher: &Cipher) -> Result<Snapshot, DbError> {
    let mut apps = Vec::new();
    for row in rows::list(conn)?.into_iter().filter(|a| a.status == crate::db::AppStatus::Active) {
        match build(conn, cipher, &row) {
            Ok(app) => apps.push(Arc::new(app)),
            // An app whose secrets cannot be read is left out, loudly, rather than failing all.
            Err(e) => tracing::error!(app.id = %row.id, error = %e, "app skipped: its configuration cannot be used"),
        }
    }
    Ok(Snapshot { apps })
}

fn build(conn: &mut crate::db::DbConn, cipher: &Cipher, row: &rows::AppRow) -> anyhow::Result<ActiveApp> {
    use anyhow::Context;
    let need = |v: &Option<String>, name: &str| v.clone().with_context(|| format!("{name} is not set"));
    let webhook = if row.webhook_auth == "basic" {
        WebhookAuth::Basic {
            username: need(&row.webhook_basic_username, "webhook_basic_username")?,
            password: cipher.decrypt(
                CTX_WEBHOOK_BASIC_PASSWORD,
                &need(&row.webhook_basic_password_enc, "webhook_basic_password")?,
            )?,
        }
    } else {
        let mut secrets = vec![cipher.decrypt(CTX_WEBHOOK_SECRET, &row.webhook_secret_enc)?];
        if let Some(previous) = &row.webhook_previous_secret_enc {
            secrets.push(cipher.decrypt(CTX_WEBHOOK_SECRET, previous)?);
        }
        WebhookAuth::Hmac {
            algorithm: HmacAlgorithm::parse(&row.webhook_hmac_algorithm).context("unknown HMAC algorithm")?,
            header: row.webhook_signature_header.clone(),
            secrets,
        }
    };
    let accounts =
        rows::accounts(conn, &row.id)?.into_iter().map(|a| open_account(cipher, a)).collect::<Result<Vec<_>, _>>()?;
    let senders = rows::senders(conn, &row.id)?.into_iter().map(|s| (s.number, s.infobip_account_id)).collect();
    Ok(ActiveApp {
        id: row.id.clone(),
        name: row.name.clone(),
        salesforce: Connection {
            app_id: row.id.clone(),
            app_name: row.name.clone(),
            org_id: need(&row.org_id, "org_id")?,
            login_url: row.login_url.clone(),
            audience: row.org_type.audience().to_owned(),
            consumer_key: need(&row.consumer_key, "consumer_key")?,
            username: need(&row.integration_username, "integration_username")?,
            private_key: cipher.decrypt(CTX_PRIVATE_KEY, &need(&row.private_key_enc, "private_key")?)?,
            scrt_url: need(&row.scrt_url, "scrt_url")?,
            channel_address_identifier: need(&row.channel_address_identifier, "channel_address_identifier")?,
            authorization_context: need(&row.authorization_context, "authorization_context")?,
            pubsub_endpoint: row.pubsub_endpoint.clone(),
        },
        platform_event: need(&row.platform_event, "platform_event")?,
        event_type_field: row.event_type_field.clone(),
        payload_field: row.payload_field.clone(),
        welcome_message: row.welcome_message.clone(),
        closing_message: row.closing_message.clone(),
        waiting: rows::waiting_messages(conn, &row.id)?,
        webhook,
        api_token_hash: row.api_token_hash.clone(),
        transcript: TranscriptSettings {
            import: row.transcript_import.clone(),
            labels: crate::provisioning::TranscriptLabels::from_json(&row.transcript_labels),
        },
        accounts,
        senders,
    })
}
