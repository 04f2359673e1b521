//! The channel's setup records, found or created through the REST and Tooling APIs (the
//! wizard's step 1): the platform event, the ConversationVendorInfo and the
//! ConversationChannelDefinition; and the org's messaging channels for step 2.

use serde_json::json;

use super::rest::Record;
use super::{AccessToken, Client, Error};

/// A setup step that failed, with the wizard field it concerns.
#[derive(Debug, thiserror::Error)]
#[error("{error}")]
pub struct StepError {
    pub field: &'static str,
    #[source]
    pub error: Error,
}

/// Everything a BYOC for Messaging channel needs in the org: the platform event with its
/// fields and the messaging platform's access to it, then the vendor and channel definition
/// records (routing and consent owned by Salesforce), each found or created.
pub async fn ensure_channel_records(
    client: &Client,
    token: &AccessToken,
    definition: &str,
    platform_event: &str,
    event_type_field: &str,
    payload_field: &str,
) -> Result<Vec<Record>, StepError> {
    let mut records = super::platform_event::ensure(client, token, platform_event, event_type_field, payload_field)
        .await
        .map_err(|error| StepError { field: "platform_event", error })?;
    let definitions = definition_records(client, token, definition, platform_event, event_type_field, payload_field)
        .await
        .map_err(|error| StepError { field: "authorization_context", error })?;
    records.extend(definitions);
    Ok(records)
}

async fn definition_records(
    client: &Client,
    token: &AccessToken,
    definition: &str,
    platform_event: &str,
    event_type_field: &str,
    payload_field: &str,
) -> Result<Vec<Record>, Error> {
    let vendor = format!("{definition}_Vendor");
    let cvi = client
        .find_or_create_tooling(
        token,
        "ConversationVendorInfo",
        &vendor,
        json!({ "developerName": vendor, "masterLabel": "WhatsApp (Infobip) via byoc-bridge", "vendorType": "BringYourOwnChannelPartner" }),
    )
    .await?;
    let ccd = client
        .find_or_create_tooling(
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
pub async fn messaging_channels(client: &Client, token: &AccessToken) -> Result<Vec<(String, String)>, Error> {
    let rows = client
        .query(
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
