//! `POST /services/oauth2/token`: the OAuth 2.0 JWT bearer flow as Salesforce runs it.
//! The assertion must be RS256-signed by the key of the certificate registered for the
//! connected app (`iss`), name a pre-authorised user (`sub`), the login host (`aud`), and
//! expire within a few minutes (`exp`).

use std::time::Instant;

use actix_web::{HttpResponse, web};
use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde::Deserialize;
use serde_json::{Value, json};
use sha2::Digest;

use super::{SalesforceSim, Token};

pub const JWT_BEARER: &str = "urn:ietf:params:oauth:grant-type:jwt-bearer";
/// Salesforce refuses assertions that expire further ahead than this (the docs say 3
/// minutes; a little slack for clock skew).
const MAX_EXP_AHEAD_SECS: i64 = 300;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/services/oauth2/token", web::post().to(token))
        .route("/services/oauth2/userinfo", web::get().to(userinfo));
}

/// OpenID Connect user info for a bearer token (the pages' sign-in reads the org). As in
/// Salesforce, `profile` is the URL of the user's page, not the name of their profile.
async fn userinfo(sim: web::Data<SalesforceSim>, req: actix_web::HttpRequest) -> HttpResponse {
    let token = super::bearer(&req);
    let state = sim.state();
    let user = state
        .tokens
        .get(token)
        .filter(|t| t.expires_at > std::time::Instant::now())
        .and_then(|t| state.users.iter().find(|u| u.id == t.user_id));
    match user {
        // Salesforce answers with the 18-character, case-safe org id here, while the
        // Interaction API's OrgId header wants the 15-character one.
        Some(u) => HttpResponse::Ok().json(json!({
            "sub": format!("{}/id/{}/{}", sim.base_url(), crate::ids::id_18(&u.org_id), u.id),
            "user_id": u.id,
            "organization_id": crate::ids::id_18(&u.org_id),
            "preferred_username": u.username,
            "name": u.display_name,
            "profile": format!("{}/{}", sim.base_url(), u.id),
            "user_type": "STANDARD",
        })),
        None => HttpResponse::Forbidden().body("Bad_OAuth_Token"),
    }
}

#[derive(Debug, Deserialize)]
pub(crate) struct TokenForm {
    pub grant_type: Option<String>,
    pub assertion: Option<String>,
    pub code: Option<String>,
    pub redirect_uri: Option<String>,
    pub client_id: Option<String>,
    pub code_verifier: Option<String>,
}

#[derive(Debug, Deserialize)]
struct Claims {
    sub: String,
    exp: i64,
}

pub(crate) fn oauth_error(error: &str, description: &str) -> HttpResponse {
    HttpResponse::BadRequest().json(json!({ "error": error, "error_description": description }))
}

async fn token(sim: web::Data<SalesforceSim>, form: web::Form<TokenForm>) -> HttpResponse {
    let form = form.into_inner();
    match form.grant_type.as_deref() {
        Some(JWT_BEARER) => {}
        Some("authorization_code") => {
            return match exchange(&sim, &form) {
                Ok(body) => HttpResponse::Ok().json(body),
                Err(response) => response,
            };
        }
        Some(_) => return oauth_error("unsupported_grant_type", "grant type not supported"),
        None => return oauth_error("invalid_request", "grant type not supported"),
    }
    let Some(assertion) = form.assertion.filter(|a| !a.is_empty()) else {
        return oauth_error("invalid_request", "assertion is required");
    };
    match jwt_bearer(&sim, &assertion) {
        Ok(body) => HttpResponse::Ok().json(body),
        Err(response) => response,
    }
}

fn jwt_bearer(sim: &SalesforceSim, assertion: &str) -> Result<Value, HttpResponse> {
    let invalid = || oauth_error("invalid_grant", "invalid assertion");
    let header = jsonwebtoken::decode_header(assertion).map_err(|_| invalid())?;
    if header.alg != Algorithm::RS256 {
        return Err(invalid());
    }
    // The issuer picks the certificate, so it is read before the signature is checked.
    let unverified: Value = assertion
        .split('.')
        .nth(1)
        .and_then(|part| URL_SAFE_NO_PAD.decode(part).ok())
        .and_then(|bytes| serde_json::from_slice(&bytes).ok())
        .ok_or_else(invalid)?;
    let iss = unverified.get("iss").and_then(Value::as_str).unwrap_or_default();
    let app = sim.state().apps.get(iss).cloned();
    let Some(app) = app else {
        return Err(oauth_error("invalid_client_id", "client identifier invalid"));
    };
    let key = decoding_key(&app.certificate_pem).ok_or_else(invalid)?;

    // One audience only: the org kind's login host, never the URL the request came to.
    let audience = if sim.config.sandbox { "https://test.salesforce.com" } else { "https://login.salesforce.com" };
    let mut validation = Validation::new(Algorithm::RS256);
    validation.set_audience(&[audience]);
    validation.set_issuer(&[iss]);
    validation.set_required_spec_claims(&["exp", "iss", "sub", "aud"]);
    validation.leeway = 0;
    let claims = jsonwebtoken::decode::<Claims>(assertion, &key, &validation)
        .map_err(|e| match e.kind() {
            jsonwebtoken::errors::ErrorKind::InvalidAudience => oauth_error("invalid_grant", "audience is invalid"),
            jsonwebtoken::errors::ErrorKind::ExpiredSignature => oauth_error("invalid_grant", "expired assertion"),
            _ => invalid(),
        })?
        .claims;
    if claims.exp > chrono::Utc::now().timestamp() + MAX_EXP_AHEAD_SECS {
        return Err(oauth_error("invalid_grant", "invalid assertion: expiration too far in the future"));
    }
    let user = sim.state().users.iter().find(|u| u.username == claims.sub).cloned();
    let Some(user) = user else {
        return Err(oauth_error("invalid_grant", "user not found"));
    };
    if !app.approved_users.contains(&user.username) {
        return Err(oauth_error("invalid_grant", "user hasn't approved this consumer"));
    }

    issue_token(sim, &user, &app.scopes).ok_or_else(invalid)
}

/// Issues an access token for `user` with `scopes`, in Salesforce's response shape.
pub(crate) fn issue_token(sim: &SalesforceSim, user: &super::User, scopes: &[String]) -> Option<Value> {
    let access_token = format!("{}!{}", user.org_id, crate::ids::random_token());
    let issued_at = chrono::Utc::now().timestamp_millis().to_string();
    let base = sim.base_url();
    {
        let mut state = sim.state();
        state.tokens.insert(
            access_token.clone(),
            Token {
                user_id: user.id.clone(),
                scopes: scopes.to_vec(),
                expires_at: std::time::Instant::now() + sim.config.token_ttl,
            },
        );
        state.tokens_issued += 1;
    }
    let org18 = crate::ids::id_18(&user.org_id);
    Some(json!({
        "access_token": access_token,
        "scope": scopes.join(" "),
        "instance_url": base,
        "id": format!("{base}/id/{org18}/{}", user.id),
        "token_type": "Bearer",
        "issued_at": issued_at,
        "signature": STANDARD.encode(crate::ids::random_token()),
    }))
}

/// The RSA public key of a PEM certificate, or of a bare public key.
pub(crate) fn decoding_key(pem: &str) -> Option<DecodingKey> {
    use rsa::pkcs1::EncodeRsaPublicKey;
    use rsa::pkcs8::DecodePublicKey;
    use x509_cert::der::{DecodePem, Encode};
    if pem.contains("BEGIN CERTIFICATE") {
        let cert = x509_cert::Certificate::from_pem(pem.trim().as_bytes()).ok()?;
        let spki = cert.tbs_certificate.subject_public_key_info.to_der().ok()?;
        let key = rsa::RsaPublicKey::from_public_key_der(&spki).ok()?;
        Some(DecodingKey::from_rsa_der(key.to_pkcs1_der().ok()?.as_bytes()))
    } else {
        DecodingKey::from_rsa_pem(pem.as_bytes()).ok()
    }
}

/// `grant_type=authorization_code`: a code is good once, for its client, redirect URI and
/// PKCE verifier.
pub(crate) fn exchange(sim: &SalesforceSim, form: &TokenForm) -> Result<Value, HttpResponse> {
    let invalid = || oauth_error("invalid_grant", "invalid authorization code");
    let code = form.code.clone().unwrap_or_default();
    let pending = sim.state().codes.remove(&code).ok_or_else(invalid)?;
    if pending.expires_at <= Instant::now()
        || form.client_id.as_deref() != Some(pending.client_id.as_str())
        || form.redirect_uri.as_deref() != Some(pending.redirect_uri.as_str())
    {
        return Err(invalid());
    }
    let verifier = form.code_verifier.clone().unwrap_or_default();
    let computed = URL_SAFE_NO_PAD.encode(sha2::Sha256::digest(verifier.as_bytes()));
    if computed != pending.code_challenge {
        return Err(oauth_error("invalid_grant", "invalid code verifier"));
    }
    let (user, scopes) = {
        let state = sim.state();
        let user = state.users.iter().find(|u| u.id == pending.user_id).cloned();
        let scopes = state.apps.get(&pending.client_id).map(|a| a.scopes.clone()).unwrap_or_default();
        (user, scopes)
    };
    let user = user.ok_or_else(invalid)?;
    issue_token(sim, &user, &scopes).ok_or_else(invalid)
}
