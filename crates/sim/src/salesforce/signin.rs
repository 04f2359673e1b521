//! The OAuth 2.0 web-server flow with PKCE, for people signing in to the bridge's pages:
//! `/services/oauth2/authorize` shows a login page of the simulated users (or signs in
//! `login_hint` at once, for tests), redirects back with a one-time code, and the token
//! endpoint exchanges it against the `code_verifier`.

use std::time::{Duration, Instant};

use actix_web::{HttpResponse, web};
use serde::Deserialize;

use super::{PendingCode, SalesforceSim};

const CODE_LIFETIME: Duration = Duration::from_secs(15 * 60);

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/services/oauth2/authorize", web::get().to(authorize))
        .route("/services/oauth2/authorize", web::post().to(login));
}

#[derive(Debug, Clone, Deserialize)]
struct AuthorizeQuery {
    response_type: Option<String>,
    client_id: Option<String>,
    redirect_uri: Option<String>,
    state: Option<String>,
    code_challenge: Option<String>,
    code_challenge_method: Option<String>,
    login_hint: Option<String>,
}

#[derive(Debug, Deserialize)]
struct LoginForm {
    username: String,
    client_id: String,
    redirect_uri: String,
    state: Option<String>,
    code_challenge: String,
}

fn error_page(message: &str) -> HttpResponse {
    HttpResponse::BadRequest()
        .content_type("text/html; charset=utf-8")
        .body(format!("<!doctype html><title>Error</title><p>{}</p>", escape(message)))
}

pub(crate) fn escape(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

/// Checks the request as Salesforce does before showing its login page.
fn check(sim: &SalesforceSim, q: &AuthorizeQuery) -> Result<(String, String, String), HttpResponse> {
    if q.response_type.as_deref() != Some("code") {
        return Err(error_page("error=unsupported_response_type"));
    }
    let client_id = q.client_id.clone().unwrap_or_default();
    let app = sim.state().apps.get(&client_id).cloned();
    let Some(app) = app else {
        return Err(error_page("error=invalid_client_id&error_description=client identifier invalid"));
    };
    let redirect_uri = q.redirect_uri.clone().unwrap_or_default();
    if !app.callback_urls.contains(&redirect_uri) {
        return Err(error_page("error=redirect_uri_mismatch&error_description=redirect_uri must match configuration"));
    }
    let challenge = q.code_challenge.clone().unwrap_or_default();
    if challenge.is_empty() || q.code_challenge_method.as_deref().is_some_and(|m| m != "S256") {
        return Err(error_page(
            "error=invalid_request&error_description=PKCE code_challenge with method S256 required",
        ));
    }
    Ok((client_id, redirect_uri, challenge))
}

async fn authorize(sim: web::Data<SalesforceSim>, query: web::Query<AuthorizeQuery>) -> HttpResponse {
    let (client_id, redirect_uri, challenge) = match check(&sim, &query) {
        Ok(v) => v,
        Err(page) => return page,
    };
    if let Some(username) = &query.login_hint {
        return finish_login(&sim, username, &client_id, &redirect_uri, query.state.as_deref(), &challenge);
    }
    let users = sim.state().users.clone();
    let options: String = users
        .iter()
        .map(|u| {
            format!(
                "<label><input type=radio name=username value=\"{0}\"> {1} ({0}, {2})</label><br>",
                escape(&u.username),
                escape(&u.display_name),
                escape(&u.profile)
            )
        })
        .collect();
    let hidden = |name: &str, value: &str| format!("<input type=hidden name={name} value=\"{}\">", escape(value));
    HttpResponse::Ok().content_type("text/html; charset=utf-8").body(format!(
        "<!doctype html><title>Login | Salesforce (simulated)</title><h1>Log in to the simulated org</h1>\
         <form method=post action=/services/oauth2/authorize>{options}{}{}{}{}<button type=submit>Log In</button></form>",
        hidden("client_id", &client_id),
        hidden("redirect_uri", &redirect_uri),
        hidden("state", query.state.as_deref().unwrap_or_default()),
        hidden("code_challenge", &challenge),
    ))
}

async fn login(sim: web::Data<SalesforceSim>, form: web::Form<LoginForm>) -> HttpResponse {
    let form = form.into_inner();
    let known = sim.state().apps.get(&form.client_id).is_some_and(|a| a.callback_urls.contains(&form.redirect_uri));
    if !known {
        return error_page("error=redirect_uri_mismatch");
    }
    finish_login(&sim, &form.username, &form.client_id, &form.redirect_uri, form.state.as_deref(), &form.code_challenge)
}

fn finish_login(
    sim: &SalesforceSim,
    username: &str,
    client_id: &str,
    redirect_uri: &str,
    state: Option<&str>,
    challenge: &str,
) -> HttpResponse {
    let user = sim.state().users.iter().find(|u| u.username == username).cloned();
    let Some(user) = user else {
        return error_page("Please check your username and password.");
    };
    let code = crate::ids::random_token();
    sim.state().codes.insert(
        code.clone(),
        PendingCode {
            client_id: client_id.to_owned(),
            redirect_uri: redirect_uri.to_owned(),
            code_challenge: challenge.to_owned(),
            user_id: user.id,
            expires_at: Instant::now() + CODE_LIFETIME,
        },
    );
    let mut location = match url::Url::parse(redirect_uri) {
        Ok(u) => u,
        Err(_) => return error_page("error=redirect_uri_mismatch"),
    };
    location.query_pairs_mut().append_pair("code", &code);
    if let Some(state) = state.filter(|s| !s.is_empty()) {
        location.query_pairs_mut().append_pair("state", state);
    }
    HttpResponse::Found().insert_header(("Location", location.to_string())).finish()
}
