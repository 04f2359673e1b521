//! Creating, changing and removing apps, Infobip accounts and senders. The command line,
//! `app apply` manifests and (later) the setup wizard all write through here, so every
//! change is validated, secrets are encrypted, and the audit log records who did it.
//! Functions take a connection inside the caller's transaction.

pub mod manifest;
pub mod validate;

use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use serde_json::json;

use crate::crypto::{Cipher, CryptoError};
use crate::db::apps::{self as rows, AppRow, InfobipAccountRow, SenderRow};
use crate::db::{DbConn, DbError, OrgType, audit};

pub const CTX_PRIVATE_KEY: &str = "apps.private_key";
pub const CTX_WEBHOOK_SECRET: &str = "apps.webhook_secret";
pub const CTX_WEBHOOK_BASIC_PASSWORD: &str = "apps.webhook_basic_password";
pub const CTX_API_KEY: &str = "infobip_accounts.api_key";

#[derive(Debug, thiserror::Error)]
pub enum ProvisionError {
    #[error("`{field}`: {problem}")]
    Invalid { field: String, problem: String },
    #[error("{0} not found")]
    NotFound(String),
    #[error("{0}")]
    Conflict(String),
    #[error(transparent)]
    Db(#[from] DbError),
    #[error(transparent)]
    Crypto(#[from] CryptoError),
}

impl From<diesel::result::Error> for ProvisionError {
    fn from(e: diesel::result::Error) -> Self {
        ProvisionError::Db(e.into())
    }
}

/// The login hosts of production orgs and of sandboxes.
const DEFAULT_LOGIN_HOSTS: &[&str] = &[OrgType::Production.audience(), OrgType::Sandbox.audience()];

/// Who makes the change (recorded in the audit log) and the cipher for secret columns.
pub struct Ctx<'a> {
    pub cipher: &'a Cipher,
    pub actor: &'a str,
}

/// Settings of an app. `None` leaves a value as it is; for optional settings an empty
/// string clears it.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AppSpec {
    pub status: Option<String>,
    pub org_id: Option<String>,
    /// `production` (default) or `sandbox`: the JWT audience. Without it, a sandbox login URL
    /// makes the org a sandbox.
    pub org_type: Option<String>,
    /// Where tokens are asked for: the org's My Domain, or (by default) the login host of its
    /// type.
    pub login_url: Option<String>,
    pub consumer_key: Option<String>,
    pub integration_username: Option<String>,
    /// The connected app's private key (PEM). In a manifest: `private_key_file` or `private_key_env`.
    #[serde(skip)]
    pub private_key: Option<SecretString>,
    pub private_key_file: Option<std::path::PathBuf>,
    /// The self-signed certificate of `private_key` (the setup wizard generates both).
    #[serde(skip)]
    pub certificate_pem: Option<String>,
    pub private_key_env: Option<String>,
    pub scrt_url: Option<String>,
    pub channel_address_identifier: Option<String>,
    pub authorization_context: Option<String>,
    pub platform_event: Option<String>,
    pub event_type_field: Option<String>,
    pub payload_field: Option<String>,
    pub pubsub_endpoint: Option<String>,
    pub welcome_message: Option<String>,
    pub closing_message: Option<String>,
    pub queue_message: Option<String>,
    pub wait_message: Option<String>,
    pub webhook_hmac_algorithm: Option<String>,
    /// `hmac` (default) or `basic`.
    pub webhook_auth: Option<String>,
    /// Header carrying the HMAC signature.
    pub webhook_signature_header: Option<String>,
    pub webhook_basic_username: Option<String>,
    /// In a manifest: `webhook_basic_password_env`.
    #[serde(skip)]
    pub webhook_basic_password: Option<SecretString>,
    pub webhook_basic_password_env: Option<String>,
    /// How a chatbot's transcript is imported at handover: `auto`, `entries` or `history`.
    pub transcript_import: Option<String>,
    /// Labels before bot, system and agent turns of an imported transcript.
    pub transcript_bot_label: Option<String>,
    pub transcript_system_label: Option<String>,
    pub transcript_agent_label: Option<String>,
}

/// Speaker labels before bot, system and agent turns of an imported transcript (empty: none).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, Deserialize)]
pub struct TranscriptLabels {
    pub bot: String,
    pub system: String,
    pub agent: String,
}

impl Default for TranscriptLabels {
    fn default() -> Self {
        Self { bot: "Bot".into(), system: "System".into(), agent: "Agent".into() }
    }
}

impl TranscriptLabels {
    /// Reads the stored column; what cannot be read falls back to the defaults.
    pub fn from_json(stored: &str) -> Self {
        serde_json::from_str(stored).unwrap_or_default()
    }

    pub fn to_json(&self) -> String {
        json!({ "bot": self.bot, "system": self.system, "agent": self.agent }).to_string()
    }
}

/// Messages to the customer while they wait for an agent (empty: none): `queue` at each new
/// place in the queue (Salesforce's `QueuePosition`, `{position}`), `wait` when routing
/// estimates the wait (`RoutingResult`'s estimated wait time, `{minutes}`).
pub use crate::db::apps::WaitingMessages;

/// Saves the spec's waiting messages (after [`apply_spec`] checked them); returns the
/// changed field names.
fn apply_waiting(conn: &mut DbConn, app_id: &str, spec: &AppSpec) -> Result<Vec<&'static str>, ProvisionError> {
    if spec.queue_message.is_none() && spec.wait_message.is_none() {
        return Ok(Vec::new());
    }
    let mut waiting = rows::waiting_messages(conn, app_id)?;
    let mut changed = Vec::new();
    if let Some(v) = &spec.queue_message {
        set(
            &mut changed,
            "queue_message",
            &mut waiting.queue,
            validate::message_template("queue_message", v, "{position}")?,
        );
    }
    if let Some(v) = &spec.wait_message {
        set(
            &mut changed,
            "wait_message",
            &mut waiting.wait,
            validate::message_template("wait_message", v, "{minutes}")?,
        );
    }
    if !changed.is_empty() {
        rows::set_waiting_messages(conn, app_id, &waiting)?;
    }
    Ok(changed)
}

/// What a provisioning call did, for reports and for deciding whether to audit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Created,
    Updated(Vec<&'static str>),
    Unchanged,
    Removed,
}

impl std::fmt::Display for Outcome {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Outcome::Created => f.write_str("created"),
            Outcome::Updated(fields) => write!(f, "updated ({})", fields.join(", ")),
            Outcome::Unchanged => f.write_str("unchanged"),
            Outcome::Removed => f.write_str("removed"),
        }
    }
}

fn new_id() -> String {
    uuid::Uuid::now_v7().to_string()
}

/// Sets `slot` to `value` when they differ and notes the field name.
fn set<T: PartialEq>(changed: &mut Vec<&'static str>, field: &'static str, slot: &mut T, value: T) {
    if *slot != value {
        *slot = value;
        changed.push(field);
    }
}

/// Empty input clears an optional setting.
fn optional(value: String) -> Option<String> {
    if value.trim().is_empty() { None } else { Some(value) }
}

/// Applies a spec to a row; returns the names of the fields that changed.
fn apply_spec(ctx: &Ctx<'_>, row: &mut AppRow, spec: &AppSpec) -> Result<Vec<&'static str>, ProvisionError> {
    let mut changed = Vec::new();
    let c = &mut changed;
    if let Some(v) = &spec.status {
        set(c, "status", &mut row.status, validate::status(v)?);
    }
    if let Some(v) = &spec.org_id {
        let v = optional(v.clone()).map(|v| validate::org_id(&v)).transpose()?;
        set(c, "org_id", &mut row.org_id, v);
    }
    if let Some(v) = &spec.login_url {
        set(c, "login_url", &mut row.login_url, validate::service_url("login_url", v)?);
    }
    let org_type = match &spec.org_type {
        Some(v) => Some(validate::org_type(v)?),
        None => {
            spec.login_url.as_ref().filter(|_| validate::is_sandbox_login(&row.login_url)).map(|_| OrgType::Sandbox)
        }
    };
    if let Some(t) = org_type {
        set(c, "org_type", &mut row.org_type, t);
        // A login host of the other kind follows the type; a My Domain stays.
        if spec.login_url.is_none() && DEFAULT_LOGIN_HOSTS.contains(&row.login_url.as_str()) {
            set(c, "login_url", &mut row.login_url, t.audience().to_owned());
        }
    }
    if let Some(v) = &spec.consumer_key {
        set(c, "consumer_key", &mut row.consumer_key, optional(v.trim().to_owned()));
    }
    if let Some(v) = &spec.integration_username {
        set(c, "integration_username", &mut row.integration_username, optional(v.trim().to_owned()));
    }
    if let Some(key) = &spec.private_key {
        validate::private_key_pem(key.expose_secret())?;
        let same = match &row.private_key_enc {
            Some(stored) => ctx.cipher.decrypt(CTX_PRIVATE_KEY, stored)?.expose_secret() == key.expose_secret(),
            None => false,
        };
        if !same {
            row.private_key_enc = Some(ctx.cipher.encrypt(CTX_PRIVATE_KEY, key.expose_secret())?);
            // A certificate made for the previous key no longer matches it.
            row.certificate_pem = None;
            c.push("private_key");
        }
    }
    if let Some(v) = &spec.scrt_url {
        let v = optional(v.clone()).map(|v| validate::service_url("scrt_url", &v)).transpose()?;
        set(c, "scrt_url", &mut row.scrt_url, v);
    }
    if let Some(v) = &spec.channel_address_identifier {
        set(c, "channel_address_identifier", &mut row.channel_address_identifier, optional(v.trim().to_owned()));
    }
    if let Some(v) = &spec.authorization_context {
        let v = optional(v.clone()).map(|v| validate::api_name("authorization_context", &v)).transpose()?;
        set(c, "authorization_context", &mut row.authorization_context, v);
    }
    if let Some(v) = &spec.platform_event {
        let v = optional(v.clone()).map(|v| validate::api_name("platform_event", &v)).transpose()?;
        set(c, "platform_event", &mut row.platform_event, v);
    }
    if let Some(v) = &spec.event_type_field {
        set(c, "event_type_field", &mut row.event_type_field, validate::api_name("event_type_field", v)?);
    }
    if let Some(v) = &spec.payload_field {
        set(c, "payload_field", &mut row.payload_field, validate::api_name("payload_field", v)?);
    }
    if let Some(v) = &spec.pubsub_endpoint {
        let v = optional(v.clone()).map(|v| validate::service_url("pubsub_endpoint", &v)).transpose()?;
        set(c, "pubsub_endpoint", &mut row.pubsub_endpoint, v);
    }
    if let Some(v) = &spec.welcome_message {
        set(c, "welcome_message", &mut row.welcome_message, v.clone());
    }
    if let Some(v) = &spec.closing_message {
        set(c, "closing_message", &mut row.closing_message, v.clone());
    }
    if let Some(v) = &spec.webhook_hmac_algorithm {
        set(c, "webhook_hmac_algorithm", &mut row.webhook_hmac_algorithm, validate::hmac_algorithm(v)?);
    }
    if let Some(v) = &spec.webhook_auth {
        set(c, "webhook_auth", &mut row.webhook_auth, validate::webhook_auth(v)?);
    }
    if let Some(v) = &spec.webhook_signature_header {
        set(c, "webhook_signature_header", &mut row.webhook_signature_header, validate::header_name(v)?);
    }
    if let Some(v) = &spec.webhook_basic_username {
        set(c, "webhook_basic_username", &mut row.webhook_basic_username, optional(v.trim().to_owned()));
    }
    if let Some(password) = &spec.webhook_basic_password {
        let same = match &row.webhook_basic_password_enc {
            Some(stored) => {
                ctx.cipher.decrypt(CTX_WEBHOOK_BASIC_PASSWORD, stored)?.expose_secret() == password.expose_secret()
            }
            None => false,
        };
        if !same {
            row.webhook_basic_password_enc =
                Some(ctx.cipher.encrypt(CTX_WEBHOOK_BASIC_PASSWORD, password.expose_secret())?);
            c.push("webhook_basic_password");
        }
    }
    if let Some(v) = &spec.certificate_pem {
        set(c, "certificate", &mut row.certificate_pem, optional(v.clone()));
    }
    if let Some(v) = &spec.transcript_import {
        set(c, "transcript_import", &mut row.transcript_import, validate::transcript_import(v)?);
    }
    let mut labels = TranscriptLabels::from_json(&row.transcript_labels);
    let before = labels.clone();
    if let Some(v) = &spec.transcript_bot_label {
        labels.bot = validate::label("transcript_bot_label", v)?;
    }
    if let Some(v) = &spec.transcript_system_label {
        labels.system = validate::label("transcript_system_label", v)?;
    }
    if let Some(v) = &spec.transcript_agent_label {
        labels.agent = validate::label("transcript_agent_label", v)?;
    }
    if labels != before {
        row.transcript_labels = labels.to_json();
        c.push("transcript_labels");
    }
    if row.webhook_auth == "basic" && (row.webhook_basic_username.is_none() || row.webhook_basic_password_enc.is_none())
    {
        return Err(ProvisionError::Invalid {
            field: "webhook_auth".into(),
            problem: "basic needs webhook_basic_username and a webhook_basic_password".into(),
        });
    }
    if row.status == crate::db::AppStatus::Active {
        require_complete(row)?;
    }
    Ok(changed)
}

/// Checks the plain (non-secret) settings of `spec` by the same rules as saving, without
/// saving anything (the wizard checks before it calls Salesforce).
pub fn validate_spec(spec: &AppSpec) -> Result<(), ProvisionError> {
    match spec_problems(spec).into_iter().next() {
        Some(first) => Err(first),
        None => Ok(()),
    }
}

/// Every value of `spec` that breaks a rule, each with the field it concerns (a form shows them
/// all at once).
pub fn spec_problems(spec: &AppSpec) -> Vec<ProvisionError> {
    let mut problems = Vec::new();
    let mut check = |result: Result<(), ProvisionError>| {
        if let Err(e) = result {
            problems.push(e);
        }
    };
    if let Some(v) = &spec.org_id {
        check(validate::org_id(v).map(|_| ()));
    }
    if let Some(v) = &spec.login_url {
        check(validate::service_url("login_url", v).map(|_| ()));
    }
    if let Some(v) = &spec.org_type {
        check(validate::org_type(v).map(|_| ()));
    }
    for (field, value) in [("consumer_key", &spec.consumer_key), ("integration_username", &spec.integration_username)] {
        if let Some(v) = value {
            check(validate::non_empty(field, v).map(|_| ()));
        }
    }
    for (field, value) in [
        ("authorization_context", &spec.authorization_context),
        ("platform_event", &spec.platform_event),
        ("event_type_field", &spec.event_type_field),
        ("payload_field", &spec.payload_field),
    ] {
        if let Some(v) = value {
            check(validate::api_name(field, v).map(|_| ()));
        }
    }
    if let Some(v) = spec.pubsub_endpoint.as_deref().filter(|v| !v.trim().is_empty()) {
        check(validate::service_url("pubsub_endpoint", v).map(|_| ()));
    }
    if let Some(v) = &spec.queue_message {
        check(validate::message_template("queue_message", v, "{position}").map(|_| ()));
    }
    if let Some(v) = &spec.wait_message {
        check(validate::message_template("wait_message", v, "{minutes}").map(|_| ()));
    }
    problems
}

/// An app can only be switched on once everything the bridge needs to talk to Salesforce is set.
fn require_complete(row: &AppRow) -> Result<(), ProvisionError> {
    let missing: Vec<&str> = [
        ("org_id", row.org_id.is_some()),
        ("consumer_key", row.consumer_key.is_some()),
        ("integration_username", row.integration_username.is_some()),
        ("private_key", row.private_key_enc.is_some()),
        ("scrt_url", row.scrt_url.is_some()),
        ("channel_address_identifier", row.channel_address_identifier.is_some()),
        ("authorization_context", row.authorization_context.is_some()),
        ("platform_event", row.platform_event.is_some()),
    ]
    .into_iter()
    .filter(|(_, present)| !present)
    .map(|(name, _)| name)
    .collect();
    if missing.is_empty() {
        Ok(())
    } else {
        Err(ProvisionError::Invalid {
            field: "status".into(),
            problem: format!("an active app needs {} set first", missing.join(", ")),
        })
    }
}

pub fn create_app(conn: &mut DbConn, ctx: &Ctx<'_>, name: &str, spec: &AppSpec) -> Result<AppRow, ProvisionError> {
    let name = validate::app_name(name)?;
    if rows::find(conn, &name)?.is_some() {
        return Err(ProvisionError::Conflict(format!("an app named {name:?} already exists")));
    }
    let now = crate::db::now();
    let mut row = AppRow {
        id: new_id(),
        name,
        status: crate::db::AppStatus::Draft,
        org_id: None,
        login_url: OrgType::Production.audience().into(),
        instance_url: None,
        consumer_key: None,
        integration_username: None,
        private_key_enc: None,
        certificate_pem: None,
        scrt_url: None,
        channel_address_identifier: None,
        authorization_context: None,
        platform_event: None,
        event_type_field: "EventType__c".into(),
        payload_field: "Payload__c".into(),
        pubsub_endpoint: None,
        welcome_message: String::new(),
        closing_message: String::new(),
        webhook_hmac_algorithm: "HMAC_SHA_256".into(),
        // Each app gets its own random webhook secret; there is no shared default.
        webhook_secret_enc: ctx.cipher.encrypt(CTX_WEBHOOK_SECRET, &crate::crypto::random_token()?)?,
        webhook_previous_secret_enc: None,
        webhook_basic_username: None,
        webhook_basic_password_enc: None,
        api_token_hash: None,
        created_at: now,
        updated_at: now,
        webhook_auth: "hmac".into(),
        webhook_signature_header: "X-Infobip-Signature".into(),
        transcript_import: "auto".into(),
        transcript_labels: TranscriptLabels::default().to_json(),
        org_type: OrgType::Production,
    };
    let mut fields = apply_spec(ctx, &mut row, spec)?;
    rows::insert(conn, &row)?;
    fields.extend(apply_waiting(conn, &row.id, spec)?);
    audit::record(conn, ctx.actor, "create", "app", &row.id, json!({ "name": row.name, "fields": fields }))?;
    register_capabilities_if(conn, &row, &fields)?;
    Ok(row)
}

/// The kind of the job that tells Salesforce what WhatsApp can show (`PATCH /capabilities`,
/// `outbound::capabilities`).
pub const REGISTER_CAPABILITIES: &str = "register_capabilities";

/// Queues the capabilities registration when an app becomes active, or when an active app's
/// channel changes: in the transaction of the change, so it is never forgotten.
fn register_capabilities_if(conn: &mut DbConn, row: &AppRow, changed: &[&str]) -> Result<(), ProvisionError> {
    let channel_fields = ["status", "authorization_context", "channel_address_identifier", "scrt_url", "org_id"];
    if row.status == crate::db::AppStatus::Active && changed.iter().any(|f| channel_fields.contains(f)) {
        let job = crate::db::jobs::NewJob::new(REGISTER_CAPABILITIES, &json!({ "app_id": row.id })).for_app(&row.id);
        crate::db::jobs::enqueue(conn, &[job])?;
    }
    Ok(())
}

pub fn update_app(
    conn: &mut DbConn,
    ctx: &Ctx<'_>,
    row: &mut AppRow,
    spec: &AppSpec,
) -> Result<Outcome, ProvisionError> {
    let mut changed = apply_spec(ctx, row, spec)?;
    changed.extend(apply_waiting(conn, &row.id, spec)?);
    if changed.is_empty() {
        return Ok(Outcome::Unchanged);
    }
    row.updated_at = crate::db::now();
    rows::update(conn, row)?;
    audit::record(conn, ctx.actor, "update", "app", &row.id, json!({ "fields": changed }))?;
    register_capabilities_if(conn, row, &changed)?;
    Ok(Outcome::Updated(changed))
}

pub fn find_app(conn: &mut DbConn, id_or_name: &str) -> Result<AppRow, ProvisionError> {
    rows::find(conn, id_or_name)?.ok_or_else(|| ProvisionError::NotFound(format!("app {id_or_name:?}")))
}

/// Removes an app with its accounts, senders, conversations and pending jobs.
pub fn remove_app(conn: &mut DbConn, ctx: &Ctx<'_>, id_or_name: &str) -> Result<Outcome, ProvisionError> {
    let row = find_app(conn, id_or_name)?;
    rows::delete(conn, &row.id)?;
    audit::record(conn, ctx.actor, "remove", "app", &row.id, json!({ "name": row.name }))?;
    Ok(Outcome::Removed)
}

/// Issues a new API token for the app's own API (`/api/conversations`); the previous one
/// stops working. Only its SHA-256 is stored, so the token is shown once, here.
pub fn rotate_api_token(conn: &mut DbConn, ctx: &Ctx<'_>, row: &mut AppRow) -> Result<SecretString, ProvisionError> {
    let token = format!("byoc_{}", crate::crypto::random_token()?);
    row.api_token_hash = Some(crate::crypto::token_hash(&token));
    row.updated_at = crate::db::now();
    rows::update(conn, row)?;
    audit::record(conn, ctx.actor, "rotate", "app", &row.id, json!({ "fields": ["api_token"] }))?;
    Ok(SecretString::from(token))
}

/// How an API token is stored and compared.
/// The app's current webhook secret (what the admin pastes into Infobip).
pub fn webhook_secret(ctx: &Ctx<'_>, row: &AppRow) -> Result<SecretString, ProvisionError> {
    Ok(ctx.cipher.decrypt(CTX_WEBHOOK_SECRET, &row.webhook_secret_enc)?)
}

/// Starts a rotation: a new secret becomes current, the old one stays accepted until the
/// next rotation, so Infobip can be switched over without a gap.
pub fn rotate_webhook_secret(
    conn: &mut DbConn,
    ctx: &Ctx<'_>,
    row: &mut AppRow,
) -> Result<SecretString, ProvisionError> {
    let new = crate::crypto::random_token()?;
    replace_webhook_secret(conn, ctx, row, &new, "rotate_webhook_secret")?;
    Ok(SecretString::from(new))
}

/// The shortest webhook secret an admin may choose (Infobip takes 1 to 255 characters).
pub const MIN_WEBHOOK_SECRET: usize = 16;

/// Makes `secret`, the one the admin entered in Infobip's security profile, current; the
/// previous one stays accepted until the next change, so no message is refused meanwhile.
pub fn set_webhook_secret(
    conn: &mut DbConn,
    ctx: &Ctx<'_>,
    row: &mut AppRow,
    secret: &SecretString,
) -> Result<(), ProvisionError> {
    let value = secret.expose_secret().trim();
    if value.chars().count() < MIN_WEBHOOK_SECRET || value.chars().count() > 255 {
        return Err(ProvisionError::Invalid {
            field: "webhook_secret".into(),
            problem: format!("use {MIN_WEBHOOK_SECRET} to 255 characters"),
        });
    }
    replace_webhook_secret(conn, ctx, row, value, "set_webhook_secret")
}

fn replace_webhook_secret(
    conn: &mut DbConn,
    ctx: &Ctx<'_>,
    row: &mut AppRow,
    new: &str,
    action: &str,
) -> Result<(), ProvisionError> {
    let previous = webhook_secret(ctx, row)?;
    row.webhook_previous_secret_enc = Some(ctx.cipher.encrypt(CTX_WEBHOOK_SECRET, previous.expose_secret())?);
    row.webhook_secret_enc = ctx.cipher.encrypt(CTX_WEBHOOK_SECRET, new)?;
    row.updated_at = crate::db::now();
    rows::update(conn, row)?;
    audit::record(conn, ctx.actor, action, "app", &row.id, json!({}))?;
    Ok(())
}

/// Creates or updates an Infobip account of an app, found by name.
pub fn upsert_account(
    conn: &mut DbConn,
    ctx: &Ctx<'_>,
    app: &AppRow,
    name: &str,
    base_url: Option<&str>,
    api_key: Option<&SecretString>,
) -> Result<(InfobipAccountRow, Outcome), ProvisionError> {
    let name = validate::app_name(name).map_err(|_| ProvisionError::Invalid {
        field: "account".into(),
        problem: "account names use 1-64 letters, digits, '-' or '_'".into(),
    })?;
    let base_url = base_url.map(|u| validate::service_url("base_url", u)).transpose()?;
    if let Some(key) = api_key {
        validate::non_empty("api_key", key.expose_secret())?;
    }
    let existing = rows::accounts(conn, &app.id)?.into_iter().find(|a| a.name == name);
    let now = crate::db::now();
    match existing {
        None => {
            let api_key = api_key.ok_or_else(|| ProvisionError::Invalid {
                field: "api_key".into(),
                problem: "a new Infobip account needs an API key".into(),
            })?;
            let row = InfobipAccountRow {
                id: new_id(),
                app_id: app.id.clone(),
                name,
                base_url: base_url.unwrap_or_else(|| crate::infobip::DEFAULT_BASE_URL.to_owned()),
                api_key_enc: ctx.cipher.encrypt(CTX_API_KEY, api_key.expose_secret())?,
                created_at: now,
                updated_at: now,
            };
            rows::insert_account(conn, &row)?;
            audit::record(
                conn,
                ctx.actor,
                "create",
                "infobip_account",
                &row.id,
                json!({ "app_id": app.id, "name": row.name }),
            )?;
            Ok((row, Outcome::Created))
        }
        Some(mut row) => {
            let mut changed = Vec::new();
            if let Some(url) = base_url {
                set(&mut changed, "base_url", &mut row.base_url, url);
            }
            if let Some(key) = api_key
                && ctx.cipher.decrypt(CTX_API_KEY, &row.api_key_enc)?.expose_secret() != key.expose_secret()
            {
                row.api_key_enc = ctx.cipher.encrypt(CTX_API_KEY, key.expose_secret())?;
                changed.push("api_key");
            }
            if changed.is_empty() {
                return Ok((row, Outcome::Unchanged));
            }
            row.updated_at = now;
            rows::update_account(conn, &row)?;
            audit::record(conn, ctx.actor, "update", "infobip_account", &row.id, json!({ "fields": changed }))?;
            Ok((row, Outcome::Updated(changed)))
        }
    }
}

pub fn remove_account(conn: &mut DbConn, ctx: &Ctx<'_>, app: &AppRow, name: &str) -> Result<Outcome, ProvisionError> {
    let row = rows::accounts(conn, &app.id)?
        .into_iter()
        .find(|a| a.name == name)
        .ok_or_else(|| ProvisionError::NotFound(format!("Infobip account {name:?} of app {:?}", app.name)))?;
    rows::delete_account(conn, &row.id)?;
    audit::record(conn, ctx.actor, "remove", "infobip_account", &row.id, json!({ "app_id": app.id, "name": name }))?;
    Ok(Outcome::Removed)
}

/// Selects a WhatsApp number of one of the app's accounts for the app.
pub fn add_sender(
    conn: &mut DbConn,
    ctx: &Ctx<'_>,
    app: &AppRow,
    number: &str,
    account_name: &str,
) -> Result<Outcome, ProvisionError> {
    let number = validate::sender_number(number)?;
    let account = rows::accounts(conn, &app.id)?
        .into_iter()
        .find(|a| a.name == account_name)
        .ok_or_else(|| ProvisionError::NotFound(format!("Infobip account {account_name:?} of app {:?}", app.name)))?;
    if let Some(existing) = rows::sender_by_number(conn, &number)? {
        if existing.app_id != app.id {
            return Err(ProvisionError::Conflict("this sender number already belongs to another app".to_owned()));
        }
        if existing.infobip_account_id == account.id {
            return Ok(Outcome::Unchanged);
        }
        rows::delete_sender(conn, &existing.id)?;
    }
    let row = SenderRow {
        id: new_id(),
        app_id: app.id.clone(),
        infobip_account_id: account.id,
        number,
        created_at: crate::db::now(),
    };
    rows::insert_sender(conn, &row)?;
    audit::record(conn, ctx.actor, "create", "sender", &row.id, json!({ "app_id": app.id, "account": account_name }))?;
    Ok(Outcome::Created)
}

pub fn remove_sender(conn: &mut DbConn, ctx: &Ctx<'_>, app: &AppRow, number: &str) -> Result<Outcome, ProvisionError> {
    let number = validate::sender_number(number)?;
    let row = rows::sender_by_number(conn, &number)?
        .filter(|s| s.app_id == app.id)
        .ok_or_else(|| ProvisionError::NotFound(format!("sender of app {:?}", app.name)))?;
    rows::delete_sender(conn, &row.id)?;
    audit::record(conn, ctx.actor, "remove", "sender", &row.id, json!({ "app_id": app.id }))?;
    Ok(Outcome::Removed)
}
