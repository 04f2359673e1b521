//! The channel's setup records, found or created through the REST and Tooling APIs (step 2
//! of the wizard): the platform event, the ConversationVendorInfo and the
//! ConversationChannelDefinition; and the org's messaging channels with their definitions.

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

/// Whether the token may read the setup records at all (the connected app's `api` scope),
/// asked once the connection's token works.
pub async fn check_access(client: &Client, token: &AccessToken) -> Result<(), Error> {
    client.query(token, "SELECT Id FROM ConversationChannelDefinition", true).await.map(|_| ())
}

/// A ConversationChannelDefinition: the authorization context and the platform event its
/// channel's conversation entries are published on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChannelDefinition {
    pub developer_name: String,
    pub platform_event: String,
    pub event_type_field: String,
    pub payload_field: String,
}

/// A custom messaging channel of the org, with the definition it was made from when the
/// definition can be read.
#[derive(Debug, Clone)]
pub struct OrgChannel {
    pub address_identifier: String,
    pub label: String,
    pub active: bool,
    pub definition: Option<ChannelDefinition>,
}

/// Salesforce answers a field of an event as `Event__e.Field__c` or `Field__c`.
fn field_name(value: &str) -> String {
    value.rsplit('.').next().unwrap_or(value).to_owned()
}

/// Two ids are the same record whether written with 15 or 18 characters.
fn same_id(a: &str, b: &str) -> bool {
    a.len() >= 15 && b.len() >= 15 && a.get(..15) == b.get(..15)
}

/// The org's custom messaging channels. Their definitions come from a second query (the
/// MessagingChannel answers only the definition's id); when that one is refused, the
/// channels come without.
pub async fn messaging_channels(client: &Client, token: &AccessToken) -> Result<Vec<OrgChannel>, Error> {
    let rows = client
        .query(
            token,
            "SELECT Id, ChannelAddressIdentifier, MasterLabel, IsActive, ChannelDefinitionId FROM MessagingChannel WHERE MessageType = 'Custom'",
            false,
        )
        .await?;
    let definitions = client
        .query(
            token,
            "SELECT Id, DeveloperName, CustomPlatformEvent, CustomEventTypeField, CustomEventPayloadField FROM ConversationChannelDefinition",
            true,
        )
        .await
        .unwrap_or_default();
    let text = |v: &serde_json::Value, key: &str| v[key].as_str().unwrap_or_default().to_owned();
    Ok(rows
        .iter()
        .filter_map(|r| {
            let address_identifier = r["ChannelAddressIdentifier"].as_str()?.to_owned();
            let definition_id = text(r, "ChannelDefinitionId");
            let definition =
                definitions.iter().find(|d| same_id(&text(d, "Id"), &definition_id)).map(|d| ChannelDefinition {
                    developer_name: text(d, "DeveloperName"),
                    platform_event: text(d, "CustomPlatformEvent"),
                    event_type_field: field_name(&text(d, "CustomEventTypeField")),
                    payload_field: field_name(&text(d, "CustomEventPayloadField")),
                });
            Some(OrgChannel {
                address_identifier,
                label: r["MasterLabel"].as_str().unwrap_or("channel").to_owned(),
                active: r["IsActive"].as_bool() != Some(false),
                definition,
            })
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn event_fields_are_read_with_or_without_their_event() {
        assert_eq!(field_name("WhatsApp_Event__e.Payload__c"), "Payload__c");
        assert_eq!(field_name("ns__Payload__c"), "ns__Payload__c");
        assert!(same_id("11v000000000001AAA", "11v000000000001"));
        assert!(!same_id("11v000000000001", "11v000000000002"));
        assert!(!same_id("", ""));
    }
}
