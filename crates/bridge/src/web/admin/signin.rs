//! Who may open the admin pages: the first visitor of the one-time bootstrap link printed at
//! the first start, then admins of the configured org signed in with Salesforce (OAuth 2.0
//! web-server flow with PKCE, against the org's login host).

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, get, post, web};
use askama::Template;
use base64::Engine;
use serde::Deserialize;
use serde_json::{Value, json};
use sha2::Digest;

use super::{SESSION_HOURS, open_session, render, session_cookie};
use crate::crypto::token_hash as hash;
use crate::db::apps::AppRow;
use crate::db::web::{self as rows, Grant};
use crate::db::{Db, DbConn, DbError, apps};
use crate::db::{GrantKind, Role};
use crate::error::AppError;
use crate::salesforce::signin::CodeExchange;
use crate::web::AppState;

const BOOTSTRAP_HOURS: i64 = 24;
const SIGNIN_MINUTES: i64 = 10;

/// Apps an admin can sign in to with Salesforce: their org and connected app are known.
fn connected_apps(conn: &mut DbConn) -> Result<Vec<AppRow>, DbError> {
    Ok(apps::list(conn)?.into_iter().filter(|a| a.org_id.is_some() && a.consumer_key.is_some()).collect())
}

/// Issues a one-time setup link while no app can be signed in to with Salesforce yet
/// (none has an org, login host and consumer key). Replaces an unused earlier link.
pub async fn issue_bootstrap(db: &Db, base_url: &str) -> anyhow::Result<Option<String>> {
    let token = crate::crypto::random_token()?;
    let grant = Grant {
        id_hash: hash(&token),
        kind: GrantKind::Bootstrap,
        app_id: None,
        data: "{}".into(),
        created_at: crate::db::now(),
        expires_at: crate::db::now() + chrono::Duration::hours(BOOTSTRAP_HOURS),
    };
    let issued = db
        .write(move |c| {
            if !connected_apps(c)?.is_empty() {
                return Ok(false);
            }
            rows::delete_grants(c, GrantKind::Bootstrap)?;
            rows::insert_grant(c, &grant)?;
            Ok(true)
        })
        .await?;
    Ok(issued.then(|| format!("{base_url}/setup/bootstrap?token={token}")))
}

#[derive(Template)]
#[template(path = "setup/signin.html")]
struct SignInPage {
    message: String,
    /// Where to go after signing in (URL-encoded for the link).
    next: String,
    /// Apps an admin can sign in to with Salesforce.
    apps: Vec<(String, String)>,
}

/// The page shown without a session: why, and how to sign in.
pub async fn sign_in_page(state: &AppState, status: StatusCode, message: &str) -> Result<HttpResponse, AppError> {
    sign_in_page_to(state, status, message, "/").await
}

/// A path on this site to return to after signing in, or `None` when `next` is no plain path
/// of this origin. Browsers drop tabs and line breaks from URLs (`/\t/host` is `//host`, another
/// site), so any control or space character disqualifies it, and what remains must resolve to
/// this origin.
fn local_path(next: &str) -> Option<String> {
    if !next.starts_with('/') || next.chars().any(|c| c.is_control() || c.is_whitespace() || c == '\\') {
        return None;
    }
    let base = url::Url::parse("https://bridge.invalid/").ok()?;
    let joined = base.join(next).ok()?;
    if joined.origin() != base.origin() {
        return None;
    }
    Some(match joined.query() {
        Some(query) => format!("{}?{query}", joined.path()),
        None => joined.path().to_owned(),
    })
}

/// Where a sign-in asked for by a visitor returns: `/` unless `next` is a path of this site.
/// Line breaks are refused outright, since they only come from a crafted link.
fn return_path(next: Option<&str>) -> Result<String, AppError> {
    match next {
        Some(n) if n.chars().any(char::is_control) => {
            Err(AppError::BadRequest("`next` must be a path on this site, without control characters".into()))
        }
        Some(n) => Ok(local_path(n).unwrap_or_else(|| "/".into())),
        None => Ok("/".into()),
    }
}

/// The sign-in page, returning to `next` afterwards.
pub async fn sign_in_page_to(
    state: &AppState,
    status: StatusCode,
    message: &str,
    next: &str,
) -> Result<HttpResponse, AppError> {
    let connected = state.db.run(connected_apps).await?;
    // The sign-in page shows inside the connected orgs' consoles too.
    let ancestors = super::frame_ancestors_of(connected.iter());
    let apps = connected.into_iter().map(|a| (a.name.clone(), a.name)).collect();
    let next = url::form_urlencoded::byte_serialize(local_path(next).as_deref().unwrap_or("/").as_bytes()).collect();
    render(status, &SignInPage { message: message.to_owned(), next, apps }, &ancestors)
}

fn redirect_with_session(location: &str, token: &str) -> HttpResponse {
    HttpResponse::SeeOther()
        .insert_header(("Location", location))
        .insert_header(("Set-Cookie", session_cookie(token, SESSION_HOURS * 3600)))
        .insert_header(("Cache-Control", "no-store"))
        .finish()
}

#[derive(Deserialize)]
pub struct BootstrapQuery {
    token: Option<String>,
}

#[get("/setup/bootstrap")]
pub async fn bootstrap(
    state: web::Data<AppState>,
    query: web::Query<BootstrapQuery>,
) -> Result<HttpResponse, AppError> {
    let id = hash(query.token.as_deref().unwrap_or_default());
    let taken = state.db.write(move |c| rows::take_grant(c, &id, GrantKind::Bootstrap, crate::db::now())).await?;
    if taken.is_none() {
        return sign_in_page(&state, StatusCode::UNAUTHORIZED, "This setup link was already used or has expired.")
            .await;
    }
    let first_app = state.db.run(|c| Ok(apps::list(c)?.into_iter().next().map(|a| a.id))).await?;
    let token = open_session(&state, first_app, Role::Admin, "bootstrap".into(), "setup link".into()).await?;
    tracing::info!("an admin signed in with the one-time setup link");
    Ok(redirect_with_session("/setup/connection", &token))
}

#[derive(Deserialize)]
pub struct SignInQuery {
    app: Option<String>,
    next: Option<String>,
    /// The Salesforce username to offer (Salesforce fills it in on its login page).
    login_hint: Option<String>,
}

fn callback_url(state: &AppState) -> String {
    format!("{}/setup/oauth/callback", state.base_url)
}

/// Starts the Salesforce sign-in: its PKCE verifier waits in a sealed cookie for the callback.
#[get("/setup/signin")]
pub async fn start_sign_in(
    state: web::Data<AppState>,
    query: web::Query<SignInQuery>,
) -> Result<HttpResponse, AppError> {
    let wanted = query.app.clone();
    let app = state
        .db
        .run(move |c| {
            let candidates = connected_apps(c)?;
            Ok(match wanted {
                Some(w) => candidates.into_iter().find(|a| a.name == w || a.id == w),
                None => candidates.into_iter().next(),
            })
        })
        .await?;
    let Some(app) = app else {
        return sign_in_page(&state, StatusCode::NOT_FOUND, "No app is set up for Salesforce sign-in yet.").await;
    };
    let verifier = crate::crypto::random_token().map_err(|e| AppError::Internal(e.into()))?;
    let challenge = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(sha2::Sha256::digest(verifier.as_bytes()));
    let state_token = crate::crypto::random_token().map_err(|e| AppError::Internal(e.into()))?;
    // The sign-in's secrets travel in a sealed cookie, not a row: anyone may start a sign-in,
    // and a visitor who never comes back must leave nothing behind.
    let pending = PendingSignIn {
        state_hash: hash(&state_token),
        verifier,
        next: return_path(query.next.as_deref())?,
        app_id: app.id.clone(),
        expires_at: (crate::db::now() + chrono::Duration::minutes(SIGNIN_MINUTES)).and_utc().timestamp(),
    };
    let sealed = pending.seal(&state.cipher)?;
    let mut url = url::Url::parse(&format!("{}/services/oauth2/authorize", app.login_url.trim_end_matches('/')))
        .map_err(|e| AppError::Internal(e.into()))?;
    url.query_pairs_mut()
        .append_pair("response_type", "code")
        .append_pair("client_id", app.consumer_key.as_deref().unwrap_or_default())
        .append_pair("redirect_uri", &callback_url(&state))
        .append_pair("scope", "openid api")
        .append_pair("state", &state_token)
        .append_pair("code_challenge", &challenge)
        .append_pair("code_challenge_method", "S256");
    if let Some(hint) = query.login_hint.as_deref().filter(|h| !h.is_empty() && h.len() <= 80) {
        url.query_pairs_mut().append_pair("login_hint", hint);
    }
    let mut response = super::see_other(url.as_str());
    set_cookie(&mut response, &pending_cookie(&sealed, SIGNIN_MINUTES * 60))?;
    Ok(response)
}

/// What the callback needs of the sign-in it finishes, sealed (encrypted and authenticated)
/// with the master key into the browser's cookie.
#[derive(serde::Serialize, Deserialize)]
struct PendingSignIn {
    /// The OAuth `state` the callback must come back with (hashed: the cookie needs no more).
    state_hash: String,
    verifier: String,
    next: String,
    app_id: String,
    /// Unix seconds; the cookie's own Max-Age is only the browser's promise.
    expires_at: i64,
}

const PENDING_CONTEXT: &str = "cookie.signin";

impl PendingSignIn {
    fn seal(&self, cipher: &crate::crypto::Cipher) -> Result<String, AppError> {
        let json = serde_json::to_string(self).map_err(|e| AppError::Internal(e.into()))?;
        cipher.encrypt(PENDING_CONTEXT, &json).map_err(|e| AppError::Internal(e.into()))
    }

    /// The pending sign-in of this request if its cookie opens, matches `state` and is current.
    fn open(cipher: &crate::crypto::Cipher, req: &HttpRequest, state: Option<&str>) -> Option<Self> {
        use secrecy::ExposeSecret;
        let sealed = super::cookie_value(req, PENDING_COOKIE)?;
        let json = cipher.decrypt(PENDING_CONTEXT, &sealed).ok()?;
        let pending: Self = serde_json::from_str(json.expose_secret()).ok()?;
        let matches = crate::crypto::constant_time_eq(hash(state?).as_bytes(), pending.state_hash.as_bytes());
        let current = pending.expires_at > crate::db::now().and_utc().timestamp();
        (matches && current).then_some(pending)
    }
}

const PENDING_COOKIE: &str = "byoc_signin";

/// Top-level navigations only (the sign-in runs in its own window): `SameSite=Lax` lets the
/// cookie come back with Salesforce's redirect to the callback and nowhere else.
fn pending_cookie(value: &str, max_age_secs: i64) -> String {
    format!("{PENDING_COOKIE}={value}; Path=/setup/oauth; Max-Age={max_age_secs}; HttpOnly; Secure; SameSite=Lax")
}

fn set_cookie(response: &mut HttpResponse, cookie: &str) -> Result<(), AppError> {
    let value = actix_web::http::header::HeaderValue::from_str(cookie).map_err(|e| AppError::Internal(e.into()))?;
    response.headers_mut().append(actix_web::http::header::SET_COOKIE, value);
    Ok(())
}

#[derive(Deserialize)]
pub struct CallbackQuery {
    code: Option<String>,
    state: Option<String>,
    error: Option<String>,
    error_description: Option<String>,
}

#[get("/setup/oauth/callback")]
pub async fn callback(
    state: web::Data<AppState>,
    req: HttpRequest,
    query: web::Query<CallbackQuery>,
) -> Result<HttpResponse, AppError> {
    // Whatever happens next, this sign-in's cookie has served.
    let mut response = finish_sign_in(&state, &req, &query).await?;
    set_cookie(&mut response, &pending_cookie("", 0))?;
    Ok(response)
}

async fn finish_sign_in(state: &AppState, req: &HttpRequest, query: &CallbackQuery) -> Result<HttpResponse, AppError> {
    if let Some(error) = &query.error {
        let message =
            format!("Salesforce did not sign you in: {error} {}", query.error_description.clone().unwrap_or_default());
        return sign_in_page(state, StatusCode::UNAUTHORIZED, &message).await;
    }
    let pending = PendingSignIn::open(&state.cipher, req, query.state.as_deref());
    let (Some(pending), Some(code)) = (pending, query.code.clone()) else {
        return sign_in_page(state, StatusCode::UNAUTHORIZED, "The sign-in expired; start it again.").await;
    };
    let app_id = pending.app_id.clone();
    let app = state.db.run(move |c| apps::find(c, &app_id)).await?.ok_or_else(|| AppError::NotFound("app".into()))?;
    let redirect_uri = callback_url(state);
    let exchange = CodeExchange {
        login_url: &app.login_url,
        code: &code,
        redirect_uri: &redirect_uri,
        client_id: app.consumer_key.as_deref().unwrap_or_default(),
        code_verifier: &pending.verifier,
    };
    let own_token = match state.salesforce.exchange_code(&exchange).await {
        Ok(token) => token,
        Err(crate::salesforce::Error::TokenRequest { description, .. }) => {
            let message = format!("Salesforce refused the sign-in: {description}");
            return sign_in_page(state, StatusCode::UNAUTHORIZED, &message).await;
        }
        Err(e) => return Err(AppError::Unavailable(format!("Salesforce sign-in: {e}"))),
    };
    let user = state
        .salesforce
        .user_info(&app.login_url, &own_token)
        .await
        .map_err(|e| AppError::Unavailable(format!("Salesforce user info: {e}")))?;
    let configured = app.org_id.as_deref().unwrap_or_default();
    if crate::salesforce::org_id_15(&user.organization_id) != crate::salesforce::org_id_15(configured) {
        return sign_in_page(
            state,
            StatusCode::FORBIDDEN,
            "You signed in to another Salesforce org than the one this bridge is set up for.",
        )
        .await;
    }
    // Admins may open the setup; everyone else of the org (agents) only the template panel.
    let user_id = user.user_id.clone();
    let role = if state.salesforce.may_customize(&own_token, &user_id).await { Role::Admin } else { Role::Agent };
    let next = local_path(&pending.next).unwrap_or_else(|| "/".into());
    let name = user.name.or(user.preferred_username).unwrap_or_else(|| "admin".into());
    let token = open_session(state, Some(app.id.clone()), role, user_id.clone(), name.clone()).await?;
    // A second, one-time code lets the Salesforce iframe that opened this window get a session
    // of its own (its cookies are partitioned apart from this window's).
    let code = crate::crypto::random_token().map_err(|e| AppError::Internal(e.into()))?;
    let now = crate::db::now();
    let handed = Grant {
        id_hash: hash(&code),
        kind: GrantKind::Handoff,
        app_id: Some(app.id.clone()),
        data: json!({ "user_id": user_id, "user_name": name, "role": role, "next": next }).to_string(),
        created_at: now,
        expires_at: now + chrono::Duration::minutes(2),
    };
    state.db.write(move |c| rows::insert_grant(c, &handed)).await?;
    tracing::info!(app.id = %app.id, "an admin signed in with Salesforce");
    // Framed only where the app's other pages may be: a sign-in made inside the org's iframe
    // (no window of its own) ends here, in that iframe.
    let ancestors = super::frame_ancestors(Some(&app));
    let mut response = render(StatusCode::OK, &SignedIn { user: name, code, next }, &ancestors)?;
    let cookie = actix_web::http::header::HeaderValue::from_str(&session_cookie(&token, SESSION_HOURS * 3600))
        .map_err(|e| AppError::Internal(e.into()))?;
    response.headers_mut().insert(actix_web::http::header::SET_COOKIE, cookie);
    Ok(response)
}

#[derive(Template)]
#[template(path = "setup/signed_in.html")]
struct SignedIn {
    user: String,
    code: String,
    next: String,
}

#[derive(Deserialize)]
pub struct HandoffQuery {
    code: Option<String>,
}

/// The iframe exchanges the sign-in window's one-time code for its own session.
#[get("/setup/handoff")]
pub async fn handoff(state: web::Data<AppState>, query: web::Query<HandoffQuery>) -> Result<HttpResponse, AppError> {
    let id = hash(query.code.as_deref().unwrap_or_default());
    let grant = state.db.write(move |c| rows::take_grant(c, &id, GrantKind::Handoff, crate::db::now())).await?;
    let Some(grant) = grant else {
        return sign_in_page(&state, StatusCode::UNAUTHORIZED, "The sign-in expired; start it again.").await;
    };
    let who: Value = serde_json::from_str(&grant.data).unwrap_or(Value::Null);
    let text = |k: &str| who[k].as_str().unwrap_or_default().to_owned();
    // Only what the sign-in recorded; anything else is the lesser role.
    let role = text("role").parse().unwrap_or(Role::Agent);
    let token = open_session(&state, grant.app_id.clone(), role, text("user_id"), text("user_name")).await?;
    let next = who["next"].as_str().and_then(local_path).unwrap_or_else(|| "/".into());
    Ok(redirect_with_session(&next, &token))
}

#[post("/setup/signout")]
pub async fn sign_out(
    state: web::Data<AppState>,
    req: HttpRequest,
    form: web::Form<super::CsrfForm>,
) -> Result<HttpResponse, AppError> {
    if let Some(session) = super::current(&state, &req).await? {
        super::check_csrf(&session, &form.csrf)?;
        let id = session.id_hash.clone();
        state.db.write(move |c| rows::delete_session(c, &id)).await?;
    }
    Ok(HttpResponse::SeeOther()
        .insert_header(("Location", "/"))
        .insert_header(("Set-Cookie", session_cookie("", 0)))
        .finish())
}
