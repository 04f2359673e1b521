//! Chatbot handover: an Infobip chatbot passes a user to a human. The call is stored with
//! its import job and answered at once; the job ([`import`]) reads the bot conversation
//! from Infobip and puts it into the user's Salesforce session before anything the user
//! writes next (the job holds the conversation's place in the outbox).

pub mod api;
pub mod import;
pub mod transcript;

use std::collections::BTreeMap;

use serde_json::{Value, json};

use crate::db::handovers::{self, Handover};
use crate::db::jobs;
use crate::db::{DbConn, DbError, HandoverStatus, MessageStatus, conversations};
use crate::directory::ActiveApp;
use crate::worker::BackgroundJob;

/// A validated handover call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HandoverRequest {
    pub conversation_id: String,
    /// The end user's WhatsApp id (digits of the phone number, or a business-scoped id).
    pub end_user: String,
    /// The app's WhatsApp number the bot talked through.
    pub business_number: String,
    pub routing_attributes: BTreeMap<String, String>,
}

/// Why a handover call was refused: the field and what is wrong with it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {problem}")]
pub struct BadRequest {
    pub field: &'static str,
    pub problem: String,
}

pub(crate) fn bad(field: &'static str, problem: impl Into<String>) -> BadRequest {
    BadRequest { field, problem: problem.into() }
}

/// A string field. A number is refused like any other type: the schema says string, and a
/// number read as text may already have lost digits (a phone number beyond 2^53).
pub(crate) fn string_field(body: &Value, field: &'static str) -> Result<Option<String>, BadRequest> {
    match body.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.trim().to_owned())),
        Some(_) => Err(bad(field, "must be a string")),
    }
}

/// A WhatsApp user id: a phone number in international format (a leading `+` is dropped,
/// as Infobip writes numbers without it) or a business-scoped user id.
pub fn whatsapp_id(field: &'static str, value: &str) -> Result<String, BadRequest> {
    let v = value.trim();
    let digits = v.strip_prefix('+').unwrap_or(v);
    if !digits.is_empty() && digits.chars().all(|c| c.is_ascii_digit()) {
        return if (6..=15).contains(&digits.len()) {
            Ok(digits.to_owned())
        } else {
            Err(bad(field, "must be a phone number in international format (6 to 15 digits)"))
        };
    }
    let id_like = (3..=64).contains(&v.len()) && v.chars().all(|c| c.is_ascii_alphanumeric() || ".-_".contains(c));
    if id_like { Ok(v.to_owned()) } else { Err(bad(field, "must be a WhatsApp phone number or user id")) }
}

/// Routing attributes: an object of short values, passed to Salesforce as strings.
pub fn routing_attributes(body: &Value) -> Result<BTreeMap<String, String>, BadRequest> {
    const FIELD: &str = "routingAttributes";
    let Some(value) = body.get(FIELD).filter(|v| !v.is_null()) else { return Ok(BTreeMap::new()) };
    let object = value.as_object().ok_or_else(|| bad(FIELD, "must be an object of names to values"))?;
    if object.len() > 50 {
        return Err(bad(FIELD, "must have at most 50 attributes"));
    }
    let mut attributes = BTreeMap::new();
    for (name, v) in object {
        if name.trim().is_empty() || name.len() > 80 {
            return Err(bad(FIELD, "attribute names must have 1 to 80 characters"));
        }
        let text = match v {
            Value::String(s) => s.clone(),
            Value::Number(n) => n.to_string(),
            Value::Bool(b) => b.to_string(),
            _ => return Err(bad(FIELD, format!("{name} must be a string, number or boolean"))),
        };
        if text.chars().count() > 1000 {
            return Err(bad(FIELD, format!("{name} is longer than 1000 characters")));
        }
        attributes.insert(name.clone(), text);
    }
    Ok(attributes)
}

/// The business number: named in the call, or the app's only sender.
pub fn business_number(app: &ActiveApp, given: Option<String>) -> Result<String, BadRequest> {
    const FIELD: &str = "businessNumber";
    match given {
        Some(n) => {
            let n = whatsapp_id(FIELD, &n)?;
            if app.senders.contains_key(&n) { Ok(n) } else { Err(bad(FIELD, "is not a WhatsApp sender of this app")) }
        }
        None => {
            let mut senders = app.senders.keys();
            match (senders.next(), senders.next()) {
                (Some(only), None) => Ok(only.clone()),
                (None, _) => Err(bad(FIELD, "the app has no WhatsApp sender configured")),
                _ => Err(bad(FIELD, "is required: the app has several WhatsApp senders")),
            }
        }
    }
}

impl HandoverRequest {
    pub fn parse(app: &ActiveApp, body: &[u8]) -> Result<Self, BadRequest> {
        let body: Value = serde_json::from_slice(body).map_err(|e| bad("body", format!("is not JSON: {e}")))?;
        if !body.is_object() {
            return Err(bad("body", "must be a JSON object"));
        }
        let conversation_id = string_field(&body, "conversationId")?
            .filter(|s| !s.is_empty())
            .ok_or_else(|| bad("conversationId", "is required"))?;
        if conversation_id.len() > 128 || conversation_id.chars().any(char::is_control) {
            return Err(bad("conversationId", "must be at most 128 printable characters"));
        }
        let sender = string_field(&body, "senderNumber")?
            .filter(|s| !s.is_empty())
            .ok_or_else(|| bad("senderNumber", "is required"))?;
        Ok(Self {
            conversation_id,
            end_user: whatsapp_id("senderNumber", &sender)?,
            business_number: business_number(app, string_field(&body, "businessNumber")?)?,
            routing_attributes: routing_attributes(&body)?,
        })
    }
}

/// Stores the handover and its import job (call inside one write transaction). A repeated
/// call for the same Infobip conversation finds the first one: `false` means nothing new.
pub fn accept(conn: &mut DbConn, app_id: &str, request: &HandoverRequest) -> Result<(Handover, bool), DbError> {
    accept_with_transcript(conn, app_id, request, None)
}

/// [`accept`], with the transcript carried by the request (a bot other than Infobip's).
pub fn accept_with_transcript(
    conn: &mut DbConn,
    app_id: &str,
    request: &HandoverRequest,
    transcript: Option<String>,
) -> Result<(Handover, bool), DbError> {
    let now = crate::db::now();
    let conversation = conversations::upsert(conn, app_id, &request.end_user, &request.business_number, now)?;
    let new = Handover {
        id: uuid::Uuid::now_v7().to_string(),
        app_id: app_id.to_owned(),
        infobip_conversation_id: request.conversation_id.clone(),
        conversation_id: conversation,
        routing_attributes: json!(request.routing_attributes).to_string(),
        status: HandoverStatus::Accepted,
        method: None,
        transcript_messages: 0,
        imported_messages: 0,
        error: None,
        created_at: now,
        updated_at: now,
        transcript,
    };
    let (row, created) = handovers::insert_or_find(conn, &new)?;
    if created {
        // Ordered with the conversation's messages: whatever the user writes from now on
        // is delivered after the transcript.
        let import = import::ImportHandover { handover_id: row.id.clone() };
        jobs::enqueue(
            conn,
            &[import.to_job()?.for_app(app_id).ordered_by(crate::inbound::ordering_key(conversation))],
        )?;
    }
    Ok((row, created))
}

/// What a handover looks like to the chatbot and to later lookups.
pub fn view(conn: &mut DbConn, handover: &Handover) -> Result<Value, DbError> {
    let conversation = conversations::find(conn, handover.conversation_id)?;
    let transcript = handovers::transcript(conn, handover)?;
    let turns = || transcript.iter().filter(|m| !import::is_frame(&m.provider_message_id));
    let imported = turns().filter(|m| m.status == MessageStatus::Delivered).count();
    let failed = turns().filter(|m| m.status == MessageStatus::Failed).count();
    Ok(json!({
        "handoverId": handover.id,
        "conversationId": handover.infobip_conversation_id,
        "importStatus": handover.status,
        "method": handover.method,
        "transcriptMessages": handover.transcript_messages,
        "importedMessages": imported.max(handover.imported_messages.max(0) as usize),
        "failedMessages": failed,
        "salesforceConversationId": conversation.as_ref().and_then(|c| c.sf_conversation_id.clone()),
        "messagingSessionId": conversation.and_then(|c| c.messaging_session_id),
        "error": handover.error,
    }))
}
