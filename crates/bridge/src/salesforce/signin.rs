//! Signing people in with Salesforce (OAuth 2.0 web-server flow with PKCE): the code
//! exchange, who they are, and whether they are an admin of the org.

use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use serde_json::Value;

use super::{AccessToken, Client, Error};

/// The signed-in user, as `userinfo` tells.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct UserInfo {
    #[serde(default)]
    pub organization_id: String,
    #[serde(default)]
    pub user_id: String,
    pub name: Option<String>,
    pub preferred_username: Option<String>,
}

/// What the authorization code is exchanged with.
pub struct CodeExchange<'a> {
    pub login_url: &'a str,
    pub code: &'a str,
    pub redirect_uri: &'a str,
    pub client_id: &'a str,
    pub code_verifier: &'a str,
}

impl Client {
    /// Exchanges the authorization code for the user's own token. A refusal comes back as
    /// `Error::TokenRequest` with Salesforce's `error_description`.
    pub async fn exchange_code(&self, exchange: &CodeExchange<'_>) -> Result<AccessToken, Error> {
        let login = exchange.login_url.trim_end_matches('/');
        let form = [
            ("grant_type", "authorization_code"),
            ("code", exchange.code),
            ("redirect_uri", exchange.redirect_uri),
            ("client_id", exchange.client_id),
            ("code_verifier", exchange.code_verifier),
        ];
        let response = self
            .http
            .post(format!("{login}/services/oauth2/token"))
            .form(&form)
            .send()
            .await
            .map_err(|e| Error::LoginUnreachable(crate::redact::http_error(e)))?;
        let status = response.status().as_u16();
        let body: Value = response.json().await.map_err(|_| Error::TokenEndpoint { status })?;
        let text = |k: &str| body.get(k).and_then(Value::as_str).map(str::to_owned);
        match text("access_token") {
            Some(token) => {
                let instance_url = text("instance_url").unwrap_or_else(|| login.to_owned());
                Ok(AccessToken::new(SecretString::from(token), instance_url))
            }
            None => Err(Error::TokenRequest {
                status,
                error: text("error").unwrap_or_default(),
                description: text("error_description").unwrap_or_else(|| "no token".into()),
            }),
        }
    }

    /// Who the token belongs to (`/services/oauth2/userinfo` on the login host).
    pub async fn user_info(&self, login_url: &str, token: &AccessToken) -> Result<UserInfo, Error> {
        let response = self
            .http
            .get(format!("{}/services/oauth2/userinfo", login_url.trim_end_matches('/')))
            .bearer_auth(token.token.expose_secret())
            .send()
            .await
            .map_err(|e| Error::LoginUnreachable(crate::redact::http_error(e)))?;
        let status = response.status().as_u16();
        response.json().await.map_err(|_| Error::TokenEndpoint { status })
    }

    /// Whether the user holds Customize Application, through their profile or a permission
    /// set (a profile's permissions are a permission set of its own): Salesforce's mark of an
    /// admin. Asked with the user's own token; a user who may not read the assignments is no admin.
    pub async fn may_customize(&self, token: &AccessToken, user_id: &str) -> bool {
        if user_id.is_empty() || !user_id.chars().all(|c| c.is_ascii_alphanumeric()) {
            return false;
        }
        let soql = format!(
            "SELECT Id FROM PermissionSetAssignment WHERE AssigneeId = '{user_id}' AND PermissionSet.PermissionsCustomizeApplication = true"
        );
        match self.query(token, &soql, false).await {
            Ok(rows) => !rows.is_empty(),
            Err(e) => {
                tracing::info!(error = %e, "the signed-in user's permissions could not be read; signed in as an agent");
                false
            }
        }
    }

    /// A file an agent attached, from the link in their entry (streamed to Infobip by the
    /// media route).
    pub async fn fetch_file(&self, url: &str) -> Result<reqwest::Response, Error> {
        let response = self
            .http
            .get(url)
            .send()
            .await
            .map_err(|e| Error::Transport(format!("fetching the file failed: {}", crate::redact::http_error(e))))?;
        let status = response.status().as_u16();
        if !response.status().is_success() {
            return Err(Error::Unavailable {
                status,
                code: None,
                detail: format!("Salesforce answered {status} for the file"),
                retry_after: None,
            });
        }
        Ok(response)
    }
}
