//! Infobip's HTTP API as the bridge uses it, with the real authorisation header, scopes,
//! request validation against the vendor's OpenAPI document, and both error envelopes.

use std::time::{Duration, Instant};

use actix_web::{HttpRequest, HttpResponse, web};
use serde::Deserialize;
use serde_json::{Map, Value, json};

use super::{InfobipSim, SentMessage};

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/whatsapp/1/message/{kind:.+}", web::post().to(send))
        .route("/whatsapp/1/events", web::post().to(events))
        .route("/whatsapp/1/senders/{sender}/message/{message_id}/read", web::post().to(mark_read))
        .route("/whatsapp/2/senders/{sender}/templates", web::get().to(templates))
        .route("/whatsapp/1/senders/{sender}/media/{media}", web::get().to(media))
        .route("/numbers/1/numbers", web::get().to(numbers))
        .route("/account/1/balance", web::get().to(balance))
        .route("/ccaas/1/conversations/{id}/messages", web::get().to(conversation_messages))
        .route("/__sim/cdn/{token}", web::get().to(cdn))
        .route("/__sim/state", web::get().to(inspect));
}

/// The legacy envelope the WhatsApp endpoints answer errors with.
pub fn legacy_error(message_id: &str, text: &str, validation: Option<Map<String, Value>>) -> Value {
    let mut exception = json!({ "messageId": message_id, "text": text });
    if let Some(v) = validation {
        exception["validationErrors"] = Value::Object(v);
    }
    json!({ "requestError": { "serviceException": exception } })
}

fn refuse(
    sim: &InfobipSim,
    status: u16,
    message_id: &str,
    text: &str,
    validation: Option<Map<String, Value>>,
) -> HttpResponse {
    sim.state().refused += 1;
    let status = actix_web::http::StatusCode::from_u16(status).unwrap_or(actix_web::http::StatusCode::BAD_REQUEST);
    HttpResponse::build(status).json(legacy_error(message_id, text, validation))
}

/// `Authorization: App <key>` with one of the operation's scopes (`x-scopes`).
fn authorize(sim: &InfobipSim, req: &HttpRequest, method: &str, spec_path: &str) -> Result<(), HttpResponse> {
    let key = req
        .headers()
        .get("Authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("App "))
        .map(str::trim);
    let scopes = key.and_then(|k| sim.state().keys.get(k).cloned());
    let Some(scopes) = scopes else {
        return Err(refuse(sim, 401, "UNAUTHORIZED", "Invalid login details", None));
    };
    let needed = sim.specs.as_ref().map(|s| spec_for(s, spec_path).scopes(method, spec_path)).unwrap_or_default();
    if !needed.is_empty() && !needed.iter().any(|n| scopes.contains(n)) {
        return Err(refuse(sim, 403, "FORBIDDEN", "Unauthorized access", None));
    }
    Ok(())
}

fn spec_for<'a>(specs: &'a crate::contract::Specs, path: &str) -> &'a crate::contract::OpenApi {
    if path.starts_with("/ccaas") {
        &specs.conversations
    } else if path.starts_with("/numbers") {
        &specs.numbers
    } else if path.starts_with("/account") {
        &specs.account
    } else {
        &specs.whatsapp
    }
}

fn validation_errors(violations: &[crate::contract::Violation]) -> Map<String, Value> {
    let mut map = Map::new();
    for v in violations {
        let entry = map.entry(v.path.clone()).or_insert_with(|| Value::Array(Vec::new()));
        if let Value::Array(items) = entry {
            items.push(Value::String(v.message.clone()));
        }
    }
    map
}

async fn send(sim: web::Data<InfobipSim>, req: HttpRequest, kind: web::Path<String>, body: web::Bytes) -> HttpResponse {
    let kind = kind.into_inner();
    let spec_path = format!("/whatsapp/1/message/{kind}");
    if sim.specs.as_ref().is_some_and(|s| s.whatsapp.operation("post", &spec_path).is_none()) {
        return refuse(&sim, 404, "NOT_FOUND", "Not found", None);
    }
    if let Err(response) = authorize(&sim, &req, "post", &spec_path) {
        return response;
    }
    let Ok(body) = serde_json::from_slice::<Value>(&body) else {
        return refuse(&sim, 400, "BAD_REQUEST", "Bad request", None);
    };
    if let Some(specs) = &sim.specs
        && let Err(violations) = specs.whatsapp.validate_request("post", &spec_path, "application/json", &body)
    {
        return refuse(&sim, 400, "BAD_REQUEST", "Bad request", Some(validation_errors(&violations)));
    }
    let messages: Vec<Value> = if kind == "template" {
        body.get("messages").and_then(Value::as_array).cloned().unwrap_or_default()
    } else {
        vec![body.clone()]
    };
    // Check every message before accepting any: a refused request sends nothing.
    for (i, message) in messages.iter().enumerate() {
        let field = |name: &str| if kind == "template" { format!("messages[{i}].{name}") } else { name.to_owned() };
        let from = message.get("from").and_then(Value::as_str).unwrap_or_default();
        if !sim.state().senders.iter().any(|s| s == from) {
            let mut v = Map::new();
            v.insert(field("from"), json!(["sender is not registered for WhatsApp on this account"]));
            return refuse(&sim, 400, "BAD_REQUEST", "Bad request", Some(v));
        }
        if kind == "template"
            && let Err(problem) = check_template(&sim, from, message)
        {
            let mut v = Map::new();
            v.insert(field("content"), json!([problem]));
            return refuse(&sim, 400, "BAD_REQUEST", "Bad request", Some(v));
        }
        if !sim.take_send_slot(from) {
            sim.state().refused += 1;
            return HttpResponse::TooManyRequests().insert_header(("Retry-After", "1")).json(legacy_error(
                "TOO_MANY_REQUESTS",
                "Too many requests",
                None,
            ));
        }
    }
    let mut infos = Vec::new();
    for message in messages {
        let message_id = message
            .get("messageId")
            .and_then(Value::as_str)
            .map(str::to_owned)
            .unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
        let to = message.get("to").and_then(Value::as_str).unwrap_or_default().to_owned();
        infos.push(json!({
            "to": to,
            "messageCount": 1,
            "messageId": message_id,
            "status": { "groupId": 1, "groupName": "PENDING", "id": 7, "name": "PENDING_ENROUTE",
                        "description": "Message sent to next instance" }
        }));
        let from = message.get("from").and_then(Value::as_str).unwrap_or_default().to_owned();
        let line = super::phone::ChatLine::from_business(&to, &message_id, &kind, message.get("content"));
        sim.tap.call(&to, &message);
        let mut state = sim.state();
        state.chat.push(line);
        state.sent.push(SentMessage { kind: kind.clone(), message_id, from, to, body: message });
    }
    if kind == "template" {
        let mut response = json!({ "messages": infos });
        if infos_len(&response) > 1 {
            response["bulkId"] =
                json!(body.get("bulkId").cloned().unwrap_or_else(|| json!(uuid::Uuid::new_v4().to_string())));
        }
        HttpResponse::Ok().json(response)
    } else {
        HttpResponse::Ok().json(infos.into_iter().next().unwrap_or(Value::Null))
    }
}

fn infos_len(response: &Value) -> usize {
    response.get("messages").and_then(Value::as_array).map_or(0, Vec::len)
}

/// A template send must name an approved template of the sender, in its language, with one
/// value per body placeholder.
fn check_template(sim: &InfobipSim, from: &str, message: &Value) -> Result<(), String> {
    let name = message.pointer("/content/templateName").and_then(Value::as_str).unwrap_or_default();
    let language = message.pointer("/content/language").and_then(Value::as_str).unwrap_or_default();
    let state = sim.state();
    let template = state
        .templates
        .get(from)
        .into_iter()
        .flatten()
        .find(|t| {
            t.get("name").and_then(Value::as_str) == Some(name)
                && t.get("language").and_then(Value::as_str) == Some(language)
        })
        .ok_or_else(|| format!("template {name:?} in language {language:?} does not exist for this sender"))?;
    if template.get("status").and_then(Value::as_str) != Some("APPROVED") {
        return Err(format!("template {name:?} is not approved"));
    }
    let expected = template.pointer("/structure/body/text").and_then(Value::as_str).map_or(0, count_placeholders);
    let given =
        message.pointer("/content/templateData/body/placeholders").and_then(Value::as_array).map_or(0, Vec::len);
    if expected != given {
        return Err(format!("template {name:?} needs {expected} body placeholders, got {given}"));
    }
    Ok(())
}

/// Counts the distinct `{{n}}` placeholders in a template text.
pub fn count_placeholders(text: &str) -> usize {
    let mut seen = std::collections::BTreeSet::new();
    let mut rest = text;
    while let Some(start) = rest.find("{{") {
        let after = &rest[start + 2..];
        match after.find("}}") {
            Some(end) => {
                if let Ok(n) = after[..end].trim().parse::<u32>() {
                    seen.insert(n);
                }
                rest = &after[end + 2..];
            }
            None => break,
        }
    }
    seen.len()
}

impl InfobipSim {
    /// Takes one send from the sender's per-second budget; false when it is used up.
    fn take_send_slot(&self, sender: &str) -> bool {
        let limit = self.config().sends_per_second_per_sender;
        let now = Instant::now();
        let mut state = self.state();
        let recent = state.recent_sends.entry(sender.to_owned()).or_default();
        recent.retain(|t| now.duration_since(*t) < Duration::from_secs(1));
        if recent.len() >= limit {
            return false;
        }
        recent.push(now);
        true
    }
}

/// `POST /whatsapp/1/events`: typing indicators and other ephemeral events.
async fn events(sim: web::Data<InfobipSim>, req: HttpRequest, body: web::Bytes) -> HttpResponse {
    let spec_path = "/whatsapp/1/events";
    if let Err(response) = authorize(&sim, &req, "post", spec_path) {
        return response;
    }
    let Ok(body) = serde_json::from_slice::<Value>(&body) else {
        return refuse(&sim, 400, "BAD_REQUEST", "Bad request", None);
    };
    if let Some(specs) = &sim.specs
        && let Err(violations) = specs.whatsapp.validate_request("post", spec_path, "application/json", &body)
    {
        return refuse(&sim, 400, "BAD_REQUEST", "Bad request", Some(validation_errors(&violations)));
    }
    let mut messages = Vec::new();
    for event in body.get("events").and_then(Value::as_array).into_iter().flatten() {
        let to = event.pointer("/destinations/0/to").and_then(Value::as_str).unwrap_or_default().to_owned();
        let kind = event.pointer("/content/type").and_then(Value::as_str).unwrap_or_default().to_owned();
        messages.push(json!({ "messageId": uuid::Uuid::new_v4().to_string(), "destination": to,
            "status": { "groupId": 1, "groupName": "PENDING", "id": 26, "name": "PENDING_ACCEPTED", "description": "Message sent to next instance" } }));
        sim.state().events.push((to, kind));
    }
    HttpResponse::Ok().json(json!({ "bulkId": uuid::Uuid::new_v4().to_string(), "messages": messages }))
}

/// Mark as read: 204 for an inbound message of the sender's, 404 for any other id.
async fn mark_read(sim: web::Data<InfobipSim>, req: HttpRequest, path: web::Path<(String, String)>) -> HttpResponse {
    if let Err(response) = authorize(&sim, &req, "post", "/whatsapp/1/senders/{sender}/message/{messageId}/read") {
        return response;
    }
    let (sender, message_id) = path.into_inner();
    let mut state = sim.state();
    if !state.senders.contains(&sender) || !state.inbound_ids.contains(&message_id) {
        drop(state);
        return refuse(&sim, 404, "NOT_FOUND", "Message not found", None);
    }
    for line in state.chat.iter_mut().filter(|l| l.mine && l.message_id.as_deref() == Some(message_id.as_str())) {
        line.read = true;
    }
    state.read_marks.push((sender, message_id));
    HttpResponse::NoContent().finish()
}

async fn templates(sim: web::Data<InfobipSim>, req: HttpRequest, sender: web::Path<String>) -> HttpResponse {
    if let Err(r) = authorize(&sim, &req, "get", "/whatsapp/2/senders/{sender}/templates") {
        return r;
    }
    let mut state = sim.state();
    if !state.senders.contains(&sender) {
        drop(state);
        return refuse(&sim, 404, "NOT_FOUND", "Sender not found", None);
    }
    state.template_reads += 1;
    let templates = state.templates.get(sender.as_str()).cloned().unwrap_or_default();
    HttpResponse::Ok().json(json!({ "templates": templates }))
}

async fn numbers(sim: web::Data<InfobipSim>, req: HttpRequest) -> HttpResponse {
    if let Err(r) = authorize(&sim, &req, "get", "/numbers/1/numbers") {
        return r;
    }
    let numbers: Vec<Value> = sim
        .state()
        .senders
        .iter()
        .enumerate()
        .map(|(i, n)| {
            json!({ "numberKey": format!("NK{i:06}"), "number": n, "country": "GB", "countryName": "United Kingdom",
                    "type": "WHATSAPP", "capabilities": ["WHATSAPP"], "shared": false, "keywords": [] })
        })
        .collect();
    HttpResponse::Ok().json(json!({ "numberCount": numbers.len(), "numbers": numbers }))
}

async fn balance(sim: web::Data<InfobipSim>, req: HttpRequest) -> HttpResponse {
    if let Err(r) = authorize(&sim, &req, "get", "/account/1/balance") {
        return r;
    }
    HttpResponse::Ok().json(json!({ "balance": sim.config().balance, "currency": "EUR" }))
}

#[derive(Debug, Deserialize)]
struct PageQuery {
    limit: Option<usize>,
    page: Option<usize>,
    #[serde(rename = "orderBy")]
    order_by: Option<String>,
}

async fn conversation_messages(
    sim: web::Data<InfobipSim>,
    req: HttpRequest,
    id: web::Path<String>,
    query: web::Query<PageQuery>,
) -> HttpResponse {
    if let Err(r) = authorize(&sim, &req, "get", "/ccaas/1/conversations/{conversationId}/messages") {
        return r;
    }
    let limit = query.limit.unwrap_or(10);
    if !(1..=999).contains(&limit) {
        return HttpResponse::BadRequest().json(json!({
            "errorCode": "E400", "description": "Request cannot be processed.",
            "action": "Check the syntax, violations and adjust the request.",
            "violations": [{ "property": "limit", "violation": "must be between 1 and 999" }]
        }));
    }
    let page = query.page.unwrap_or(0);
    sim.state().conversation_reads.push((id.to_string(), page, limit));
    let order_by = query.order_by.clone().unwrap_or_else(|| "id:asc".to_owned());
    let Some(mut messages) = sim.state().conversations.get(id.as_str()).cloned() else {
        return HttpResponse::NotFound().json(json!({
            "errorCode": "E404", "description": "Conversation not found.", "action": "Check the conversation id."
        }));
    };
    if order_by.ends_with(":desc") {
        messages.reverse();
    }
    let total = messages.len();
    let items: Vec<Value> = messages.into_iter().skip(page * limit).take(limit).collect();
    HttpResponse::Ok().json(json!({
        "messages": items,
        "pagination": { "totalItems": total, "page": page, "limit": limit, "orderBy": order_by }
    }))
}

async fn media(sim: web::Data<InfobipSim>, req: HttpRequest, path: web::Path<(String, String)>) -> HttpResponse {
    if let Err(r) = authorize(&sim, &req, "get", "/whatsapp/1/senders/{sender}/media/{mediaId}") {
        return r;
    }
    let key = path.into_inner();
    let file = sim.state().media.get(&key).cloned();
    let Some(file) = file else {
        return refuse(&sim, 404, "NOT_FOUND", "Media not found or expired", None);
    };
    if file.redirect {
        let token = uuid::Uuid::new_v4().simple().to_string();
        sim.state().cdn.insert(token.clone(), key);
        return HttpResponse::Found().insert_header(("Location", format!("/__sim/cdn/{token}"))).finish();
    }
    HttpResponse::Ok().content_type(file.content_type).body(file.bytes)
}

/// The "CDN" behind media redirects: no API key, an unguessable one-off path.
async fn cdn(sim: web::Data<InfobipSim>, token: web::Path<String>) -> HttpResponse {
    let mut state = sim.state();
    let file = state.cdn.remove(token.as_str()).and_then(|key| state.media.get(&key).cloned());
    match file {
        Some(file) => HttpResponse::Ok().content_type(file.content_type).body(file.bytes),
        None => HttpResponse::NotFound().finish(),
    }
}

async fn inspect(sim: web::Data<InfobipSim>) -> HttpResponse {
    let state = sim.state();
    HttpResponse::Ok().json(json!({
        "senders": state.senders,
        "sent": state.sent,
        "refused": state.refused,
        "conversations": state.conversations.len(),
    }))
}
