//! The agent's side of the simulated org as a small page: see each conversation as the
//! agent would, reply, send a file or choices, join, type, end. Every form posts to an
//! endpoint that is also usable as an API (form-encoded), then returns to the page.

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
    entries: Vec<EntryView>,
}

#[derive(Template)]
#[template(path = "sim/agent.html")]
struct AgentPage {
    conversations: Vec<ConversationView>,
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
            return format!("[choices] {}", titles.join(" | "));
        }
        if let Some(selected) = m.pointer("/choicesResponse/selectedOptions/0/optionIdentifier").and_then(Value::as_str)
        {
            return format!("[chose] {selected}");
        }
    }
    format!("({})", entry.entry_type)
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

async fn page(sim: web::Data<SalesforceSim>) -> HttpResponse {
    let conversations = sim
        .conversations()
        .iter()
        .map(|c| ConversationView {
            identifier: c.identifier.clone(),
            end_user: c.end_user.clone(),
            session: c.messaging_session_id.clone(),
            status: c.session_status.clone(),
            entries: c
                .entries
                .iter()
                .filter(|e| !e.entry_type.starts_with("Typing"))
                .map(|e| EntryView {
                    who: if e.sender_role == "Agent" { "agent" } else { "customer" },
                    text: describe(e),
                })
                .collect(),
        })
        .collect();
    match (AgentPage { conversations }).render() {
        Ok(html) => HttpResponse::Ok().content_type("text/html; charset=utf-8").body(html),
        Err(e) => HttpResponse::InternalServerError().body(e.to_string()),
    }
}

fn done(result: Result<String, AgentError>) -> HttpResponse {
    match result {
        Ok(_) => HttpResponse::SeeOther().insert_header(("Location", "/__sim/agent")).finish(),
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
    done(sim.agent_send_text(&conversation, &form.text))
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
    done(sim.agent_send_choices(&conversation, &form.format, &form.text, &options))
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
    done(sim.agent_send_attachment(&conversation, &name, &mime, form.file.data.to_vec(), text.as_deref()))
}

async fn action(sim: web::Data<SalesforceSim>, path: web::Path<(String, String)>) -> HttpResponse {
    let (conversation, action) = path.into_inner();
    match action.as_str() {
        "join" => done(sim.agent_join(&conversation)),
        "end" => done(sim.agent_end(&conversation)),
        "typing" => done(sim.agent_typing(&conversation, true)),
        "typing-stopped" => done(sim.agent_typing(&conversation, false)),
        _ => HttpResponse::NotFound().body("unknown action"),
    }
}
