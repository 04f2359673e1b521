//! The setup's calls: checking an API key before it is saved, and listing the account's
//! WhatsApp numbers.

use serde_json::Value;

use super::client::{Client, Credentials};
use super::error::Error;

/// Scopes the bridge uses (each operation accepts the narrower scope or `whatsapp:manage`).
pub const NEEDED_SCOPES: &[&str] = &[
    "whatsapp:message:send",
    "whatsapp:inbound-message:read",
    "whatsapp:manage",
    "numbers:manage",
    "account-management:manage",
    "conversations:read",
];

const NUMBERS_SCOPE: &str = "numbers:manage";
const BALANCE_SCOPE: &str = "account-management:manage";

impl Client {
    async fn get(&self, to: Credentials<'_>, path: &str, scope: &'static str) -> Result<Value, Error> {
        self.call(self.request(to, reqwest::Method::GET, path), Some(scope)).await
    }

    /// Checks the key against the calls the setup needs: the balance (the documented key
    /// check) and the numbers list.
    pub async fn check_key(&self, to: Credentials<'_>) -> Result<(), Error> {
        self.get(to, "/account/1/balance", BALANCE_SCOPE).await?;
        self.get(to, "/numbers/1/numbers?limit=1", NUMBERS_SCOPE).await?;
        Ok(())
    }

    /// The account's numbers that can send WhatsApp.
    pub async fn whatsapp_numbers(&self, to: Credentials<'_>) -> Result<Vec<String>, Error> {
        let mut found = Vec::new();
        for page in 0..50 {
            let body = self.get(to, &format!("/numbers/1/numbers?limit=100&page={page}"), NUMBERS_SCOPE).await?;
            let numbers = body["numbers"].as_array().cloned().unwrap_or_default();
            for n in &numbers {
                let whatsapp = n["type"] == "WHATSAPP"
                    || n["capabilities"].as_array().is_some_and(|c| c.iter().any(|c| c == "WHATSAPP"));
                if let (true, Some(number)) = (whatsapp, n["number"].as_str()) {
                    found.push(number.to_owned());
                }
            }
            if numbers.len() < 100 {
                break;
            }
        }
        Ok(found)
    }
}

/// A key check's failure in an admin's words.
pub fn explain_key_problem(error: &Error) -> String {
    if error.is_wrong_key() {
        return "Infobip does not accept this API key: it is wrong, or was revoked".into();
    }
    if let Some(scope) = error.missing_scope() {
        return format!("the API key lacks the {scope} scope; give the key these scopes: {}", NEEDED_SCOPES.join(", "));
    }
    match error {
        Error::Transport(e) | Error::BadUrl(e) => format!("Infobip cannot be reached at this base URL: {e}"),
        other => match other.status() {
            Some(status) => format!("Infobip answered {status}"),
            None => other.to_string(),
        },
    }
}
