//! Encryption of secret columns with AES-256-GCM under the master key.
//!
//! Stored form: `v1:` + base64(nonce ‖ ciphertext ‖ tag). The column name is bound in as
//! associated data, so a ciphertext copied into another column does not decrypt.

use std::io::Write;
use std::path::Path;

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use secrecy::{ExposeSecret, SecretBox, SecretString};

const PREFIX: &str = "v1:";
const NONCE_LEN: usize = 12;
pub const KEY_FILE_NAME: &str = "master.key";

#[derive(Debug, thiserror::Error)]
pub enum CryptoError {
    #[error("master key must be base64 of exactly 32 bytes")]
    BadKey,
    #[error("ciphertext is malformed")]
    Malformed,
    #[error("ciphertext does not decrypt under this master key (wrong key, or tampered data)")]
    Decrypt,
    #[error("could not read or create the master key file {path}: {source}")]
    KeyFile {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("the system random number generator failed")]
    Random,
}

/// The 32-byte key. Never printed; dropping it wipes the bytes.
pub struct MasterKey(SecretBox<[u8; 32]>);

impl std::fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("MasterKey([redacted])")
    }
}

impl MasterKey {
    pub fn from_base64(encoded: &str) -> Result<Self, CryptoError> {
        let bytes = B64.decode(encoded.trim()).map_err(|_| CryptoError::BadKey)?;
        let key: [u8; 32] = bytes.try_into().map_err(|_| CryptoError::BadKey)?;
        Ok(Self(SecretBox::new(Box::new(key))))
    }

    pub fn generate() -> Result<Self, CryptoError> {
        let mut key = [0u8; 32];
        getrandom::getrandom(&mut key).map_err(|_| CryptoError::Random)?;
        Ok(Self(SecretBox::new(Box::new(key))))
    }

    pub fn to_base64(&self) -> SecretString {
        SecretString::from(B64.encode(self.0.expose_secret()))
    }

    /// Reads `<dir>/master.key`, or creates it with mode 0600. Returns whether it was created,
    /// so the caller can say so once in the log.
    pub fn load_or_create(dir: &Path) -> Result<(Self, bool), CryptoError> {
        let path = dir.join(KEY_FILE_NAME);
        let io_err = |source| CryptoError::KeyFile { path: path.display().to_string(), source };
        match std::fs::read_to_string(&path) {
            Ok(text) => return Ok((Self::from_base64(&text)?, false)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(io_err(e)),
        }
        std::fs::create_dir_all(dir).map_err(io_err)?;
        let key = Self::generate()?;
        let mut options = std::fs::OpenOptions::new();
        options.write(true).create_new(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            options.mode(0o600);
        }
        match options.open(&path) {
            Ok(mut file) => {
                file.write_all(key.to_base64().expose_secret().as_bytes())
                    .and_then(|()| file.sync_all())
                    .map_err(io_err)?;
                Ok((key, true))
            }
            // Another process created it between our read and our create: use theirs.
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                let text = std::fs::read_to_string(&path).map_err(io_err)?;
                Ok((Self::from_base64(&text)?, false))
            }
            Err(e) => Err(io_err(e)),
        }
    }
}

/// Encrypts and decrypts secret column values.
#[derive(Clone)]
pub struct Cipher {
    aead: Aes256Gcm,
    /// For deriving purpose-bound keys (HMAC-SHA256 of the purpose under the master key).
    master: std::sync::Arc<SecretBox<[u8; 32]>>,
}

impl std::fmt::Debug for Cipher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Cipher([redacted])")
    }
}

impl Cipher {
    pub fn new(key: &MasterKey) -> Self {
        Self {
            aead: Aes256Gcm::new(key.0.expose_secret().into()),
            master: std::sync::Arc::new(SecretBox::new(Box::new(*key.0.expose_secret()))),
        }
    }

    /// A key for one purpose (`"media-links"`), stable for a given master key, so that
    /// replicas sharing the master key agree on it.
    pub fn derive_key(&self, purpose: &str) -> [u8; 32] {
        use hmac::Mac;
        let mut out = [0u8; 32];
        if let Ok(mut mac) = <hmac::Hmac<sha2::Sha256> as Mac>::new_from_slice(self.master.expose_secret()) {
            mac.update(purpose.as_bytes());
            out.copy_from_slice(&mac.finalize().into_bytes());
        }
        out
    }

    /// `context` names where the value is stored (e.g. `"apps.private_key"`).
    pub fn encrypt(&self, context: &str, plaintext: &str) -> Result<String, CryptoError> {
        let mut nonce = [0u8; NONCE_LEN];
        getrandom::getrandom(&mut nonce).map_err(|_| CryptoError::Random)?;
        let sealed = self
            .aead
            .encrypt(Nonce::from_slice(&nonce), Payload { msg: plaintext.as_bytes(), aad: context.as_bytes() })
            .map_err(|_| CryptoError::Malformed)?;
        let mut out = Vec::with_capacity(NONCE_LEN + sealed.len());
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&sealed);
        Ok(format!("{PREFIX}{}", B64.encode(out)))
    }

    pub fn decrypt(&self, context: &str, stored: &str) -> Result<SecretString, CryptoError> {
        let encoded = stored.strip_prefix(PREFIX).ok_or(CryptoError::Malformed)?;
        let bytes = B64.decode(encoded).map_err(|_| CryptoError::Malformed)?;
        if bytes.len() < NONCE_LEN + 16 {
            return Err(CryptoError::Malformed);
        }
        let (nonce, sealed) = bytes.split_at(NONCE_LEN);
        let plain = self
            .aead
            .decrypt(Nonce::from_slice(nonce), Payload { msg: sealed, aad: context.as_bytes() })
            .map_err(|_| CryptoError::Decrypt)?;
        let text = String::from_utf8(plain).map_err(|_| CryptoError::Malformed)?;
        Ok(SecretString::from(text))
    }
}

/// Compares without an early exit, so timing does not reveal where the inputs differ.
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// How tokens are kept: SHA-256, hex. API tokens, session cookies and one-time links are
/// looked up by their hash, so the database never holds a usable one.
pub fn token_hash(token: &str) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(token.as_bytes()))
}

/// A random token for webhook secrets and API tokens: 32 bytes, URL-safe base64.
pub fn random_token() -> Result<String, CryptoError> {
    let mut bytes = [0u8; 32];
    getrandom::getrandom(&mut bytes).map_err(|_| CryptoError::Random)?;
    Ok(base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cipher() -> Cipher {
        Cipher::new(&MasterKey::generate().unwrap())
    }

    #[test]
    fn round_trips_and_hides_plaintext() {
        let c = cipher();
        let stored = c.encrypt("apps.private_key", "-----BEGIN PRIVATE KEY-----").unwrap();
        assert!(stored.starts_with("v1:"));
        assert!(!stored.contains("BEGIN"));
        let back = c.decrypt("apps.private_key", &stored).unwrap();
        assert_eq!(back.expose_secret(), "-----BEGIN PRIVATE KEY-----");
    }

    #[test]
    fn same_plaintext_encrypts_differently_each_time() {
        let c = cipher();
        assert_ne!(c.encrypt("x", "same").unwrap(), c.encrypt("x", "same").unwrap());
    }

    #[test]
    fn refuses_other_context_other_key_and_tampering() {
        let c = cipher();
        let stored = c.encrypt("infobip_accounts.api_key", "k").unwrap();
        assert!(matches!(c.decrypt("apps.private_key", &stored), Err(CryptoError::Decrypt)));
        assert!(matches!(cipher().decrypt("infobip_accounts.api_key", &stored), Err(CryptoError::Decrypt)));
        let mut tampered = stored.clone();
        tampered.pop();
        tampered.push(if stored.ends_with('A') { 'B' } else { 'A' });
        assert!(c.decrypt("infobip_accounts.api_key", &tampered).is_err());
        assert!(matches!(c.decrypt("x", "plaintext"), Err(CryptoError::Malformed)));
    }

    #[test]
    fn key_file_is_created_once_with_private_mode() {
        let dir = tempfile::tempdir().unwrap();
        let (first, created) = MasterKey::load_or_create(dir.path()).unwrap();
        assert!(created);
        let (second, created_again) = MasterKey::load_or_create(dir.path()).unwrap();
        assert!(!created_again);
        assert_eq!(first.to_base64().expose_secret(), second.to_base64().expose_secret());
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(dir.path().join(KEY_FILE_NAME)).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
    }

    #[test]
    fn master_key_must_be_32_bytes() {
        assert!(MasterKey::from_base64("c2hvcnQ=").is_err());
        assert!(MasterKey::from_base64("not base64!").is_err());
        let key = MasterKey::generate().unwrap();
        assert!(MasterKey::from_base64(key.to_base64().expose_secret()).is_ok());
        assert_eq!(format!("{key:?}"), "MasterKey([redacted])");
    }
}
