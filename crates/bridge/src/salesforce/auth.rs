//! OAuth 2.0 JWT bearer flow: an assertion signed with the connected app's private key
//! (RS256; `iss` consumer key, `sub` integration user, `aud` the login host of the org's kind,
//! `https://login.salesforce.com` or `https://test.salesforce.com`, whichever host the token
//! is asked from; `exp` within three minutes) is exchanged for an access token. Tokens are cached per app and renewed before
//! they get old, or at once when Salesforce refuses one; concurrent callers share one renewal.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use jsonwebtoken::{Algorithm, EncodingKey, Header};
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};

use super::{Connection, Error};

/// Salesforce gives no expiry in this flow; sessions last at least this long by default.
const ASSERTION_LIFETIME_SECS: i64 = 170;

#[derive(Serialize)]
struct Claims<'a> {
    iss: &'a str,
    sub: &'a str,
    aud: &'a str,
    exp: i64,
}

#[derive(Deserialize)]
struct TokenResponse {
    access_token: String,
    instance_url: String,
}

#[derive(Deserialize)]
struct ErrorResponse {
    error: String,
    #[serde(default)]
    error_description: String,
}

/// A usable access token.
#[derive(Clone)]
pub struct AccessToken {
    pub token: SecretString,
    pub instance_url: String,
    obtained_at: Instant,
    /// Distinguishes tokens, so a refusal only invalidates the token that was refused.
    generation: u64,
}

impl AccessToken {
    /// A token obtained elsewhere (a user's own, from the sign-in), for one-off calls.
    pub fn new(token: SecretString, instance_url: String) -> Self {
        Self { token, instance_url, obtained_at: Instant::now(), generation: 0 }
    }
}

impl std::fmt::Debug for AccessToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AccessToken").field("instance_url", &self.instance_url).finish_non_exhaustive()
    }
}

type Slot = Arc<tokio::sync::Mutex<Option<AccessToken>>>;

/// Per-app token cache with single-flight renewal.
#[derive(Clone)]
pub(super) struct TokenCache {
    http: reqwest::Client,
    max_age: Duration,
    slots: Arc<Mutex<HashMap<String, Slot>>>,
    generation: Arc<std::sync::atomic::AtomicU64>,
    observer: Option<TokenObserver>,
}

/// Told of every token request an app's cache makes: the app's id and name, and whether
/// Salesforce granted it (for `/metrics`).
pub type TokenObserver = Arc<dyn Fn(&Connection, bool) + Send + Sync>;

impl TokenCache {
    pub fn new(http: reqwest::Client, max_age: Duration) -> Self {
        Self { http, max_age, slots: Arc::default(), generation: Arc::default(), observer: None }
    }

    pub fn observed_by(&mut self, observer: TokenObserver) {
        self.observer = Some(observer);
    }

    fn slot(&self, app_id: &str) -> Slot {
        let mut slots = self.slots.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        slots.entry(app_id.to_owned()).or_default().clone()
    }

    /// A token for `app`, fetching one when none is cached or the cached one is old.
    pub async fn get(&self, app: &Connection) -> Result<AccessToken, Error> {
        let slot = self.slot(&app.app_id);
        // Holding the slot's lock while fetching makes every other caller wait for this one
        // fetch instead of starting their own (no stampede at expiry).
        let mut cached = slot.lock().await;
        if let Some(token) = cached.as_ref().filter(|t| t.obtained_at.elapsed() < self.max_age) {
            return Ok(token.clone());
        }
        let token = self.fetch(app).await?;
        *cached = Some(token.clone());
        Ok(token)
    }

    /// Salesforce refused `token`: drop it unless another caller already replaced it.
    pub async fn invalidate(&self, app_id: &str, token: &AccessToken) {
        let slot = self.slot(app_id);
        let mut cached = slot.lock().await;
        if cached.as_ref().is_some_and(|t| t.generation == token.generation) {
            *cached = None;
        }
    }

    async fn fetch(&self, app: &Connection) -> Result<AccessToken, Error> {
        let credentials = Credentials {
            login_url: &app.login_url,
            audience: &app.audience,
            consumer_key: &app.consumer_key,
            username: &app.username,
            private_key: app.private_key.expose_secret(),
        };
        let fetched = fetch_token(&self.http, &credentials).await;
        if let Some(observe) = &self.observer {
            observe(app, fetched.is_ok());
        }
        let mut token = fetched?;
        token.generation = self.generation.fetch_add(1, std::sync::atomic::Ordering::Relaxed) + 1;
        tracing::info!(app.id = %app.app_id, "obtained a Salesforce access token");
        Ok(token)
    }
}

/// What the JWT bearer flow needs (also for settings not saved yet: the setup wizard's check).
pub struct Credentials<'a> {
    /// The token endpoint's host.
    pub login_url: &'a str,
    /// `https://login.salesforce.com` or `https://test.salesforce.com`, by the org's kind.
    pub audience: &'a str,
    pub consumer_key: &'a str,
    pub username: &'a str,
    /// PEM.
    pub private_key: &'a str,
}

/// Exchanges a freshly signed assertion for an access token.
pub(super) async fn fetch_token(http: &reqwest::Client, c: &Credentials<'_>) -> Result<AccessToken, Error> {
    let key = EncodingKey::from_rsa_pem(c.private_key.as_bytes()).map_err(|e| Error::Key(e.to_string()))?;
    let claims = Claims {
        iss: c.consumer_key,
        sub: c.username,
        aud: c.audience,
        exp: chrono::Utc::now().timestamp() + ASSERTION_LIFETIME_SECS,
    };
    let assertion =
        jsonwebtoken::encode(&Header::new(Algorithm::RS256), &claims, &key).map_err(|e| Error::Key(e.to_string()))?;
    let url = format!("{}/services/oauth2/token", c.login_url.trim_end_matches('/'));
    let response = http
        .post(url)
        .form(&[("grant_type", "urn:ietf:params:oauth:grant-type:jwt-bearer"), ("assertion", assertion.as_str())])
        .send()
        .await
        .map_err(|e| Error::LoginUnreachable(crate::redact::http_error(e)))?;
    let status = response.status().as_u16();
    let bytes = response.bytes().await.map_err(|e| Error::LoginUnreachable(crate::redact::http_error(e)))?;
    if status == 200 {
        let body: TokenResponse = serde_json::from_slice(&bytes).map_err(|_| Error::TokenEndpoint { status })?;
        return Ok(AccessToken::new(SecretString::from(body.access_token), body.instance_url));
    }
    match serde_json::from_slice::<ErrorResponse>(&bytes) {
        Ok(e) => Err(Error::TokenRequest { status, error: e.error, description: e.error_description }),
        Err(_) => Err(Error::TokenEndpoint { status }),
    }
}

/// Salesforce's refusal in plain words, with what to fix.
pub fn explain(error: &Error) -> String {
    let Error::TokenRequest { error, description, .. } = error else {
        return match error {
            Error::Key(_) => {
                "The private key cannot sign tokens: generate a new key pair or paste an RSA key in PEM format.".into()
            }
            Error::LoginUnreachable(_) => {
                "Salesforce's login host cannot be reached: check the My Domain URL (and that this server can reach it)."
                    .into()
            }
            other => format!("Unexpected answer from Salesforce ({other})."),
        };
    };
    let d = description.to_ascii_lowercase();
    let fix = if d.contains("hasn't approved") || d.contains("has not approved") {
        "The integration user is not allowed to use the connected app. In the connected app's policies, set Permitted Users to \"Admin approved users are pre-authorized\" and add the user's profile or permission set."
    } else if error == "invalid_client_id" || d.contains("client identifier") {
        "Salesforce does not know this consumer key: copy it again from the connected app (Consumer Key, not the secret)."
    } else if d.contains("user not found") || d.contains("user") && d.contains("inactive") {
        "No active user has this username in the org: check the integration user's username."
    } else if d.contains("audience") {
        "Salesforce expects the other kind of org: choose Sandbox for a sandbox org (its tokens are for https://test.salesforce.com), Production otherwise (https://login.salesforce.com), whatever the My Domain URL."
    } else if d.contains("expired") {
        "The token request expired on the way: check this server's clock."
    } else {
        "The certificate uploaded to the connected app does not match this key: download the certificate again and upload it under \"Use digital signatures\"."
    };
    format!("{fix} (Salesforce said: {error}: {description})")
}
