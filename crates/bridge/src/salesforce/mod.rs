//! Salesforce: one client ([`Client`]) for every call the bridge makes to an org, and its one
//! error type ([`Error`]). The JWT bearer tokens (cached per app), the Interaction Service
//! API, the REST and Tooling APIs (SOQL, setup records), sign-in, agents' files and the
//! Pub/Sub connection are each a module of this client; the request shapes are typed in
//! [`requests`]. Nothing outside this module calls Salesforce.

mod auth;
pub mod capabilities;
pub mod certificate;
mod error;
pub mod interactions;
mod platform_event;
pub mod pubsub;
pub mod requests;
pub mod rest;
pub mod setup;
pub mod signin;

use std::time::Duration;

use anyhow::Context;
use secrecy::SecretString;

pub use auth::{AccessToken, Credentials, TokenObserver, explain};
pub use error::Error;

use crate::config::SalesforceSettings;

/// How the bridge reaches one app's org: the connected app it signs in with, and the
/// channel its conversations use.
#[derive(Debug, Clone)]
pub struct Connection {
    /// The app this is (tokens are cached per app).
    pub app_id: String,
    /// Its name, for metrics.
    pub app_name: String,
    pub org_id: String,
    /// Where tokens are asked for (the org's My Domain, or the login host of its kind).
    pub login_url: String,
    /// The JWT assertion's audience: the login host of the org's kind (production or sandbox).
    pub audience: String,
    pub consumer_key: String,
    pub username: String,
    pub private_key: SecretString,
    pub scrt_url: String,
    pub channel_address_identifier: String,
    pub authorization_context: String,
    /// Pub/Sub API endpoint override (default: Salesforce's public one).
    pub pubsub_endpoint: Option<String>,
}

/// The Salesforce client: one pooled HTTP client and one token cache for every app.
#[derive(Clone)]
pub struct Client {
    http: reqwest::Client,
    tokens: auth::TokenCache,
    pubsub: pubsub::PubSubOptions,
    /// Told the app's name and the time taken at each Interaction API request (the bridge's
    /// own use of it).
    interaction_observer: Option<InteractionObserver>,
}

/// Sees each Interaction API request once it is answered (or failed): the app's name and
/// how long it took.
pub type InteractionObserver = std::sync::Arc<dyn Fn(&str, Duration) + Send + Sync>;

impl Client {
    pub fn new(settings: &SalesforceSettings) -> anyhow::Result<Self> {
        let http = reqwest::Client::builder()
            .user_agent(concat!("byoc-bridge/", env!("CARGO_PKG_VERSION")))
            .timeout(Duration::from_millis(settings.request_timeout_ms))
            .connect_timeout(Duration::from_secs(10))
            .pool_idle_timeout(Duration::from_secs(90))
            .build()
            .context("building the Salesforce HTTP client")?;
        let extra_ca = match settings.extra_ca_file.as_deref().filter(|f| !f.is_empty()) {
            Some(file) => {
                Some(std::fs::read(file).with_context(|| format!("reading salesforce.extra_ca_file {file}"))?)
            }
            None => None,
        };
        Ok(Self {
            tokens: auth::TokenCache::new(http.clone(), Duration::from_secs(settings.token_max_age_secs)),
            http,
            pubsub: pubsub::PubSubOptions {
                extra_ca,
                ping: Some(Duration::from_secs(settings.pubsub_ping_secs)).filter(|d| !d.is_zero()),
            },
            interaction_observer: None,
        })
    }

    /// Tells `observer` of every Interaction API request the client makes for an app.
    pub fn with_interaction_observer(mut self, observer: InteractionObserver) -> Self {
        self.interaction_observer = Some(observer);
        self
    }

    /// The org's watched limits, with the app's integration user's token.
    pub async fn org_limits(&self, app: &Connection) -> Result<Vec<rest::OrgLimit>, Error> {
        let token = self.tokens.get(app).await?;
        self.limits(&token).await
    }

    /// Who owns the consent of the app's channel definition, `Partner` or `Salesforce`
    /// (Tooling API). A definition the query cannot find counts as Salesforce's, BYOC
    /// Messaging's rule.
    pub async fn consent_owner(&self, app: &Connection) -> Result<String, Error> {
        let token = self.tokens.get(app).await?;
        let name = app.authorization_context.replace(['\\', '\''], "");
        let soql = format!("SELECT ConsentOwner FROM ConversationChannelDefinition WHERE DeveloperName = '{name}'");
        let rows = self.query(&token, &soql, true).await?;
        Ok(rows
            .first()
            .and_then(|r| r["ConsentOwner"].as_str())
            .filter(|o| !o.is_empty())
            .unwrap_or("Salesforce")
            .to_owned())
    }

    /// Tells `observer` of every token request the cache makes, granted or refused.
    pub fn with_token_observer(mut self, observer: TokenObserver) -> Self {
        self.tokens.observed_by(observer);
        self
    }

    /// A token for the app's integration user (cached).
    pub async fn token(&self, app: &Connection) -> Result<AccessToken, Error> {
        self.tokens.get(app).await
    }

    /// A fresh token for credentials that may not be saved yet (the setup's live checks).
    pub async fn sign_in(&self, credentials: &Credentials<'_>) -> Result<AccessToken, Error> {
        auth::fetch_token(&self.http, credentials).await
    }
}

/// The three-character suffix that turns a 15-character (case-sensitive) Salesforce id into
/// the 18-character case-insensitive form.
pub fn id_checksum(id15: &str) -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ012345";
    id15.as_bytes()
        .chunks(5)
        .take(3)
        .map(|chunk| {
            let bits = chunk
                .iter()
                .enumerate()
                .filter(|(_, b)| b.is_ascii_uppercase())
                .fold(0usize, |acc, (i, _)| acc | (1 << i));
            ALPHABET.get(bits).copied().map_or('A', char::from)
        })
        .collect()
}

/// The 15-character form the Interaction Service API wants in its `OrgId` header.
pub fn org_id_15(org_id: &str) -> &str {
    org_id.get(..15).unwrap_or(org_id)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checksum_matches_known_ids() {
        // Known pair from Salesforce documentation samples.
        assert_eq!(id_checksum("001A0000006Vm9r"), "IAC");
        assert_eq!(id_checksum("00D000000000062"), "EAA");
    }

    #[test]
    fn org_id_is_cut_to_15() {
        assert_eq!(org_id_15("00D5g00000AbCdEXYZ"), "00D5g00000AbCdE");
        assert_eq!(org_id_15("00D5g00000AbCdE"), "00D5g00000AbCdE");
    }
}
