//! The Interaction Service API (`/api/v1`): what a BYOC partner sends into Salesforce.

use actix_multipart::Multipart;
use actix_web::{HttpRequest, HttpResponse, web};
use futures_util::StreamExt;
use serde_json::{Value, json};

use super::{Acknowledgement, Attachment, Conversation, Entry, LoggedRequest, SalesforceSim, SfError, salesforce_id};

/// One file per request, at most 25 MB (error 10008), of these types (reference
/// `salesforce.md`, from the "File attachment" interaction type's documentation).
const MAX_ATTACHMENT: usize = 25 * 1024 * 1024;
const SUPPORTED_MIME: &[&str] = &[
    "image/jpeg",
    "image/gif",
    "image/bmp",
    "image/png",
    "application/pdf",
    "video/3gpp2",
    "audio/3gpp2",
    "video/3gpp",
    "audio/3gpp",
    "video/mpeg",
    "audio/mpeg",
    "video/mp4",
    "audio/mp4",
];

const END_USER_MESSAGE_TYPES: &[&str] = &["StaticContentMessage", "ChoicesResponseMessage", "FormResponseMessage"];

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::scope("/api/v1")
            .route("/interactions", web::post().to(interactions))
            .route("/conversation", web::post().to(conversation))
            .route("/acknowledgement", web::post().to(acknowledgement))
            .route("/messagingSession", web::post().to(messaging_session))
            .route("/capabilities", web::patch().to(capabilities))
            .route("/consent", web::patch().to(consent))
            .route("/conversationHistory", web::post().to(conversation_history)),
    );
}

/// Checks the headers every Interaction API call carries; returns the `RequestId`.
fn authorize(sim: &SalesforceSim, req: &HttpRequest) -> Result<String, SfError> {
    let header = |name: &str| req.headers().get(name).and_then(|v| v.to_str().ok()).map(str::trim);
    let token = Some(super::bearer(req)).filter(|t| !t.is_empty()).ok_or(SfError::new(10004))?;
    {
        let state = sim.state();
        let token = state.tokens.get(token).ok_or(SfError::new(10004))?;
        if token.expires_at <= std::time::Instant::now() {
            return Err(SfError::new(10004));
        }
        if !token.scopes.iter().any(|s| s == "interaction_api") {
            return Err(SfError::new(10003));
        }
    }
    let org = header("OrgId").ok_or_else(|| SfError::with(10016, "OrgId is missing."))?;
    if org.len() != 15 || org != sim.config.org_id {
        return Err(SfError::with(10016, "OrgId must be the org's 15-character id."));
    }
    let context =
        header("AuthorizationContext").ok_or_else(|| SfError::with(10016, "AuthorizationContext is missing."))?;
    if !sim.state().channels.iter().any(|c| c.channel_definition == context) {
        return Err(SfError::new(10005));
    }
    let request_id =
        header("RequestId").filter(|v| !v.is_empty()).ok_or_else(|| SfError::with(10016, "RequestId is missing."))?;
    Ok(request_id.to_owned())
}

/// Logs the exchange and turns the outcome into the response.
fn respond(sim: &SalesforceSim, req: &HttpRequest, body: Value, result: Result<(u16, Value), SfError>) -> HttpResponse {
    let headers = req
        .headers()
        .iter()
        .filter(|(k, _)| k.as_str() != "authorization")
        .map(|(k, v)| (k.to_string(), v.to_str().unwrap_or_default().to_owned()))
        .collect();
    let (status, code, response) = match result {
        Ok((status, value)) => (status, None, HttpResponse::build(status_code(status)).json(value)),
        Err(e) => {
            let response = actix_web::ResponseError::error_response(&e);
            (response.status().as_u16(), Some(e.code), response)
        }
    };
    sim.state().log.push(LoggedRequest {
        method: req.method().to_string(),
        path: req.path().to_owned(),
        status,
        code,
        headers,
        body,
    });
    response
}

fn status_code(status: u16) -> actix_web::http::StatusCode {
    actix_web::http::StatusCode::from_u16(status).unwrap_or(actix_web::http::StatusCode::OK)
}

/// Validates against the vendor schema when the specs are available.
fn check(sim: &SalesforceSim, component: &str, value: &Value, code: i64) -> Result<(), SfError> {
    check_by_path(sim, component, value, |_| code)
}

/// Like `check`, with the error code chosen by where the first violation is.
fn check_by_path(
    sim: &SalesforceSim,
    component: &str,
    value: &Value,
    code: impl Fn(&str) -> i64,
) -> Result<(), SfError> {
    let Some(specs) = &sim.specs else { return Ok(()) };
    specs.interaction.validate_component(component, value).map_err(|violations| {
        let first = violations
            .first()
            .cloned()
            .unwrap_or_else(|| crate::contract::Violation { path: String::new(), message: "invalid".into() });
        SfError::with(code(&first.path), first.to_string())
    })
}

struct Upload {
    json: Option<Value>,
    files: Vec<(Attachment, usize)>,
}

async fn read_multipart(mut multipart: Multipart) -> Result<Upload, SfError> {
    let mut upload = Upload { json: None, files: Vec::new() };
    while let Some(field) = multipart.next().await {
        let mut field = field.map_err(|e| SfError::with(10100, e.to_string()))?;
        let name = field.content_disposition().and_then(|d| d.get_name()).unwrap_or_default().to_owned();
        let file_name = field.content_disposition().and_then(|d| d.get_filename()).unwrap_or_default().to_owned();
        let mime = field.content_type().map(|m| m.essence_str().to_owned()).unwrap_or_default();
        let mut bytes = Vec::new();
        let mut size = 0usize;
        while let Some(chunk) = field.next().await {
            let chunk = chunk.map_err(|e| SfError::with(10100, e.to_string()))?;
            size += chunk.len();
            if size > MAX_ATTACHMENT {
                return Err(SfError::new(10008));
            }
            if name == "json" {
                bytes.extend_from_slice(&chunk);
            }
        }
        match name.as_str() {
            "json" => {
                let value = serde_json::from_slice(&bytes).map_err(|e| SfError::with(10045, e.to_string()))?;
                upload.json = Some(value);
            }
            "attachments" => upload.files.push((Attachment { file_name, mime_type: mime, size }, size)),
            other => return Err(SfError::with(10045, format!("Unexpected part {other:?}."))),
        }
    }
    Ok(upload)
}

async fn interactions(sim: web::Data<SalesforceSim>, req: HttpRequest, multipart: Multipart) -> HttpResponse {
    let result = async {
        let request_id = authorize(&sim, &req)?;
        let upload = read_multipart(multipart).await?;
        let json = upload.json.clone().ok_or(SfError::new(10100))?;
        Ok::<_, SfError>((request_id, upload, json))
    }
    .await;
    let (request_id, upload, json) = match result {
        Ok(parts) => parts,
        Err(e) => return respond(&sim, &req, Value::Null, Err(e)),
    };
    let outcome = accept_interaction(&sim, &request_id, &upload, &json, &req);
    respond(&sim, &req, json, outcome)
}

fn accept_interaction(
    sim: &SalesforceSim,
    request_id: &str,
    upload: &Upload,
    json: &Value,
    req: &HttpRequest,
) -> Result<(u16, Value), SfError> {
    // End users may send only some message types, whatever else is wrong with the entry.
    let kind = json.pointer("/interactions/0/payload/abstractMessage/messageType").and_then(Value::as_str);
    if kind.is_some_and(|k| !END_USER_MESSAGE_TYPES.contains(&k)) {
        return Err(SfError::new(10062));
    }
    // One check of the whole document, subtypes at every depth included; a problem inside the
    // entry is a bad message entry (10045), anything else a bad interaction list (10029).
    check_by_path(sim, "InteractionRequestJson", json, |path| {
        if path.starts_with("interactions[0].payload") { 10045 } else { 10029 }
    })?;
    let to = json.get("to").and_then(Value::as_str).unwrap_or_default();
    let from = json.get("from").and_then(Value::as_str).unwrap_or_default();
    if from.trim().is_empty() {
        return Err(SfError::new(10028));
    }
    let context = req.headers().get("AuthorizationContext").and_then(|v| v.to_str().ok()).unwrap_or_default();
    check_channel(sim, to, context)?;
    let interactions =
        json.get("interactions").and_then(Value::as_array).filter(|a| a.len() == 1).ok_or(SfError::new(10029))?;
    let interaction = interactions.first().ok_or(SfError::new(10029))?;

    let (entry_id, entry_type, attachment) = match interaction.get("interactionType").and_then(Value::as_str) {
        Some("AttachmentInteraction") => {
            let [(file, size)] = upload.files.as_slice() else { return Err(SfError::new(10011)) };
            let declared = interaction.get("contentLength").and_then(Value::as_u64).unwrap_or_default();
            if declared != *size as u64 {
                return Err(SfError::new(10051));
            }
            if !SUPPORTED_MIME.contains(&file.mime_type.as_str()) {
                return Err(SfError::with(10095, format!("({})", file.mime_type)));
            }
            let id = interaction.get("id").and_then(Value::as_str).unwrap_or_default().to_owned();
            (id, "Message".to_owned(), Some(file.clone()))
        }
        _ => {
            if !upload.files.is_empty() {
                return Err(SfError::new(10011));
            }
            let payload = interaction.get("payload").ok_or(SfError::new(10045))?;
            let id = payload.get("id").and_then(Value::as_str).unwrap_or_default();
            let entry_type = payload.get("entryType").and_then(Value::as_str).unwrap_or_default();
            if entry_type == "Message" {
                let message = payload.get("abstractMessage").ok_or(SfError::new(10045))?;
                let message_id = message.get("id").and_then(Value::as_str).unwrap_or_default();
                if id.is_empty() || message_id.is_empty() {
                    return Err(SfError::new(10059));
                }
                if id != message_id {
                    return Err(SfError::new(10060));
                }
            }
            (id.to_owned(), entry_type.to_owned(), None)
        }
    };
    let routing = json.get("routingAttributes").cloned().unwrap_or(Value::Null);
    let entry = Entry {
        id: entry_id,
        entry_type,
        sender_role: "EndUser".into(),
        payload: interaction.clone(),
        attachment,
        request_id: request_id.to_owned(),
    };
    let (conversation, session) = sim.append(to, from, routing, Some(entry));
    Ok((202, json!({ "conversationIdentifier": conversation, "workItemIds": [session], "success": true })))
}

fn check_channel(sim: &SalesforceSim, address: &str, context: &str) -> Result<(), SfError> {
    let state = sim.state();
    let channel = state.channels.iter().find(|c| c.address_identifier == address).ok_or(SfError::new(10017))?;
    if channel.channel_definition != context {
        return Err(SfError::new(10001));
    }
    if !channel.active {
        return Err(SfError::new(10031));
    }
    Ok(())
}

impl SalesforceSim {
    /// Finds or creates the conversation of (channel, end user), opening a new messaging
    /// session when none is live, and appends `entry`. Returns (conversation, session) ids.
    pub(crate) fn append(
        &self,
        channel: &str,
        end_user: &str,
        routing: Value,
        entry: Option<Entry>,
    ) -> (String, String) {
        let mut state = self.state();
        let next_session = state.conversations.len() + 1;
        let index = match state
            .conversations
            .iter()
            .position(|c| c.channel_address_identifier == channel && c.end_user == end_user)
        {
            Some(i) => i,
            None => {
                state.conversations.push(Conversation {
                    identifier: uuid::Uuid::new_v4().to_string(),
                    channel_address_identifier: channel.to_owned(),
                    end_user: end_user.to_owned(),
                    messaging_session_id: salesforce_id("0Mw", next_session),
                    session_status: "Waiting".into(),
                    routing_attributes: routing,
                    entries: Vec::new(),
                    acknowledgements: Vec::new(),
                    repeated_posts: 0,
                });
                state.conversations.len() - 1
            }
        };
        let total_sessions: usize = state.conversations.len() + state.log.len();
        let Some(conversation) = state.conversations.get_mut(index) else {
            return (String::new(), String::new());
        };
        if conversation.session_status == "Ended" {
            // A message after the end opens a new session in the same conversation.
            conversation.messaging_session_id = salesforce_id("0Mw", total_sessions + 1);
            conversation.session_status = "Waiting".into();
        }
        if let Some(entry) = entry {
            // The same entry id again is the same entry: a partner retrying after a timeout
            // must not show the message twice. (Assumed: Salesforce documents entry ids as
            // references to an entry but says nothing of repeats.)
            if conversation.entries.iter().any(|e| e.id == entry.id && !entry.id.is_empty()) {
                conversation.repeated_posts += 1;
            } else {
                if entry.sender_role == "EndUser" {
                    self.tap.call(end_user, &entry.payload);
                }
                conversation.entries.push(entry);
            }
        }
        (conversation.identifier.clone(), conversation.messaging_session_id.clone())
    }
}

async fn conversation(sim: web::Data<SalesforceSim>, req: HttpRequest, body: web::Bytes) -> HttpResponse {
    json_call(&sim, &req, &body, |json| {
        check(&sim, "PostConversationRequest", json, 10053)?;
        let channel = json.get("channelAddressIdentifier").and_then(Value::as_str).unwrap_or_default();
        if channel.is_empty() {
            return Err(SfError::new(10052));
        }
        let context = req.headers().get("AuthorizationContext").and_then(|v| v.to_str().ok()).unwrap_or_default();
        check_channel(&sim, channel, context).map_err(|e| if e.code == 10017 { SfError::new(10052) } else { e })?;
        let subject = json.pointer("/participants/0/subject").and_then(Value::as_str).unwrap_or_default();
        if subject.trim().is_empty() {
            return Err(SfError::new(10054));
        }
        let routing = json.get("routingAttributes").cloned().unwrap_or(Value::Null);
        let (conversation, session) = sim.append(channel, subject, routing, None);
        Ok((202, json!({ "conversationIdentifier": conversation, "messagingSessionId": session, "success": true })))
    })
}

/// Imports earlier entries of a conversation (at most 25 per call, 3 participants, none
/// older than 24 hours) into the end user's conversation, when the org allows it.
async fn conversation_history(sim: web::Data<SalesforceSim>, req: HttpRequest, body: web::Bytes) -> HttpResponse {
    json_call(&sim, &req, &body, |json| {
        if !sim.config.history_api {
            return Err(SfError::new(10057));
        }
        let context_type = req.headers().get("AuthorizationContextType").and_then(|v| v.to_str().ok());
        if context_type != Some("ConversationChannelDefinition") {
            return Err(SfError::with(10016, "AuthorizationContextType is required."));
        }
        check(&sim, "AddConversationHistoryRequest", json, 10045)?;
        let channel = json.get("channelAddressIdentifier").and_then(Value::as_str).unwrap_or_default();
        let context = req.headers().get("AuthorizationContext").and_then(|v| v.to_str().ok()).unwrap_or_default();
        check_channel(&sim, channel, context).map_err(|e| if e.code == 10017 { SfError::new(10052) } else { e })?;
        let participants = json.get("conversationParticipants").and_then(Value::as_array).cloned().unwrap_or_default();
        let end_user = participants
            .iter()
            .find(|p| p.pointer("/participant/role").and_then(Value::as_str) == Some("EndUser"))
            .and_then(|p| p.pointer("/participant/subject").and_then(Value::as_str))
            .ok_or_else(|| SfError::with(10053, "An EndUser participant is required."))?
            .to_owned();
        let oldest = chrono::Utc::now().timestamp_millis() - 24 * 3600 * 1000;
        let mut entries = Vec::new();
        for e in json.get("conversationEntries").and_then(Value::as_array).into_iter().flatten() {
            let at = e.get("clientTimestamp").and_then(Value::as_i64).unwrap_or_default();
            if at < oldest {
                return Err(SfError::new(10046));
            }
            let role = e.pointer("/sender/role").and_then(Value::as_str).unwrap_or_default();
            if !participants.iter().any(|p| p.get("participant") == e.get("sender")) {
                return Err(SfError::with(10045, format!("The sender ({role}) is not a conversation participant.")));
            }
            entries.push(Entry {
                id: e.pointer("/entryPayload/id").and_then(Value::as_str).unwrap_or_default().to_owned(),
                entry_type: e.pointer("/entryPayload/entryType").and_then(Value::as_str).unwrap_or_default().to_owned(),
                sender_role: role.to_owned(),
                payload: e.clone(),
                attachment: None,
                request_id: String::new(),
            });
        }
        let (mut conversation, mut session) = (String::new(), String::new());
        for entry in entries {
            (conversation, session) = sim.append(channel, &end_user, Value::Null, Some(entry));
        }
        Ok((202, json!({ "success": true, "conversationIdentifier": conversation, "messagingSessionId": session })))
    })
}

async fn acknowledgement(sim: web::Data<SalesforceSim>, req: HttpRequest, body: web::Bytes) -> HttpResponse {
    json_call(&sim, &req, &body, |json| {
        check(&sim, "AcknowledgementRequest", json, 10045)?;
        let id = json.get("conversationIdentifier").and_then(Value::as_str).unwrap_or_default();
        let acks: Vec<Acknowledgement> = json
            .get("acknowledgements")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .map(|a| Acknowledgement {
                acknowledgement_type: a.get("acknowledgementType").and_then(Value::as_str).unwrap_or_default().into(),
                acknowledged_entry_id: a
                    .get("acknowledgedConversationEntryIdentifier")
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .into(),
                timestamp: a.get("acknowledgementTimestamp").and_then(Value::as_i64).unwrap_or_default(),
            })
            .collect();
        let mut state = sim.state();
        let conversation = state
            .conversations
            .iter_mut()
            .find(|c| c.identifier == id)
            .ok_or_else(|| SfError::with(10045, "Unknown conversationIdentifier."))?;
        conversation.acknowledgements.extend(acks);
        Ok((200, json!({ "success": true })))
    })
}

async fn messaging_session(sim: web::Data<SalesforceSim>, req: HttpRequest, body: web::Bytes) -> HttpResponse {
    json_call(&sim, &req, &body, |json| {
        check(&sim, "PostMessagingSessionRequest", json, 10045)?;
        let operation = json.get("operation").and_then(Value::as_str).unwrap_or_default();
        if operation == "Inactivate" && json.get("sessionId").and_then(Value::as_str).is_none_or(str::is_empty) {
            return Err(SfError::new(10106));
        }
        let id = json.get("conversationIdentifier").and_then(Value::as_str).unwrap_or_default();
        let mut state = sim.state();
        let Some(conversation) = state.conversations.iter_mut().find(|c| c.identifier == id) else {
            return Ok((200, json!({ "success": false, "errorReason": "ACTIVE_CONVERSATION_NOT_FOUND" })));
        };
        conversation.session_status = if operation == "End" { "Ended" } else { "Inactive" }.into();
        Ok((200, json!({ "success": true })))
    })
}

async fn capabilities(sim: web::Data<SalesforceSim>, req: HttpRequest, body: web::Bytes) -> HttpResponse {
    json_call(&sim, &req, &body, |json| {
        check(&sim, "CapabilitiesRequest", json, 10045)?;
        sim.state().capabilities.push(json.clone());
        Ok((200, json!({ "success": true })))
    })
}

/// `PATCH /consent`: taken only for a channel whose definition gives consent to the
/// partner; BYOC Messaging keeps it in Salesforce (`consentOwner = Salesforce`), and then
/// the answer is the vendor's 10022.
async fn consent(sim: web::Data<SalesforceSim>, req: HttpRequest, body: web::Bytes) -> HttpResponse {
    json_call(&sim, &req, &body, |json| {
        check(&sim, "ConsentRequest", json, 10045)?;
        let channel = json["channelAddressIdentifier"].as_str().unwrap_or_default();
        let context = req.headers().get("AuthorizationContext").and_then(|v| v.to_str().ok()).unwrap_or_default();
        check_channel(&sim, channel, context)?;
        if sim.consent_owner(context) != "Partner" {
            return Err(SfError::new(10022));
        }
        sim.state().consents.push(json.clone());
        Ok((200, json!({ "success": true })))
    })
}

/// The shape every JSON endpoint shares: parse, authorise, act, log.
fn json_call(
    sim: &SalesforceSim,
    req: &HttpRequest,
    body: &[u8],
    act: impl FnOnce(&Value) -> Result<(u16, Value), SfError>,
) -> HttpResponse {
    let (json, outcome) = match parse_json(body) {
        Ok(json) => {
            let outcome = authorize(sim, req).and_then(|_| act(&json));
            (json, outcome)
        }
        Err(e) => (Value::Null, Err(e)),
    };
    respond(sim, req, json, outcome)
}

fn parse_json(body: &[u8]) -> Result<Value, SfError> {
    if body.is_empty() {
        return Err(SfError::new(10100));
    }
    serde_json::from_slice(body).map_err(|e| SfError::with(10100, e.to_string()))
}
