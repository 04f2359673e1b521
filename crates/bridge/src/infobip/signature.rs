//! HMAC signatures of webhook bodies, with the algorithms Infobip offers for subscription
//! security (`HMAC_SHA_1` … `HMAC_SHA_512`). How Infobip presents the signature (header
//! name, hex or base64, an `algo=` prefix) is not documented, so all of it is configurable
//! and the verifier accepts each spelling.

use hmac::{Hmac, Mac};

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum HmacAlgorithm {
    HmacSha1,
    HmacSha224,
    HmacSha256,
    HmacSha384,
    HmacSha512,
}

impl HmacAlgorithm {
    pub fn parse(name: &str) -> Option<Self> {
        Some(match name {
            "HMAC_SHA_1" => Self::HmacSha1,
            "HMAC_SHA_224" => Self::HmacSha224,
            "HMAC_SHA_256" => Self::HmacSha256,
            "HMAC_SHA_384" => Self::HmacSha384,
            "HMAC_SHA_512" => Self::HmacSha512,
            _ => return None,
        })
    }

    pub fn name(self) -> &'static str {
        match self {
            Self::HmacSha1 => "HMAC_SHA_1",
            Self::HmacSha224 => "HMAC_SHA_224",
            Self::HmacSha256 => "HMAC_SHA_256",
            Self::HmacSha384 => "HMAC_SHA_384",
            Self::HmacSha512 => "HMAC_SHA_512",
        }
    }

    /// The prefix used in `algo=<hex>` spellings (`sha256=…`, as GitHub-style senders write).
    pub fn prefix(self) -> &'static str {
        match self {
            Self::HmacSha1 => "sha1",
            Self::HmacSha224 => "sha224",
            Self::HmacSha256 => "sha256",
            Self::HmacSha384 => "sha384",
            Self::HmacSha512 => "sha512",
        }
    }

    /// The raw MAC of `body` under `secret`.
    pub fn sign(self, secret: &[u8], body: &[u8]) -> Vec<u8> {
        fn mac<M: Mac + hmac::digest::KeyInit>(secret: &[u8], body: &[u8]) -> Vec<u8> {
            match <M as hmac::digest::KeyInit>::new_from_slice(secret) {
                Ok(mut m) => {
                    m.update(body);
                    m.finalize().into_bytes().to_vec()
                }
                // HMAC accepts keys of any length; this arm is unreachable in practice.
                Err(_) => Vec::new(),
            }
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

/// How a signature is written into its header.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Encoding {
    Hex,
    Base64,
}

/// Formats a signature as a sender would put it in the header.
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

/// Checks a header value against `body` for any of `secrets` (two during a rotation), in
/// constant time. Accepts hex or base64, with or without the `algo=` prefix.
pub fn verify(algorithm: HmacAlgorithm, secrets: &[&[u8]], body: &[u8], header_value: &str) -> bool {
    use base64::Engine;
    let value = header_value.trim();
    let value = match value.split_once('=') {
        Some((algo, rest)) if algo.eq_ignore_ascii_case(algorithm.prefix()) => rest,
        _ => value,
    };
    let mut candidates = Vec::new();
    if let Ok(bytes) = hex::decode(value) {
        candidates.push(bytes);
    }
    if let Ok(bytes) = base64::engine::general_purpose::STANDARD.decode(value) {
        candidates.push(bytes);
    }
    let mut ok = false;
    for secret in secrets {
        let expected = algorithm.sign(secret, body);
        for candidate in &candidates {
            // Evaluate every comparison: no early exit reveals which secret or spelling matched.
            ok |= crate::crypto::constant_time_eq(&expected, candidate);
        }
    }
    ok
}

#[cfg(test)]
mod tests {
    use super::*;

    const ALL: [HmacAlgorithm; 5] = [
        HmacAlgorithm::HmacSha1,
        HmacAlgorithm::HmacSha224,
        HmacAlgorithm::HmacSha256,
        HmacAlgorithm::HmacSha384,
        HmacAlgorithm::HmacSha512,
    ];

    #[test]
    fn known_vector_sha256() {
        // RFC 4231 test case 2.
        let mac = HmacAlgorithm::HmacSha256.sign(b"Jefe", b"what do ya want for nothing?");
        assert_eq!(hex::encode(mac), "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843");
    }

    #[test]
    fn every_spelling_verifies_and_tampering_fails() {
        let body = br#"{"results":[]}"#;
        for algorithm in ALL {
            assert_eq!(HmacAlgorithm::parse(algorithm.name()), Some(algorithm));
            for encoding in [Encoding::Hex, Encoding::Base64] {
                for prefix in [false, true] {
                    let header = format_signature(algorithm, b"secret", body, encoding, prefix);
                    assert!(verify(algorithm, &[b"secret"], body, &header), "{algorithm:?} {encoding:?} {prefix}");
                    assert!(!verify(algorithm, &[b"other"], body, &header));
                    assert!(!verify(algorithm, &[b"secret"], b"{\"results\":[1]}", &header));
                }
            }
        }
    }

    #[test]
    fn either_secret_of_a_rotation_is_accepted() {
        let header = format_signature(HmacAlgorithm::HmacSha512, b"old", b"x", Encoding::Hex, false);
        assert!(verify(HmacAlgorithm::HmacSha512, &[b"new", b"old"], b"x", &header));
        assert!(!verify(HmacAlgorithm::HmacSha512, &[b"new"], b"x", &header));
        assert!(!verify(HmacAlgorithm::HmacSha512, &[b"new"], b"x", "garbage"));
    }
}
