//! The connected app's key pair: generated here so admins need no openssl. The private key
//! signs the JWT bearer assertions; the self-signed certificate carries the public half and
//! is what the admin uploads to the connected app ("Use digital signatures").

use std::str::FromStr;
use std::time::Duration;

use rsa::pkcs1v15::SigningKey;
use rsa::pkcs8::{EncodePrivateKey, EncodePublicKey, LineEnding};
use rsa::{RsaPrivateKey, RsaPublicKey};
use secrecy::SecretString;
use sha2::Sha256;
use x509_cert::builder::{Builder, CertificateBuilder, Profile};
use x509_cert::der::EncodePem;
use x509_cert::name::Name;
use x509_cert::serial_number::SerialNumber;
use x509_cert::spki::SubjectPublicKeyInfoOwned;
use x509_cert::time::Validity;

/// Salesforce requires RSA (RS256) keys of at least 2048 bits.
const KEY_BITS: usize = 2048;
/// Salesforce accepts certificates valid for years; two keeps rotation a conscious act.
const VALIDITY: Duration = Duration::from_secs(2 * 365 * 24 * 3600);

#[derive(Debug, thiserror::Error)]
#[error("cannot create the key pair: {0}")]
pub struct CertificateError(String);

fn err(e: impl std::fmt::Display) -> CertificateError {
    CertificateError(e.to_string())
}

pub struct KeyPair {
    /// PKCS#8 PEM.
    pub private_key: SecretString,
    /// X.509 certificate, PEM.
    pub certificate: String,
}

/// A new RSA key and a self-signed certificate naming `common_name`.
pub fn generate(common_name: &str) -> Result<KeyPair, CertificateError> {
    let mut rng = rsa::rand_core::OsRng;
    let private = RsaPrivateKey::new(&mut rng, KEY_BITS).map_err(err)?;
    certificate_for(private, common_name)
}

/// A self-signed certificate for an existing private key (PEM, PKCS#1 or PKCS#8).
pub fn certificate_for_pem(private_key_pem: &str, common_name: &str) -> Result<KeyPair, CertificateError> {
    use rsa::pkcs1::DecodeRsaPrivateKey;
    use rsa::pkcs8::DecodePrivateKey;
    let private = RsaPrivateKey::from_pkcs8_pem(private_key_pem)
        .or_else(|_| RsaPrivateKey::from_pkcs1_pem(private_key_pem))
        .map_err(|_| CertificateError("the file is not an RSA private key in PEM format".into()))?;
    certificate_for(private, common_name)
}

fn certificate_for(private: RsaPrivateKey, common_name: &str) -> Result<KeyPair, CertificateError> {
    let public = RsaPublicKey::from(&private);
    let spki = SubjectPublicKeyInfoOwned::from_key(public).map_err(err)?;
    let cn: String = common_name.chars().filter(|c| c.is_ascii_alphanumeric() || " -_.".contains(*c)).collect();
    let subject = Name::from_str(&format!("CN={},O=byoc-bridge", if cn.is_empty() { "byoc-bridge" } else { &cn }))
        .map_err(err)?;
    let mut serial = [0u8; 16];
    getrandom::getrandom(&mut serial).map_err(err)?;
    // A positive serial number: the top bit clear.
    serial[0] &= 0x7f;
    let serial = SerialNumber::new(&serial).map_err(err)?;
    let validity = Validity::from_now(VALIDITY).map_err(err)?;
    let signer = SigningKey::<Sha256>::new(private.clone());
    let builder = CertificateBuilder::new(Profile::Root, serial, validity, subject, spki, &signer).map_err(err)?;
    let certificate = builder.build::<rsa::pkcs1v15::Signature>().map_err(err)?.to_pem(LineEnding::LF).map_err(err)?;
    let private_key = private.to_pkcs8_pem(LineEnding::LF).map_err(err)?;
    Ok(KeyPair { private_key: SecretString::from(private_key.to_string()), certificate })
}

/// The public key of a certificate, to check it matches the stored private key.
pub fn matches(private_key_pem: &str, certificate_pem: &str) -> bool {
    use rsa::pkcs8::DecodePrivateKey;
    use x509_cert::der::DecodePem;
    let (Ok(private), Ok(cert)) =
        (RsaPrivateKey::from_pkcs8_pem(private_key_pem), x509_cert::Certificate::from_pem(certificate_pem))
    else {
        return false;
    };
    let Ok(ours) = RsaPublicKey::from(&private).to_public_key_der() else { return false };
    cert.tbs_certificate.subject_public_key_info.subject_public_key.raw_bytes()
        == SubjectPublicKeyInfoOwned::try_from(ours.as_bytes())
            .map(|s| s.subject_public_key.raw_bytes().to_vec())
            .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use secrecy::ExposeSecret;

    #[test]
    fn generated_certificates_hold_the_public_half_of_the_key() {
        let pair = generate("Acme WhatsApp").unwrap();
        assert!(pair.certificate.starts_with("-----BEGIN CERTIFICATE-----"));
        assert!(matches(pair.private_key.expose_secret(), &pair.certificate));
        let other = generate("other").unwrap();
        assert!(!matches(other.private_key.expose_secret(), &pair.certificate));
        // The key signs tokens as the JWT bearer flow needs.
        let key = jsonwebtoken::EncodingKey::from_rsa_pem(pair.private_key.expose_secret().as_bytes()).unwrap();
        jsonwebtoken::encode(
            &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::RS256),
            &serde_json::json!({"a": 1}),
            &key,
        )
        .unwrap();
    }
}
