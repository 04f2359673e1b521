//! The agents' WhatsApp template panel (`/templates?id=<MessagingSession id>`), an iframe
//! component on the Messaging Session page. Outside WhatsApp's 24-hour window only approved
//! templates reach a customer: the agent picks a sender, a template, fills its values, sees
//! the WhatsApp bubble, and sends. Every send is recorded and its delivery shown.

use std::sync::Arc;

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, get, post, web};
use askama::Template;
use serde::Deserialize;
use serde_json::{Value, json};

use super::admin::{self, check_csrf, frame_ancestors, render};
use crate::db::apps::{self as rows, AppRow};
use crate::db::conversations::{self, NewMessage};
use crate::db::web::Session;
use crate::db::{Direction, MessageStatus};
use crate::error::AppError;
use crate::infobip::Account;
use crate::infobip::catalog::explain_list_problem;
use crate::infobip::messages::{TemplateContent, TemplateMessage};
use crate::infobip::templates::{Button, Header, Inputs, Preview, Template as WaTemplate, preview, template_data};
use crate::web::AppState;

/// WhatsApp's customer-service window.
const WINDOW: chrono::Duration = chrono::Duration::hours(24);

#[derive(Debug, Default, Deserialize)]
pub struct PanelQuery {
    id: Option<String>,
    sender: Option<String>,
    q: Option<String>,
    template: Option<String>,
}

/// A form field of the chosen template.
pub struct Input {
    pub name: String,
    pub label: String,
    pub value: String,
    pub error: Option<String>,
    pub help: Option<String>,
    /// Few agents need it (a quick reply's payload): folded under "Advanced".
    pub advanced: bool,
    /// The example registered with the template, shown in the empty field.
    pub placeholder: Option<String>,
}

#[derive(Template)]
#[template(path = "setup/panel.html")]
struct PanelPage {
    user: String,
    csrf: String,
    session_id: String,
    recipient: String,
    to_error: Option<String>,
    session_note: Option<String>,
    window: Option<String>,
    window_open: bool,
    senders: Vec<String>,
    sender: String,
    search: String,
    templates: Vec<(String, String, String, String)>,
    chosen: Option<String>,
    inputs: Vec<Input>,
    /// "Advanced" starts unfolded when one of its values is set or wrong.
    advanced_open: bool,
    fixed_buttons: Vec<String>,
    picker: Vec<(String, String)>,
    preview: Option<Preview>,
    preview_body: String,
    /// The template's header text with its `{{1}}`, for the live preview.
    preview_header: String,
    send_id: String,
    notice: Option<String>,
    problem: Option<String>,
    /// The frame of what was sent to this customer through this sender, once something was.
    sent_frame: Option<String>,
}

/// What the org says about the session: the customer's WhatsApp id and the values an agent
/// may insert (end user, contact, account names).
struct SessionInfo {
    recipient: Option<String>,
    values: Vec<(String, String)>,
    note: Option<String>,
}

fn valid_record_id(id: &str) -> bool {
    (id.len() == 15 || id.len() == 18) && id.chars().all(|c| c.is_ascii_alphanumeric())
}

async fn session_info(state: &AppState, app: &AppRow, session_id: &str) -> SessionInfo {
    let unreadable = |why: &str| SessionInfo { recipient: None, values: Vec::new(), note: Some(why.to_owned()) };
    if !valid_record_id(session_id) {
        return unreadable("No Messaging Session id in the page address: type the customer's number.");
    }
    let token = match admin::connection::token_for(state, app).await {
        Ok(t) => t,
        Err(_) => return unreadable("The session could not be read from Salesforce: type the customer's number."),
    };
    let soql = format!(
        "SELECT Id, MessagingEndUser.MessagingPlatformKey, MessagingEndUser.Name, EndUserContact.Name, EndUserAccount.Name FROM MessagingSession WHERE Id = '{session_id}'"
    );
    let Ok(records) = state.salesforce.query(&token, &soql, false).await else {
        return unreadable("The session could not be read from Salesforce: type the customer's number.");
    };
    let Some(record) = records.first() else {
        return unreadable("Salesforce has no such Messaging Session: type the customer's number.");
    };
    let text = |p: &str| record.pointer(p).and_then(Value::as_str).map(str::to_owned);
    let mut values = Vec::new();
    for (label, pointer) in [
        ("End user name", "/MessagingEndUser/Name"),
        ("Contact name", "/EndUserContact/Name"),
        ("Account name", "/EndUserAccount/Name"),
    ] {
        if let Some(v) = text(pointer) {
            values.push((label.to_owned(), v));
        }
    }
    SessionInfo { recipient: text("/MessagingEndUser/MessagingPlatformKey"), values, note: None }
}

fn inputs_for(t: &WaTemplate, given: &Inputs, problems: &[(String, String)]) -> (Vec<Input>, Vec<String>) {
    let error = |name: &str| problems.iter().find(|(f, _)| f == name).map(|(_, p)| format!("This value {p}."));
    let input = |name: String, label: String, help: Option<String>| Input {
        value: given.get(&name).cloned().unwrap_or_default(),
        error: error(&name),
        name,
        label,
        help,
        advanced: false,
        placeholder: None,
    };
    let mut inputs = Vec::new();
    match &t.header {
        Header::Text { placeholders: 1, .. } => inputs.push(input("header_text".into(), "Header value".into(), None)),
        Header::Media { format } => {
            let kind = format.to_lowercase();
            inputs.push(input(
                "header_url".into(),
                format!("Header {kind} URL"),
                Some("An https:// address Infobip can download.".into()),
            ));
            if format == "DOCUMENT" {
                inputs.push(input("header_filename".into(), "Document file name".into(), None));
            }
        }
        _ => {}
    }
    for i in 1..=t.body_placeholders() {
        let example = t.body_examples.get(i - 1).map(|e| format!("e.g. {e}"));
        inputs.push(Input {
            placeholder: example,
            ..input(format!("body_{i}"), format!("Body value {{{{{i}}}}}"), None)
        });
    }
    let mut fixed = Vec::new();
    for (i, b) in t.buttons.iter().enumerate() {
        let name = format!("button_{}", i + 1);
        match b {
            Button::QuickReply { text } => inputs.push(Input {
                advanced: true,
                ..input(
                    name,
                    format!("Quick reply \"{text}\": payload"),
                    Some(
                        "Comes back when the customer taps it; at most 128 characters (empty: the button's text)."
                            .into(),
                    ),
                )
            }),
            Button::Url { text, url, dynamic: true } => {
                inputs.push(input(name, format!("Button \"{text}\": end of {url}"), None))
            }
            Button::Url { text, url, .. } => fixed.push(format!("{text} → {url}")),
            Button::CopyCode { text } => inputs.push(input(name, format!("Button \"{text}\": code to copy"), None)),
            Button::Fixed { kind, text } => fixed.push(format!("{text} ({})", kind.to_lowercase().replace('_', " "))),
        }
    }
    (inputs, fixed)
}

/// The Infobip account a sender of the app belongs to, or why there is none, in plain words.
/// Why the panel cannot offer a sender's templates, with the status a send answers: the
/// agent's choice (400) or what the bridge could not reach (502, 503).
struct SenderProblem {
    status: StatusCode,
    message: String,
}

impl SenderProblem {
    fn new(status: StatusCode, message: impl Into<String>) -> Self {
        Self { status, message: message.into() }
    }
}

async fn sender_account(state: &AppState, app: &AppRow, sender: &str) -> Result<Account, SenderProblem> {
    let (app_id, number) = (app.id.clone(), sender.to_owned());
    let account = state
        .db
        .run(move |c| {
            let Some(s) = rows::senders(c, &app_id)?.into_iter().find(|s| s.number == number) else { return Ok(None) };
            Ok(rows::accounts(c, &app_id)?.into_iter().find(|a| a.id == s.infobip_account_id))
        })
        .await
        .map_err(|_| SenderProblem::new(StatusCode::SERVICE_UNAVAILABLE, "The bridge's database is busy; try again."))?
        .ok_or_else(|| SenderProblem::new(StatusCode::BAD_REQUEST, "This number is not a sender of the app."))?;
    crate::directory::open_account(&state.cipher, account)
        .map_err(|_| SenderProblem::new(StatusCode::INTERNAL_SERVER_ERROR, "The sender's Infobip key cannot be read."))
}

/// The sender's account and approved templates, or why they cannot be listed, in plain words.
async fn templates(
    state: &AppState,
    app: &AppRow,
    sender: &str,
) -> Result<(Account, Arc<Vec<WaTemplate>>), SenderProblem> {
    let account = sender_account(state, app, sender).await?;
    let all = state
        .templates
        .approved(&account, sender)
        .await
        .map_err(|e| SenderProblem::new(StatusCode::BAD_GATEWAY, explain_list_problem(&e)))?;
    Ok((account, all))
}

struct Outcome {
    notice: Option<String>,
    problem: Option<String>,
    problems: Vec<(String, String)>,
    given: Inputs,
    recipient: Option<String>,
}

async fn show(
    state: &AppState,
    session: &Session,
    app: &AppRow,
    query: &PanelQuery,
    outcome: Outcome,
    status: StatusCode,
) -> Result<HttpResponse, AppError> {
    let session_id = query.id.clone().unwrap_or_default();
    let app_id = app.id.clone();
    let senders: Vec<String> =
        state.db.run(move |c| Ok(rows::senders(c, &app_id)?.into_iter().map(|s| s.number).collect())).await?;
    let info = session_info(state, app, &session_id).await;
    let recipient = outcome.recipient.clone().or(info.recipient.clone()).unwrap_or_default();
    // A lone sender is the only choice: chosen already, so its templates show at once.
    let sender = match (query.sender.clone().filter(|s| senders.contains(s)), senders.as_slice()) {
        (Some(chosen), _) => chosen,
        (None, [only]) => only.clone(),
        (None, _) => String::new(),
    };
    let mut problem = outcome.problem;
    if senders.is_empty() {
        problem = Some(
            "No WhatsApp sender is configured for this app: an admin adds one in the setup (step 4, Senders).".into(),
        );
    }
    // The window: when this customer last wrote through this sender.
    let (mut window, mut window_open, mut sent) = (None, false, Vec::new());
    if !recipient.is_empty() {
        let (app_id, to, from) = (app.id.clone(), recipient.clone(), sender.clone());
        let found = state
            .db
            .run(move |c| {
                // Through the chosen sender; before one is chosen, the customer's latest conversation.
                let id = if from.is_empty() {
                    conversations::find_for_end_user(c, &app_id, &to, None)?
                } else {
                    conversations::find_id(c, &app_id, &to, &from)?
                };
                match id {
                    Some(id) => Ok(Some((conversations::find(c, id)?, conversations::messages_of(c, id)?))),
                    None => Ok(None),
                }
            })
            .await?;
        if let Some((conversation, messages)) = found {
            let last = conversation.and_then(|c| c.last_inbound_at);
            window_open = last.is_some_and(|t| crate::db::now() - t < WINDOW);
            window = last.map(|t| t.format("%Y-%m-%d %H:%M UTC").to_string());
            sent = super::panel_sent::lines(&messages);
        }
    }
    let search = query.q.clone().unwrap_or_default();
    let (mut list, mut chosen_template) = (Vec::new(), None);
    if !sender.is_empty() {
        match templates(state, app, &sender).await {
            Ok((_, all)) => {
                chosen_template = query.template.as_ref().and_then(|k| all.iter().find(|t| &t.key() == k).cloned());
                list = all
                    .iter()
                    .filter(|t| t.matches(&search))
                    .map(|t| (t.key(), t.name.clone(), t.category.clone(), t.language.clone()))
                    .collect();
            }
            Err(why) => problem = Some(why.message),
        }
    }
    let (inputs, fixed_buttons, preview_of, preview_body) = match &chosen_template {
        Some(t) => {
            let (inputs, fixed) = inputs_for(t, &outcome.given, &outcome.problems);
            (inputs, fixed, Some(preview(t, &outcome.given)), t.body.clone())
        }
        None => (Vec::new(), Vec::new(), None, String::new()),
    };
    let preview_header = match chosen_template.as_ref().map(|t| &t.header) {
        Some(Header::Text { text, .. }) => text.clone(),
        _ => String::new(),
    };
    let sent_frame =
        (!sent.is_empty() && !sender.is_empty()).then(|| super::panel_sent::frame_url(&recipient, &sender));
    let page = PanelPage {
        user: session.user_name.clone(),
        csrf: session.csrf_token.clone(),
        session_id,
        recipient,
        to_error: outcome.problems.iter().find(|(f, _)| f == "to").map(|(_, p)| format!("This number {p}.")),
        session_note: info.note,
        window,
        window_open,
        senders,
        sender,
        search,
        templates: list,
        chosen: chosen_template.map(|t| t.key()),
        advanced_open: inputs.iter().any(|i| i.advanced && (i.error.is_some() || !i.value.is_empty())),
        inputs,
        fixed_buttons,
        picker: info.values,
        preview: preview_of,
        preview_body,
        preview_header,
        send_id: uuid::Uuid::new_v4().to_string(),
        notice: outcome.notice,
        problem,
        sent_frame,
    };
    render(status, &page, &frame_ancestors(Some(app)))
}

/// The signed-in person (admin or agent) and their app, or the sign-in page.
async fn signed_in(state: &AppState, req: &HttpRequest) -> Result<Result<(Session, AppRow), HttpResponse>, AppError> {
    let next = req.uri().to_string();
    let session = match admin::current(state, req).await? {
        Some(s) => s,
        None => {
            let page = admin::signin::sign_in_page_to(
                state,
                StatusCode::UNAUTHORIZED,
                "Sign in with Salesforce to send WhatsApp templates.",
                &next,
            )
            .await?;
            return Ok(Err(page));
        }
    };
    let app_id = session.app_id.clone().unwrap_or_default();
    match state.db.run(move |c| rows::find(c, &app_id)).await? {
        Some(app) => Ok(Ok((session, app))),
        None => Ok(Err(admin::signin::sign_in_page_to(
            state,
            StatusCode::NOT_FOUND,
            "This bridge is not set up yet.",
            &next,
        )
        .await?)),
    }
}

#[get("/templates")]
pub async fn panel(
    state: web::Data<AppState>,
    req: HttpRequest,
    query: web::Query<PanelQuery>,
) -> Result<HttpResponse, AppError> {
    let (session, app) = match signed_in(&state, &req).await? {
        Ok(v) => v,
        Err(page) => return Ok(page),
    };
    let outcome = Outcome { notice: None, problem: None, problems: Vec::new(), given: Inputs::new(), recipient: None };
    show(&state, &session, &app, &query, outcome, StatusCode::OK).await
}

#[post("/templates/send")]
pub async fn send(state: web::Data<AppState>, req: HttpRequest, body: web::Bytes) -> Result<HttpResponse, AppError> {
    let (session, app) = match signed_in(&state, &req).await? {
        Ok(v) => v,
        Err(page) => return Ok(page),
    };
    let form: Inputs = url::form_urlencoded::parse(&body).into_owned().collect();
    check_csrf(&session, form.get("csrf").map(String::as_str).unwrap_or_default())?;
    let field = |k: &str| form.get(k).cloned().unwrap_or_default();
    let query =
        PanelQuery { id: Some(field("id")), sender: Some(field("sender")), q: None, template: Some(field("template")) };
    let mut outcome =
        Outcome { notice: None, problem: None, problems: Vec::new(), given: form.clone(), recipient: None };
    let to = crate::handover::whatsapp_id("to", &field("to"));
    outcome.recipient = Some(field("to"));
    let sender = field("sender");
    let (account, chosen) = match templates(&state, &app, &sender).await {
        Ok((account, all)) => (account, all.iter().find(|t| t.key() == field("template")).cloned()),
        Err(why) => {
            outcome.problem = Some(why.message);
            return show(&state, &session, &app, &query, outcome, why.status).await;
        }
    };
    let Some(template) = chosen else {
        outcome.problem = Some("Choose a sender and an approved template first.".into());
        return show(&state, &session, &app, &query, outcome, StatusCode::BAD_REQUEST).await;
    };
    let data = template_data(&template, &form);
    let (to, data) = match (to, data) {
        (Ok(to), Ok(data)) => (to, data),
        (to, data) => {
            if let Err(e) = to {
                outcome.problems.push(("to".into(), e.problem));
            }
            if let Err(problems) = data {
                outcome.problems.extend(problems);
            }
            outcome.problem = Some("Nothing was sent: fix the marked values.".into());
            return show(&state, &session, &app, &query, outcome, StatusCode::BAD_REQUEST).await;
        }
    };
    // WhatsApp's marketing STOP: marketing templates wait until the customer resumes.
    if template.category.eq_ignore_ascii_case("MARKETING") {
        let (app_id, recipient, from) = (app.id.clone(), to.clone(), sender.clone());
        let stopped = state
            .db
            .run(move |c| match conversations::find_id(c, &app_id, &recipient, &from)? {
                Some(id) => Ok(conversations::find(c, id)?.and_then(|c| c.marketing_opted_out_at)),
                None => Ok(None),
            })
            .await?;
        if let Some(at) = stopped {
            outcome.problem = Some(format!(
                "Not sent: this customer opted out of marketing messages from this number on {} (on WhatsApp or in Salesforce). Send a utility template, or wait until they opt in again.",
                at.format("%Y-%m-%d")
            ));
            return show(&state, &session, &app, &query, outcome, StatusCode::CONFLICT).await;
        }
    }
    let send_id = uuid::Uuid::parse_str(&field("send_id"))
        .map(|u| u.to_string())
        .unwrap_or_else(|_| uuid::Uuid::new_v4().to_string());
    let content = TemplateContent {
        template_name: template.name.clone(),
        language: template.language.clone(),
        template_data: data,
    };
    let stored = json!({
        "from": sender, "to": to, "messageId": send_id, "content": content,
        "panel": { "sentBy": session.user_name, "userId": session.user_id, "messagingSessionId": field("id") }
    });
    // Recorded before the call: a form sent twice (a double click, a reload) is sent once.
    let (app_id, record, id_for_row) = (app.id.clone(), stored.to_string(), send_id.clone());
    let (recipient, from) = (to.clone(), sender.clone());
    let inserted = state
        .db
        .write(move |c| {
            let now = crate::db::now();
            let conversation = conversations::upsert(c, &app_id, &recipient, &from, now)?;
            conversations::insert_message(
                c,
                &NewMessage {
                    app_id: &app_id,
                    conversation_id: conversation,
                    direction: Direction::Outbound,
                    provider_message_id: &id_for_row,
                    kind: "template",
                    body: Some(&record),
                    status: MessageStatus::Sending,
                    received_at: Some(now),
                    sf_entry_id: None,
                },
                now,
            )
        })
        .await?;
    let Some(message_row) = inserted else {
        outcome.notice = Some("This form was already sent.".into());
        outcome.given = Inputs::new();
        return show(&state, &session, &app, &query, outcome, StatusCode::OK).await;
    };
    state.limiter.acquire(&sender).await;
    let message = TemplateMessage { from: &sender, to: &to, message_id: &send_id, content: &content };
    let result = state.infobip.send_template(&account, &message).await;
    let now = crate::db::now();
    match result {
        Ok(_) => {
            state
                .db
                .write(move |c| conversations::mark_sent(c, message_row, now, now + chrono::Duration::days(1)))
                .await?;
            tracing::info!(app.id = %app.id, template = %template.name, "agent sent a WhatsApp template");
            outcome.notice = Some(format!(
                "Sent to +{to}. Its delivery status shows under \"Sent from this panel\" as WhatsApp reports it."
            ));
            outcome.given = Inputs::new();
            show(&state, &session, &app, &query, outcome, StatusCode::OK).await
        }
        Err(e) => {
            let reason = e.to_string();
            let stored_reason = reason.clone();
            state.db.write(move |c| conversations::mark_failed(c, message_row, &stored_reason, now, now)).await?;
            outcome.problem = Some(format!("Not sent. {reason}"));
            show(&state, &session, &app, &query, outcome, StatusCode::BAD_GATEWAY).await
        }
    }
}
