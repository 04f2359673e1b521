//! Calls to Infobip's API: sending WhatsApp messages (`POST /whatsapp/1/message/…`) and
//! reading a chatbot conversation (`GET /ccaas/1/…`), with errors classified for the retry
//! logic.

use std::time::Duration;

use secrecy::ExposeSecret;
use serde_json::Value;

use crate::directory::InfobipAccount;

#[derive(Debug, thiserror::Error)]
pub enum SendError {
    /// 429, 5xx, timeouts: try again later.
    #[error("Infobip is temporarily unavailable: {detail}")]
    Retry { detail: String, retry_after: Option<Duration> },
    /// Will not succeed as sent (bad request, unknown sender, key without the scope).
    #[error("Infobip refused the request: {detail}")]
    Refused { status: u16, detail: String },
}

impl From<SendError> for crate::worker::JobFailure {
    fn from(e: SendError) -> Self {
        match e {
            SendError::Retry { detail, retry_after } => {
                crate::worker::JobFailure::Retry { reason: detail, after: retry_after }
            }
            SendError::Refused { .. } => crate::worker::JobFailure::permanent(e.to_string()),
        }
    }
}

#[derive(Clone)]
pub struct InfobipClient {
    http: reqwest::Client,
}

impl InfobipClient {
    pub fn new(http: reqwest::Client) -> Self {
        Self { http }
    }

    /// Posts `body` to `/whatsapp/1/message/<kind>`; returns Infobip's answer.
    pub async fn send(&self, account: &InfobipAccount, kind: &str, body: &Value) -> Result<Value, SendError> {
        self.post(account, &format!("/whatsapp/1/message/{kind}"), body).await
    }

    /// Shows "typing…" to the end user (`POST /whatsapp/1/events`).
    pub async fn typing(&self, account: &InfobipAccount, sender: &str, to: &str) -> Result<Value, SendError> {
        let body = serde_json::json!({ "events": [{
            "sender": sender, "destinations": [{ "to": to }], "content": { "type": "TYPING_INDICATOR" }
        }] });
        self.post(account, "/whatsapp/1/events", &body).await
    }

    /// One page of a Conversations (CCaaS) conversation's messages, oldest first.
    pub async fn conversation_messages(
        &self,
        account: &InfobipAccount,
        conversation_id: &str,
        page: usize,
        limit: usize,
    ) -> Result<Value, SendError> {
        let mut url = url::Url::parse(&format!("{}/ccaas/1/conversations", account.base_url.trim_end_matches('/')))
            .map_err(|e| SendError::Refused { status: 0, detail: format!("bad Infobip base URL: {e}") })?;
        // The id is pushed as one path segment, escaped: it comes from the chatbot.
        url.path_segments_mut()
            .map_err(|()| SendError::Refused { status: 0, detail: "bad Infobip base URL".into() })?
            .push(conversation_id)
            .push("messages");
        let request = self.http.get(url).query(&[
            ("page", page.to_string()),
            ("limit", limit.to_string()),
            ("orderBy", "createdAt:asc".to_owned()),
        ]);
        self.call(account, request).await
    }

    async fn post(&self, account: &InfobipAccount, path: &str, body: &Value) -> Result<Value, SendError> {
        let url = format!("{}{path}", account.base_url.trim_end_matches('/'));
        self.call(account, self.http.post(url).json(body)).await
    }

    async fn call(&self, account: &InfobipAccount, request: reqwest::RequestBuilder) -> Result<Value, SendError> {
        let response = request
            .header("Authorization", format!("App {}", account.api_key.expose_secret()))
            .send()
            .await
            .map_err(|e| SendError::Retry { detail: format!("request failed: {e}"), retry_after: None })?;
        let status = response.status().as_u16();
        let retry_after = response
            .headers()
            .get("Retry-After")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok())
            .map(Duration::from_secs);
        let body: Value = response.json().await.unwrap_or(Value::Null);
        if (200..300).contains(&status) {
            return Ok(body);
        }
        let detail = describe_error(status, &body);
        if status == 429 || status >= 500 {
            Err(SendError::Retry { detail, retry_after })
        } else {
            Err(SendError::Refused { status, detail })
        }
    }
}

/// Both of Infobip's error envelopes, in one readable line.
pub fn describe_error(status: u16, body: &Value) -> String {
    if let Some(e) = body.pointer("/requestError/serviceException") {
        let mut text = format!(
            "{status} {}: {}",
            e["messageId"].as_str().unwrap_or("ERROR"),
            e["text"].as_str().unwrap_or_default()
        );
        if let Some(fields) = e.get("validationErrors").and_then(Value::as_object) {
            for (field, problems) in fields {
                let problems: Vec<&str> = problems.as_array().into_iter().flatten().filter_map(Value::as_str).collect();
                text.push_str(&format!("; {field}: {}", problems.join(", ")));
            }
        }
        return text;
    }
    if let Some(code) = body.get("errorCode").and_then(Value::as_str) {
        return format!("{status} {code}: {}", body["description"].as_str().unwrap_or_default());
    }
    format!("{status}")
}
