//! Step 2, the application, in Salesforce's order: first the channel definition (the
//! platform event and the ConversationChannelDefinition, created in the org), then the
//! messaging channel the admin makes from it in Setup, picked here from the org's list. The
//! authorization context and the event's fields come from the picked channel's definition,
//! so nobody types them twice.

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, get, post, web};
use serde::Deserialize;

use super::connection::token_for;
use super::wizard::{Admin, Field, Instruction, Section, StepView, mark_errors, place_error, show, signed_in_admin};
use crate::db::apps::{AppRow, WaitingMessages};
use crate::error::AppError;
use crate::provisioning::{self as prov, AppSpec};
use crate::salesforce::setup::{ChannelDefinition, OrgChannel, StepError, ensure_channel_records};
use crate::salesforce::{AccessToken, Error as SalesforceError};
use crate::web::AppState;

const DEFAULT_DEFINITION: &str = "BYOC_WhatsApp";
const DEFAULT_EVENT: &str = "WhatsApp_Event__e";
/// The tile the definition shows in Messaging Settings → New Channel (its MasterLabel).
const TILE: &str = "WhatsApp (Infobip)";

/// The channel definition and its platform event, created in the org.
#[derive(Debug, Default, Deserialize)]
pub struct DefinitionForm {
    csrf: String,
    authorization_context: String,
    platform_event: String,
    event_type_field: String,
    payload_field: String,
}

impl DefinitionForm {
    fn from_app(app: &AppRow) -> Self {
        Self {
            csrf: String::new(),
            authorization_context: app.authorization_context.clone().unwrap_or_else(|| DEFAULT_DEFINITION.into()),
            platform_event: app.platform_event.clone().unwrap_or_else(|| DEFAULT_EVENT.into()),
            event_type_field: app.event_type_field.clone(),
            payload_field: app.payload_field.clone(),
        }
    }
}

/// The messaging channel made from the definition, and the automatic messages.
#[derive(Debug, Default, Deserialize)]
pub struct ChannelForm {
    csrf: String,
    channel_address_identifier: String,
    scrt_url: String,
    #[serde(default)]
    welcome_message: String,
    #[serde(default)]
    closing_message: String,
    #[serde(default)]
    queue_message: String,
    #[serde(default)]
    wait_message: String,
}

/// The SCRT host of a My Domain (`acme.my.salesforce.com` → `acme.my.salesforce-scrt.com`).
fn scrt_for(instance_url: Option<&str>) -> String {
    instance_url
        .filter(|u| u.contains(".my.salesforce.com"))
        .map(|u| u.replace(".my.salesforce.com", ".my.salesforce-scrt.com"))
        .unwrap_or_default()
}

impl ChannelForm {
    fn from_app(app: &AppRow, waiting: WaitingMessages, instance_url: Option<&str>) -> Self {
        Self {
            csrf: String::new(),
            channel_address_identifier: app.channel_address_identifier.clone().unwrap_or_default(),
            scrt_url: app.scrt_url.clone().unwrap_or_else(|| scrt_for(instance_url)),
            welcome_message: app.welcome_message.clone(),
            closing_message: app.closing_message.clone(),
            queue_message: waiting.queue,
            wait_message: waiting.wait,
        }
    }
}

/// The app's saved waiting messages.
async fn waiting_of(state: &AppState, app: &AppRow) -> Result<WaitingMessages, AppError> {
    let id = app.id.clone();
    Ok(state.db.run(move |c| crate::db::apps::waiting_messages(c, &id)).await?)
}

/// What the org told about its channels: the list, or why there is none to pick from; and
/// the token that asked, or why there is none.
struct OrgView {
    channels: Result<Vec<OrgChannel>, String>,
    instance_url: Option<String>,
    token: Result<AccessToken, String>,
}

fn definition_card(app: &AppRow, form: &DefinitionForm) -> Section {
    let fields = vec![
        Field::text("authorization_context", "Channel definition API name", &form.authorization_context)
            .required()
            .help("Starts with the connected app's prefix, e.g. Partner1_WhatsApp. Salesforce calls it the authorization context."),
        Field::text("platform_event", "Platform event API name", &form.platform_event)
            .required()
            .help("Agents' replies are published on it. Made here when the org does not have it."),
        Field::text("event_type_field", "Event type field", &form.event_type_field).required(),
        Field::text("payload_field", "Payload field", &form.payload_field).required(),
    ];
    let mut card =
        Section::form("1. Channel definition", "/setup/application/definition", "Create in Salesforce", fields);
    match (&app.authorization_context, &app.platform_event) {
        (Some(context), Some(event)) => {
            card.lines.push(("good", format!("The channel definition {context} is in the org, publishing on {event}.")))
        }
        _ => card.lines.push((
            "muted",
            "The bridge creates the platform event and the channel definition in your org, or finds them there.".into(),
        )),
    }
    card
}

fn channel_instructions(app: &AppRow) -> Section {
    let mut card = Section::text("2. Create the messaging channel in Salesforce Setup");
    let definition = app.authorization_context.as_deref().unwrap_or(DEFAULT_DEFINITION);
    card.instructions = vec![
        Instruction::new("In Setup, open Messaging Settings and click New Channel."),
        Instruction::new(format!("Choose the tile \"{TILE}\", the channel definition with this API name:"))
            .value(definition),
        Instruction::new("Name the channel, save it, and activate it. Then reload this page: it appears below."),
    ];
    card
}

fn channel_card(form: &ChannelForm, org: &OrgView) -> Section {
    let mut channel = Field::text("channel_address_identifier", "Messaging channel", &form.channel_address_identifier)
        .required()
        .help("The channel's Channel Address Identifier (Setup → Messaging Settings → your channel).");
    let mut lines = Vec::new();
    match &org.channels {
        Ok(list) if !list.is_empty() => {
            channel.kind = "select";
            channel.help = Some("The channels of your org made from a channel definition.".into());
            channel.options = list.iter().map(|c| (c.address_identifier.clone(), option_label(c))).collect();
            if !list.iter().any(|c| c.address_identifier == form.channel_address_identifier) {
                channel.options.insert(0, (String::new(), "Choose a channel".into()));
            }
        }
        Ok(_) => lines.push(("muted", "Your org has no such channel yet: create it first (card 2).".to_owned())),
        Err(why) => {
            lines.push(("bad", format!("The org's channels cannot be listed: {why} Type the channel's identifier.")))
        }
    }
    let mut card = Section::form(
        "3. Choose the channel",
        "/setup/application",
        "Save",
        vec![
            channel,
            Field::text("scrt_url", "SCRT URL", &form.scrt_url)
                .kind("url")
                .required()
                .help("https://<My Domain>.my.salesforce-scrt.com (Setup → Messaging Settings)."),
            Field::text(
                "welcome_message",
                "Welcome message (sent when an agent joins; empty for none)",
                &form.welcome_message,
            )
            .kind("textarea"),
            Field::text(
                "closing_message",
                "Closing message (sent when the session ends; empty for none)",
                &form.closing_message,
            )
            .kind("textarea"),
            Field::text(
                "queue_message",
                "Queue message (sent at each new place in the queue; empty for none)",
                &form.queue_message,
            )
            .kind("textarea")
            .help("Put {position} where the number goes, e.g. “You are number {position} in the queue.”"),
            Field::text(
                "wait_message",
                "Wait message (sent when routing estimates the wait; empty for none)",
                &form.wait_message,
            )
            .kind("textarea")
            .help("Put {minutes} where the wait goes. Needs estimated wait time in the routing configuration."),
        ],
    );
    card.lines = lines;
    card
}

fn option_label(channel: &OrgChannel) -> String {
    let inactive = if channel.active { "" } else { ", inactive" };
    match &channel.definition {
        Some(d) => format!("{} ({}{inactive})", channel.label, d.developer_name),
        None => format!("{}{}", channel.label, if channel.active { "" } else { " (inactive)" }),
    }
}

fn sections(app: &AppRow, definition: &DefinitionForm, channel: &ChannelForm, org: &OrgView) -> Vec<Section> {
    vec![definition_card(app, definition), channel_instructions(app), channel_card(channel, org)]
}

/// The org's channels when the token may read them, and its instance URL.
async fn org_view(state: &AppState, app: &AppRow) -> OrgView {
    match token_for(state, app).await {
        Ok(token) => {
            let channels = crate::salesforce::setup::messaging_channels(&state.salesforce, &token)
                .await
                .map_err(|e| format!("{}.", crate::salesforce::explain(&e)));
            OrgView { channels, instance_url: Some(token.instance_url.clone()), token: Ok(token) }
        }
        Err(why) => OrgView { channels: Err(why.clone()), instance_url: None, token: Err(why) },
    }
}

fn page(sections: Vec<Section>, notice: Option<String>, problem: Option<String>) -> StepView {
    StepView { current: "application", notice, problem, sections }
}

#[get("/setup/application")]
pub async fn show_step(state: web::Data<AppState>, req: HttpRequest) -> Result<HttpResponse, AppError> {
    let admin = signed_in_admin!(state, req);
    let Some(app) = admin.app.as_ref() else {
        return Ok(super::to_step_one());
    };
    let org = org_view(&state, app).await;
    let channel = ChannelForm::from_app(app, waiting_of(&state, app).await?, org.instance_url.as_deref());
    let sections = sections(app, &DefinitionForm::from_app(app), &channel, &org);
    show(&admin, page(sections, None, None), StatusCode::OK)
}

async fn save_spec(
    state: &AppState,
    admin: &Admin,
    spec: AppSpec,
) -> Result<Result<AppRow, prov::ProvisionError>, AppError> {
    let Some(row) = admin.app.clone() else {
        return Err(AppError::BadRequest("complete the BYOC connection (step 1) first".into()));
    };
    let (cipher, actor) = (state.cipher.clone(), admin.actor());
    let saved = state
        .db
        .write(move |c| {
            let ctx = prov::Ctx { cipher: &cipher, actor: &actor };
            let mut row = row.clone();
            Ok(prov::update_app(c, &ctx, &mut row, &spec).map(|_| row))
        })
        .await?;
    if saved.is_ok() {
        state.directory.invalidate();
    }
    Ok(saved)
}

async fn create_records(
    state: &AppState,
    token: &AccessToken,
    form: &DefinitionForm,
) -> Result<Vec<crate::salesforce::rest::Record>, StepError> {
    ensure_channel_records(
        &state.salesforce,
        token,
        form.authorization_context.trim(),
        form.platform_event.trim(),
        form.event_type_field.trim(),
        form.payload_field.trim(),
    )
    .await
}

#[post("/setup/application/definition")]
pub async fn create_definition(
    state: web::Data<AppState>,
    req: HttpRequest,
    form: web::Form<DefinitionForm>,
) -> Result<HttpResponse, AppError> {
    let admin = signed_in_admin!(state, req);
    super::check_csrf(&admin.session, &form.csrf)?;
    let Some(app) = admin.app.clone() else { return Ok(super::to_step_one()) };
    let form = form.into_inner();
    let spec = AppSpec {
        authorization_context: Some(form.authorization_context.trim().to_owned()),
        platform_event: Some(form.platform_event.trim().to_owned()),
        event_type_field: Some(form.event_type_field.trim().to_owned()),
        payload_field: Some(form.payload_field.trim().to_owned()),
        ..AppSpec::default()
    };
    let org = org_view(&state, &app).await;
    let channel = ChannelForm::from_app(&app, waiting_of(&state, &app).await?, org.instance_url.as_deref());
    let mut sections = sections(&app, &form, &channel, &org);
    let refuse = |sections: Vec<Section>, problem: String| {
        show(&admin, page(sections, None, Some(problem)), StatusCode::BAD_REQUEST)
    };
    if let Some(problem) = mark_errors(&mut sections, &prov::spec_problems(&spec)) {
        return refuse(sections, problem);
    }
    // The token that read the org's channels above (one sign-in per request).
    let token = match &org.token {
        Ok(token) => token,
        Err(why) => return refuse(sections, format!("Nothing was saved: {why}")),
    };
    let records = match create_records(&state, token, &form).await {
        Ok(records) => records,
        Err(StepError { error: e @ SalesforceError::MissingScope, .. }) => {
            return refuse(sections, format!("Nothing was saved: {e}."));
        }
        Err(StepError { field, error }) => {
            let message = format!("{}.", crate::salesforce::explain(&error));
            sections.iter_mut().for_each(|s| {
                s.mark(field, &message);
            });
            return refuse(sections, format!("Nothing was saved: {message}"));
        }
    };
    let list: Vec<String> = records
        .iter()
        .map(|r| {
            let outcome = if r.created { "created" } else { "found" };
            match r.id.as_str() {
                "" => format!("{} {} ({outcome})", r.sobject, r.developer_name),
                id => format!("{} {} ({id}, {outcome})", r.sobject, r.developer_name),
            }
        })
        .collect();
    match save_spec(&state, &admin, spec).await? {
        Ok(row) => {
            let admin = Admin { session: admin.session, app: Some(row), progress: admin.progress };
            let Some(app) = admin.app.as_ref() else { return Ok(super::to_step_one()) };
            let sections = self::sections(app, &DefinitionForm::from_app(app), &channel, &org);
            let notice = Some(format!("In the org: {}.", list.join("; ")));
            show(&admin, page(sections, notice, None), StatusCode::OK)
        }
        Err(e) => {
            let problem = place_error(&mut sections, &e);
            refuse(sections, problem)
        }
    }
}

/// The definition of the picked channel when the org told it; the app's saved one otherwise.
fn picked_definition(org: &OrgView, address: &str) -> Option<ChannelDefinition> {
    org.channels.as_ref().ok()?.iter().find(|c| c.address_identifier == address)?.definition.clone()
}

#[post("/setup/application")]
pub async fn save(
    state: web::Data<AppState>,
    req: HttpRequest,
    form: web::Form<ChannelForm>,
) -> Result<HttpResponse, AppError> {
    let admin = signed_in_admin!(state, req);
    super::check_csrf(&admin.session, &form.csrf)?;
    let Some(app) = admin.app.clone() else { return Ok(super::to_step_one()) };
    let form = form.into_inner();
    let org = org_view(&state, &app).await;
    let address = form.channel_address_identifier.trim().to_owned();
    let mut spec = AppSpec {
        channel_address_identifier: Some(address.clone()),
        scrt_url: Some(form.scrt_url.trim().to_owned()),
        welcome_message: Some(form.welcome_message.trim().to_owned()),
        closing_message: Some(form.closing_message.trim().to_owned()),
        queue_message: Some(form.queue_message.trim().to_owned()),
        wait_message: Some(form.wait_message.trim().to_owned()),
        ..AppSpec::default()
    };
    if let Some(d) = picked_definition(&org, &address) {
        spec.authorization_context = Some(d.developer_name);
        spec.platform_event = Some(d.platform_event).filter(|e| !e.is_empty());
        spec.event_type_field = Some(d.event_type_field).filter(|f| !f.is_empty());
        spec.payload_field = Some(d.payload_field).filter(|f| !f.is_empty());
    }
    let mut sections = sections(&app, &DefinitionForm::from_app(&app), &form, &org);
    let mut problems = prov::spec_problems(&spec);
    for (name, value) in [("channel_address_identifier", &address), ("scrt_url", &form.scrt_url)] {
        if value.trim().is_empty() {
            problems.push(prov::ProvisionError::Invalid { field: name.into(), problem: "is required".into() });
        }
    }
    if spec.authorization_context.is_none() && app.authorization_context.is_none() {
        problems.push(prov::ProvisionError::Invalid {
            field: "authorization_context".into(),
            problem: "create the channel definition first (card 1)".into(),
        });
    }
    if let Some(problem) = mark_errors(&mut sections, &problems) {
        return show(&admin, page(sections, None, Some(problem)), StatusCode::BAD_REQUEST);
    }
    match save_spec(&state, &admin, spec).await? {
        Ok(row) => {
            let notice = Some(format!(
                "Saved. Conversations use the channel definition {}.",
                row.authorization_context.as_deref().unwrap_or_default()
            ));
            let sections = self::sections(&row, &DefinitionForm::from_app(&row), &form, &org);
            let admin = Admin { session: admin.session, app: Some(row), progress: admin.progress };
            show(&admin, page(sections, notice, None), StatusCode::OK)
        }
        Err(e) => {
            let problem = Some(place_error(&mut sections, &e));
            show(&admin, page(sections, None, problem), StatusCode::BAD_REQUEST)
        }
    }
}
