//! The operations console: what the bridge is doing for the signed-in admin's app. The
//! live health checks and subscription state here; dead letters with their retry in
//! `dead_letters`; each conversation's path in `trace`. Same sign-in, look and framing as
//! the setup wizard; every page works without JavaScript and fits a 400 px panel.

pub mod dead_letters;
pub mod trace;

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, get, web};
use askama::Template;
use chrono::NaiveDateTime;

use super::wizard::{Admin, signed_in_admin};
use super::{frame_ancestors, render};
use crate::db::cursors::{self, Cursor};
use crate::error::AppError;
use crate::web::AppState;

/// The console's pages, as tabs.
const TABS: &[(&str, &str)] = &[
    ("/console", "Health"),
    ("/console/dead-letters", "Dead letters"),
    ("/console/conversations", "Conversations"),
    ("/setup/summary", "Setup"),
];

/// One thing of a card's list: a dead letter, a conversation, a message of a trace.
#[derive(Debug, Clone, Default)]
pub struct Item {
    pub title: String,
    pub link: Option<String>,
    /// A short state in words ("Delivered", "Dead letter"), coloured by `class`.
    pub badge: String,
    /// `good`, `bad`, `warn` or empty.
    pub class: &'static str,
    pub lines: Vec<(&'static str, String)>,
    /// The numbered path of a message, each step with its class.
    pub steps: Vec<(&'static str, String)>,
    /// A button posting to this action (with the CSRF token and the page to come back to).
    pub action: Option<(String, String)>,
}

/// The search form of the conversations page (a GET: it changes nothing).
#[derive(Debug, Clone, Default)]
pub struct Search {
    pub value: String,
    pub error: Option<String>,
}

/// A card of a console page.
#[derive(Debug, Clone, Default)]
pub struct Card {
    pub heading: String,
    pub lines: Vec<(&'static str, String)>,
    pub items: Vec<Item>,
    pub search: Option<Search>,
    /// The page's one primary button, when this card has it: a form posting to the action
    /// (with the CSRF token and the page to come back to)…
    pub action: Option<(String, String)>,
    /// …or a link (it changes nothing).
    pub primary_link: Option<(String, String)>,
    pub links: Vec<(String, String)>,
}

impl Card {
    pub fn new(heading: impl Into<String>) -> Self {
        Self { heading: heading.into(), ..Self::default() }
    }
}

#[derive(Template)]
#[template(path = "setup/console.html")]
struct ConsolePage<'a> {
    title: &'a str,
    user: &'a str,
    csrf: &'a str,
    tabs: &'static [(&'static str, &'static str)],
    current: &'a str,
    /// Where the items' buttons come back to.
    back: &'a str,
    notice: Option<String>,
    problem: Option<String>,
    cards: Vec<Card>,
}

/// What one console page shows.
pub struct View<'a> {
    pub title: &'a str,
    /// The tab it belongs to.
    pub tab: &'static str,
    /// This page's path (with its query), for the buttons to return to.
    pub path: String,
    pub notice: Option<String>,
    pub problem: Option<String>,
    pub cards: Vec<Card>,
}

pub fn show(admin: &Admin, view: View<'_>, status: StatusCode) -> Result<HttpResponse, AppError> {
    let user = admin.display_name();
    let page = ConsolePage {
        title: view.title,
        user,
        csrf: &admin.session.csrf_token,
        tabs: TABS,
        current: view.tab,
        back: &view.path,
        notice: view.notice,
        problem: view.problem,
        cards: view.cards,
    };
    render(status, &page, &frame_ancestors(admin.app.as_ref()))
}

/// A time as the console shows it, to the second (attempts can be seconds apart).
pub fn when(at: NaiveDateTime) -> String {
    at.format("%Y-%m-%d %H:%M:%S UTC").to_string()
}

/// The page a retry button comes back to: a console path, else the dead letters (a form
/// must not send the admin elsewhere).
pub fn back_to(given: &str) -> &str {
    let safe = given.starts_with("/console") && !given.contains("//") && !given.contains('\\');
    if safe { given } else { "/console/dead-letters" }
}

/// A subscription in words: whether a replica holds it now, and where it would resume.
fn subscription_item(topic: &str, purpose: &str, cursor: Option<&Cursor>, now: NaiveDateTime) -> Item {
    let mut item = Item { title: topic.to_owned(), ..Item::default() };
    item.lines.push(("muted", purpose.to_owned()));
    let Some(cursor) = cursor else {
        item.badge = "Never subscribed".into();
        item.class = "bad";
        item.lines.push(("", "No replica has subscribed to this topic yet.".into()));
        return item;
    };
    match (&cursor.lease_owner, cursor.lease_until) {
        (Some(owner), Some(until)) if until > now => {
            item.badge = "Up".into();
            item.class = "good";
            item.lines.push(("", format!("Held by replica {owner}, renewed until {}.", when(until))));
        }
        _ => {
            item.badge = "Down".into();
            item.class = "bad";
            item.lines.push((
                "",
                "No replica holds it: replies of agents are not being read. Check the health checks and the logs."
                    .into(),
            ));
        }
    }
    let position = match cursor.replay_id.as_deref() {
        None => "No position stored yet: the first subscription starts from the latest event.".to_owned(),
        Some(cursors::EARLIEST) => {
            "Resumes from the earliest event Salesforce keeps (the stored position had expired).".to_owned()
        }
        Some(stored) => match cursors::since_of(stored).and_then(chrono::DateTime::from_timestamp_millis) {
            Some(since) => {
                format!("Listening since {}; no event yet, so a restart replays from then.", when(since.naive_utc()))
            }
            None => "Resumes after the last event whose work is stored (replay position kept).".to_owned(),
        },
    };
    item.lines.push(("", position));
    item.lines.push(("muted", format!("Position last stored {}.", when(cursor.updated_at))));
    item
}

/// The app's two subscriptions (its platform event, and session changes).
async fn subscriptions(state: &AppState, app: &crate::db::apps::AppRow) -> Result<Card, AppError> {
    let id = app.id.clone();
    let stored = state.db.run(move |c| cursors::of_app(c, &id)).await?;
    let now = crate::db::now();
    let mut card = Card::new("Subscriptions");
    let Some(event) = app.platform_event.as_deref() else {
        card.lines.push(("bad", "No platform event yet: finish 2. Application in the setup.".into()));
        return Ok(card);
    };
    let topics = [
        (format!("/event/{event}"), "Agents' replies and other conversation entries (the platform event)."),
        (
            crate::outbound::SESSION_CHANGE_TOPIC.to_owned(),
            "Messaging session changes: when a session ends (optional in an org).",
        ),
    ];
    for (topic, purpose) in topics {
        let cursor = stored.iter().find(|c| c.topic == topic);
        card.items.push(subscription_item(&topic, purpose, cursor, now));
    }
    Ok(card)
}

/// The app's work in the outbox.
async fn outbox(state: &AppState, app_id: &str) -> Result<Card, AppError> {
    let (id, now) = (app_id.to_owned(), crate::db::now());
    let depth = state.db.run(move |c| crate::db::jobs::depth_of_app(c, &id, now)).await?;
    let mut card = Card::new("Outbox");
    card.lines.push(("", format!("{} job(s) due now, {} running.", depth.due, depth.running)));
    card.lines.push(("", format!("{} waiting to retry or scheduled for later.", depth.scheduled)));
    card.lines.push(if depth.dead == 0 {
        ("good", "No dead letters.".to_owned())
    } else {
        ("bad", format!("{} dead letter(s): work that failed for good and waits for you.", depth.dead))
    });
    card.links.push(("/console/dead-letters".into(), "Dead letters".into()));
    Ok(card)
}

#[get("/console")]
pub async fn overview(state: web::Data<AppState>, req: HttpRequest) -> Result<HttpResponse, AppError> {
    let admin = signed_in_admin!(state, req);
    let Some(app) = admin.app.clone() else { return Ok(super::to_step_one()) };
    let mut health = Card::new("Health checks");
    let secret_set = super::webhooks::chosen(&state, &app).await?;
    for check in super::summary::checks(&state, &app, secret_set).await? {
        health.lines.push((if check.ok { "good" } else { "bad" }, check.text));
    }
    health.primary_link = Some(("/console".into(), "Check again".into()));
    let cards = vec![health, subscriptions(&state, &app).await?, outbox(&state, &app.id).await?];
    let view =
        View { title: "Operations", tab: "/console", path: "/console".into(), notice: None, problem: None, cards };
    show(&admin, view, StatusCode::OK)
}
