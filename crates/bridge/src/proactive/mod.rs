//! Proactive conversations: the business (an Agentforce flow, a CRM) asks the bridge to
//! open a Salesforce conversation with a WhatsApp user, optionally greeting the user with
//! an approved template, so that an agent can start talking. One per (app, number) for a
//! day: a repeated call returns the first one.

pub mod start;

use std::collections::BTreeMap;

use serde_json::{Value, json};

use crate::db::handovers::{self, Proactive};
use crate::db::jobs;
use crate::db::{DbConn, DbError, ProactiveStatus, conversations};
use crate::directory::ActiveApp;
use crate::handover::{BadRequest, bad, business_number, routing_attributes, string_field, whatsapp_id};
use crate::infobip::messages::TemplateContent;
use crate::infobip::templates::{MAX_PAYLOAD, single_line};
use crate::worker::BackgroundJob;

/// A repeated call within this time returns the conversation already started.
const IDEMPOTENCY_WINDOW: chrono::Duration = chrono::Duration::hours(24);

#[derive(Debug, Clone, PartialEq)]
pub struct ProactiveRequest {
    pub end_user: String,
    pub business_number: String,
    pub routing_attributes: BTreeMap<String, String>,
    /// The opening template.
    pub template: Option<TemplateContent>,
}

/// A template value WhatsApp accepts: not empty, no line breaks or tabs, no long runs of spaces.
fn placeholder(field: &'static str, value: &Value) -> Result<String, BadRequest> {
    let text = match value {
        Value::String(s) => s.clone(),
        Value::Number(n) => n.to_string(),
        _ => return Err(bad(field, "values must be strings")),
    };
    if text.trim().is_empty() {
        return Err(bad(field, "values must not be empty"));
    }
    single_line(&text).map_err(|problem| bad(field, format!("values {problem}")))?;
    Ok(text)
}

fn template(value: &Value) -> Result<TemplateContent, BadRequest> {
    let object = value.as_object().ok_or_else(|| bad("template", "must be an object"))?;
    let name = object.get("name").and_then(Value::as_str).unwrap_or_default().trim();
    let valid_name = !name.is_empty()
        && name.len() <= 512
        && name.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
    if !valid_name {
        return Err(bad("template.name", "must be the template's name: lowercase letters, digits and _"));
    }
    let language = object.get("language").and_then(Value::as_str).unwrap_or_default().trim();
    if language.is_empty() || language.len() > 20 {
        return Err(bad("template.language", "must be the template's language code, such as en or en_GB"));
    }
    let placeholders = match object.get("placeholders") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(items)) => {
            items.iter().map(|v| placeholder("template.placeholders", v)).collect::<Result<Vec<_>, _>>()?
        }
        Some(_) => return Err(bad("template.placeholders", "must be a list of values")),
    };
    let mut data = json!({ "body": { "placeholders": placeholders } });
    if let Some(header) = object.get("header").filter(|h| !h.is_null()) {
        let kind = header.get("type").and_then(Value::as_str).unwrap_or_default();
        if !["TEXT", "IMAGE", "VIDEO", "DOCUMENT", "LOCATION"].contains(&kind) {
            return Err(bad("template.header", "type must be TEXT, IMAGE, VIDEO, DOCUMENT or LOCATION"));
        }
        data["header"] = header.clone();
    }
    if let Some(buttons) = object.get("buttons").filter(|b| !b.is_null()) {
        let list = buttons.as_array().ok_or_else(|| bad("template.buttons", "must be a list"))?;
        for b in list {
            let parameter = b.get("parameter").and_then(Value::as_str).unwrap_or_default();
            if b.get("type").and_then(Value::as_str) == Some("QUICK_REPLY") && parameter.chars().count() > MAX_PAYLOAD {
                return Err(bad(
                    "template.buttons",
                    format!("a quick reply payload has at most {MAX_PAYLOAD} characters"),
                ));
            }
        }
        data["buttons"] = buttons.clone();
    }
    Ok(TemplateContent { template_name: name.to_owned(), language: language.to_owned(), template_data: data })
}

impl ProactiveRequest {
    pub fn parse(app: &ActiveApp, body: &[u8]) -> Result<Self, BadRequest> {
        let body: Value = serde_json::from_slice(body).map_err(|e| bad("body", format!("is not JSON: {e}")))?;
        if !body.is_object() {
            return Err(bad("body", "must be a JSON object"));
        }
        let to = string_field(&body, "to")?.ok_or_else(|| bad("to", "is required"))?;
        Ok(Self {
            end_user: whatsapp_id("to", &to)?,
            business_number: business_number(app, string_field(&body, "businessNumber")?)?,
            routing_attributes: routing_attributes(&body)?,
            template: body.get("template").filter(|t| !t.is_null()).map(template).transpose()?,
        })
    }
}

/// Stores the request with its start job, unless the same user got one within the window
/// (call inside one write transaction). `false` means the earlier one is returned.
pub fn accept(conn: &mut DbConn, app_id: &str, request: &ProactiveRequest) -> Result<(Proactive, bool), DbError> {
    let now = crate::db::now();
    let conversation = conversations::upsert(conn, app_id, &request.end_user, &request.business_number, now)?;
    if let Some(existing) = handovers::proactive_for_conversation(conn, conversation)?
        && existing.status != ProactiveStatus::Failed
        && now - existing.created_at < IDEMPOTENCY_WINDOW
    {
        return Ok((existing, false));
    }
    let row = Proactive {
        id: uuid::Uuid::now_v7().to_string(),
        app_id: app_id.to_owned(),
        conversation_id: conversation,
        routing_attributes: json!(request.routing_attributes).to_string(),
        template: request.template.as_ref().map(serde_json::to_string).transpose()?,
        status: ProactiveStatus::Pending,
        template_message_id: None,
        error: None,
        created_at: now,
        updated_at: now,
    };
    handovers::replace_proactive(conn, &row)?;
    let start = start::StartProactive { proactive_id: row.id.clone() };
    jobs::enqueue(conn, &[start.to_job()?.for_app(app_id).ordered_by(crate::inbound::ordering_key(conversation))])?;
    Ok((row, true))
}

pub fn view(conn: &mut DbConn, row: &Proactive) -> Result<Value, DbError> {
    let conversation = conversations::find(conn, row.conversation_id)?;
    let template_status = match &row.template_message_id {
        Some(id) => conversations::outbound_by_provider_id(conn, &row.app_id, id)?.map(|m| m.status),
        None => None,
    };
    Ok(json!({
        "id": row.id,
        "status": row.status,
        "to": conversation.as_ref().map(|c| c.end_user_id.clone()),
        "salesforceConversationId": conversation.as_ref().and_then(|c| c.sf_conversation_id.clone()),
        "messagingSessionId": conversation.and_then(|c| c.messaging_session_id),
        "templateMessageId": row.template_message_id,
        "templateStatus": template_status,
        "error": row.error,
        "createdAt": row.created_at.and_utc().to_rfc3339(),
    }))
}
