//! Downloading the media an end user sent (the URL in the inbound webhook), with the
//! account's key, within the size Salesforce can take.

use futures_util::StreamExt;

use super::client::{Account, Client, refusal, retry_after};
use super::error::Error;

/// What a media download found.
#[derive(Debug)]
pub enum Media {
    File {
        bytes: Vec<u8>,
        mime_type: String,
    },
    /// Larger than the caller's limit; not downloaded further.
    TooLarge,
    /// Infobip no longer has it (404 or 410).
    Gone,
}

impl Client {
    /// Fetches `url`. Redirects are followed; reqwest drops the `Authorization` header when
    /// one leads to another host.
    pub async fn download_media(&self, account: &Account, url: &str, max_bytes: usize) -> Result<Media, Error> {
        let url = url::Url::parse(url).map_err(|e| Error::BadUrl(e.to_string()))?;
        let response = self
            .request_url(account.credentials(), url)
            .send()
            .await
            .map_err(|e| Error::Transport(format!("media download failed: {}", crate::redact::http_error(e))))?;
        let status = response.status().as_u16();
        if status == 404 || status == 410 {
            return Ok(Media::Gone);
        }
        if !(200..300).contains(&status) {
            let detail = if status == 429 || status >= 500 {
                format!("media download: Infobip answered {status}")
            } else {
                format!("media download refused with {status} (check the Infobip API key's scopes)")
            };
            return Err(refusal(status, detail, retry_after(&response), Some("whatsapp:inbound-message:read")));
        }
        if response.content_length().is_some_and(|l| l > max_bytes as u64) {
            return Ok(Media::TooLarge);
        }
        let mime_type = response
            .headers()
            .get("Content-Type")
            .and_then(|v| v.to_str().ok())
            .map(|v| v.split(';').next().unwrap_or_default().trim().to_ascii_lowercase())
            .unwrap_or_default();
        let mut bytes = Vec::new();
        let mut stream = response.bytes_stream();
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.map_err(|e| {
                Error::Transport(format!("media download interrupted: {}", crate::redact::http_error(e)))
            })?;
            if bytes.len() + chunk.len() > max_bytes {
                return Ok(Media::TooLarge);
            }
            bytes.extend_from_slice(&chunk);
        }
        Ok(Media::File { bytes, mime_type })
    }
}
