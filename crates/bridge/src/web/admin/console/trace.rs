//! Conversations: finding one, and its trace — each message's path through the bridge with
//! every failed attempt, what is still waiting, and the dead letters to retry. Phone numbers
//! of customers are masked and no message body is shown: the trace is about delivery.

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, get, web};
use chrono::NaiveDateTime;
use serde::Deserialize;

use super::dead_letters::{kind_words, retried_notice};
use super::{Card, Item, Search, View, show, when};
use crate::db::attempts::JobAttempt;
use crate::db::conversations::{Conversation, Message};
use crate::db::jobs::Job;
use crate::db::trace::{self as rows, Query, Trace};
use crate::db::{AttemptOutcome, Direction, JobState, MessageStatus};
use crate::error::AppError;
use crate::inbound::deliver::DeliverInbound;
use crate::outbound::relay::RelayOutbound;
use crate::web::AppState;
use crate::web::admin::wizard::signed_in_admin;
use crate::worker::BackgroundJob;

/// Conversations a list shows at most.
const LIST: i64 = 25;

fn conversation_item(c: &Conversation) -> Item {
    let mut item = Item {
        title: format!("Customer {} with +{}", crate::redact::phone(&c.end_user_id), c.sender_number),
        link: Some(format!("/console/conversations/{}", c.id)),
        ..Item::default()
    };
    item.lines.push(("muted", format!("Last activity {}.", when(c.updated_at))));
    if let Some(session) = &c.messaging_session_id {
        item.lines.push(("muted", format!("Messaging session {session}.")));
    }
    item
}

#[derive(Deserialize)]
pub struct SearchQuery {
    #[serde(default)]
    q: String,
}

#[get("/console/conversations")]
pub async fn list(
    state: web::Data<AppState>,
    req: HttpRequest,
    query: web::Query<SearchQuery>,
) -> Result<HttpResponse, AppError> {
    let admin = signed_in_admin!(state, req);
    let Some(app) = admin.app.clone() else { return Ok(crate::web::admin::to_step_one()) };
    let typed = query.into_inner().q;
    let mut search = Search { value: typed.clone(), error: None };
    let (mut card, status) = if typed.trim().is_empty() {
        let found = state.db.run(move |c| rows::recent(c, &app.id, LIST)).await?;
        let mut card = Card::new("Latest conversations");
        card.items = found.iter().map(conversation_item).collect();
        if card.items.is_empty() {
            card.lines.push(("muted", "No conversation yet: none has reached the bridge.".into()));
        }
        (card, StatusCode::OK)
    } else {
        match Query::parse(&typed) {
            None => {
                search.error = Some("Type at least four digits of the number, or a whole Salesforce ID.".into());
                (Card::new("Found"), StatusCode::BAD_REQUEST)
            }
            Some(q) => {
                let found = state.db.run(move |c| rows::search(c, &app.id, &q, LIST)).await?;
                let mut card = Card::new(format!("Found: {}", found.len()));
                card.items = found.iter().map(conversation_item).collect();
                if card.items.is_empty() {
                    card.lines.push(("muted", "No conversation of this app matches.".into()));
                }
                (card, StatusCode::OK)
            }
        }
    };
    let mut find = Card::new("Find a conversation");
    find.search = Some(search);
    if status != StatusCode::OK {
        card.lines.push(("muted", "Nothing searched.".into()));
    }
    let view = View {
        title: "Conversations",
        tab: "/console/conversations",
        path: "/console/conversations".into(),
        notice: None,
        problem: None,
        cards: vec![find, card],
    };
    show(&admin, view, status)
}

/// A reason as a sentence: vendors' texts end with a full stop or not.
fn sentence(reason: &str) -> &str {
    reason.trim_end().trim_end_matches('.')
}

/// The message's own delivery (Salesforce's for a customer's, WhatsApp's for an agent's):
/// its attempts need no name; other work on the message (a receipt) is named.
fn named(kind: &str, own: &str) -> String {
    if kind == own { String::new() } else { format!("{}: ", kind_words(kind)) }
}

/// The step of an attempt that failed, and what came of it.
fn attempt_step(a: &JobAttempt, own: &str) -> (&'static str, String) {
    let (what, at, why) = (named(&a.kind, own), when(a.at), sentence(&a.error));
    match a.outcome {
        AttemptOutcome::Retry => ("bad", format!("{what}attempt {} failed {at}: {why}. Tried again later.", a.attempt)),
        AttemptOutcome::Dead => {
            ("bad", format!("{what}attempt {} failed {at}: {why}. It became a dead letter.", a.attempt))
        }
        AttemptOutcome::Requeued => ("", format!("{what}retried: {why} {at}.")),
    }
}

/// A job still in the outbox, in words.
fn job_step(job: &Job, own: &str, now: NaiveDateTime) -> (&'static str, String) {
    let what = named(&job.kind, own);
    let next = job.attempts + 1;
    match job.state {
        JobState::Queued if job.run_at > now => ("", format!("{what}attempt {next} waits until {}.", when(job.run_at))),
        JobState::Queued => (
            "",
            format!("{what}attempt {next} is due: it waits for a worker or for the conversation's earlier messages."),
        ),
        JobState::Running => ("", format!("{what}attempt {} is running now.", job.attempts)),
        JobState::Dead => (
            "bad",
            format!(
                "{what}dead letter since {}: {}. Retry it once the reason is fixed.",
                job.dead_at.map(when).unwrap_or_default(),
                sentence(job.last_error.as_deref().unwrap_or("no reason was recorded"))
            ),
        ),
    }
}

/// Capitalises a step's first letter (a step may start with "attempt").
fn capitalised(step: (&'static str, String)) -> (&'static str, String) {
    let (class, text) = step;
    let mut chars = text.chars();
    let text = chars.next().map(|c| c.to_uppercase().chain(chars).collect()).unwrap_or_default();
    (class, text)
}

/// Where the message ended up so far, in words, with the badge that says it.
fn outcome(m: &Message) -> (&'static str, &'static str, Option<String>) {
    let inbound = m.direction == Direction::Inbound;
    let at = |t: Option<NaiveDateTime>| t.map(|t| format!(" {}", when(t))).unwrap_or_default();
    match m.status {
        MessageStatus::Received => ("Waiting", "warn", None),
        MessageStatus::Queued => ("Queued", "warn", None),
        MessageStatus::Sending => {
            ("Sending", "warn", Some("Being handed to Infobip; its outcome is checked before any repeat.".into()))
        }
        MessageStatus::Sent => {
            ("Sent", "", Some(format!("Handed to Infobip (WhatsApp message {}).", m.provider_message_id)))
        }
        MessageStatus::Delivered if inbound => {
            ("Delivered", "good", Some(format!("In Salesforce{}.", at(m.delivered_at))))
        }
        MessageStatus::Delivered => {
            ("Delivered", "good", Some(format!("On the customer's phone{}.", at(m.delivered_at))))
        }
        MessageStatus::Read if inbound => ("Read", "good", Some(format!("Read by the agent{}.", at(m.read_at)))),
        MessageStatus::Read => ("Read", "good", Some(format!("Read by the customer{}.", at(m.read_at)))),
        MessageStatus::Skipped => {
            ("Skipped", "", Some("Nothing to deliver (an empty text), so nothing was sent.".into()))
        }
        MessageStatus::Failed => {
            ("Failed", "bad", Some(format!("Not delivered: {}.", m.error.as_deref().unwrap_or("no reason was given"))))
        }
    }
}

fn message_item(n: usize, m: &Message, trace: &Trace, now: NaiveDateTime) -> Item {
    let inbound = m.direction == Direction::Inbound;
    let way = if inbound { "Customer → Salesforce" } else { "Agent → WhatsApp" };
    let (badge, class, last) = outcome(m);
    let mut item = Item { title: format!("{n}. {way} · {}", m.kind), badge: badge.into(), class, ..Item::default() };
    let mut ids = format!("WhatsApp message {}", m.provider_message_id);
    if let Some(entry) = &m.sf_entry_id {
        ids.push_str(&format!(", Salesforce entry {entry}"));
    }
    item.lines.push(("muted", format!("{ids}.")));
    let steps = &mut item.steps;
    if inbound {
        if let Some(sent) = m.received_at {
            steps.push(("", format!("Sent on WhatsApp {}.", when(sent))));
        }
        steps.push(("", format!("Received and stored by the bridge {}.", when(m.created_at))));
    } else {
        steps.push(("", format!("Taken from Salesforce and stored {}.", when(m.created_at))));
    }
    let own = if inbound { DeliverInbound::KIND } else { RelayOutbound::KIND };
    let attempts = trace.attempts.iter().filter(|a| a.message_id == Some(m.id));
    steps.extend(attempts.map(|a| capitalised(attempt_step(a, own))));
    let jobs: Vec<&Job> =
        trace.jobs.iter().filter(|j| crate::db::attempts::message_id_of(&j.payload) == Some(m.id)).collect();
    steps.extend(jobs.iter().map(|j| capitalised(job_step(j, own, now))));
    match jobs.iter().find(|j| j.state == JobState::Dead) {
        // The dead letter says why; the message's status would say it again.
        Some(dead) => {
            (item.badge, item.class) = ("Dead letter".into(), "bad");
            item.action = Some((format!("/console/dead-letters/{}/retry", dead.id), "Retry".into()));
        }
        None => steps.extend(last.map(|last| (class, last))),
    }
    item
}

/// Work of the conversation that is about no one message (consent, a bot's transcript).
fn other_work(trace: &Trace, now: NaiveDateTime) -> Option<Card> {
    let mut card = Card::new("Other work for this conversation");
    for a in trace.attempts.iter().filter(|a| a.message_id.is_none()) {
        let (class, text) = capitalised(attempt_step(a, &a.kind));
        card.items.push(Item { title: kind_words(&a.kind).into(), lines: vec![(class, text)], ..Item::default() });
    }
    for job in trace.jobs.iter().filter(|j| crate::db::attempts::message_id_of(&j.payload).is_none()) {
        let (class, text) = capitalised(job_step(job, &job.kind, now));
        let mut item = Item { title: kind_words(&job.kind).into(), lines: vec![(class, text)], ..Item::default() };
        if job.state == JobState::Dead {
            (item.badge, item.class) = ("Dead letter".into(), "bad");
            item.action = Some((format!("/console/dead-letters/{}/retry", job.id), "Retry".into()));
        }
        card.items.push(item);
    }
    (!card.items.is_empty()).then_some(card)
}

fn conversation_card(c: &Conversation) -> Card {
    let mut card = Card::new(format!("Customer {} with +{}", crate::redact::phone(&c.end_user_id), c.sender_number));
    card.lines.push(("", format!("Started {}; last activity {}.", when(c.created_at), when(c.updated_at))));
    if let Some(last) = c.last_inbound_at {
        card.lines.push(("", format!("Last message from the customer {}.", when(last))));
    }
    card.lines.push(match (&c.sf_conversation_id, &c.messaging_session_id) {
        (Some(conversation), Some(session)) => {
            ("", format!("Salesforce conversation {conversation}, messaging session {session}."))
        }
        (Some(conversation), None) => {
            ("", format!("Salesforce conversation {conversation}; no messaging session yet."))
        }
        _ => ("warn", "Not in Salesforce yet: its first message has not been delivered.".into()),
    });
    if let Some(at) = c.marketing_opted_out_at {
        card.lines.push(("", format!("Opted out of marketing messages {}.", when(at))));
    }
    card
}

#[get("/console/conversations/{id}")]
pub async fn show_trace(
    state: web::Data<AppState>,
    req: HttpRequest,
    path: web::Path<i64>,
) -> Result<HttpResponse, AppError> {
    let admin = signed_in_admin!(state, req);
    let Some(app) = admin.app.clone() else { return Ok(crate::web::admin::to_step_one()) };
    let id = path.into_inner();
    let trace = state.db.run(move |c| rows::trace(c, &app.id, id)).await?;
    let Some(trace) = trace else {
        return Err(AppError::NotFound(format!("conversation {id} of this app")));
    };
    let now = crate::db::now();
    let mut messages = Card::new(format!("Messages: {}", trace.messages.len()));
    messages.items = trace.messages.iter().enumerate().map(|(i, m)| message_item(i + 1, m, &trace, now)).collect();
    if messages.items.is_empty() {
        messages.lines.push(("muted", "No message is kept (records are purged after their retention).".into()));
    }
    let mut cards = vec![conversation_card(&trace.conversation), messages];
    cards.extend(other_work(&trace, now));
    let view = View {
        title: "Conversation trace",
        tab: "/console/conversations",
        path: format!("/console/conversations/{id}"),
        notice: retried_notice(req.query_string()),
        problem: None,
        cards,
    };
    show(&admin, view, StatusCode::OK)
}
