//! The custom platform event Salesforce publishes the agents' messages on (the channel
//! definition names it, and the bridge subscribes to it): found, or created as a
//! high-volume event with its two fields, and made publishable by the messaging platform
//! (the `sfdc_scrt2` permission set gets Read and Create on it; platform events have no
//! field-level security, so the object permission is all it needs).

use serde_json::{Value, json};

use super::rest::Record;
use super::{AccessToken, Client, Error};

/// The permission set Salesforce's messaging platform publishes conversation entries as.
pub const MESSAGING_PERMISSION_SET: &str = "sfdc_scrt2";

/// Finds or creates the event and its fields, then grants the messaging platform access.
/// Names are API names the caller validated (letters, digits, `_`).
pub async fn ensure(
    client: &Client,
    token: &AccessToken,
    event: &str,
    type_field: &str,
    payload_field: &str,
) -> Result<Vec<Record>, Error> {
    let mut records = Vec::new();
    let existing = match client.field_names(token, event).await? {
        Some(fields) => {
            records.push(Record::found("CustomObject", event));
            fields
        }
        None => {
            let label = event.trim_end_matches("__e").replace('_', " ");
            let metadata = json!({
                "label": label, "pluralLabel": label, "eventType": "HighVolume",
                "publishBehavior": "PublishAfterCommit", "deploymentStatus": "Deployed",
                "description": "Conversation entries of the WhatsApp channel, for byoc-bridge"
            });
            records.push(client.create_tooling(token, "CustomObject", event, metadata).await?);
            Vec::new()
        }
    };
    for (field, metadata) in [
        (type_field, json!({ "label": "Event Type", "type": "Text", "length": 250 })),
        // Payloads are JSON documents of a conversation entry; the largest long text.
        (payload_field, json!({ "label": "Payload", "type": "LongTextArea", "length": 131072, "visibleLines": 3 })),
    ] {
        let full_name = format!("{event}.{field}");
        if existing.iter().any(|f| f.eq_ignore_ascii_case(field)) {
            records.push(Record::found("CustomField", &full_name));
        } else {
            records.push(client.create_tooling(token, "CustomField", &full_name, metadata).await?);
        }
    }
    records.push(grant_publish(client, token, event).await?);
    Ok(records)
}

/// Read and Create on the event for `sfdc_scrt2`: found, added, or completed.
async fn grant_publish(client: &Client, token: &AccessToken, event: &str) -> Result<Record, Error> {
    let soql = format!("SELECT Id FROM PermissionSet WHERE Name = '{MESSAGING_PERMISSION_SET}'");
    let sets = client.query(token, &soql, false).await?;
    let Some(set_id) = sets.first().and_then(|s| s["Id"].as_str()).map(str::to_owned) else {
        return Err(Error::Refused {
            status: 404,
            code: None,
            detail: format!(
                "the org has no {MESSAGING_PERMISSION_SET} permission set; turn on Messaging (Setup → Messaging Settings) first"
            ),
        });
    };
    let name = format!("{MESSAGING_PERMISSION_SET} on {event}");
    let soql = format!(
        "SELECT Id, PermissionsRead, PermissionsCreate FROM ObjectPermissions WHERE ParentId = '{set_id}' AND SobjectType = '{event}'"
    );
    let grant = json!({ "PermissionsRead": true, "PermissionsCreate": true });
    match client.query(token, &soql, false).await?.first() {
        Some(row) if row["PermissionsRead"] == Value::Bool(true) && row["PermissionsCreate"] == Value::Bool(true) => {
            Ok(Record {
                id: row["Id"].as_str().unwrap_or_default().to_owned(),
                ..Record::found("ObjectPermissions", &name)
            })
        }
        Some(row) => {
            let id = row["Id"].as_str().unwrap_or_default().to_owned();
            client.update_record(token, "ObjectPermissions", &id, &grant).await?;
            Ok(Record { sobject: "ObjectPermissions", id, developer_name: name, created: true })
        }
        None => {
            let mut body = grant;
            body["ParentId"] = json!(set_id);
            body["SobjectType"] = json!(event);
            let id = client.create_record(token, "ObjectPermissions", &body).await?;
            Ok(Record { sobject: "ObjectPermissions", id, developer_name: name, created: true })
        }
    }
}
