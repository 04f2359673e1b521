//! Acting as an agent: each action records the conversation entry and publishes the
//! platform event Salesforce publishes for it (`EventType = Interaction`, the entry in the
//! `Payload` field, shaped as the vendor's AsyncAPI `InteractionEvent`). Ending a session
//! also publishes a change event on `/data/MessagingSessionChangeEvent`, as orgs differ in
//! which of the two they provide.

use std::collections::BTreeMap;

use serde_json::{Value, json};

use super::{Entry, SalesforceSim};
use crate::pubsub::avro::{self, EventRecord};
use pubsub_wire::proto::ProducerEvent;

pub const CDC_TOPIC: &str = "/data/MessagingSessionChangeEvent";

/// Avro schema of the Change Data Capture event for MessagingSession (the fields the bridge
/// reads; real events carry every field of the object).
pub fn messaging_session_change_schema() -> String {
    json!({
        "type": "record", "name": "MessagingSessionChangeEvent", "namespace": "com.sforce.eventbus",
        "fields": [
            { "name": "ChangeEventHeader", "type": { "type": "record", "name": "ChangeEventHeader", "fields": [
                { "name": "entityName", "type": "string" },
                { "name": "recordIds", "type": { "type": "array", "items": "string" } },
                { "name": "changeType", "type": "string" },
                { "name": "changeOrigin", "type": "string" },
                { "name": "transactionKey", "type": "string" },
                { "name": "sequenceNumber", "type": "int" },
                { "name": "commitTimestamp", "type": "long" },
                { "name": "commitNumber", "type": "long" },
                { "name": "commitUser", "type": "string" },
                { "name": "nulledFields", "type": { "type": "array", "items": "string" } },
                { "name": "diffFields", "type": { "type": "array", "items": "string" } },
                { "name": "changedFields", "type": { "type": "array", "items": "string" } }
            ]}},
            { "name": "Name", "type": ["null", "string"], "default": null },
            { "name": "OwnerId", "type": ["null", "string"], "default": null },
            { "name": "Status", "type": ["null", "string"], "default": null },
            { "name": "StartTime", "type": ["null", "long"], "default": null },
            { "name": "EndTime", "type": ["null", "long"], "default": null },
            { "name": "AcceptTime", "type": ["null", "long"], "default": null },
            { "name": "EndedByType", "type": ["null", "string"], "default": null },
            { "name": "MessagingChannelId", "type": ["null", "string"], "default": null },
            { "name": "MessagingEndUserId", "type": ["null", "string"], "default": null }
        ]
    })
    .to_string()
}

/// Salesforce's bitmap of schema fields, as change events carry `changedFields`,
/// `nulledFields` and `diffFields`: bit `i` (least significant first) stands for the record's
/// `i`-th field, written as hex (`0x…`); fields of a nested record are written
/// `<parent position>-0x…`. (Pub/Sub guide, "Event Deserialization Considerations".)
pub fn field_bitmap(schema_json: &str, fields: &[&str]) -> Vec<String> {
    let schema: serde_json::Value = serde_json::from_str(schema_json).unwrap_or_default();
    let names: Vec<&str> =
        schema["fields"].as_array().into_iter().flatten().filter_map(|f| f["name"].as_str()).collect();
    let mut bits: u128 = 0;
    for field in fields {
        if let Some(i) = names.iter().position(|n| n == field) {
            bits |= 1 << i;
        }
    }
    if bits == 0 { Vec::new() } else { vec![format!("0x{bits:X}")] }
}

/// A choice offered to the end user.
#[derive(Debug, Clone)]
pub struct Choice {
    pub id: String,
    pub title: String,
}

#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    #[error("no conversation {0}")]
    UnknownConversation(String),
    #[error("publishing the event failed: {0}")]
    Publish(String),
}

struct Target {
    conversation: String,
    channel: String,
    end_user: String,
    session: String,
}

impl SalesforceSim {
    fn target(&self, conversation: &str) -> Result<Target, AgentError> {
        let state = self.state();
        let c = state
            .conversations
            .iter()
            .find(|c| c.identifier == conversation)
            .ok_or_else(|| AgentError::UnknownConversation(conversation.to_owned()))?;
        Ok(Target {
            conversation: c.identifier.clone(),
            channel: c.channel_address_identifier.clone(),
            end_user: c.end_user.clone(),
            session: c.messaging_session_id.clone(),
        })
    }

    fn agent(&self) -> (String, String) {
        let state = self.state();
        state
            .users
            .iter()
            .find(|u| u.profile == "Agent")
            .or_else(|| state.users.first())
            .map(|u| (u.id.clone(), u.display_name.clone()))
            .unwrap_or_else(|| ("005000000000001AAA".into(), "Agent".into()))
    }

    /// Records the entry and publishes it; returns the entry identifier.
    fn publish_entry(&self, conversation: &str, entry_type: &str, entry_payload: Value) -> Result<String, AgentError> {
        let target = self.target(conversation)?;
        let (agent_id, agent_name) = self.agent();
        let identifier = entry_payload.get("id").and_then(Value::as_str).unwrap_or_default().to_owned();
        let now = chrono::Utc::now().timestamp_millis();
        let event = json!({
            "conversationIdentifier": target.conversation,
            "channelAddressIdentifier": target.channel,
            "recipient": { "appType": "custom", "subject": target.end_user, "role": "EndUser" },
            "payload": {
                "identifier": identifier,
                "entryType": entry_type,
                "senderDisplayName": agent_name,
                "sender": { "appType": "agent", "subject": agent_id, "role": "Agent" },
                "entryPayload": entry_payload,
                "transcriptedTimestamp": now,
                "clientTimestamp": now,
                "clientDuration": 0
            }
        });
        let mut fields = BTreeMap::new();
        fields.insert(self.config.event_type_field.clone(), Some("Interaction".to_owned()));
        fields.insert(self.config.payload_field.clone(), Some(event.to_string()));
        let record = EventRecord { created_date: now, created_by_id: agent_id, fields };
        self.pubsub.publish(&self.event_topic(), &record).map_err(|e| AgentError::Publish(e.to_string()))?;
        let mut state = self.state();
        state.events_published += 1;
        if let Some(c) = state.conversations.iter_mut().find(|c| c.identifier == target.conversation) {
            c.entries.push(Entry {
                id: identifier.clone(),
                entry_type: entry_type.to_owned(),
                sender_role: "Agent".into(),
                payload: event,
                attachment: None,
                request_id: String::new(),
            });
        }
        Ok(identifier)
    }

    /// Publishes any entry of the agent's (`entryPayload` as given, with an `id` added), for
    /// the kinds the console has no button for: rich links, progress indicators, forms.
    pub fn agent_publish(
        &self,
        conversation: &str,
        entry_type: &str,
        mut payload: Value,
    ) -> Result<String, AgentError> {
        let id = uuid::Uuid::new_v4().to_string();
        if let Some(map) = payload.as_object_mut() {
            map.insert("entryType".into(), json!(entry_type));
            map.insert("id".into(), json!(id));
        }
        self.publish_entry(conversation, entry_type, payload)
    }

    fn message(&self, conversation: &str, abstract_message: impl FnOnce(&str) -> Value) -> Result<String, AgentError> {
        let id = uuid::Uuid::new_v4().to_string();
        // The README samples show `"messageReason": null`, but the AsyncAPI enum has no null: leave it out.
        let payload = json!({ "entryType": "Message", "id": id, "abstractMessage": abstract_message(&id) });
        self.publish_entry(conversation, "Message", payload)
    }

    pub fn agent_send_text(&self, conversation: &str, text: &str) -> Result<String, AgentError> {
        self.message(conversation, |id| {
            json!({ "messageType": "StaticContentMessage", "id": id, "staticContent": { "formatType": "Text", "text": text } })
        })
    }

    /// Sends a file; the simulator serves it at an unguessable URL, as a content
    /// distribution link would.
    pub fn agent_send_attachment(
        &self,
        conversation: &str,
        name: &str,
        mime_type: &str,
        bytes: Vec<u8>,
        text: Option<&str>,
    ) -> Result<String, AgentError> {
        self.agent_send_attachments(conversation, vec![(name, mime_type, bytes)], text)
    }

    /// Sends several files (name, MIME type, bytes) in one entry.
    pub fn agent_send_attachments(
        &self,
        conversation: &str,
        files: Vec<(&str, &str, Vec<u8>)>,
        text: Option<&str>,
    ) -> Result<String, AgentError> {
        let mut attachments = Vec::new();
        for (name, mime_type, bytes) in files {
            let token = uuid::Uuid::new_v4().simple().to_string();
            let url = format!("{}/__sim/files/{token}", self.base_url());
            self.state().files.insert(token, (mime_type.to_owned(), bytes));
            let attachment_id = uuid::Uuid::new_v4().to_string();
            attachments.push(json!({
                "id": attachment_id, "name": name, "mimeType": mime_type, "url": url, "referenceId": attachment_id
            }));
        }
        self.message(conversation, |id| {
            let mut content = json!({ "formatType": "Attachments", "attachments": attachments });
            if let Some(text) = text {
                content["text"] = json!(text);
            }
            json!({ "messageType": "StaticContentMessage", "id": id, "staticContent": content })
        })
    }

    /// Sends choices: `format` is `Buttons`, `QuickReplies` or `ListPicker`.
    pub fn agent_send_choices(
        &self,
        conversation: &str,
        format: &str,
        text: &str,
        options: &[Choice],
    ) -> Result<String, AgentError> {
        let items: Vec<Value> = options
            .iter()
            .map(|o| {
                json!({ "itemType": "TitleOptionItem", "optionIdentifier": o.id,
                        "titleItem": { "itemType": "TitleItem", "title": o.title } })
            })
            .collect();
        self.message(conversation, |id| {
            let choices = if format == "ListPicker" {
                json!({ "formatType": "ListPicker", "title": text, "optionItems": items })
            } else {
                json!({ "formatType": format, "text": text, "optionItems": items })
            };
            json!({ "messageType": "ChoicesMessage", "id": id, "choices": choices })
        })
    }

    pub fn agent_typing(&self, conversation: &str, started: bool) -> Result<String, AgentError> {
        let entry_type = if started { "TypingStartedIndicator" } else { "TypingStoppedIndicator" };
        let payload = json!({ "entryType": entry_type, "id": uuid::Uuid::new_v4().to_string(),
                              "timestamp": chrono::Utc::now().timestamp_millis() });
        self.publish_entry(conversation, entry_type, payload)
    }

    /// The agent has read the customer's latest entry: a `ReadAcknowledgement` of it (what
    /// an org whose channel has inbound acknowledgements enabled publishes). Returns `None`
    /// when the customer wrote nothing yet.
    pub fn agent_read(&self, conversation: &str) -> Result<Option<String>, AgentError> {
        let last = self
            .state()
            .conversations
            .iter()
            .find(|c| c.identifier == conversation)
            .and_then(|c| c.entries.iter().rev().find(|e| e.sender_role == "EndUser").map(|e| e.id.clone()));
        let Some(read) = last else { return Ok(None) };
        let (agent_id, _) = self.agent();
        let payload = json!({ "entryType": "ReadAcknowledgement", "id": uuid::Uuid::new_v4().to_string(),
                              "recipient": { "appType": "agent", "subject": agent_id, "role": "Agent" },
                              "acknowledgedConversationEntryIdentifier": read,
                              "acknowledgementTimestamp": chrono::Utc::now().timestamp_millis() });
        self.publish_entry(conversation, "ReadAcknowledgement", payload).map(Some)
    }

    /// The agent accepts the work and joins (`ParticipantChanged`, operation `add`).
    pub fn agent_join(&self, conversation: &str) -> Result<String, AgentError> {
        let (agent_id, agent_name) = self.agent();
        let participant = json!({ "appType": "agent", "subject": agent_id, "role": "Agent" });
        let payload = json!({ "entryType": "ParticipantChanged", "id": uuid::Uuid::new_v4().to_string(),
                              "participant": participant,
                              "entries": [{ "operation": "add", "participant": participant, "displayName": agent_name }] });
        let id = self.publish_entry(conversation, "ParticipantChanged", payload)?;
        self.set_status(conversation, "Active");
        Ok(id)
    }

    /// The agent ends the session: `SessionStatusChanged` on the custom event and an update
    /// on the MessagingSession change-data-capture channel.
    pub fn agent_end(&self, conversation: &str) -> Result<String, AgentError> {
        let target = self.target(conversation)?;
        let now = chrono::Utc::now().timestamp_millis();
        let id = if self.config.session_status_on_event {
            let payload = json!({ "entryType": "SessionStatusChanged", "id": uuid::Uuid::new_v4().to_string(),
                "sessionId": target.session, "conversationIdentifier": target.conversation,
                "channelAddressIdentifier": target.channel, "sessionStatus": "Ended", "sessionStatusPrev": "Active",
                "sessionStartTime": now, "sessionEndTime": now, "sessionEndedByRole": "Agent" });
            self.publish_entry(conversation, "SessionStatusChanged", payload)?
        } else {
            String::new()
        };
        self.publish_session_change(&target.session, "Ended", now)?;
        self.set_status(conversation, "Ended");
        Ok(id)
    }

    fn set_status(&self, conversation: &str, status: &str) {
        if let Some(c) = self.state().conversations.iter_mut().find(|c| c.identifier == conversation) {
            c.session_status = status.to_owned();
        }
    }

    fn publish_session_change(&self, session: &str, status: &str, at: i64) -> Result<(), AgentError> {
        use apache_avro::types::Value as A;
        let err = |e: String| AgentError::Publish(e);
        let schema = avro::parse_schema(&messaging_session_change_schema()).map_err(|e| err(e.to_string()))?;
        let strings = |items: &[&str]| A::Array(items.iter().map(|s| A::String((*s).to_owned())).collect());
        let header = A::Record(vec![
            ("entityName".into(), A::String("MessagingSession".into())),
            ("recordIds".into(), strings(&[session])),
            ("changeType".into(), A::String("UPDATE".into())),
            ("changeOrigin".into(), A::String("com/salesforce/api/rest/62.0".into())),
            ("transactionKey".into(), A::String(uuid::Uuid::new_v4().to_string())),
            ("sequenceNumber".into(), A::Int(1)),
            ("commitTimestamp".into(), A::Long(at)),
            ("commitNumber".into(), A::Long(at)),
            ("commitUser".into(), A::String(self.agent().0)),
            ("nulledFields".into(), strings(&[])),
            ("diffFields".into(), strings(&[])),
        ]);
        // An update is a delta: the fields that changed, and a bitmap naming them.
        let changed = ["Status", "EndTime", "EndedByType"];
        let bitmap = field_bitmap(&messaging_session_change_schema(), &changed);
        let A::Record(mut header_fields) = header else { return Err(err("header".into())) };
        header_fields.push(("changedFields".into(), A::Array(bitmap.into_iter().map(A::String).collect())));
        let value = |name: &str| -> A {
            match name {
                "Status" => A::Union(1, Box::new(A::String(status.to_owned()))),
                "EndTime" => A::Union(1, Box::new(A::Long(at))),
                "EndedByType" => A::Union(1, Box::new(A::String("Agent".into()))),
                _ => A::Union(0, Box::new(A::Null)),
            }
        };
        let mut fields = vec![("ChangeEventHeader".to_owned(), A::Record(header_fields))];
        for name in [
            "Name",
            "OwnerId",
            "Status",
            "StartTime",
            "EndTime",
            "AcceptTime",
            "EndedByType",
            "MessagingChannelId",
            "MessagingEndUserId",
        ] {
            fields.push((name.to_owned(), value(name)));
        }
        let record = A::Record(fields);
        let payload = avro::encode_datum(&schema, record).map_err(|e| err(e.to_string()))?;
        let schema_id = self.pubsub.schema_id(CDC_TOPIC).unwrap_or_default();
        self.pubsub
            .publish_raw(
                CDC_TOPIC,
                ProducerEvent { id: uuid::Uuid::new_v4().to_string(), schema_id, payload, headers: Vec::new() },
            )
            .map_err(|e| err(e.to_string()))?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn changed_fields_are_a_bitmap_of_schema_positions() {
        let schema = messaging_session_change_schema();
        // ChangeEventHeader is field 0; Status 3, EndTime 5, EndedByType 7.
        assert_eq!(field_bitmap(&schema, &["Status", "EndTime", "EndedByType"]), ["0xA8"]);
        assert!(field_bitmap(&schema, &[]).is_empty());
    }
}
