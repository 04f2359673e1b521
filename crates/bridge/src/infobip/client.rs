//! The Infobip client: one shared HTTP client for every call to Infobip, the `App` key
//! authorisation, and the classification of every answer into [`Error`]. The calls
//! themselves live beside it, one module per API (`messages`, `account`, `templates`…).

use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};
use serde_json::Value;

use super::error::{Error, describe};

/// An Infobip account of an app: where its API lives and its key.
#[derive(Debug, Clone)]
pub struct Account {
    pub id: String,
    pub base_url: String,
    pub api_key: SecretString,
}

impl Account {
    pub fn credentials(&self) -> Credentials<'_> {
        Credentials { base_url: &self.base_url, api_key: self.api_key.expose_secret() }
    }
}

/// What a call needs to reach an account (also for keys not saved yet: the setup's check).
#[derive(Clone, Copy)]
pub struct Credentials<'a> {
    pub base_url: &'a str,
    pub api_key: &'a str,
}

#[derive(Clone)]
pub struct Client {
    http: reqwest::Client,
    /// Told how long each API call took (for `/metrics`).
    call_observer: Option<CallObserver>,
}

/// Sees how long each Infobip API call took, answered or failed.
pub type CallObserver = std::sync::Arc<dyn Fn(Duration) + Send + Sync>;

impl Client {
    /// A client whose calls time out after `timeout`.
    pub fn new(timeout: Duration) -> Result<Self, reqwest::Error> {
        let http = reqwest::Client::builder()
            .user_agent(concat!("byoc-bridge/", env!("CARGO_PKG_VERSION")))
            .timeout(timeout)
            .connect_timeout(Duration::from_secs(10))
            .pool_idle_timeout(Duration::from_secs(90))
            .build()?;
        Ok(Self { http, call_observer: None })
    }

    /// Tells `observer` how long each API call took.
    pub fn with_call_observer(mut self, observer: CallObserver) -> Self {
        self.call_observer = Some(observer);
        self
    }

    /// A request to `path` of the account's API, with the key.
    pub(super) fn request(&self, to: Credentials<'_>, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        self.authorized(to, self.http.request(method, format!("{}{path}", to.base_url.trim_end_matches('/'))))
    }

    /// A request to a full URL (media links Infobip gave us), with the key.
    pub(super) fn request_url(&self, to: Credentials<'_>, url: url::Url) -> reqwest::RequestBuilder {
        self.authorized(to, self.http.get(url))
    }

    fn authorized(&self, to: Credentials<'_>, request: reqwest::RequestBuilder) -> reqwest::RequestBuilder {
        request.header("Authorization", format!("App {}", to.api_key))
    }

    /// Sends a request and reads Infobip's JSON answer. `scope` is what the call needs, named
    /// in the error when the key lacks it.
    pub(super) async fn call(
        &self,
        request: reqwest::RequestBuilder,
        scope: Option<&'static str>,
    ) -> Result<Value, Error> {
        let started = std::time::Instant::now();
        let answered = async {
            let response = request.send().await?;
            let (status, retry_after) = (response.status().as_u16(), retry_after(&response));
            Ok::<_, reqwest::Error>((status, retry_after, response.json::<Value>().await.unwrap_or(Value::Null)))
        }
        .await;
        if let Some(observe) = &self.call_observer {
            observe(started.elapsed());
        }
        let (status, retry_after, body) = answered.map_err(|e| Error::Transport(crate::redact::http_error(e)))?;
        if (200..300).contains(&status) {
            return Ok(body);
        }
        Err(refusal(status, describe(status, &body), retry_after, scope))
    }
}

/// The error for a non-2xx answer.
pub(super) fn refusal(
    status: u16,
    detail: String,
    retry_after: Option<Duration>,
    scope: Option<&'static str>,
) -> Error {
    if status == 429 || status >= 500 {
        Error::Unavailable { status, detail, retry_after }
    } else {
        Error::Refused { status, detail, scope }
    }
}

pub(super) fn retry_after(response: &reqwest::Response) -> Option<Duration> {
    response
        .headers()
        .get("Retry-After")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok())
        .map(Duration::from_secs)
}
