//! Links through which Infobip fetches the files agents send: signed, expiring, one per
//! attachment. The bridge fetches the file from Salesforce when the link is used, so
//! nothing is stored and a leaked link stops working soon.

use std::time::Duration;

use hmac::{Hmac, Mac};
use sha2::Sha256;

/// How long a link works: long enough for Infobip's fetch and its retries.
pub const LINK_LIFETIME: Duration = Duration::from_secs(3600);

#[derive(Clone)]
pub struct MediaLinks {
    base_url: String,
    key: [u8; 32],
}

impl std::fmt::Debug for MediaLinks {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MediaLinks").field("base_url", &self.base_url).finish_non_exhaustive()
    }
}

impl MediaLinks {
    pub fn new(base_url: &str, key: [u8; 32]) -> Self {
        Self { base_url: base_url.trim_end_matches('/').to_owned(), key }
    }

    fn sign(&self, message_id: i64, index: usize, expires: i64) -> String {
        // HMAC accepts keys of any length; an empty signature would simply never verify.
        let Ok(mut mac) = <Hmac<Sha256> as Mac>::new_from_slice(&self.key) else { return String::new() };
        mac.update(format!("{message_id}/{index}/{expires}").as_bytes());
        hex::encode(mac.finalize().into_bytes())
    }

    /// The link for attachment `index` of outbound message `message_id`.
    pub fn url(&self, message_id: i64, index: usize) -> String {
        let expires = chrono::Utc::now().timestamp() + LINK_LIFETIME.as_secs() as i64;
        format!(
            "{}/media/{message_id}/{index}?expires={expires}&signature={}",
            self.base_url,
            self.sign(message_id, index, expires)
        )
    }

    /// Whether a presented link is genuine and still valid.
    pub fn verify(&self, message_id: i64, index: usize, expires: i64, signature: &str) -> bool {
        let expected = self.sign(message_id, index, expires);
        chrono::Utc::now().timestamp() <= expires
            && crate::crypto::constant_time_eq(expected.as_bytes(), signature.as_bytes())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn links_verify_only_as_issued() {
        let links = MediaLinks::new("https://bridge.example/", [7; 32]);
        let url = url::Url::parse(&links.url(42, 1)).unwrap();
        assert_eq!(url.path(), "/media/42/1");
        let q: std::collections::HashMap<_, _> = url.query_pairs().into_owned().collect();
        let expires: i64 = q["expires"].parse().unwrap();
        assert!(links.verify(42, 1, expires, &q["signature"]));
        assert!(!links.verify(42, 0, expires, &q["signature"]), "another attachment");
        assert!(!links.verify(43, 1, expires, &q["signature"]), "another message");
        assert!(!links.verify(42, 1, expires + 1, &q["signature"]), "a longer life");
        let past = chrono::Utc::now().timestamp() - 1;
        assert!(!links.verify(42, 1, past, &links.sign(42, 1, past)), "expired");
        assert!(!MediaLinks::new("x", [8; 32]).verify(42, 1, expires, &q["signature"]), "another key");
    }
}
