//! Setup records through the REST and Tooling APIs (the wizard's calls): the channel's
//! ConversationVendorInfo and ConversationChannelDefinition, found or created, and the
//! org's messaging channels.

use secrecy::ExposeSecret;
use serde_json::{Value, json};

use super::auth::AccessToken;

const API_VERSION: &str = "v60.0";

#[derive(Debug, thiserror::Error)]
pub enum SetupError {
    #[error(
        "the access token may not use the REST API; add the \"Manage user data via APIs (api)\" scope to the connected app"
    )]
    MissingScope,
    #[error("Salesforce refused: {0}")]
    Refused(String),
    #[error("Salesforce cannot be reached: {0}")]
    Transport(#[from] reqwest::Error),
}

/// A setup step that failed, with the wizard field it concerns.
#[derive(Debug, thiserror::Error)]
#[error("{error}")]
pub struct StepError {
    pub field: &'static str,
    #[source]
    pub error: SetupError,
}

/// REST errors come as `[{"message", "errorCode"}]`.
fn describe(body: &Value) -> String {
    body.as_array()
        .and_then(|a| a.first())
        .map(|e| {
            format!("{}: {}", e["errorCode"].as_str().unwrap_or("ERROR"), e["message"].as_str().unwrap_or_default())
        })
        .unwrap_or_else(|| body.to_string())
}

pub(super) async fn call(request: reqwest::RequestBuilder, token: &AccessToken) -> Result<Value, SetupError> {
    call_optional(request, token)
        .await?
        .ok_or_else(|| SetupError::Refused("NOT_FOUND: the resource does not exist".into()))
}

/// Like `call`, with `None` for a resource that does not exist (404).
pub(super) async fn call_optional(
    request: reqwest::RequestBuilder,
    token: &AccessToken,
) -> Result<Option<Value>, SetupError> {
    let response = request.bearer_auth(token.token.expose_secret()).send().await?;
    let status = response.status().as_u16();
    let body: Value = response.json().await.unwrap_or(Value::Null);
    match status {
        200..=299 => Ok(Some(body)),
        404 => Ok(None),
        401 | 403 => Err(SetupError::MissingScope),
        _ if body.is_null() => Err(SetupError::Refused(format!("HTTP {status}"))),
        _ => Err(SetupError::Refused(describe(&body))),
    }
}

/// `https://<instance>/services/data/<version>/<path>`.
pub(super) fn rest_url(token: &AccessToken, path: &str) -> String {
    format!("{}/services/data/{API_VERSION}/{path}", token.instance_url.trim_end_matches('/'))
}

/// Runs a SOQL query (REST, or Tooling with `tooling`); returns the records.
pub async fn query(
    http: &reqwest::Client,
    token: &AccessToken,
    soql: &str,
    tooling: bool,
) -> Result<Vec<Value>, SetupError> {
    let url = rest_url(token, if tooling { "tooling/query" } else { "query" });
    let body = call(http.get(url).query(&[("q", soql)]), token).await?;
    Ok(body["records"].as_array().cloned().unwrap_or_default())
}

/// A setup record found by developer name, or created with `metadata`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    pub sobject: &'static str,
    pub id: String,
    pub developer_name: String,
    pub created: bool,
}

pub async fn find_or_create(
    http: &reqwest::Client,
    token: &AccessToken,
    sobject: &'static str,
    developer_name: &str,
    metadata: Value,
) -> Result<Record, SetupError> {
    // Developer names are API names (letters, digits, _): safe inside the quotes.
    let soql = format!("SELECT Id, DeveloperName FROM {sobject} WHERE DeveloperName = '{developer_name}'");
    if let Some(found) = query(http, token, &soql, true).await?.first() {
        return Ok(Record {
            sobject,
            id: found["Id"].as_str().unwrap_or_default().to_owned(),
            developer_name: developer_name.to_owned(),
            created: false,
        });
    }
    create(http, token, sobject, developer_name, metadata).await
}

/// Creates a Tooling record: `FullName` and its `Metadata`.
pub(super) async fn create(
    http: &reqwest::Client,
    token: &AccessToken,
    sobject: &'static str,
    full_name: &str,
    metadata: Value,
) -> Result<Record, SetupError> {
    let url = rest_url(token, &format!("tooling/sobjects/{sobject}"));
    let body = json!({ "FullName": full_name, "Metadata": metadata });
    let created = call(http.post(url).json(&body), token).await?;
    Ok(Record {
        sobject,
        id: created["id"].as_str().unwrap_or_default().to_owned(),
        developer_name: full_name.to_owned(),
        created: true,
    })
}

/// Everything a BYOC for Messaging channel needs in the org: the platform event with its
/// fields and the messaging platform's access to it, then the vendor and channel definition
/// records (routing and consent owned by Salesforce), each found or created.
pub async fn ensure_channel_records(
    http: &reqwest::Client,
    token: &AccessToken,
    definition: &str,
    platform_event: &str,
    event_type_field: &str,
    payload_field: &str,
) -> Result<Vec<Record>, StepError> {
    let mut records = super::platform_event::ensure(http, token, platform_event, event_type_field, payload_field)
        .await
        .map_err(|error| StepError { field: "platform_event", error })?;
    let definitions = definition_records(http, token, definition, platform_event, event_type_field, payload_field)
        .await
        .map_err(|error| StepError { field: "authorization_context", error })?;
    records.extend(definitions);
    Ok(records)
}

async fn definition_records(
    http: &reqwest::Client,
    token: &AccessToken,
    definition: &str,
    platform_event: &str,
    event_type_field: &str,
    payload_field: &str,
) -> Result<Vec<Record>, SetupError> {
    let vendor = format!("{definition}_Vendor");
    let cvi = find_or_create(
        http,
        token,
        "ConversationVendorInfo",
        &vendor,
        json!({ "developerName": vendor, "masterLabel": "WhatsApp (Infobip) via byoc-bridge", "vendorType": "BringYourOwnChannelPartner" }),
    )
    .await?;
    let ccd = find_or_create(
        http,
        token,
        "ConversationChannelDefinition",
        definition,
        json!({
            "developerName": definition, "masterLabel": "WhatsApp (Infobip)", "conversationVendorInfo": vendor,
            "customPlatformEvent": platform_event,
            "customEventTypeField": format!("{platform_event}.{event_type_field}"),
            "customEventPayloadField": format!("{platform_event}.{payload_field}"),
            "routingOwner": "Salesforce", "consentOwner": "Salesforce", "supportsImplicitConsent": true
        }),
    )
    .await?;
    Ok(vec![cvi, ccd])
}

/// The org's custom messaging channels: (address identifier, label).
pub async fn messaging_channels(
    http: &reqwest::Client,
    token: &AccessToken,
) -> Result<Vec<(String, String)>, SetupError> {
    let rows = query(
        http,
        token,
        "SELECT Id, ChannelAddressIdentifier, MasterLabel, IsActive FROM MessagingChannel WHERE MessageType = 'Custom'",
        false,
    )
    .await?;
    Ok(rows
        .iter()
        .filter_map(|r| {
            let address = r["ChannelAddressIdentifier"].as_str()?.to_owned();
            let active = if r["IsActive"].as_bool() == Some(false) { " (inactive)" } else { "" };
            Some((address, format!("{}{active}", r["MasterLabel"].as_str().unwrap_or("channel"))))
        })
        .collect())
}
