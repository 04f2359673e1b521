//! A sender's approved WhatsApp templates, as the agents' template panel lists them.
//!
//! Every view of the panel, every search and every send needs the list, and Infobip limits
//! its templates API per account. So a list is kept for `infobip.template_cache_secs` per
//! (account, sender); a refusal is not kept, the next view asks again.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use super::client::{Account, Client};
use super::error::Error;
use super::templates::Template;

const SCOPE: &str = "whatsapp:manage";

type Lists = HashMap<(String, String), (Instant, Arc<Vec<Template>>)>;

#[derive(Clone)]
pub struct TemplateCatalog {
    infobip: Client,
    keep_for: Duration,
    lists: Arc<Mutex<Lists>>,
}

impl Client {
    /// A sender's templates that an agent can send (`GET /whatsapp/2/senders/{sender}/templates`).
    pub async fn approved_templates(&self, account: &Account, sender: &str) -> Result<Vec<Template>, Error> {
        let path = format!("/whatsapp/2/senders/{sender}/templates");
        let body = self.call(self.request(account.credentials(), reqwest::Method::GET, &path), Some(SCOPE)).await?;
        Ok(body["templates"].as_array().into_iter().flatten().filter_map(Template::approved).collect())
    }
}

/// A template list's failure in an agent's words.
pub fn explain_list_problem(error: &Error) -> String {
    match error {
        Error::Transport(e) => format!("Infobip cannot be reached: {e}"),
        e if e.missing_scope().is_some() => {
            "The Infobip API key lacks the whatsapp:manage scope, which listing templates needs.".into()
        }
        e => format!("Infobip did not list the templates: {}", e.detail()),
    }
}

impl TemplateCatalog {
    pub fn new(infobip: Client, keep_for: Duration) -> Self {
        Self { infobip, keep_for, lists: Arc::default() }
    }

    /// The sender's `APPROVED` templates, from the cache while it is fresh.
    pub async fn approved(&self, account: &Account, sender: &str) -> Result<Arc<Vec<Template>>, Error> {
        let key = (account.id.clone(), sender.to_owned());
        if let Some((fetched, list)) = self.lists().get(&key)
            && fetched.elapsed() < self.keep_for
        {
            return Ok(list.clone());
        }
        let list = Arc::new(self.infobip.approved_templates(account, sender).await?);
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
}
