//! The agent's side of the simulated org as a small console: pick a conversation, follow it
//! in a frame that refreshes itself (in plain words), reply, send a file or choices, join,
//! end; beside it, the component the org shows on the Messaging Session page (the bridge's
//! template panel) when one is set. Once a session has ended, replies are refused, as the
//! real console refuses them. Every form posts to an endpoint that is also usable as an API
//! (form-encoded), then returns to the page; nothing needs JavaScript.

use actix_multipart::form::MultipartForm;
use actix_multipart::form::bytes::Bytes as FileBytes;
use actix_multipart::form::text::Text;
use actix_web::{HttpResponse, web};
use askama::Template;
use serde::Deserialize;
use serde_json::Value;

use super::SalesforceSim;
use super::agent::{AgentError, Choice};
use super::signin::escape;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/__sim/agent", web::get().to(page))
        .route("/__sim/agent/list", web::get().to(list))
        .route("/__sim/agent/{conversation}/feed", web::get().to(feed))
        .route("/__sim/console", web::get().to(console))
        .route("/__sim/agent/{conversation}/text", web::post().to(text))
        .route("/__sim/agent/{conversation}/choices", web::post().to(choices))
        .route("/__sim/agent/{conversation}/attachment", web::post().to(attachment))
        .route("/__sim/agent/{conversation}/{action}", web::post().to(action));
}

struct EntryView {
    who: &'static str,
    text: String,
}

struct ConversationView {
    identifier: String,
    end_user: String,
    session: String,
    status: String,
    ended: bool,
    entries: Vec<EntryView>,
}

#[derive(Template)]
#[template(path = "sim/agent.html")]
struct AgentPage {
    /// The conversation open, if there is one.
    open: Option<ConversationView>,
    /// The component beside it, for its session.
    panel: Option<String>,
    selected: String,
}

#[derive(Template)]
#[template(path = "sim/agent_list.html")]
struct ListFrame {
    conversations: Vec<ConversationView>,
    selected: String,
}

#[derive(Template)]
#[template(path = "sim/agent_feed.html")]
struct FeedFrame {
    conversation: ConversationView,
}

/// A session the agent can no longer answer in.
const ENDED: &str = "Ended";

/// A CamelCase entry type in words: `RoutingWorkResult` → `Routing work result`.
fn words(entry_type: &str) -> String {
    let mut out = String::new();
    for (i, c) in entry_type.chars().enumerate() {
        if c.is_uppercase() && i > 0 {
            out.push(' ');
            out.extend(c.to_lowercase());
        } else {
            out.push(c);
        }
    }
    out
}

/// The first string under `key` anywhere in `value`.
fn find<'a>(value: &'a Value, key: &str) -> Option<&'a str> {
    match value {
        Value::Object(map) => map.get(key).and_then(Value::as_str).or_else(|| map.values().find_map(|v| find(v, key))),
        Value::Array(items) => items.iter().find_map(|v| find(v, key)),
        _ => None,
    }
}

/// What an entry says, in a line.
fn describe(entry: &super::Entry) -> String {
    let p = &entry.payload;
    if let Some(a) = &entry.attachment {
        let caption = p.pointer("/text").and_then(Value::as_str).map(|t| format!(" “{t}”")).unwrap_or_default();
        return format!("📎 {} ({}, {} bytes){caption}", a.file_name, a.mime_type, a.size);
    }
    let message = p.pointer("/payload/abstractMessage").or_else(|| p.pointer("/payload/entryPayload/abstractMessage"));
    if let Some(m) = message {
        if let Some(t) = m.pointer("/staticContent/text").and_then(Value::as_str) {
            return t.to_owned();
        }
        if let Some(items) = m.pointer("/staticContent/attachments").and_then(Value::as_array) {
            let names: Vec<&str> = items.iter().filter_map(|a| a.get("name").and_then(Value::as_str)).collect();
            return format!("📎 {}", names.join(", "));
        }
        if let Some(items) = m.pointer("/choices/optionItems").and_then(Value::as_array) {
            let titles: Vec<&str> =
                items.iter().filter_map(|i| i.pointer("/titleItem/title").and_then(Value::as_str)).collect();
            return format!("Choices offered: {}", titles.join(", "));
        }
        let selected = m.pointer("/choicesResponse/selectedOptions/0");
        if let Some(option) =
            selected.and_then(|o| o.pointer("/optionTitle/title").or_else(|| o.get("optionIdentifier")))
            && let Some(title) = option.as_str()
        {
            return format!("Chose “{title}”");
        }
    }
    match entry.entry_type.as_str() {
        "ParticipantChanged" => {
            let name = find(p, "displayName").unwrap_or("An agent");
            match find(p, "operation") {
                Some("remove") => format!("{name} left the conversation"),
                _ => format!("{name} joined the conversation"),
            }
        }
        "SessionStatusChanged" => match find(p, "sessionStatus") {
            Some(ENDED) => "The session ended".to_owned(),
            Some(status) => format!("The session is now {}", status.to_lowercase()),
            None => "The session changed".to_owned(),
        },
        "ReadAcknowledgement" => "The agent read the customer's messages".to_owned(),
        "MessageDeliveryFailed" => {
            let why = find(p, "errorMessage").unwrap_or("no reason given");
            format!("⚠ A message was not delivered to WhatsApp: {why}")
        }
        other => words(other),
    }
}

#[derive(serde::Deserialize)]
struct ConsoleQuery {
    src: String,
    id: Option<String>,
}

/// A record page of the console with an iframe component, as Salesforce renders one: the
/// component's URL with `?id=<record id>` appended.
async fn console(query: web::Query<ConsoleQuery>) -> HttpResponse {
    let id = query.id.clone().unwrap_or_else(|| "0Mw000000000001AAA".into());
    let sep = if query.src.contains('?') { '&' } else { '?' };
    let src = escape(&format!("{}{sep}id={id}", query.src));
    HttpResponse::Ok().content_type("text/html; charset=utf-8").body(format!(
        "<!doctype html><title>Service Console</title><h1>Messaging Session</h1>\
         <iframe id=\"component\" src=\"{src}\" width=\"900\" height=\"700\" title=\"WhatsApp\"></iframe>"
    ))
}

fn view(c: &super::Conversation) -> ConversationView {
    ConversationView {
        identifier: c.identifier.clone(),
        end_user: c.end_user.clone(),
        session: c.messaging_session_id.clone(),
        status: c.session_status.clone(),
        ended: c.session_status == ENDED,
        entries: c
            .entries
            .iter()
            .filter(|e| !e.entry_type.starts_with("Typing"))
            .map(|e| {
                let who = match (e.entry_type.as_str(), e.sender_role.as_str()) {
                    (
                        "ParticipantChanged" | "SessionStatusChanged" | "MessageDeliveryFailed" | "ReadAcknowledgement",
                        _,
                    ) => "event",
                    (_, "Agent") => "agent",
                    _ => "customer",
                };
                EntryView { who, text: describe(e) }
            })
            .collect(),
    }
}

fn html(rendered: Result<String, askama::Error>) -> HttpResponse {
    match rendered {
        Ok(html) => HttpResponse::Ok().content_type("text/html; charset=utf-8").body(html),
        Err(e) => HttpResponse::InternalServerError().body(e.to_string()),
    }
}

#[derive(Deserialize)]
struct PageQuery {
    /// The conversation open (default: the latest).
    c: Option<String>,
}

async fn page(sim: web::Data<SalesforceSim>, query: web::Query<PageQuery>) -> HttpResponse {
    let conversations = sim.conversations();
    let open = match &query.c {
        Some(id) => conversations.iter().find(|c| &c.identifier == id),
        None => conversations.last(),
    }
    .map(view);
    let panel = match (&open, sim.state().console_panel.clone()) {
        (Some(c), Some(url)) => Some(url.replace("{id}", &c.session)),
        _ => None,
    };
    let selected = open.as_ref().map(|c| c.identifier.clone()).unwrap_or_default();
    html(AgentPage { open, panel, selected }.render())
}

async fn list(sim: web::Data<SalesforceSim>, query: web::Query<PageQuery>) -> HttpResponse {
    let conversations: Vec<ConversationView> = sim.conversations().iter().rev().map(view).collect();
    let selected = query.c.clone().or_else(|| conversations.first().map(|c| c.identifier.clone())).unwrap_or_default();
    html(ListFrame { conversations, selected }.render())
}

async fn feed(sim: web::Data<SalesforceSim>, conversation: web::Path<String>) -> HttpResponse {
    match sim.conversations().iter().find(|c| c.identifier == *conversation) {
        Some(c) => html(FeedFrame { conversation: view(c) }.render()),
        None => HttpResponse::NotFound().body("no such conversation"),
    }
}

/// Refuses a reply in a session that has ended, as the console does (it offers no reply box).
fn refuse_if_ended(sim: &SalesforceSim, conversation: &str) -> Option<HttpResponse> {
    let ended = sim.conversations().iter().any(|c| c.identifier == conversation && c.session_status == ENDED);
    ended.then(|| {
        HttpResponse::Conflict().content_type("text/html; charset=utf-8").body(format!(
            "<!doctype html><title>Session ended</title><p role=alert>This messaging session has ended: \
             replies can no longer be sent in it.</p><p><a href=\"/__sim/agent?c={}\">Back to the console</a></p>",
            escape(conversation)
        ))
    })
}

fn done(conversation: &str, result: Result<String, AgentError>) -> HttpResponse {
    match result {
        Ok(_) => {
            let location = format!(
                "/__sim/agent?c={}",
                url::form_urlencoded::byte_serialize(conversation.as_bytes()).collect::<String>()
            );
            HttpResponse::SeeOther().insert_header(("Location", location)).finish()
        }
        Err(e @ AgentError::UnknownConversation(_)) => HttpResponse::NotFound().body(e.to_string()),
        Err(e) => HttpResponse::InternalServerError().body(e.to_string()),
    }
}

#[derive(Deserialize)]
struct TextForm {
    text: String,
}

async fn text(
    sim: web::Data<SalesforceSim>,
    conversation: web::Path<String>,
    form: web::Form<TextForm>,
) -> HttpResponse {
    if let Some(refused) = refuse_if_ended(&sim, &conversation) {
        return refused;
    }
    done(&conversation, sim.agent_send_text(&conversation, &form.text))
}

#[derive(Deserialize)]
struct ChoicesForm {
    text: String,
    /// One option per line, or comma-separated.
    options: String,
    /// Buttons, QuickReplies or ListPicker.
    format: String,
}

async fn choices(
    sim: web::Data<SalesforceSim>,
    conversation: web::Path<String>,
    form: web::Form<ChoicesForm>,
) -> HttpResponse {
    let options: Vec<Choice> = form
        .options
        .split(['\n', ','])
        .map(str::trim)
        .filter(|o| !o.is_empty())
        .enumerate()
        .map(|(i, title)| Choice { id: format!("option-{}", i + 1), title: title.to_owned() })
        .collect();
    if let Some(refused) = refuse_if_ended(&sim, &conversation) {
        return refused;
    }
    done(&conversation, sim.agent_send_choices(&conversation, &form.format, &form.text, &options))
}

#[derive(MultipartForm)]
struct AttachmentForm {
    file: FileBytes,
    text: Option<Text<String>>,
}

async fn attachment(
    sim: web::Data<SalesforceSim>,
    conversation: web::Path<String>,
    MultipartForm(form): MultipartForm<AttachmentForm>,
) -> HttpResponse {
    let name = form.file.file_name.clone().unwrap_or_else(|| "file".to_owned());
    let mime = form.file.content_type.as_ref().map_or("application/octet-stream".to_owned(), ToString::to_string);
    let text = form.text.map(|t| t.into_inner()).filter(|t| !t.is_empty());
    if let Some(refused) = refuse_if_ended(&sim, &conversation) {
        return refused;
    }
    done(
        &conversation,
        sim.agent_send_attachment(&conversation, &name, &mime, form.file.data.to_vec(), text.as_deref()),
    )
}

async fn action(sim: web::Data<SalesforceSim>, path: web::Path<(String, String)>) -> HttpResponse {
    let (conversation, action) = path.into_inner();
    if let Some(refused) = refuse_if_ended(&sim, &conversation) {
        return refused;
    }
    match action.as_str() {
        "join" => done(&conversation, sim.agent_join(&conversation)),
        "end" => done(&conversation, sim.agent_end(&conversation)),
        "read" => done(&conversation, sim.agent_read(&conversation).map(Option::unwrap_or_default)),
        "typing" => done(&conversation, sim.agent_typing(&conversation, true)),
        "typing-stopped" => done(&conversation, sim.agent_typing(&conversation, false)),
        _ => HttpResponse::NotFound().body("unknown action"),
    }
}
