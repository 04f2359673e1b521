//! Playing Infobip posting to the bridge: inbound messages, delivery reports and seen
//! reports, signed as configured, retried on non-2xx like a real provider.

use std::time::Duration;

use serde_json::{Value, json};

use hmac::{Hmac, Mac};

/// The algorithms Infobip offers for subscription security (`HMAC_SHA_1` … `HMAC_SHA_512`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HmacAlgorithm {
    HmacSha1,
    HmacSha224,
    HmacSha256,
    HmacSha384,
    HmacSha512,
}

impl HmacAlgorithm {
    /// The `algo=` prefix some senders put before the signature (`sha256=…`).
    pub fn prefix(self) -> &'static str {
        match self {
            Self::HmacSha1 => "sha1",
            Self::HmacSha224 => "sha224",
            Self::HmacSha256 => "sha256",
            Self::HmacSha384 => "sha384",
            Self::HmacSha512 => "sha512",
        }
    }

    /// The raw MAC of `body` under `secret` (RFC 2104).
    pub fn sign(self, secret: &[u8], body: &[u8]) -> Vec<u8> {
        fn mac<M: Mac + hmac::digest::KeyInit>(secret: &[u8], body: &[u8]) -> Vec<u8> {
            // HMAC takes keys of any length, so this never fails.
            let Ok(mut m) = <M as hmac::digest::KeyInit>::new_from_slice(secret) else { return Vec::new() };
            m.update(body);
            m.finalize().into_bytes().to_vec()
        }
        match self {
            Self::HmacSha1 => mac::<Hmac<sha1::Sha1>>(secret, body),
            Self::HmacSha224 => mac::<Hmac<sha2::Sha224>>(secret, body),
            Self::HmacSha256 => mac::<Hmac<sha2::Sha256>>(secret, body),
            Self::HmacSha384 => mac::<Hmac<sha2::Sha384>>(secret, body),
            Self::HmacSha512 => mac::<Hmac<sha2::Sha512>>(secret, body),
        }
    }
}

/// How the signature is written into its header. Infobip does not document it, so the
/// simulator can play each spelling.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Encoding {
    Hex,
    Base64,
}

/// The header value a sender signing `body` writes.
pub fn format_signature(
    algorithm: HmacAlgorithm,
    secret: &[u8],
    body: &[u8],
    encoding: Encoding,
    with_prefix: bool,
) -> String {
    use base64::Engine;
    let mac = algorithm.sign(secret, body);
    let encoded = match encoding {
        Encoding::Hex => hex::encode(mac),
        Encoding::Base64 => base64::engine::general_purpose::STANDARD.encode(mac),
    };
    if with_prefix { format!("{}={encoded}", algorithm.prefix()) } else { encoded }
}

/// How the webhook sender authenticates its posts.
#[derive(Debug, Clone)]
pub enum WebhookAuth {
    Hmac { algorithm: HmacAlgorithm, secret: String, header: String, encoding: Encoding, prefix: bool },
    Basic { username: String, password: String },
    None,
}

#[derive(Debug, Clone)]
pub struct WebhookSender {
    pub url: String,
    pub auth: WebhookAuth,
    /// Attempts per delivery (the first try included).
    pub attempts: u32,
    pub retry_delay: Duration,
    client: reqwest::Client,
}

/// The result of one delivery: every status seen, last one last.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivery {
    pub statuses: Vec<u16>,
}

impl Delivery {
    pub fn succeeded(&self) -> bool {
        self.statuses.last().is_some_and(|s| (200..300).contains(s))
    }
}

impl WebhookSender {
    pub fn new(url: &str, auth: WebhookAuth) -> Self {
        Self {
            url: url.to_owned(),
            auth,
            attempts: 5,
            retry_delay: Duration::from_millis(50),
            client: reqwest::Client::builder().timeout(Duration::from_secs(10)).build().unwrap_or_default(),
        }
    }

    /// Posts `body` (raw bytes, so tests can send anything), retrying on non-2xx and on
    /// connection errors (status 0 in the record).
    pub async fn post_raw(&self, body: Vec<u8>) -> Delivery {
        let mut statuses = Vec::new();
        for attempt in 0..self.attempts.max(1) {
            if attempt > 0 {
                tokio::time::sleep(self.retry_delay * attempt).await;
            }
            let mut request = self.client.post(&self.url).header("Content-Type", "application/json").body(body.clone());
            request = match &self.auth {
                WebhookAuth::Hmac { algorithm, secret, header, encoding, prefix } => request.header(
                    header.as_str(),
                    format_signature(*algorithm, secret.as_bytes(), &body, *encoding, *prefix),
                ),
                WebhookAuth::Basic { username, password } => request.basic_auth(username, Some(password)),
                WebhookAuth::None => request,
            };
            let status = match request.send().await {
                Ok(response) => response.status().as_u16(),
                Err(_) => 0,
            };
            statuses.push(status);
            if (200..300).contains(&status) || (400..500).contains(&status) && status != 429 && status != 408 {
                // 2xx is done; a 4xx will not get better by repeating it.
                break;
            }
        }
        Delivery { statuses }
    }

    pub async fn post(&self, body: &Value) -> Delivery {
        self.post_raw(body.to_string().into_bytes()).await
    }
}

/// The envelope of an inbound-message webhook around `results`.
pub fn inbound_envelope(results: Vec<Value>) -> Value {
    json!({ "results": results.clone(), "messageCount": results.len(), "pendingMessageCount": 0 })
}

/// One inbound result with the given `message` (as in the vendor's examples).
pub fn inbound_result(from: &str, to: &str, message_id: &str, message: Value) -> Value {
    json!({
        "from": from,
        "to": to,
        "integrationType": "WHATSAPP",
        "receivedAt": chrono::Utc::now().format("%Y-%m-%dT%H:%M:%S%.3f%z").to_string(),
        "messageId": message_id,
        "message": message,
        "price": { "pricePerMessage": 0, "currency": "EUR" },
        "contact": { "name": "Test User", "phoneNumber": from }
    })
}

/// A delivery report for a message the bridge sent.
pub fn delivery_report(message_id: &str, to: &str, delivered: bool) -> Value {
    let (status, error) = if delivered {
        (
            json!({ "groupId": 3, "groupName": "DELIVERED", "id": 5, "name": "DELIVERED_TO_HANDSET", "description": "Message delivered to handset" }),
            json!({ "groupId": 0, "groupName": "OK", "id": 0, "name": "NO_ERROR", "description": "No Error", "permanent": false }),
        )
    } else {
        (
            json!({ "groupId": 2, "groupName": "UNDELIVERABLE", "id": 9, "name": "UNDELIVERABLE_NOT_DELIVERED", "description": "Message sent not delivered" }),
            json!({ "groupId": 1, "groupName": "HANDSET_ERRORS", "id": 7010, "name": "EC_NO_SESSION", "description": "No session", "permanent": true }),
        )
    };
    let now = chrono::Utc::now().format("%Y-%m-%dT%H:%M:%S%.3f%z").to_string();
    json!({ "results": [{
        "messageId": message_id, "to": to, "sentAt": now, "doneAt": now, "messageCount": 1,
        "price": { "pricePerMessage": 0, "currency": "EUR" }, "status": status, "error": error
    }]})
}

/// A seen report: the end user (`from`) read a message the bridge sent from `to`.
pub fn seen_report(message_id: &str, from: &str, to: &str) -> Value {
    let now = chrono::Utc::now().format("%Y-%m-%dT%H:%M:%S%.3f%z").to_string();
    json!({ "results": [{ "messageId": message_id, "from": from, "to": to, "sentAt": now, "seenAt": now }] })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signatures_follow_rfc_4231() {
        // RFC 4231 test case 2.
        let mac = HmacAlgorithm::HmacSha256.sign(b"Jefe", b"what do ya want for nothing?");
        assert_eq!(hex::encode(mac), "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843");
        assert!(format_signature(HmacAlgorithm::HmacSha256, b"k", b"x", Encoding::Hex, true).starts_with("sha256="));
    }
}
