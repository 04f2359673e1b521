//! `byoc-bridge app …`: provisioning without the UI.

use std::path::PathBuf;

use anyhow::Context;
use clap::{Args, Subcommand};
use secrecy::{ExposeSecret, SecretString};

use crate::db::DbConn;
use crate::db::apps::{self as rows, AppRow};
use crate::provisioning::manifest::Manifest;
use crate::provisioning::{self as prov, AppSpec, Ctx, ProvisionError};
use crate::startup::Services;

const ACTOR: &str = "cli";

#[derive(Debug, Subcommand)]
pub enum AppCommand {
    /// List apps.
    List,
    /// Show one app's settings (secrets only as set / not set).
    Show {
        /// App id or name.
        app: String,
    },
    /// Create an app.
    Create {
        /// Name of the new app (letters, digits, '-' and '_').
        name: String,
        #[command(flatten)]
        spec: SpecArgs,
    },
    /// Change an app's settings.
    Update {
        /// App id or name.
        app: String,
        #[command(flatten)]
        spec: SpecArgs,
    },
    /// Remove an app with its accounts, senders, conversations and pending jobs.
    Remove {
        /// App id or name.
        app: String,
    },
    /// Create or update apps from a TOML file (idempotent).
    Apply {
        /// The TOML manifest (see config/app.example.toml).
        file: PathBuf,
    },
    /// Print the app's webhook HMAC secret (to paste into Infobip); --rotate makes a new one
    /// while the old one stays accepted until the next rotation.
    WebhookSecret {
        /// App id or name.
        app: String,
        /// Make a new secret; the old one stays accepted until the next rotation.
        #[arg(long)]
        rotate: bool,
    },
    /// Issue a new token for the app's API (`POST /api/conversations`); printed once, the
    /// previous token stops working.
    ApiToken {
        /// App id or name.
        app: String,
    },
    /// Infobip accounts of an app.
    #[command(subcommand)]
    Account(AccountCommand),
    /// WhatsApp sender numbers of an app.
    #[command(subcommand)]
    Sender(SenderCommand),
}

#[derive(Debug, Subcommand)]
pub enum AccountCommand {
    /// List an app's Infobip accounts (API keys only as set / not set).
    List {
        /// App id or name.
        app: String,
    },
    /// Add or change an account. The API key is read from an environment variable so it
    /// never appears in the process list or shell history.
    Set {
        /// App id or name.
        app: String,
        /// Name of the account within the app (senders refer to it).
        name: String,
        /// The account's Infobip API base URL (Infobip portal → Home), e.g. https://xyz123.api.infobip.com.
        #[arg(long)]
        base_url: Option<String>,
        /// Name of the environment variable holding the API key.
        #[arg(long)]
        api_key_env: Option<String>,
    },
    /// Remove an Infobip account from an app, with its sender numbers.
    Remove {
        /// App id or name.
        app: String,
        /// Name of the account.
        name: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum SenderCommand {
    /// List an app's WhatsApp sender numbers.
    List {
        /// App id or name.
        app: String,
    },
    /// Add a WhatsApp sender number to an app.
    Add {
        /// App id or name.
        app: String,
        /// The number in international format without '+', e.g. 447860099299.
        number: String,
        /// The Infobip account (name) the number belongs to.
        #[arg(long)]
        account: String,
    },
    /// Remove a WhatsApp sender number from an app.
    Remove {
        /// App id or name.
        app: String,
        /// The number, as listed.
        number: String,
    },
}

/// App settings as options; those not given stay as they are.
#[derive(Debug, Args)]
pub struct SpecArgs {
    /// draft, active or disabled.
    #[arg(long)]
    status: Option<String>,
    /// The org's 15- or 18-character id (Setup → Company Information), e.g. 00D5g00000AbCdE.
    #[arg(long)]
    org_id: Option<String>,
    /// production or sandbox: decides the audience of the token requests.
    #[arg(long)]
    org_type: Option<String>,
    /// Where tokens are asked for: the org's My Domain URL (default: the login host of the org type).
    #[arg(long)]
    login_url: Option<String>,
    /// The connected app's consumer key (Setup → App Manager → the app → View → Manage Consumer Details).
    #[arg(long)]
    consumer_key: Option<String>,
    /// Username of the integration user the bridge acts as (pre-authorised for the connected app).
    #[arg(long)]
    integration_username: Option<String>,
    /// PEM file with the connected app's RSA private key.
    #[arg(long)]
    private_key_file: Option<PathBuf>,
    /// The org's SCRT URL, where the Interaction Service API lives (Setup → Messaging Settings), e.g. https://acme.my.salesforce-scrt.com.
    #[arg(long)]
    scrt_url: Option<String>,
    /// The messaging channel's Channel Address Identifier (Setup → Messaging Settings → the channel).
    #[arg(long)]
    channel_address_identifier: Option<String>,
    /// The channel definition's developer name.
    #[arg(long)]
    authorization_context: Option<String>,
    /// API name of the Platform Event agents' entries are published on, e.g. WhatsApp_Outbound__e.
    #[arg(long)]
    platform_event: Option<String>,
    /// Field of the Platform Event that holds the entry type (e.g. EventType__c).
    #[arg(long)]
    event_type_field: Option<String>,
    /// Field of the Platform Event that holds the entry payload (e.g. Payload__c).
    #[arg(long)]
    payload_field: Option<String>,
    /// Pub/Sub API endpoint to read the Platform Event from (default: https://api.pubsub.salesforce.com:7443).
    #[arg(long)]
    pubsub_endpoint: Option<String>,
    /// Text sent to the customer when a conversation starts (empty: none).
    #[arg(long)]
    welcome_message: Option<String>,
    /// Text sent to the customer when the messaging session ends (empty: none).
    #[arg(long)]
    closing_message: Option<String>,
    /// Text sent to the customer at each new place in the queue, with {position} (empty: none).
    #[arg(long)]
    queue_message: Option<String>,
    /// Text sent when routing estimates the wait, with {minutes} (empty: none).
    #[arg(long)]
    wait_message: Option<String>,
    /// HMAC of Infobip's webhook signature: HMAC_SHA_256 (the default), HMAC_SHA_1, _224, _384 or _512.
    #[arg(long)]
    webhook_hmac_algorithm: Option<String>,
    /// hmac or basic.
    #[arg(long)]
    webhook_auth: Option<String>,
    /// Header carrying Infobip's webhook signature (default: X-Infobip-Signature).
    #[arg(long)]
    webhook_signature_header: Option<String>,
    /// Basic-auth user name Infobip sends its webhooks with (with --webhook-auth basic).
    #[arg(long)]
    webhook_basic_username: Option<String>,
    /// Name of the environment variable holding the Basic-auth password.
    #[arg(long)]
    webhook_basic_password_env: Option<String>,
    /// How a chatbot transcript is imported at handover: auto, entries or history.
    #[arg(long)]
    transcript_import: Option<String>,
    /// Label before the bot's turns of an imported transcript ("" for none).
    #[arg(long)]
    transcript_bot_label: Option<String>,
    /// Label before the system's turns of an imported transcript ("" for none).
    #[arg(long)]
    transcript_system_label: Option<String>,
    /// Label before a human agent's turns of an imported transcript ("" for none).
    #[arg(long)]
    transcript_agent_label: Option<String>,
}

impl SpecArgs {
    fn into_spec(self) -> anyhow::Result<AppSpec> {
        let private_key = match &self.private_key_file {
            Some(path) => Some(SecretString::from(
                std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?.trim().to_owned(),
            )),
            None => None,
        };
        Ok(AppSpec {
            status: self.status,
            org_id: self.org_id,
            org_type: self.org_type,
            login_url: self.login_url,
            consumer_key: self.consumer_key,
            integration_username: self.integration_username,
            private_key,
            private_key_file: None,
            certificate_pem: None,
            private_key_env: None,
            scrt_url: self.scrt_url,
            channel_address_identifier: self.channel_address_identifier,
            authorization_context: self.authorization_context,
            platform_event: self.platform_event,
            event_type_field: self.event_type_field,
            payload_field: self.payload_field,
            pubsub_endpoint: self.pubsub_endpoint,
            welcome_message: self.welcome_message,
            closing_message: self.closing_message,
            queue_message: self.queue_message,
            wait_message: self.wait_message,
            webhook_hmac_algorithm: self.webhook_hmac_algorithm,
            webhook_auth: self.webhook_auth,
            webhook_signature_header: self.webhook_signature_header,
            webhook_basic_username: self.webhook_basic_username,
            webhook_basic_password: match &self.webhook_basic_password_env {
                Some(var) => Some(SecretString::from(
                    std::env::var(var).with_context(|| format!("environment variable {var} is not set"))?,
                )),
                None => None,
            },
            webhook_basic_password_env: None,
            transcript_import: self.transcript_import,
            transcript_bot_label: self.transcript_bot_label,
            transcript_system_label: self.transcript_system_label,
            transcript_agent_label: self.transcript_agent_label,
        })
    }
}

/// Runs `f` on the named app inside one write transaction, as the command-line actor.
async fn with_app<T, F>(services: &Services, actor: &'static str, app: String, mut f: F) -> anyhow::Result<T>
where
    T: Send + 'static,
    F: FnMut(&mut DbConn, &Ctx<'_>, &mut AppRow) -> Result<T, ProvisionError> + Send + 'static,
{
    let cipher = services.cipher.clone();
    let result = services
        .db
        .write(move |c| {
            let ctx = Ctx { cipher: &cipher, actor };
            let mut row = prov::find_app(c, &app).map_err(anyhow::Error::from)?;
            f(c, &ctx, &mut row).map_err(|e| anyhow::Error::from(e).into())
        })
        .await?;
    Ok(result)
}

pub async fn run(cmd: AppCommand, services: &Services) -> anyhow::Result<()> {
    let db = &services.db;
    let text = match cmd {
        AppCommand::List => {
            let apps = db.run(rows::list).await?;
            let mut out: String = apps.iter().map(|a| format!("{}\t{}\t{}\n", a.id, a.name, a.status)).collect();
            if apps.is_empty() {
                out.push_str("no apps\n");
            }
            out
        }
        AppCommand::Show { app } => {
            db.run(move |c| {
                let app = prov::find_app(c, &app).map_err(anyhow::Error::from)?;
                let accounts = rows::accounts(c, &app.id)?;
                let senders = rows::senders(c, &app.id)?;
                let waiting = rows::waiting_messages(c, &app.id)?;
                Ok(describe(&app, &waiting, &accounts, &senders))
            })
            .await?
        }
        AppCommand::Create { name, spec } => {
            let spec = spec.into_spec()?;
            let cipher = services.cipher.clone();
            db.write(move |c| {
                let ctx = Ctx { cipher: &cipher, actor: ACTOR };
                let app = prov::create_app(c, &ctx, &name, &spec).map_err(anyhow::Error::from)?;
                Ok(format!("created app {} ({})\n", app.name, app.id))
            })
            .await?
        }
        AppCommand::Update { app, spec } => {
            let spec = spec.into_spec()?;
            with_app(services, ACTOR, app, move |c, ctx, row| {
                let outcome = prov::update_app(c, ctx, row, &spec)?;
                Ok(format!("app {}: {outcome}\n", row.name))
            })
            .await?
        }
        AppCommand::Remove { app } => {
            with_app(services, ACTOR, app, |c, ctx, row| {
                let outcome = prov::remove_app(c, ctx, &row.id)?;
                Ok(format!("app {}: {outcome}\n", row.name))
            })
            .await?
        }
        AppCommand::Apply { file } => {
            let manifest = Manifest::load(&file, &|var| std::env::var(var).ok())?;
            let cipher = services.cipher.clone();
            let report = db
                .write(move |c| {
                    let ctx = Ctx { cipher: &cipher, actor: "cli:apply" };
                    manifest.apply(c, &ctx).map_err(anyhow::Error::from).map_err(Into::into)
                })
                .await?;
            format!("{report}{}\n", if report.changed() { "applied" } else { "nothing to change" })
        }
        AppCommand::WebhookSecret { app, rotate } => {
            with_app(services, ACTOR, app, move |c, ctx, row| {
                let secret =
                    if rotate { prov::rotate_webhook_secret(c, ctx, row)? } else { prov::webhook_secret(ctx, row)? };
                Ok(format!("{}\n", secret.expose_secret()))
            })
            .await?
        }
        AppCommand::ApiToken { app } => {
            with_app(services, ACTOR, app, move |c, ctx, row| {
                let token = prov::rotate_api_token(c, ctx, row)?;
                Ok(format!("{}\n", token.expose_secret()))
            })
            .await?
        }
        AppCommand::Account(AccountCommand::List { app }) => {
            db.run(move |c| {
                let app = prov::find_app(c, &app).map_err(anyhow::Error::from)?;
                Ok(rows::accounts(c, &app.id)?
                    .iter()
                    .map(|a| format!("{}\t{}\tapi key set\n", a.name, a.base_url))
                    .collect::<String>())
            })
            .await?
        }
        AppCommand::Account(AccountCommand::Set { app, name, base_url, api_key_env }) => {
            let key = match api_key_env {
                Some(var) => Some(SecretString::from(
                    std::env::var(&var).with_context(|| format!("environment variable {var} is not set"))?,
                )),
                None => None,
            };
            with_app(services, ACTOR, app, move |c, ctx, row| {
                let (_, outcome) = prov::upsert_account(c, ctx, row, &name, base_url.as_deref(), key.as_ref())?;
                Ok(format!("infobip account {}/{name}: {outcome}\n", row.name))
            })
            .await?
        }
        AppCommand::Account(AccountCommand::Remove { app, name }) => {
            with_app(services, ACTOR, app, move |c, ctx, row| {
                let outcome = prov::remove_account(c, ctx, row, &name)?;
                Ok(format!("infobip account {}/{name}: {outcome}\n", row.name))
            })
            .await?
        }
        AppCommand::Sender(SenderCommand::List { app }) => {
            db.run(move |c| {
                let app = prov::find_app(c, &app).map_err(anyhow::Error::from)?;
                let accounts = rows::accounts(c, &app.id)?;
                Ok(rows::senders(c, &app.id)?
                    .iter()
                    .map(|s| {
                        let account = accounts.iter().find(|a| a.id == s.infobip_account_id).map_or("?", |a| &a.name);
                        format!("{}\t{account}\n", s.number)
                    })
                    .collect::<String>())
            })
            .await?
        }
        AppCommand::Sender(SenderCommand::Add { app, number, account }) => {
            with_app(services, ACTOR, app, move |c, ctx, row| {
                let outcome = prov::add_sender(c, ctx, row, &number, &account)?;
                Ok(format!("sender {number}: {outcome}\n"))
            })
            .await?
        }
        AppCommand::Sender(SenderCommand::Remove { app, number }) => {
            with_app(services, ACTOR, app, move |c, ctx, row| {
                let outcome = prov::remove_sender(c, ctx, row, &number)?;
                Ok(format!("sender {number}: {outcome}\n"))
            })
            .await?
        }
    };
    print!("{text}");
    Ok(())
}

fn describe(
    app: &rows::AppRow,
    waiting: &rows::WaitingMessages,
    accounts: &[rows::InfobipAccountRow],
    senders: &[rows::SenderRow],
) -> String {
    let opt = |v: &Option<String>| v.clone().unwrap_or_else(|| "(not set)".to_owned());
    let set = |v: bool| if v { "set" } else { "not set" };
    let mut out = String::new();
    for (k, v) in [
        ("id", app.id.clone()),
        ("name", app.name.clone()),
        ("status", app.status.to_string()),
        ("org_id", opt(&app.org_id)),
        ("org_type", app.org_type.to_string()),
        ("login_url", app.login_url.clone()),
        ("consumer_key", opt(&app.consumer_key)),
        ("integration_username", opt(&app.integration_username)),
        ("private_key", set(app.private_key_enc.is_some()).to_owned()),
        ("certificate", set(app.certificate_pem.is_some()).to_owned()),
        ("scrt_url", opt(&app.scrt_url)),
        ("channel_address_identifier", opt(&app.channel_address_identifier)),
        ("authorization_context", opt(&app.authorization_context)),
        ("platform_event", opt(&app.platform_event)),
        ("event_type_field", app.event_type_field.clone()),
        ("payload_field", app.payload_field.clone()),
        ("pubsub_endpoint", opt(&app.pubsub_endpoint)),
        ("welcome_message", app.welcome_message.clone()),
        ("closing_message", app.closing_message.clone()),
        ("queue_message", waiting.queue.clone()),
        ("wait_message", waiting.wait.clone()),
        ("webhook_hmac_algorithm", app.webhook_hmac_algorithm.clone()),
        ("webhook_secret", "set (show with `app webhook-secret`)".to_owned()),
        ("api_token", set(app.api_token_hash.is_some()).to_owned()),
        ("transcript_import", app.transcript_import.clone()),
        ("transcript_labels", app.transcript_labels.clone()),
        ("infobip_accounts", accounts.iter().map(|a| a.name.as_str()).collect::<Vec<_>>().join(", ")),
        ("senders", senders.len().to_string()),
    ] {
        out.push_str(&format!("{k:<28}{v}\n"));
    }
    out
}
