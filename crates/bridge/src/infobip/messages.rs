//! Sending WhatsApp messages (`POST /whatsapp/1/message/…`) and events (`/whatsapp/1/events`),
//! with the request bodies as Infobip's WhatsApp API describes them.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::client::{Account, Client};
use super::error::Error;

const SEND_SCOPE: &str = "whatsapp:message:send";

/// What one WhatsApp message carries; the kind decides the endpoint it is sent to.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(untagged, rename_all_fields = "camelCase")]
pub enum Content {
    Text {
        text: String,
    },
    Image {
        media_url: String,
        #[serde(skip_serializing_if = "Option::is_none")]
        caption: Option<String>,
    },
    Video {
        media_url: String,
        #[serde(skip_serializing_if = "Option::is_none")]
        caption: Option<String>,
    },
    /// WhatsApp shows no caption under audio.
    Audio {
        media_url: String,
    },
    Document {
        media_url: String,
        #[serde(skip_serializing_if = "Option::is_none")]
        caption: Option<String>,
        filename: String,
    },
    /// Up to three reply buttons.
    Buttons {
        body: Body,
        action: ButtonsAction,
    },
    /// A list of up to ten rows behind a button.
    List {
        body: Body,
        action: ListAction,
    },
    /// A text with one button that opens a link.
    UrlButton {
        body: Body,
        action: UrlButtonAction,
    },
}

impl Content {
    pub fn text(text: impl Into<String>) -> Self {
        Content::Text { text: text.into() }
    }

    /// The endpoint under `/whatsapp/1/message/`.
    pub fn endpoint(&self) -> &'static str {
        match self {
            Content::Text { .. } => "text",
            Content::Image { .. } => "image",
            Content::Video { .. } => "video",
            Content::Audio { .. } => "audio",
            Content::Document { .. } => "document",
            Content::Buttons { .. } => "interactive/buttons",
            Content::List { .. } => "interactive/list",
            Content::UrlButton { .. } => "interactive/url-button",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Body {
    pub text: String,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ButtonsAction {
    pub buttons: Vec<ReplyButton>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ReplyButton {
    /// Always `REPLY`: the tap comes back as a message with the button's id.
    #[serde(rename = "type")]
    pub kind: &'static str,
    pub id: String,
    pub title: String,
}

impl ReplyButton {
    pub fn new(id: impl Into<String>, title: impl Into<String>) -> Self {
        Self { kind: "REPLY", id: id.into(), title: title.into() }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct UrlButtonAction {
    pub display_text: String,
    pub url: String,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ListAction {
    /// The label of the button that opens the list.
    pub title: String,
    pub sections: Vec<ListSection>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ListSection {
    pub rows: Vec<ListRow>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ListRow {
    pub id: String,
    pub title: String,
}

/// One message to send. `message_id` is ours: reports and replies come back with it.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Message<'a> {
    pub from: &'a str,
    pub to: &'a str,
    pub message_id: &'a str,
    /// Returned in the delivery report (the Salesforce entry the message came from).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub callback_data: Option<&'a str>,
    pub content: &'a Content,
}

/// An approved template with its values (`templateData`, built by [`super::templates`]).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TemplateContent {
    pub template_name: String,
    pub language: String,
    pub template_data: Value,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct TemplateMessage<'a> {
    pub from: &'a str,
    pub to: &'a str,
    pub message_id: &'a str,
    pub content: &'a TemplateContent,
}

#[derive(Serialize)]
struct TemplateBatch<'a> {
    messages: [&'a TemplateMessage<'a>; 1],
}

impl Client {
    /// Sends one message; returns Infobip's answer.
    pub async fn send(&self, account: &Account, message: &Message<'_>) -> Result<Value, Error> {
        let path = format!("/whatsapp/1/message/{}", message.content.endpoint());
        let request = self.request(account.credentials(), reqwest::Method::POST, &path).json(message);
        self.call(request, Some(SEND_SCOPE)).await
    }

    /// Sends one template message (the endpoint takes a batch; ours has one).
    pub async fn send_template(&self, account: &Account, message: &TemplateMessage<'_>) -> Result<Value, Error> {
        let request = self
            .request(account.credentials(), reqwest::Method::POST, "/whatsapp/1/message/template")
            .json(&TemplateBatch { messages: [message] });
        self.call(request, Some(SEND_SCOPE)).await
    }

    /// Shows "typing…" to the end user.
    /// Shows the customer's message `message_id` as read on their phone (the blue ticks).
    pub async fn mark_read(&self, account: &Account, sender: &str, message_id: &str) -> Result<Value, Error> {
        let path = format!(
            "/whatsapp/1/senders/{}/message/{}/read",
            url::form_urlencoded::byte_serialize(sender.as_bytes()).collect::<String>(),
            url::form_urlencoded::byte_serialize(message_id.as_bytes()).collect::<String>()
        );
        let request = self.request(account.credentials(), reqwest::Method::POST, &path);
        self.call(request, Some("whatsapp:manage")).await
    }

    pub async fn typing(&self, account: &Account, sender: &str, to: &str) -> Result<Value, Error> {
        let body = serde_json::json!({ "events": [{
            "sender": sender, "destinations": [{ "to": to }], "content": { "type": "TYPING_INDICATOR" }
        }] });
        let request = self.request(account.credentials(), reqwest::Method::POST, "/whatsapp/1/events").json(&body);
        self.call(request, Some(SEND_SCOPE)).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn contents_are_written_as_the_whatsapp_api_names_them() {
        let document = Content::Document { media_url: "https://x/f".into(), caption: None, filename: "f.pdf".into() };
        assert_eq!(serde_json::to_value(&document).unwrap(), json!({ "mediaUrl": "https://x/f", "filename": "f.pdf" }));
        let buttons = Content::Buttons {
            body: Body { text: "Pick".into() },
            action: ButtonsAction { buttons: vec![ReplyButton::new("a", "A")] },
        };
        assert_eq!(
            serde_json::to_value(&buttons).unwrap(),
            json!({ "body": { "text": "Pick" }, "action": { "buttons": [{ "type": "REPLY", "id": "a", "title": "A" }] } })
        );
        let message = Message { from: "1", to: "2", message_id: "m", callback_data: None, content: &document };
        assert_eq!(serde_json::to_value(&message).unwrap()["messageId"], "m");
        assert!(serde_json::to_value(&message).unwrap().get("callbackData").is_none());
    }
}
