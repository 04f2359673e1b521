//! Checks on operator input, each failure naming the field.

use super::ProvisionError;

fn invalid(field: &str, problem: impl Into<String>) -> ProvisionError {
    ProvisionError::Invalid { field: field.to_owned(), problem: problem.into() }
}

/// App names are used in URLs and on the command line.
pub fn app_name(name: &str) -> Result<String, ProvisionError> {
    let ok =
        !name.is_empty() && name.len() <= 64 && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
    if ok { Ok(name.to_owned()) } else { Err(invalid("name", "use 1-64 letters, digits, '-' or '_'")) }
}

/// A Salesforce org id: 15 characters, or 18 with the case-safe suffix, starting with `00D`.
pub fn org_id(value: &str) -> Result<String, ProvisionError> {
    let v = value.trim();
    if !(v.len() == 15 || v.len() == 18) || !v.chars().all(|c| c.is_ascii_alphanumeric()) {
        return Err(invalid("org_id", "must be a 15- or 18-character Salesforce id"));
    }
    if !v.starts_with("00D") {
        return Err(invalid("org_id", "an org id starts with 00D"));
    }
    if v.len() == 18 && crate::salesforce::id_checksum(&v[..15]) != v[15..] {
        return Err(invalid("org_id", "the 18-character id's last 3 characters do not match"));
    }
    Ok(v.to_owned())
}

/// An https URL (plain http only for loopback hosts, which is how the simulators run).
pub fn service_url(field: &str, value: &str) -> Result<String, ProvisionError> {
    let url = url::Url::parse(value.trim()).map_err(|e| invalid(field, format!("not a URL: {e}")))?;
    let loopback = matches!(url.host_str(), Some("localhost" | "127.0.0.1" | "[::1]"));
    match url.scheme() {
        "https" => {}
        "http" if loopback => {}
        _ => return Err(invalid(field, "must be an https:// URL")),
    }
    if url.host_str().is_none() {
        return Err(invalid(field, "has no host"));
    }
    Ok(url.as_str().trim_end_matches('/').to_owned())
}

pub fn org_type(value: &str) -> Result<crate::db::OrgType, ProvisionError> {
    value.trim().parse().map_err(|_| invalid("org_type", "must be production or sandbox"))
}

/// Whether a login URL is a sandbox's: the sandbox login host, or a sandbox My Domain.
pub fn is_sandbox_login(url: &str) -> bool {
    url.starts_with("https://test.salesforce.com") || url.contains(".sandbox.my.salesforce.com")
}

/// Salesforce API names: `Name`, `Name__c`, `ns__Name__e`.
pub fn api_name(field: &str, value: &str) -> Result<String, ProvisionError> {
    let v = value.trim();
    let ok = v.len() <= 80
        && v.chars().next().is_some_and(|c| c.is_ascii_alphabetic())
        && v.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
    if ok {
        Ok(v.to_owned())
    } else {
        Err(invalid(field, "must be a Salesforce API name (letters, digits, underscores)"))
    }
}

/// A PKCS#1 or PKCS#8 RSA private key in PEM form.
pub fn private_key_pem(value: &str) -> Result<(), ProvisionError> {
    let v = value.trim();
    let ok = (v.starts_with("-----BEGIN PRIVATE KEY-----") && v.ends_with("-----END PRIVATE KEY-----"))
        || (v.starts_with("-----BEGIN RSA PRIVATE KEY-----") && v.ends_with("-----END RSA PRIVATE KEY-----"));
    if ok { Ok(()) } else { Err(invalid("private_key", "must be an RSA private key in PEM form (BEGIN PRIVATE KEY)")) }
}

/// WhatsApp sender numbers in the international form Infobip uses: digits only, no `+`.
pub fn sender_number(value: &str) -> Result<String, ProvisionError> {
    let digits: String =
        value.trim().trim_start_matches('+').chars().filter(|c| !matches!(c, ' ' | '-' | '(' | ')')).collect();
    if (6..=15).contains(&digits.len()) && digits.chars().all(|c| c.is_ascii_digit()) && !digits.starts_with('0') {
        Ok(digits)
    } else {
        Err(invalid("number", "must be an international number: 6-15 digits, country code first"))
    }
}

pub fn non_empty(field: &str, value: &str) -> Result<String, ProvisionError> {
    let v = value.trim();
    if v.is_empty() { Err(invalid(field, "must not be empty")) } else { Ok(v.to_owned()) }
}

pub fn status(value: &str) -> Result<crate::db::AppStatus, ProvisionError> {
    value.parse().map_err(|_| invalid("status", "must be draft, active or disabled"))
}

pub fn hmac_algorithm(value: &str) -> Result<String, ProvisionError> {
    match value {
        "HMAC_SHA_1" | "HMAC_SHA_224" | "HMAC_SHA_256" | "HMAC_SHA_384" | "HMAC_SHA_512" => Ok(value.to_owned()),
        _ => Err(invalid(
            "webhook_hmac_algorithm",
            "must be one of HMAC_SHA_1, HMAC_SHA_224, HMAC_SHA_256, HMAC_SHA_384, HMAC_SHA_512",
        )),
    }
}

pub fn webhook_auth(value: &str) -> Result<String, ProvisionError> {
    match value {
        "hmac" | "basic" => Ok(value.to_owned()),
        _ => Err(invalid("webhook_auth", "must be hmac or basic")),
    }
}

pub fn transcript_import(value: &str) -> Result<String, ProvisionError> {
    match value {
        "auto" | "entries" | "history" => Ok(value.to_owned()),
        _ => Err(invalid("transcript_import", "must be auto, entries or history")),
    }
}

/// A short speaker label (an empty one leaves those turns unlabelled).
pub fn label(field: &str, value: &str) -> Result<String, ProvisionError> {
    let v = value.trim();
    if v.chars().count() > 40 || v.contains(['\n', '\r']) {
        return Err(invalid(field, "must be one line of at most 40 characters"));
    }
    Ok(v.to_owned())
}

/// A message to the customer that names its one value with `placeholder` (empty: none). It
/// must fit one WhatsApp text and say what it is for, so the placeholder is required.
pub fn message_template(field: &str, value: &str, placeholder: &str) -> Result<String, ProvisionError> {
    let v = value.trim();
    if v.is_empty() {
        return Ok(String::new());
    }
    if v.chars().count() > 1000 {
        return Err(invalid(field, "must be at most 1,000 characters"));
    }
    if !v.contains(placeholder) {
        return Err(invalid(field, format!("must contain {placeholder}, where the value goes")));
    }
    Ok(v.to_owned())
}

/// An HTTP header name (RFC 9110 token characters).
pub fn header_name(value: &str) -> Result<String, ProvisionError> {
    let v = value.trim();
    let ok = !v.is_empty()
        && v.len() <= 100
        && v.chars().all(|c| c.is_ascii_alphanumeric() || "!#$%&'*+-.^_`|~".contains(c));
    if ok { Ok(v.to_owned()) } else { Err(invalid("webhook_signature_header", "must be an HTTP header name")) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn org_ids() {
        assert!(org_id("00D5g00000AbCdE").is_ok());
        let eighteen = format!("00D5g00000AbCdE{}", crate::salesforce::id_checksum("00D5g00000AbCdE"));
        assert_eq!(org_id(&eighteen).unwrap(), eighteen);
        assert!(org_id("00D5g00000AbCdEAAA").is_err());
        assert!(org_id("0055g00000AbCdE").is_err());
        assert!(org_id("00D").is_err());
    }

    #[test]
    fn urls_require_https_except_loopback() {
        assert_eq!(service_url("x", "https://login.salesforce.com/").unwrap(), "https://login.salesforce.com");
        assert!(service_url("x", "http://127.0.0.1:9000").is_ok());
        assert!(service_url("x", "http://example.com").is_err());
        assert!(service_url("x", "nonsense").is_err());
    }

    #[test]
    fn sender_numbers_are_normalised() {
        assert_eq!(sender_number("+44 7860-099299").unwrap(), "447860099299");
        assert!(sender_number("0123").is_err());
        assert!(sender_number("44abc").is_err());
    }

    #[test]
    fn api_names() {
        assert!(api_name("f", "ns__WhatsApp_Event__e").is_ok());
        assert!(api_name("f", "1bad").is_err());
        assert!(api_name("f", "bad name").is_err());
    }
}
