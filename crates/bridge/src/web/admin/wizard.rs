//! The setup wizard's frame: the page model every step fills (sections of fields, with
//! errors next to the field they concern), the session check, and the entry at `/`.

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, get};
use askama::Template;

use super::{frame_ancestors, render};
use crate::db::apps::AppRow;
use crate::db::web::Session;
use crate::error::AppError;
use crate::provisioning::ProvisionError;
use crate::web::AppState;

pub const STEPS: &[(&str, &str)] = &[
    ("connection", "BYOC connection"),
    ("application", "Application"),
    ("infobip", "Infobip accounts"),
    ("senders", "Senders"),
    ("summary", "Summary"),
];

/// One form control.
#[derive(Debug, Clone, Default)]
pub struct Field {
    pub name: &'static str,
    pub label: String,
    /// `text`, `url`, `password`, `textarea`, `file`, `select` or `checkbox`.
    pub kind: &'static str,
    pub value: String,
    pub required: bool,
    pub help: Option<String>,
    pub error: Option<String>,
    pub options: Vec<(String, String)>,
    pub checked: bool,
}

impl Field {
    pub fn text(name: &'static str, label: impl Into<String>, value: impl Into<String>) -> Self {
        Self { name, label: label.into(), kind: "text", value: value.into(), ..Self::default() }
    }

    pub fn kind(mut self, kind: &'static str) -> Self {
        self.kind = kind;
        self
    }

    pub fn required(mut self) -> Self {
        self.required = true;
        self
    }

    pub fn help(mut self, help: impl Into<String>) -> Self {
        self.help = Some(help.into());
        self
    }
}

/// One numbered instruction, with the exact value to enter when there is one (shown to
/// copy by hand, and with a copy button where JavaScript runs).
#[derive(Debug, Clone, Default)]
pub struct Instruction {
    pub text: String,
    pub value: Option<String>,
    /// A link that goes with it (the certificate to download).
    pub link: Option<(String, String)>,
}

impl Instruction {
    pub fn new(text: impl Into<String>) -> Self {
        Self { text: text.into(), ..Self::default() }
    }

    pub fn value(mut self, value: impl Into<String>) -> Self {
        self.value = Some(value.into());
        self
    }

    pub fn link(mut self, href: impl Into<String>, label: impl Into<String>) -> Self {
        self.link = Some((href.into(), label.into()));
        self
    }
}

/// A card of the page: lines of text (with a `good`/`bad`/`muted` class), numbered
/// instructions, an optional form.
#[derive(Debug, Clone, Default)]
pub struct Section {
    pub heading: String,
    pub lines: Vec<(&'static str, String)>,
    pub instructions: Vec<Instruction>,
    pub action: String,
    pub submit: String,
    pub fields: Vec<Field>,
    /// Fields few need, folded under "Advanced".
    pub advanced: Vec<Field>,
    pub links: Vec<(String, String)>,
    pub multipart: bool,
    /// The form undoes something (replaces a key): its button says so, and a box must be
    /// ticked first, so nobody does it by accident.
    pub destructive: Option<String>,
}

impl Section {
    pub fn form(heading: &str, action: &str, submit: &str, fields: Vec<Field>) -> Self {
        Self { heading: heading.into(), action: action.into(), submit: submit.into(), fields, ..Self::default() }
    }

    /// A card of text only.
    pub fn text(heading: &str) -> Self {
        Self { heading: heading.into(), ..Self::default() }
    }

    /// Whether "Advanced" starts unfolded: one of its fields is set or wrong.
    pub fn advanced_open(&self) -> bool {
        self.advanced.iter().any(|f| f.error.is_some() || !f.value.is_empty())
    }

    /// Makes the form destructive, confirmed by ticking `confirm`.
    pub fn destructive(mut self, confirm: &str) -> Self {
        self.destructive = Some(confirm.into());
        self
    }

    /// Puts `error` on the field called `name`; `false` if there is none.
    pub fn mark(&mut self, name: &str, error: &str) -> bool {
        match self.fields.iter_mut().chain(self.advanced.iter_mut()).find(|f| f.name == name) {
            Some(f) => {
                f.error = Some(error.to_owned());
                true
            }
            None => false,
        }
    }
}

#[derive(Template)]
#[template(path = "setup/step.html")]
struct StepPage<'a> {
    title: &'a str,
    user: &'a str,
    csrf: &'a str,
    /// Each step: path, label, finished.
    steps: Vec<(&'static str, &'static str, bool)>,
    current: &'a str,
    notice: Option<String>,
    problem: Option<String>,
    sections: Vec<Section>,
    next: Option<&'static str>,
}

/// Who is asking, and the app their session configures.
pub struct Admin {
    pub session: Session,
    pub app: Option<AppRow>,
    pub progress: Progress,
}

impl Admin {
    /// The name pages show for who is signed in. The one-time link signs in someone
    /// Salesforce has not named yet.
    pub fn display_name(&self) -> &str {
        if self.session.user_id == "bootstrap" { "Admin (one-time setup link)" } else { &self.session.user_name }
    }
}

/// What of each step is finished, read from what is saved (not from where the admin is).
#[derive(Debug, Clone, Copy, Default)]
pub struct Progress {
    pub accounts: usize,
    pub senders: usize,
}

/// Whether `step` of `app` is finished: its settings saved (the connection's only after
/// Salesforce accepted them), its accounts and senders there, the app switched on.
pub fn step_done(step: &str, app: Option<&AppRow>, progress: Progress) -> bool {
    let Some(app) = app else { return false };
    match step {
        "connection" => app.private_key_enc.is_some() && app.consumer_key.is_some() && app.org_id.is_some(),
        "application" => {
            app.channel_address_identifier.is_some()
                && app.scrt_url.is_some()
                && app.authorization_context.is_some()
                && app.platform_event.is_some()
        }
        "infobip" => progress.accounts > 0,
        "senders" => progress.senders > 0,
        "summary" => app.status == crate::db::AppStatus::Active,
        _ => false,
    }
}

/// The settings an active app needs that are missing, in the wizard's words: the step to
/// finish and what in it.
pub fn missing_for_activation(app: &AppRow) -> Vec<String> {
    let step1 = [
        ("the certificate", app.private_key_enc.is_some()),
        ("the consumer key", app.consumer_key.is_some()),
        ("the org ID", app.org_id.is_some()),
        ("the integration user", app.integration_username.is_some()),
    ];
    let step2 = [
        ("the channel definition", app.authorization_context.is_some() && app.platform_event.is_some()),
        ("the messaging channel", app.channel_address_identifier.is_some()),
        ("the SCRT URL", app.scrt_url.is_some()),
    ];
    let mut missing = Vec::new();
    for (step, items) in [("1. BYOC connection", &step1[..]), ("2. Application", &step2[..])] {
        let absent: Vec<&str> = items.iter().filter(|(_, set)| !set).map(|(what, _)| *what).collect();
        if !absent.is_empty() {
            missing.push(format!("{step}: {}", absent.join(", ")));
        }
    }
    missing
}

impl Admin {
    pub fn actor(&self) -> String {
        format!("web:{}", self.session.user_name)
    }
}

/// The signed-in admin, or the sign-in page to answer with.
pub async fn admin(state: &AppState, req: &HttpRequest) -> Result<Result<Admin, HttpResponse>, AppError> {
    let Some(session) = super::current(state, req).await? else {
        return Ok(Err(super::signin::sign_in_page(
            state,
            StatusCode::UNAUTHORIZED,
            "Sign in to set up WhatsApp for Service Cloud.",
        )
        .await?));
    };
    if session.role != crate::db::Role::Admin {
        return Ok(Err(
            super::signin::sign_in_page(state, StatusCode::FORBIDDEN, "Only admins can open the setup.").await?
        ));
    }
    let app_id = session.app_id.clone();
    let (app, progress) = match app_id {
        Some(id) => {
            state
                .db
                .run(move |c| {
                    let Some(app) = crate::db::apps::find(c, &id)? else { return Ok((None, Progress::default())) };
                    let accounts = crate::db::apps::accounts(c, &app.id)?.len();
                    let senders = crate::db::apps::senders(c, &app.id)?.len();
                    Ok((Some(app), Progress { accounts, senders }))
                })
                .await?
        }
        None => (None, Progress::default()),
    };
    Ok(Ok(Admin { session, app, progress }))
}

/// The signed-in admin of a handler, or an early return with the sign-in page.
macro_rules! signed_in_admin {
    ($state:expr, $req:expr) => {
        match $crate::web::admin::wizard::admin(&$state, &$req).await? {
            Ok(admin) => admin,
            Err(sign_in) => return Ok(sign_in),
        }
    };
}
pub(crate) use signed_in_admin;

/// Everything a step shows.
pub struct StepView {
    pub current: &'static str,
    pub notice: Option<String>,
    pub problem: Option<String>,
    pub sections: Vec<Section>,
}

pub fn show(admin: &Admin, view: StepView, status: StatusCode) -> Result<HttpResponse, AppError> {
    let index = STEPS.iter().position(|(p, _)| *p == view.current).unwrap_or(0);
    let title = STEPS.get(index).map_or("Setup", |(_, l)| *l);
    let steps = STEPS
        .iter()
        .map(|(path, label)| (*path, *label, step_done(path, admin.app.as_ref(), admin.progress)))
        .collect();
    let user = admin.display_name();
    let page = StepPage {
        title,
        user,
        csrf: &admin.session.csrf_token,
        steps,
        current: view.current,
        notice: view.notice,
        problem: view.problem,
        sections: view.sections,
        next: STEPS.get(index + 1).map(|(p, _)| *p).filter(|_| admin.app.is_some()),
    };
    render(status, &page, &frame_ancestors(admin.app.as_ref()))
}

/// Puts a provisioning refusal on the field it concerns; `false` when the page has no such field.
pub fn mark_error(sections: &mut [Section], error: &ProvisionError) -> bool {
    match error {
        ProvisionError::Invalid { field, problem } => {
            let message = format!("{problem}.");
            sections.iter_mut().any(|s| s.mark(field, &message))
        }
        _ => false,
    }
}

/// Every refusal at once, each on its field; the page's problem says how many (or names the
/// first one no field of the page shows). `None` when there is nothing to refuse.
pub fn mark_errors(sections: &mut [Section], problems: &[ProvisionError]) -> Option<String> {
    if problems.is_empty() {
        return None;
    }
    let unplaced: Vec<String> =
        problems.iter().filter(|e| !mark_error(sections, e)).map(|e| format!("Nothing was saved: {e}")).collect();
    Some(match (unplaced.first(), problems.len()) {
        (Some(first), _) => first.clone(),
        (None, 1) => "Nothing was saved: fix the marked field.".to_owned(),
        (None, n) => format!("Nothing was saved: fix the {n} marked fields."),
    })
}

/// A provisioning refusal shown on its field, else as the page's problem.
pub fn place_error(sections: &mut [Section], error: &ProvisionError) -> String {
    if mark_error(sections, error) {
        "Nothing was saved: fix the marked field.".into()
    } else {
        format!("Nothing was saved: {error}")
    }
}

/// The entry point the Salesforce iframe loads (`/?id=<record id>`).
#[get("/")]
pub async fn entry(state: actix_web::web::Data<AppState>, req: HttpRequest) -> Result<HttpResponse, AppError> {
    match admin(&state, &req).await? {
        Ok(admin) => {
            let next = if admin.app.as_ref().is_some_and(|a| a.status == crate::db::AppStatus::Active) {
                "summary"
            } else {
                "connection"
            };
            Ok(super::see_other(&format!("/setup/{next}")))
        }
        Err(page) => Ok(page),
    }
}
