//! Checking the `accesstoken` / `instanceurl` / `tenantid` metadata every Pub/Sub call carries.

use std::sync::Arc;

use tonic::Code;
use tonic::metadata::MetadataMap;

use super::status::status_with_code;
use super::wire::{error_codes, metadata};
use crate::ids::id_15 as org_id_15;

/// The credentials a call presented; an entry that is missing or not ASCII is empty.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct AuthMetadata {
    /// `accesstoken`: the OAuth access token.
    pub access_token: String,
    /// `instanceurl`: the org's My Domain URL.
    pub instance_url: String,
    /// `tenantid`: the org id (15 or 18 characters).
    pub tenant_id: String,
}

impl AuthMetadata {
    /// Reads the three entries from a call's metadata.
    pub fn from_metadata(map: &MetadataMap) -> Self {
        let get = |key: &str| map.get(key).and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned();
        Self {
            access_token: get(metadata::ACCESS_TOKEN),
            instance_url: get(metadata::INSTANCE_URL),
            tenant_id: get(metadata::TENANT_ID),
        }
    }
}

/// Why a validator refused a call; chooses the gRPC status the client sees.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuthFailure {
    /// Bad or expired token, or a token for another instance: `UNAUTHENTICATED`.
    Unauthenticated(String),
    /// Valid token, but not for this org (or no org at all): `PERMISSION_DENIED`.
    PermissionDenied(String),
}

/// Decides whether a call's credentials are acceptable. Injected so the Salesforce HTTP
/// simulator can accept exactly the tokens it issued.
pub type AuthValidator = Arc<dyn Fn(&AuthMetadata) -> Result<(), AuthFailure> + Send + Sync>;

/// A validator accepting any call that carries all three entries.
pub fn accept_any() -> AuthValidator {
    Arc::new(|_| Ok(()))
}

/// A validator for one fixed set of credentials. The tenant id may be given in its 15- or
/// 18-character form, as Salesforce accepts both.
pub fn static_credentials(access_token: &str, instance_url: &str, tenant_id: &str) -> AuthValidator {
    let (token, url, tenant) = (access_token.to_owned(), instance_url.to_owned(), org_id_15(tenant_id).to_owned());
    Arc::new(move |auth: &AuthMetadata| {
        if auth.access_token != token {
            return Err(AuthFailure::Unauthenticated("invalid access token".into()));
        }
        if auth.instance_url.trim_end_matches('/') != url.trim_end_matches('/') {
            return Err(AuthFailure::Unauthenticated("access token not valid for this instance".into()));
        }
        if org_id_15(&auth.tenant_id) != tenant {
            return Err(AuthFailure::PermissionDenied(format!("org {} not accessible", auth.tenant_id)));
        }
        Ok(())
    })
}

/// Runs the presence checks Salesforce does itself, then the injected validator.
///
/// A missing token or instance URL is `UNAUTHENTICATED` with `error-code`
/// `sfdc.platform.eventbus.grpc.service.auth.error` (Pub/Sub "Handle Errors" page). A missing
/// tenant id is `PERMISSION_DENIED`, which is what Salesforce answers ("org core/prod/undefined",
/// reference §3.6); that message and the same trailer are reused for the validator's denials.
pub(super) fn check(validator: &AuthValidator, map: &MetadataMap, rpc_id: &str) -> Result<(), tonic::Status> {
    let auth = AuthMetadata::from_metadata(map);
    let failure = if auth.access_token.is_empty() || auth.instance_url.is_empty() {
        Some(AuthFailure::Unauthenticated("missing accesstoken or instanceurl metadata".into()))
    } else if auth.tenant_id.is_empty() {
        Some(AuthFailure::PermissionDenied("org core/prod/undefined".into()))
    } else {
        validator(&auth).err()
    };
    match failure {
        None => Ok(()),
        Some(AuthFailure::Unauthenticated(msg)) => {
            Err(status_with_code(Code::Unauthenticated, &msg, error_codes::AUTH_ERROR, rpc_id))
        }
        Some(AuthFailure::PermissionDenied(msg)) => {
            Err(status_with_code(Code::PermissionDenied, &msg, error_codes::AUTH_ERROR, rpc_id))
        }
    }
}
