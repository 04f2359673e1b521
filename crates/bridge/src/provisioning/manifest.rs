//! `byoc-bridge app apply app.toml`: declarative provisioning.
//!
//! ```toml
//! [[app]]
//! name = "acme"
//! org_id = "00D5g00000AbCdE"
//! private_key_file = "keys/acme.pem"   # relative to this file; or private_key_env = "VAR"
//! # …any other AppSpec setting…
//!
//! [[app.infobip_account]]
//! name = "main"
//! base_url = "https://xyz.api.infobip.com"
//! api_key_env = "ACME_INFOBIP_KEY"     # or api_key = "…"
//!
//! [[app.sender]]
//! number = "447860099299"
//! account = "main"
//! ```
//!
//! Apps are matched by name and created or updated. An app's accounts and senders are made
//! to match the file exactly: those not listed are removed. Apps missing from the file are
//! left alone. The whole file is applied in one transaction, so a mistake changes nothing,
//! and applying the same file twice changes nothing the second time.

use std::path::{Path, PathBuf};

use secrecy::SecretString;
use serde::Deserialize;

use super::{AppSpec, Ctx, Outcome, ProvisionError};
use crate::db::DbConn;
use crate::db::apps as rows;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    #[serde(default, rename = "app")]
    pub apps: Vec<AppEntry>,
}

#[derive(Debug)]
pub struct AppEntry {
    pub name: String,
    pub spec: AppSpec,
    pub accounts: Vec<AccountEntry>,
    pub senders: Vec<SenderEntry>,
}

/// By hand rather than `#[serde(flatten)]`, which would silently ignore misspelt settings:
/// the app's own keys are taken out and the rest must be exactly `AppSpec`'s.
impl<'de> Deserialize<'de> for AppEntry {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        use serde::de::Error;
        let mut table = toml::Table::deserialize(deserializer)?;
        let name: String = table
            .remove("name")
            .ok_or_else(|| D::Error::missing_field("name"))?
            .try_into()
            .map_err(|e| D::Error::custom(format!("name: {e}")))?;
        let in_app = |e: toml::de::Error| D::Error::custom(format!("app {name:?}: {e}"));
        let accounts = match table.remove("infobip_account") {
            Some(v) => v.try_into().map_err(in_app)?,
            None => Vec::new(),
        };
        let senders = match table.remove("sender") {
            Some(v) => v.try_into().map_err(in_app)?,
            None => Vec::new(),
        };
        let spec = toml::Value::Table(table).try_into().map_err(in_app)?;
        Ok(Self { name, spec, accounts, senders })
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AccountEntry {
    pub name: String,
    pub base_url: Option<String>,
    pub api_key: Option<String>,
    pub api_key_env: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SenderEntry {
    pub number: String,
    pub account: String,
}

/// One line per thing the apply looked at.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct ApplyReport {
    pub lines: Vec<(String, Outcome)>,
}

impl ApplyReport {
    pub fn changed(&self) -> bool {
        self.lines.iter().any(|(_, o)| *o != Outcome::Unchanged)
    }
}

impl std::fmt::Display for ApplyReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for (what, outcome) in &self.lines {
            writeln!(f, "{what}: {outcome}")?;
        }
        Ok(())
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ManifestError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: {message}")]
    Parse { path: PathBuf, message: String },
    #[error("app {app:?}: {source}")]
    App {
        app: String,
        #[source]
        source: ProvisionError,
    },
}

impl Manifest {
    /// Reads the file and resolves `*_file` and `*_env` secrets, so applying needs no I/O.
    pub fn load(path: &Path, env: &dyn Fn(&str) -> Option<String>) -> Result<Self, ManifestError> {
        let text =
            std::fs::read_to_string(path).map_err(|source| ManifestError::Read { path: path.to_owned(), source })?;
        let parse_err = |message: String| ManifestError::Parse { path: path.to_owned(), message };
        let mut manifest: Manifest = toml::from_str(&text).map_err(|e| parse_err(e.to_string()))?;
        let base = path.parent().unwrap_or_else(|| Path::new("."));
        for app in &mut manifest.apps {
            let name = app.name.clone();
            let app_err = |field: &str, problem: String| ManifestError::App {
                app: name.clone(),
                source: ProvisionError::Invalid { field: field.into(), problem },
            };
            match (&app.spec.private_key_file, &app.spec.private_key_env) {
                (Some(_), Some(_)) => {
                    return Err(app_err(
                        "private_key_file",
                        "give private_key_file or private_key_env, not both".into(),
                    ));
                }
                (Some(file), None) => {
                    let file = base.join(file);
                    let pem = std::fs::read_to_string(&file)
                        .map_err(|e| app_err("private_key_file", format!("cannot read {}: {e}", file.display())))?;
                    app.spec.private_key = Some(SecretString::from(pem.trim().to_owned()));
                }
                (None, Some(var)) => {
                    let pem = env(var).ok_or_else(|| app_err("private_key_env", format!("{var} is not set")))?;
                    app.spec.private_key = Some(SecretString::from(pem.trim().to_owned()));
                }
                (None, None) => {}
            }
            if let Some(var) = &app.spec.webhook_basic_password_env {
                let password =
                    env(var).ok_or_else(|| app_err("webhook_basic_password_env", format!("{var} is not set")))?;
                app.spec.webhook_basic_password = Some(SecretString::from(password));
            }
            for account in &mut app.accounts {
                if let Some(var) = account.api_key_env.take() {
                    if account.api_key.is_some() {
                        return Err(app_err("api_key_env", "give api_key or api_key_env, not both".into()));
                    }
                    account.api_key =
                        Some(env(&var).ok_or_else(|| app_err("api_key_env", format!("{var} is not set")))?);
                }
            }
        }
        Ok(manifest)
    }

    /// Applies the manifest (call inside one write transaction).
    pub fn apply(&self, conn: &mut DbConn, ctx: &Ctx<'_>) -> Result<ApplyReport, ManifestError> {
        let mut report = ApplyReport::default();
        for entry in &self.apps {
            apply_app(conn, ctx, entry, &mut report)
                .map_err(|source| ManifestError::App { app: entry.name.clone(), source })?;
        }
        Ok(report)
    }
}

fn apply_app(
    conn: &mut DbConn,
    ctx: &Ctx<'_>,
    entry: &AppEntry,
    report: &mut ApplyReport,
) -> Result<(), ProvisionError> {
    // Activation is applied last: an app may only become active once its children exist.
    let mut spec = entry.spec.clone();
    let wanted_status = spec.status.take();
    let mut app = match rows::find(conn, &entry.name)? {
        Some(mut app) => {
            let outcome = super::update_app(conn, ctx, &mut app, &spec)?;
            report.lines.push((format!("app {}", entry.name), outcome));
            app
        }
        None => {
            let app = super::create_app(conn, ctx, &entry.name, &spec)?;
            report.lines.push((format!("app {}", entry.name), Outcome::Created));
            app
        }
    };

    for account in &entry.accounts {
        let key = account.api_key.clone().map(SecretString::from);
        let (_, outcome) =
            super::upsert_account(conn, ctx, &app, &account.name, account.base_url.as_deref(), key.as_ref())?;
        report.lines.push((format!("infobip account {}/{}", entry.name, account.name), outcome));
    }
    for existing in rows::accounts(conn, &app.id)? {
        if !entry.accounts.iter().any(|a| a.name == existing.name) {
            let outcome = super::remove_account(conn, ctx, &app, &existing.name)?;
            report.lines.push((format!("infobip account {}/{}", entry.name, existing.name), outcome));
        }
    }

    let mut wanted_numbers = Vec::new();
    for sender in &entry.senders {
        let number = super::validate::sender_number(&sender.number)?;
        let outcome = super::add_sender(conn, ctx, &app, &number, &sender.account)?;
        report.lines.push((format!("sender {}/…{}", entry.name, last_digits(&number)), outcome));
        wanted_numbers.push(number);
    }
    for existing in rows::senders(conn, &app.id)? {
        if !wanted_numbers.contains(&existing.number) {
            let outcome = super::remove_sender(conn, ctx, &app, &existing.number)?;
            report.lines.push((format!("sender {}/…{}", entry.name, last_digits(&existing.number)), outcome));
        }
    }

    if let Some(status) = wanted_status {
        let status_spec = AppSpec { status: Some(status), ..AppSpec::default() };
        let outcome = super::update_app(conn, ctx, &mut app, &status_spec)?;
        if outcome != Outcome::Unchanged {
            report.lines.push((format!("app {}", entry.name), outcome));
        }
    }
    Ok(())
}

/// Reports show only the end of a phone number.
fn last_digits(number: &str) -> &str {
    number.get(number.len().saturating_sub(4)..).unwrap_or(number)
}
