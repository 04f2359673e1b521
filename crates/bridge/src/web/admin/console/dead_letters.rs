//! Dead letters: the app's work that failed for good, each with its reason, the
//! conversation it belongs to and a button that puts it back in the queue.

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, get, post, web};
use serde::Deserialize;

use super::{Card, Item, View, back_to, show, when};
use crate::db::attempts::{self, Requeue};
use crate::db::jobs::{self, Job};
use crate::error::AppError;
use crate::web::AppState;
use crate::web::admin::wizard::signed_in_admin;

/// Dead letters a page lists at most.
const PAGE: i64 = 100;

/// A job kind in the admin's words: what was being done when it failed.
pub fn kind_words(kind: &str) -> &'static str {
    match kind {
        "deliver_inbound" => "Customer's message to Salesforce",
        "relay_outbound" => "Agent's message to WhatsApp",
        "acknowledge" => "Delivery or read receipt to Salesforce",
        "report_delivery_failure" => "Failed-delivery notice to Salesforce",
        "update_consent" => "Marketing consent to Salesforce",
        "import_handover" => "Chatbot transcript import",
        "start_proactive" => "Proactive conversation start",
        crate::provisioning::REGISTER_CAPABILITIES => "Capabilities registration with Salesforce",
        _ => "Other work",
    }
}

/// The conversation a job's ordering key names.
pub fn conversation_of(job_key: Option<&str>) -> Option<i64> {
    job_key?.strip_prefix("conv:")?.parse().ok()
}

fn item(job: &Job) -> Item {
    let mut item = Item {
        title: format!("{} (job {})", kind_words(&job.kind), job.id),
        badge: "Dead letter".into(),
        class: "bad",
        ..Item::default()
    };
    let reason = job.last_error.as_deref().unwrap_or("no reason was recorded");
    item.lines.push(("bad", format!("Reason: {reason}")));
    let died = job.dead_at.map(when).unwrap_or_else(|| "at an unknown time".into());
    item.lines.push(("muted", format!("Failed for good {died}, after {} attempt(s).", job.attempts)));
    if let Some(conversation) = conversation_of(job.ordering_key.as_deref()) {
        item.link = Some(format!("/console/conversations/{conversation}"));
        item.lines.push(("muted", "Later messages of its conversation go on; this one waits for you.".into()));
    }
    item.action = Some((format!("/console/dead-letters/{}/retry", job.id), "Retry".into()));
    item
}

#[get("/console/dead-letters")]
pub async fn list(state: web::Data<AppState>, req: HttpRequest) -> Result<HttpResponse, AppError> {
    let admin = signed_in_admin!(state, req);
    let Some(app) = admin.app.clone() else { return Ok(crate::web::admin::to_step_one()) };
    let dead = state.db.run(move |c| jobs::dead_letters_of_app(c, &app.id, PAGE)).await?;
    let mut card = Card::new(if dead.is_empty() { String::new() } else { format!("Waiting for you: {}", dead.len()) });
    if dead.is_empty() {
        card.lines.push(("good", "None: every piece of work was done or is still being tried.".into()));
    } else {
        card.lines.push((
            "",
            "Work that failed for good, the latest first. Fix the reason (in Salesforce, Infobip or the setup), then retry: it runs again with a fresh set of attempts.".into(),
        ));
        card.items = dead.iter().map(item).collect();
        card.action = Some(("/console/dead-letters/retry-all".into(), format!("Retry all {}", dead.len())));
    }
    let notice = retried_notice(req.query_string());
    let view = View {
        title: "Dead letters",
        tab: "/console/dead-letters",
        path: "/console/dead-letters".into(),
        notice,
        problem: None,
        cards: vec![card],
    };
    show(&admin, view, StatusCode::OK)
}

/// The notice after a retry (a redirect carries how many, so a reload does not post again).
pub fn retried_notice(query: &str) -> Option<String> {
    let n: usize = query.split('&').find_map(|p| p.strip_prefix("retried="))?.parse().ok()?;
    Some(match n {
        0 => "Nothing to retry: it was retried already or is no dead letter.".to_owned(),
        1 => "Put back in the queue: it runs again within seconds.".to_owned(),
        n => format!("{n} dead letters put back in the queue: they run again within seconds."),
    })
}

#[derive(Deserialize)]
pub struct RetryForm {
    csrf: String,
    #[serde(default)]
    back: String,
}

/// Where to go after a retry: the page the button was on, saying how many were retried.
fn after_retry(back: &str, n: usize) -> HttpResponse {
    let back = back_to(back);
    let joiner = if back.contains('?') { '&' } else { '?' };
    crate::web::admin::see_other(&format!("{back}{joiner}retried={n}"))
}

async fn requeue(state: &AppState, app_id: String, which: Requeue, actor: String) -> Result<usize, AppError> {
    let now = crate::db::now();
    let n = state.db.write(move |c| attempts::requeue(c, which, Some(&app_id), &actor, now)).await?;
    state.wake.notify_one();
    Ok(n)
}

#[post("/console/dead-letters/{id}/retry")]
pub async fn retry(
    state: web::Data<AppState>,
    req: HttpRequest,
    path: web::Path<i64>,
    form: web::Form<RetryForm>,
) -> Result<HttpResponse, AppError> {
    let admin = signed_in_admin!(state, req);
    crate::web::admin::check_csrf(&admin.session, &form.csrf)?;
    let Some(app) = admin.app.clone() else { return Ok(crate::web::admin::to_step_one()) };
    let n = requeue(&state, app.id, Requeue::One(path.into_inner()), admin.session.user_name.clone()).await?;
    Ok(after_retry(&form.back, n))
}

#[post("/console/dead-letters/retry-all")]
pub async fn retry_all(
    state: web::Data<AppState>,
    req: HttpRequest,
    form: web::Form<RetryForm>,
) -> Result<HttpResponse, AppError> {
    let admin = signed_in_admin!(state, req);
    crate::web::admin::check_csrf(&admin.session, &form.csrf)?;
    let Some(app) = admin.app.clone() else { return Ok(crate::web::admin::to_step_one()) };
    let n = requeue(&state, app.id, Requeue::All, admin.session.user_name.clone()).await?;
    Ok(after_retry(&form.back, n))
}
