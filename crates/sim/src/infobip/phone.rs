//! A simulated phone: type a WhatsApp message as an end user (it is posted to the bridge's
//! webhook, signed, like Infobip would) and read what the business sent back.

use actix_web::{HttpResponse, web};
use askama::Template;
use serde::Deserialize;
use serde_json::{Value, json};

use super::InfobipSim;
use super::webhooks::{inbound_envelope, inbound_result};

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/__sim/phone", web::get().to(page)).route("/__sim/phone/send", web::post().to(send));
}

struct Bubble {
    mine: bool,
    text: String,
}

#[derive(Template)]
#[template(path = "sim/phone.html")]
struct PhonePage {
    user: String,
    sender: String,
    bubbles: Vec<Bubble>,
    problem: Option<String>,
}

#[derive(Deserialize)]
struct PageQuery {
    user: Option<String>,
    problem: Option<String>,
}

/// What a message the business sent looks like on the phone.
pub(super) fn describe(kind: &str, content: &Value) -> String {
    let s = |p: &str| content.pointer(p).and_then(Value::as_str).unwrap_or_default().to_owned();
    match kind {
        "text" => s("/text"),
        "interactive/buttons" | "interactive/list" => {
            let titles: Vec<String> = content
                .pointer("/action/buttons")
                .or_else(|| content.pointer("/action/sections/0/rows"))
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .filter_map(|b| b.get("title").and_then(Value::as_str).map(str::to_owned))
                .collect();
            format!("{}\n[{}]", s("/body/text"), titles.join("] ["))
        }
        "template" => format!("(template) {}", s("/templateName")),
        media => format!("📎 {media} {} {}", s("/filename"), s("/caption")).trim().to_owned(),
    }
}

async fn page(sim: web::Data<InfobipSim>, query: web::Query<PageQuery>) -> HttpResponse {
    let user = query.user.clone().unwrap_or_else(|| "447700900123".to_owned());
    let (sender, bubbles) = {
        let state = sim.state();
        let bubbles = state
            .chat
            .iter()
            .filter(|(u, _, _)| *u == user)
            .map(|(_, mine, text)| Bubble { mine: *mine, text: text.clone() })
            .collect();
        (state.senders.first().cloned().unwrap_or_default(), bubbles)
    };
    let page = PhonePage { user, sender, bubbles, problem: query.problem.clone() };
    match page.render() {
        Ok(html) => HttpResponse::Ok().content_type("text/html; charset=utf-8").body(html),
        Err(e) => HttpResponse::InternalServerError().body(e.to_string()),
    }
}

#[derive(Deserialize)]
struct SendForm {
    user: String,
    text: String,
}

async fn send(sim: web::Data<InfobipSim>, form: web::Form<SendForm>) -> HttpResponse {
    let (webhook, sender) = {
        let state = sim.state();
        (state.webhook.clone(), state.senders.first().cloned().unwrap_or_default())
    };
    let back = |problem: Option<&str>| {
        let mut location = format!(
            "/__sim/phone?user={}",
            url::form_urlencoded::byte_serialize(form.user.as_bytes()).collect::<String>()
        );
        if let Some(p) = problem {
            location.push_str(&format!(
                "&problem={}",
                url::form_urlencoded::byte_serialize(p.as_bytes()).collect::<String>()
            ));
        }
        HttpResponse::SeeOther().insert_header(("Location", location)).finish()
    };
    let Some(webhook) = webhook else {
        return back(Some("No webhook is configured for the simulated phone."));
    };
    let id = format!("wamid.sim.{}", uuid::Uuid::new_v4().simple());
    let body =
        inbound_envelope(vec![inbound_result(&form.user, &sender, &id, json!({ "type": "TEXT", "text": form.text }))]);
    sim.state().chat.push((form.user.clone(), true, form.text.clone()));
    let delivery = webhook.post(&body).await;
    if delivery.succeeded() { back(None) } else { back(Some(&format!("The bridge answered {:?}", delivery.statuses))) }
}
