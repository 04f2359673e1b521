//! Step 2, the application: which messaging channel, the SCRT URL, the authorization
//! context, the platform event's fields and the automatic messages.

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, get, post, web};
use serde::Deserialize;

use super::connection::token_for;
use super::wizard::{Admin, Field, Section, StepView, place_error, show, signed_in_admin};
use crate::db::apps::AppRow;
use crate::error::AppError;
use crate::provisioning::{self as prov, AppSpec};
use crate::web::AppState;

#[derive(Debug, Default, Deserialize)]
pub struct ApplicationForm {
    csrf: String,
    channel_address_identifier: String,
    scrt_url: String,
    authorization_context: String,
    platform_event: String,
    event_type_field: String,
    payload_field: String,
    #[serde(default)]
    welcome_message: String,
    #[serde(default)]
    closing_message: String,
}

/// The SCRT host of a My Domain (`acme.my.salesforce.com` → `acme.my.salesforce-scrt.com`).
fn scrt_for(instance_url: Option<&str>) -> String {
    instance_url
        .filter(|u| u.contains(".my.salesforce.com"))
        .map(|u| u.replace(".my.salesforce.com", ".my.salesforce-scrt.com"))
        .unwrap_or_default()
}

impl ApplicationForm {
    fn from_app(app: &AppRow, instance_url: Option<&str>) -> Self {
        let opt = |v: &Option<String>| v.clone().unwrap_or_default();
        Self {
            csrf: String::new(),
            channel_address_identifier: opt(&app.channel_address_identifier),
            scrt_url: app.scrt_url.clone().unwrap_or_else(|| scrt_for(instance_url)),
            authorization_context: opt(&app.authorization_context),
            platform_event: opt(&app.platform_event),
            event_type_field: app.event_type_field.clone(),
            payload_field: app.payload_field.clone(),
            welcome_message: app.welcome_message.clone(),
            closing_message: app.closing_message.clone(),
        }
    }
}

fn sections(form: &ApplicationForm, channels: &[(String, String)]) -> Vec<Section> {
    let mut channel = Field::text("channel_address_identifier", "Messaging channel", &form.channel_address_identifier)
        .required()
        .help("The channel's Channel Address Identifier (Setup → Messaging Settings → your channel).");
    if !channels.is_empty() {
        channel.kind = "select";
        channel.options = channels.to_vec();
        if !channels.iter().any(|(v, _)| *v == form.channel_address_identifier) {
            channel.options.insert(0, (String::new(), "Choose a channel".into()));
        }
    }
    vec![Section::form(
        "Channel",
        "/setup/application",
        "Save",
        vec![
            channel,
            Field::text("scrt_url", "SCRT URL", &form.scrt_url)
                .kind("url")
                .required()
                .help("https://<My Domain>.my.salesforce-scrt.com"),
            Field::text(
                "authorization_context",
                "Authorization context (channel definition API name)",
                &form.authorization_context,
            )
            .required(),
            Field::text("platform_event", "Platform event API name", &form.platform_event).required(),
            Field::text("event_type_field", "Event type field", &form.event_type_field).required(),
            Field::text("payload_field", "Payload field", &form.payload_field).required(),
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
        ],
    )]
}

/// The org's channels when the token may read them; otherwise the admin types the id.
async fn channels(state: &AppState, app: &AppRow) -> (Vec<(String, String)>, Option<String>) {
    match token_for(state, app).await {
        Ok(token) => match crate::salesforce::setup::messaging_channels(&state.salesforce, &token).await {
            Ok(list) => (list, Some(token.instance_url)),
            Err(_) => (Vec::new(), Some(token.instance_url)),
        },
        Err(_) => (Vec::new(), None),
    }
}

fn need_app(admin: &Admin) -> Result<&AppRow, AppError> {
    admin.app.as_ref().ok_or_else(|| AppError::BadRequest("complete the BYOC connection (step 1) first".into()))
}

#[get("/setup/application")]
pub async fn show_step(state: web::Data<AppState>, req: HttpRequest) -> Result<HttpResponse, AppError> {
    let admin = signed_in_admin!(state, req);
    let Some(app) = admin.app.as_ref() else {
        return Ok(super::to_step_one());
    };
    let (channels, instance) = channels(&state, app).await;
    let form = ApplicationForm::from_app(app, instance.as_deref());
    let view = StepView { current: "application", notice: None, problem: None, sections: sections(&form, &channels) };
    show(&admin, view, StatusCode::OK)
}

#[post("/setup/application")]
pub async fn save(
    state: web::Data<AppState>,
    req: HttpRequest,
    form: web::Form<ApplicationForm>,
) -> Result<HttpResponse, AppError> {
    let admin = signed_in_admin!(state, req);
    super::check_csrf(&admin.session, &form.csrf)?;
    let mut row = need_app(&admin)?.clone();
    let form = form.into_inner();
    let spec = AppSpec {
        channel_address_identifier: Some(form.channel_address_identifier.trim().to_owned()),
        scrt_url: Some(form.scrt_url.trim().to_owned()),
        authorization_context: Some(form.authorization_context.trim().to_owned()),
        platform_event: Some(form.platform_event.trim().to_owned()),
        event_type_field: Some(form.event_type_field.trim().to_owned()),
        payload_field: Some(form.payload_field.trim().to_owned()),
        welcome_message: Some(form.welcome_message.trim().to_owned()),
        closing_message: Some(form.closing_message.trim().to_owned()),
        ..AppSpec::default()
    };
    let mut missing = Vec::new();
    for (name, value) in
        [("channel_address_identifier", &form.channel_address_identifier), ("scrt_url", &form.scrt_url)]
    {
        if value.trim().is_empty() {
            missing.push(name);
        }
    }
    let (cipher, actor) = (state.cipher.clone(), admin.actor());
    let result = if missing.is_empty() {
        state
            .db
            .write(move |c| {
                let ctx = prov::Ctx { cipher: &cipher, actor: &actor };
                Ok(prov::update_app(c, &ctx, &mut row, &spec).map(|_| row))
            })
            .await?
    } else {
        Err(prov::ProvisionError::Invalid { field: missing[0].into(), problem: "is required".into() })
    };
    let (channels, _) = channels(&state, need_app(&admin)?).await;
    let mut sections = sections(&form, &channels);
    match result {
        Ok(row) => {
            state.directory.invalidate();
            let admin = Admin { session: admin.session, app: Some(row), progress: admin.progress };
            let view = StepView { current: "application", notice: Some("Saved.".into()), problem: None, sections };
            show(&admin, view, StatusCode::OK)
        }
        Err(e) => {
            let problem = Some(place_error(&mut sections, &e));
            show(&admin, StepView { current: "application", notice: None, problem, sections }, StatusCode::BAD_REQUEST)
        }
    }
}
