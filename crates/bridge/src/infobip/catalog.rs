//! A sender's approved WhatsApp templates, as the agents' template panel lists them.
//!
//! Every view of the panel, every search and every send needs the list, and Infobip limits
//! its templates API per account. So a list is kept for `infobip.template_cache_secs` per
//! (account, sender); a refusal is not kept, the next view asks again.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use secrecy::ExposeSecret;
use serde_json::Value;

use super::client::describe_error;
use super::templates::Template;
use crate::directory::InfobipAccount;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ListError {
    #[error("Infobip cannot be reached: {0}")]
    Unreachable(String),
    #[error("The Infobip API key lacks the whatsapp:manage scope, which listing templates needs.")]
    MissingScope,
    #[error("Infobip did not list the templates: {0}")]
    Refused(String),
}

type Lists = HashMap<(String, String), (Instant, Arc<Vec<Template>>)>;

#[derive(Clone)]
pub struct TemplateCatalog {
    http: reqwest::Client,
    keep_for: Duration,
    lists: Arc<Mutex<Lists>>,
}

impl TemplateCatalog {
    pub fn new(http: reqwest::Client, keep_for: Duration) -> Self {
        Self { http, keep_for, lists: Arc::default() }
    }

    /// The sender's `APPROVED` templates, from the cache while it is fresh.
    pub async fn approved(&self, account: &InfobipAccount, sender: &str) -> Result<Arc<Vec<Template>>, ListError> {
        let key = (account.id.clone(), sender.to_owned());
        if let Some((fetched, list)) = self.lists().get(&key) {
            if fetched.elapsed() < self.keep_for {
                return Ok(list.clone());
            }
        }
        let list = Arc::new(self.fetch(account, sender).await?);
        let mut lists = self.lists();
        lists.retain(|_, (fetched, _)| fetched.elapsed() < self.keep_for);
        if !self.keep_for.is_zero() {
            lists.insert(key, (Instant::now(), list.clone()));
        }
        Ok(list)
    }

    fn lists(&self) -> std::sync::MutexGuard<'_, Lists> {
        self.lists.lock().unwrap_or_else(PoisonError::into_inner)
    }

    async fn fetch(&self, account: &InfobipAccount, sender: &str) -> Result<Vec<Template>, ListError> {
        let response = self
            .http
            .get(format!("{}/whatsapp/2/senders/{sender}/templates", account.base_url.trim_end_matches('/')))
            .header("Authorization", format!("App {}", account.api_key.expose_secret()))
            .send()
            .await
            .map_err(|e| ListError::Unreachable(e.to_string()))?;
        let status = response.status().as_u16();
        let body: Value = response.json().await.unwrap_or(Value::Null);
        match status {
            200 => Ok(body["templates"].as_array().into_iter().flatten().filter_map(Template::approved).collect()),
            403 => Err(ListError::MissingScope),
            _ => Err(ListError::Refused(describe_error(status, &body))),
        }
    }
}
