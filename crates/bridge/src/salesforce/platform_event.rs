//! The custom platform event Salesforce publishes the agents' messages on (the channel
//! definition names it, and the bridge subscribes to it): found, or created as a
//! high-volume event with its two fields, and made publishable by the messaging platform
//! (the `sfdc_scrt2` permission set gets Read and Create on it; platform events have no
//! field-level security, so the object permission is all it needs).

use reqwest::Client;
use serde_json::{Value, json};

use super::auth::AccessToken;
use super::setup::{Record, SetupError, call, call_optional, create, query, rest_url};

/// The permission set Salesforce's messaging platform publishes conversation entries as.
pub const MESSAGING_PERMISSION_SET: &str = "sfdc_scrt2";

/// Finds or creates the event and its fields, then grants the messaging platform access.
/// Names are API names the caller validated (letters, digits, `_`).
pub async fn ensure(
    http: &Client,
    token: &AccessToken,
    event: &str,
    type_field: &str,
    payload_field: &str,
) -> Result<Vec<Record>, SetupError> {
    let mut records = Vec::new();
    let existing = match fields_of(http, token, event).await? {
        Some(fields) => {
            records.push(found("CustomObject", event));
            fields
        }
        None => {
            let label = event.trim_end_matches("__e").replace('_', " ");
            let metadata = json!({
                "label": label, "pluralLabel": label, "eventType": "HighVolume",
                "publishBehavior": "PublishAfterCommit", "deploymentStatus": "Deployed",
                "description": "Conversation entries of the WhatsApp channel, for byoc-bridge"
            });
            records.push(create(http, token, "CustomObject", event, metadata).await?);
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
            records.push(found("CustomField", &full_name));
        } else {
            records.push(create(http, token, "CustomField", &full_name, metadata).await?);
        }
    }
    records.push(grant_publish(http, token, event).await?);
    Ok(records)
}

fn found(sobject: &'static str, name: &str) -> Record {
    Record { sobject, id: String::new(), developer_name: name.to_owned(), created: false }
}

/// The object's field names, or `None` when the org has no such object.
async fn fields_of(http: &Client, token: &AccessToken, object: &str) -> Result<Option<Vec<String>>, SetupError> {
    let url = rest_url(token, &format!("sobjects/{object}/describe"));
    let Some(described) = call_optional(http.get(url), token).await? else { return Ok(None) };
    let names = described["fields"].as_array().into_iter().flatten();
    Ok(Some(names.filter_map(|f| f["name"].as_str().map(str::to_owned)).collect()))
}

/// Read and Create on the event for `sfdc_scrt2`: found, added, or completed.
async fn grant_publish(http: &Client, token: &AccessToken, event: &str) -> Result<Record, SetupError> {
    let soql = format!("SELECT Id FROM PermissionSet WHERE Name = '{MESSAGING_PERMISSION_SET}'");
    let sets = query(http, token, &soql, false).await?;
    let Some(set_id) = sets.first().and_then(|s| s["Id"].as_str()).map(str::to_owned) else {
        return Err(SetupError::Refused(format!(
            "the org has no {MESSAGING_PERMISSION_SET} permission set; turn on Messaging (Setup → Messaging Settings) first"
        )));
    };
    let name = format!("{MESSAGING_PERMISSION_SET} on {event}");
    let soql = format!(
        "SELECT Id, PermissionsRead, PermissionsCreate FROM ObjectPermissions WHERE ParentId = '{set_id}' AND SobjectType = '{event}'"
    );
    let grant = json!({ "PermissionsRead": true, "PermissionsCreate": true });
    match query(http, token, &soql, false).await?.first() {
        Some(row) if row["PermissionsRead"] == Value::Bool(true) && row["PermissionsCreate"] == Value::Bool(true) => {
            Ok(Record { id: row["Id"].as_str().unwrap_or_default().to_owned(), ..found("ObjectPermissions", &name) })
        }
        Some(row) => {
            let id = row["Id"].as_str().unwrap_or_default().to_owned();
            let url = rest_url(token, &format!("sobjects/ObjectPermissions/{id}"));
            call_optional(http.patch(url).json(&grant), token).await?;
            Ok(Record { sobject: "ObjectPermissions", id, developer_name: name, created: true })
        }
        None => {
            let mut body = grant;
            body["ParentId"] = json!(set_id);
            body["SobjectType"] = json!(event);
            let created = call(http.post(rest_url(token, "sobjects/ObjectPermissions")).json(&body), token).await?;
            let id = created["id"].as_str().unwrap_or_default().to_owned();
            Ok(Record { sobject: "ObjectPermissions", id, developer_name: name, created: true })
        }
    }
}
