//! Checking an Infobip API key before it is saved, and listing the account's WhatsApp
//! numbers (the setup wizard's calls).

use serde_json::Value;

/// Scopes the bridge uses (each operation accepts the narrower scope or `whatsapp:manage`).
pub const NEEDED_SCOPES: &[&str] = &[
    "whatsapp:message:send",
    "whatsapp:inbound-message:read",
    "whatsapp:manage",
    "numbers:manage",
    "account-management:manage",
    "conversations:read",
];

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyProblem {
    #[error("Infobip does not accept this API key: it is wrong, or was revoked")]
    Wrong,
    #[error("the API key lacks the {0} scope; give the key these scopes: {scopes}", scopes = NEEDED_SCOPES.join(", "))]
    MissingScope(&'static str),
    #[error("Infobip cannot be reached at this base URL: {0}")]
    Unreachable(String),
    #[error("Infobip answered {0}")]
    Unexpected(u16),
}

async fn get(
    http: &reqwest::Client,
    base_url: &str,
    key: &str,
    path: &str,
    scope: &'static str,
) -> Result<Value, KeyProblem> {
    let response = http
        .get(format!("{}{path}", base_url.trim_end_matches('/')))
        .header("Authorization", format!("App {key}"))
        .send()
        .await
        .map_err(|e| KeyProblem::Unreachable(e.to_string()))?;
    match response.status().as_u16() {
        200 => Ok(response.json().await.unwrap_or(Value::Null)),
        401 => Err(KeyProblem::Wrong),
        403 => Err(KeyProblem::MissingScope(scope)),
        other => Err(KeyProblem::Unexpected(other)),
    }
}

/// Checks the key against the calls the setup needs: the balance (the documented key check)
/// and the numbers list.
pub async fn check_key(http: &reqwest::Client, base_url: &str, key: &str) -> Result<(), KeyProblem> {
    get(http, base_url, key, "/account/1/balance", "account-management:manage").await?;
    get(http, base_url, key, "/numbers/1/numbers?limit=1", "numbers:manage").await?;
    Ok(())
}

/// The account's numbers that can send WhatsApp.
pub async fn whatsapp_numbers(http: &reqwest::Client, base_url: &str, key: &str) -> Result<Vec<String>, KeyProblem> {
    let mut found = Vec::new();
    for page in 0..50 {
        let body =
            get(http, base_url, key, &format!("/numbers/1/numbers?limit=100&page={page}"), "numbers:manage").await?;
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
