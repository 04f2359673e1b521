//! A simulated phone: write as a WhatsApp user (text, an image, a tap on a button or a list
//! row; each is posted to the bridge's webhook, signed, as Infobip would) and read what the
//! business sent back. The chat is a frame that refreshes itself; the box you type in is not
//! in it, so a draft survives every refresh, and the page works without JavaScript.

use actix_multipart::form::MultipartForm;
use actix_multipart::form::bytes::Bytes as FileBytes;
use actix_multipart::form::text::Text;
use actix_web::{HttpResponse, web};
use askama::Template;
use serde::Deserialize;
use serde_json::{Value, json};

use super::webhooks::{inbound_envelope, inbound_result};
use super::{InfobipSim, MediaFile};

const DEFAULT_USER: &str = "447700900123";

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/__sim/phone", web::get().to(page))
        .route("/__sim/phone/chat", web::get().to(chat))
        .route("/__sim/phone/send", web::post().to(send))
        .route("/__sim/phone/send-image", web::post().to(send_image))
        .route("/__sim/phone/tap", web::post().to(tap));
}

/// One line of a phone's chat.
#[derive(Debug, Clone)]
pub struct ChatLine {
    pub user: String,
    /// Written by the user (else by the business).
    pub mine: bool,
    pub text: String,
    /// The business's message id, which a tap on one of its choices answers.
    pub message_id: Option<String>,
    /// Buttons or list rows to tap: (id, title).
    pub choices: Vec<(String, String)>,
    /// `button` or `list`: what a tap replies with.
    pub choice_kind: &'static str,
    /// The user's message was marked read by the business (blue ticks).
    pub read: bool,
}

impl ChatLine {
    fn mine(user: &str, text: String) -> Self {
        Self {
            user: user.to_owned(),
            mine: true,
            text,
            message_id: None,
            choices: Vec::new(),
            choice_kind: "button",
            read: false,
        }
    }

    /// What a message the business sent shows on the phone.
    pub(super) fn from_business(user: &str, message_id: &str, kind: &str, content: Option<&Value>) -> Self {
        let content = content.unwrap_or(&Value::Null);
        let s = |p: &str| content.pointer(p).and_then(Value::as_str).unwrap_or_default().to_owned();
        let (text, choices, choice_kind) = match kind {
            "text" => (s("/text"), Vec::new(), "button"),
            "interactive/buttons" | "interactive/list" => {
                let (items, choice_kind) = if kind == "interactive/list" {
                    let rows: Vec<Value> = content
                        .pointer("/action/sections")
                        .and_then(Value::as_array)
                        .into_iter()
                        .flatten()
                        .filter_map(|section| section.get("rows").and_then(Value::as_array))
                        .flatten()
                        .cloned()
                        .collect();
                    (rows, "list")
                } else {
                    (
                        content.pointer("/action/buttons").and_then(Value::as_array).cloned().unwrap_or_default(),
                        "button",
                    )
                };
                let choices = items
                    .iter()
                    .filter_map(|b| {
                        let title = b.get("title").and_then(Value::as_str)?;
                        let id = b.get("id").and_then(Value::as_str).unwrap_or(title);
                        Some((id.to_owned(), title.to_owned()))
                    })
                    .collect();
                (s("/body/text"), choices, choice_kind)
            }
            "interactive/url-button" => (
                format!("{}\n🔗 {}: {}", s("/body/text"), s("/action/displayText"), s("/action/url")),
                Vec::new(),
                "button",
            ),
            "template" => (format!("(template) {}", s("/templateName")), Vec::new(), "button"),
            media => {
                (format!("📎 {media} {} {}", s("/filename"), s("/caption")).trim().to_owned(), Vec::new(), "button")
            }
        };
        Self {
            user: user.to_owned(),
            mine: false,
            text,
            message_id: Some(message_id.to_owned()),
            choices,
            choice_kind,
            read: false,
        }
    }
}

#[derive(Template)]
#[template(path = "sim/phone.html")]
struct PhonePage {
    user: String,
    sender: String,
    problem: Option<String>,
}

#[derive(Template)]
#[template(path = "sim/phone_chat.html")]
struct ChatFrame {
    user: String,
    lines: Vec<ChatLine>,
}

#[derive(Deserialize)]
struct PageQuery {
    user: Option<String>,
    problem: Option<String>,
}

fn html(rendered: Result<String, askama::Error>) -> HttpResponse {
    match rendered {
        Ok(html) => HttpResponse::Ok().content_type("text/html; charset=utf-8").body(html),
        Err(e) => HttpResponse::InternalServerError().body(e.to_string()),
    }
}

async fn page(sim: web::Data<InfobipSim>, query: web::Query<PageQuery>) -> HttpResponse {
    let user = query.user.clone().unwrap_or_else(|| DEFAULT_USER.to_owned());
    let sender = sim.state().senders.first().cloned().unwrap_or_default();
    html(PhonePage { user, sender, problem: query.problem.clone() }.render())
}

async fn chat(sim: web::Data<InfobipSim>, query: web::Query<PageQuery>) -> HttpResponse {
    let user = query.user.clone().unwrap_or_else(|| DEFAULT_USER.to_owned());
    // Newest first, laid out bottom-up: each refresh opens at the latest message.
    let lines = sim.state().chat.iter().rev().filter(|l| l.user == user).cloned().collect();
    html(ChatFrame { user, lines }.render())
}

fn encoded(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

/// Back to the phone of `user`, with what went wrong if something did.
fn back(user: &str, problem: Option<&str>) -> HttpResponse {
    let mut location = format!("/__sim/phone?user={}", encoded(user));
    if let Some(p) = problem {
        location.push_str(&format!("&problem={}", encoded(p)));
    }
    HttpResponse::SeeOther().insert_header(("Location", location)).finish()
}

/// Posts one inbound message of `user` to the bridge, as Infobip would.
async fn deliver(sim: &InfobipSim, user: &str, message: Value, shown: ChatLine) -> HttpResponse {
    let (webhook, sender) = {
        let state = sim.state();
        (state.webhook.clone(), state.senders.first().cloned().unwrap_or_default())
    };
    let Some(webhook) = webhook else {
        return back(user, Some("No webhook is configured for the simulated phone."));
    };
    let id = format!("wamid.sim.{}", uuid::Uuid::new_v4().simple());
    let body = inbound_envelope(vec![inbound_result(user, &sender, &id, message)]);
    {
        let mut state = sim.state();
        state.inbound_ids.insert(id.clone());
        state.chat.push(ChatLine { message_id: Some(id.clone()), ..shown });
    }
    let delivery = webhook.post(&body).await;
    if delivery.succeeded() {
        back(user, None)
    } else {
        back(user, Some(&format!("The bridge answered {:?}", delivery.statuses)))
    }
}

#[derive(Deserialize)]
struct SendForm {
    user: String,
    text: String,
}

async fn send(sim: web::Data<InfobipSim>, form: web::Form<SendForm>) -> HttpResponse {
    let message = json!({ "type": "TEXT", "text": form.text });
    deliver(&sim, &form.user, message, ChatLine::mine(&form.user, form.text.clone())).await
}

#[derive(MultipartForm)]
struct ImageForm {
    user: Text<String>,
    image: FileBytes,
    caption: Option<Text<String>>,
}

/// An image from the phone: kept as Infobip keeps inbound media, and announced with its URL.
async fn send_image(sim: web::Data<InfobipSim>, MultipartForm(form): MultipartForm<ImageForm>) -> HttpResponse {
    let user = form.user.into_inner();
    let content_type = form.image.content_type.as_ref().map_or("image/jpeg".to_owned(), ToString::to_string);
    if !content_type.starts_with("image/") || form.image.data.is_empty() {
        return back(&user, Some("Choose an image file (JPEG or PNG) to send."));
    }
    let sender = sim.state().senders.first().cloned().unwrap_or_default();
    let url = sim.add_media(&sender, MediaFile { bytes: form.image.data.to_vec(), content_type, redirect: false });
    let caption = form.caption.map(Text::into_inner).filter(|c| !c.trim().is_empty());
    let mut message = json!({ "type": "IMAGE", "url": url });
    if let Some(c) = &caption {
        message["caption"] = json!(c);
    }
    let shown = format!("📷 image {}", caption.unwrap_or_default()).trim().to_owned();
    deliver(&sim, &user, message, ChatLine::mine(&user, shown)).await
}

#[derive(Deserialize)]
struct TapForm {
    user: String,
    /// The business's message whose choice was tapped.
    context: String,
    id: String,
    title: String,
    /// `button` or `list`.
    kind: String,
}

/// A tap on a button or a list row: the reply WhatsApp sends, naming the message it answers.
async fn tap(sim: web::Data<InfobipSim>, form: web::Form<TapForm>) -> HttpResponse {
    let kind = if form.kind == "list" { "INTERACTIVE_LIST_REPLY" } else { "INTERACTIVE_BUTTON_REPLY" };
    let message = json!({ "type": kind, "id": form.id, "title": form.title, "context": { "id": form.context } });
    deliver(&sim, &form.user, message, ChatLine::mine(&form.user, form.title.clone())).await
}
