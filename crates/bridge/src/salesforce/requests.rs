//! The request bodies of the Interaction Service API, as typed structs shaped after the
//! vendor's schema (`inbound-interaction-api.yaml`): nothing outside this client writes
//! their JSON by hand.

use std::collections::BTreeMap;

use serde::Serialize;

/// Someone taking part in a conversation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Participant {
    pub app_type: &'static str,
    pub subject: String,
    pub role: &'static str,
}

impl Participant {
    /// The WhatsApp user: the partner's own end user.
    pub fn end_user(subject: &str) -> Self {
        Self { app_type: "custom", subject: subject.to_owned(), role: "EndUser" }
    }

    pub fn chatbot(subject: &str) -> Self {
        Self { app_type: "chatbot", subject: subject.to_owned(), role: "Chatbot" }
    }

    pub fn system(subject: &str) -> Self {
        Self { app_type: "custom", subject: subject.to_owned(), role: "System" }
    }
}

/// `POST /interactions`: one interaction from the end user (`from`) to the channel (`to`).
#[derive(Debug, Clone, Serialize)]
pub struct InteractionRequest {
    pub to: String,
    pub from: String,
    pub interactions: [Interaction; 1],
}

#[derive(Debug, Clone, Serialize)]
#[serde(tag = "interactionType", rename_all_fields = "camelCase")]
pub enum Interaction {
    EntryInteraction {
        timestamp: i64,
        payload: EntryPayload,
    },
    /// A file, sent as the request's `attachments` part.
    AttachmentInteraction {
        timestamp: i64,
        id: String,
        attachment_index: u32,
        content_length: usize,
        #[serde(skip_serializing_if = "Option::is_none")]
        text: Option<String>,
    },
}

#[derive(Debug, Clone, Serialize)]
#[serde(tag = "entryType", rename_all_fields = "camelCase")]
pub enum EntryPayload {
    Message {
        id: String,
        abstract_message: AbstractMessage,
    },
    /// Tells the agent one of their entries did not reach the customer.
    MessageDeliveryFailed {
        id: String,
        failed_conversation_entry_identifier: String,
        recipient: Participant,
        error_code: String,
        error_message: String,
    },
}

#[derive(Debug, Clone, Serialize)]
#[serde(tag = "messageType", rename_all_fields = "camelCase")]
pub enum AbstractMessage {
    StaticContentMessage { id: String, static_content: StaticContent },
    ChoicesResponseMessage { id: String, in_reply_to_message_id: String, choices_response: ChoicesResponse },
}

impl AbstractMessage {
    pub fn text(id: &str, text: &str) -> Self {
        AbstractMessage::StaticContentMessage {
            id: id.to_owned(),
            static_content: StaticContent::Text { text: text.to_owned() },
        }
    }
}

#[derive(Debug, Clone, Serialize)]
#[serde(tag = "formatType")]
pub enum StaticContent {
    Text { text: String },
}

#[derive(Debug, Clone, Serialize)]
#[serde(tag = "formatType", rename_all_fields = "camelCase")]
pub enum ChoicesResponse {
    Selections { selected_options: Vec<SelectedOption> },
}

/// The option the end user picked (`SelectedOption`: only these two properties are allowed).
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SelectedOption {
    pub option_identifier: String,
    pub option_title: TitleItem,
}

/// A plain title (`TitleItem`, of the polymorphic `AbstractTitleItem`).
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct TitleItem {
    /// Always `TitleItem`.
    pub item_type: &'static str,
    pub title: String,
}

impl TitleItem {
    pub fn new(title: impl Into<String>) -> Self {
        Self { item_type: "TitleItem", title: title.into() }
    }
}

/// `POST /conversation`: finds or opens the end user's conversation.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct ConversationRequest<'a> {
    pub channel_address_identifier: &'a str,
    pub participants: [Participant; 1],
    #[serde(skip_serializing_if = "Option::is_none")]
    pub routing_attributes: Option<&'a BTreeMap<String, String>>,
}

/// `PATCH /consent`: the end user's consent, where the channel's consent belongs to the
/// partner (`ConsentOwner = Partner`; Salesforce refuses it otherwise, code 10022).
#[derive(Debug, Clone, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ConsentRequest {
    pub channel_address_identifier: String,
    /// The end user's Messaging Platform Key (the WhatsApp number).
    pub end_user_client_id: String,
    pub consent_status: ConsentStatus,
}

/// The vendor's `ConsentEnum`.
#[derive(Debug, Clone, Copy, Serialize, PartialEq, Eq)]
pub enum ConsentStatus {
    OptedOut,
    ImplicitlyOptedIn,
    ExplicitlyOptedIn,
}

/// `POST /acknowledgement`: receipts of the agent's entries, at most 25 per call.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AcknowledgementRequest {
    pub sender: Participant,
    pub conversation_identifier: String,
    pub acknowledgements: Vec<Acknowledgement>,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Acknowledgement {
    /// Epoch milliseconds; the vendor schema types it as a string.
    pub acknowledgement_timestamp: String,
    /// `Delivered` or `Read`.
    pub acknowledgement_type: String,
    pub acknowledged_conversation_entry_identifier: String,
    /// The vendor's own spelling ("acknowledgment", without the e).
    pub acknowledgment_created_conversation_entry_identifier: String,
}

/// `POST /conversationHistory`: earlier turns of a conversation (at most 25 per call).
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct HistoryRequest {
    pub channel_address_identifier: String,
    pub conversation_participants: Vec<HistoryParticipant>,
    pub conversation_entries: Vec<HistoryEntry>,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct HistoryParticipant {
    pub participant: Participant,
    pub joined_time: i64,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct HistoryEntry {
    pub client_timestamp: i64,
    pub sender: Participant,
    pub entry_payload: EntryPayload,
}

/// `POST /messagingSession`.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct MessagingSessionRequest<'a> {
    pub channel_address_identifier: &'a str,
    pub end_user_client_id: &'a str,
    pub conversation_identifier: &'a str,
    pub operation: &'static str,
    pub operation_by: &'static str,
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn an_entry_is_written_with_its_discriminators() {
        let request = InteractionRequest {
            to: "ch".into(),
            from: "4477".into(),
            interactions: [Interaction::EntryInteraction {
                timestamp: 1,
                payload: EntryPayload::Message { id: "e".into(), abstract_message: AbstractMessage::text("e", "hi") },
            }],
        };
        assert_eq!(
            serde_json::to_value(&request).unwrap(),
            json!({ "to": "ch", "from": "4477", "interactions": [{ "timestamp": 1, "interactionType": "EntryInteraction",
                "payload": { "id": "e", "entryType": "Message", "abstractMessage": {
                    "messageType": "StaticContentMessage", "id": "e",
                    "staticContent": { "formatType": "Text", "text": "hi" } } } }] })
        );
    }
}
