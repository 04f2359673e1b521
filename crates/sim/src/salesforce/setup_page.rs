//! The slice of Salesforce Setup an admin uses to connect a partner app, so the bridge's
//! wizard can be walked against the simulator: Company Information (the values the wizard
//! asks for), the App Manager (a connected app from the bridge's certificate, which gives
//! the consumer key), and Messaging Settings (a channel made from a channel definition the
//! partner created). Its rules are the simulator's own, stated here.

use actix_multipart::form::MultipartForm;
use actix_multipart::form::bytes::Bytes as FileBytes;
use actix_multipart::form::text::Text;
use actix_web::{HttpResponse, web};
use askama::Template;
use serde::Deserialize;

use super::{ConnectedApp, SalesforceSim};

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/__sim/setup", web::get().to(page))
        .route("/__sim/setup/connected-app", web::post().to(new_app))
        .route("/__sim/setup/channel", web::post().to(new_channel))
        .route("/__sim/setup/record-page", web::post().to(record_page));
}

/// The scopes an admin may select, as Setup names them.
pub const SCOPES: &[(&str, &str)] = &[
    ("interaction_api", "Access Interaction API resources (interaction_api)"),
    ("api", "Manage user data via APIs (api)"),
    ("refresh_token", "Perform requests at any time (refresh_token, offline_access)"),
    ("openid", "Access unique user identifiers (openid)"),
];

struct AppView {
    name: String,
    consumer_key: String,
    callback_urls: String,
    scopes: String,
    users: String,
}

struct ChannelView {
    label: String,
    address_identifier: String,
    definition: String,
    active: bool,
}

/// What the admin typed in the new app's form, kept when it is refused.
#[derive(Default)]
struct AppDraft {
    name: String,
    callback_urls: String,
    scopes: Vec<String>,
    users: Vec<String>,
    certificate: String,
}

#[derive(Template)]
#[template(path = "sim/setup.html")]
struct SetupPage {
    org_id: String,
    org_type: &'static str,
    my_domain: String,
    pubsub: String,
    users: Vec<(String, String, String)>,
    apps: Vec<AppView>,
    channels: Vec<ChannelView>,
    /// Partner channel definitions: (developer name, the tile's label).
    definitions: Vec<(String, String)>,
    scopes: &'static [(&'static str, &'static str)],
    draft: AppDraft,
    /// Field name → what is wrong with it.
    errors: Vec<(&'static str, String)>,
    notice: Option<String>,
    /// The web page component on the Messaging Session record page, if one was added.
    component: Option<String>,
}

impl SetupPage {
    fn has_scope(&self, scope: &str) -> bool {
        self.draft.scopes.iter().any(|s| s == scope)
    }

    fn has_user(&self, username: &str) -> bool {
        self.draft.users.iter().any(|u| u == username)
    }

    fn error(&self, field: &str) -> Option<&str> {
        self.errors.iter().find(|(f, _)| *f == field).map(|(_, e)| e.as_str())
    }
}

fn render(
    sim: &SalesforceSim,
    draft: AppDraft,
    errors: Vec<(&'static str, String)>,
    notice: Option<String>,
) -> HttpResponse {
    let state = sim.state();
    let mut apps: Vec<AppView> = state
        .apps
        .values()
        .map(|a| AppView {
            name: state.app_names.get(&a.consumer_key).cloned().unwrap_or_else(|| "Connected app".into()),
            consumer_key: a.consumer_key.clone(),
            callback_urls: a.callback_urls.join(", "),
            scopes: a.scopes.join(", "),
            users: a.approved_users.join(", "),
        })
        .collect();
    apps.sort_by(|a, b| a.name.cmp(&b.name));
    let channels = state
        .channels
        .iter()
        .enumerate()
        .map(|(i, c)| ChannelView {
            label: super::rest::channel_label(i),
            address_identifier: c.address_identifier.clone(),
            definition: c.channel_definition.clone(),
            active: c.active,
        })
        .collect();
    let definitions = state
        .tooling
        .iter()
        .filter(|r| r.sobject == "ConversationChannelDefinition")
        .map(|r| {
            let label = r.metadata.get("masterLabel").and_then(serde_json::Value::as_str).unwrap_or("Partner channel");
            (r.full_name.clone(), label.to_owned())
        })
        .collect();
    let page = SetupPage {
        org_id: sim.config.org_id.clone(),
        org_type: if sim.config.sandbox { "Sandbox" } else { "Production" },
        my_domain: sim.base_url(),
        pubsub: state.pubsub_url.clone().unwrap_or_else(|| "(not serving)".into()),
        users: state.users.iter().map(|u| (u.username.clone(), u.display_name.clone(), u.profile.clone())).collect(),
        apps,
        channels,
        definitions,
        scopes: SCOPES,
        errors,
        draft,
        notice,
        component: state.console_panel.clone(),
    };
    let status = if page.errors.is_empty() { 200 } else { 400 };
    match page.render() {
        Ok(html) => HttpResponse::build(actix_web::http::StatusCode::from_u16(status).unwrap_or_default())
            .content_type("text/html; charset=utf-8")
            .body(html),
        Err(e) => HttpResponse::InternalServerError().body(e.to_string()),
    }
}

#[derive(Deserialize)]
struct Notice {
    created: Option<String>,
}

async fn page(sim: web::Data<SalesforceSim>, query: web::Query<Notice>) -> HttpResponse {
    render(&sim, AppDraft::default(), Vec::new(), query.created.clone().map(|what| format!("Created: {what}.")))
}

/// The new connected app's form: several `callback_url` lines, `scope` and `user` boxes, the
/// certificate as a file or pasted.
#[derive(MultipartForm)]
struct NewApp {
    name: Option<Text<String>>,
    callback_urls: Option<Text<String>>,
    #[multipart(rename = "scope")]
    scopes: Vec<Text<String>>,
    #[multipart(rename = "user")]
    users: Vec<Text<String>>,
    certificate: Option<Text<String>>,
    #[multipart(limit = "64KiB")]
    certificate_file: Option<FileBytes>,
}

async fn new_app(sim: web::Data<SalesforceSim>, MultipartForm(form): MultipartForm<NewApp>) -> HttpResponse {
    let text = |t: Option<Text<String>>| t.map(Text::into_inner).unwrap_or_default().trim().to_owned();
    let file =
        form.certificate_file.filter(|f| !f.data.is_empty()).map(|f| String::from_utf8_lossy(&f.data).into_owned());
    let draft = AppDraft {
        name: text(form.name),
        callback_urls: text(form.callback_urls),
        scopes: form.scopes.into_iter().map(Text::into_inner).collect(),
        users: form.users.into_iter().map(Text::into_inner).collect(),
        certificate: file.unwrap_or_else(|| text(form.certificate)),
    };
    let mut errors = Vec::new();
    if draft.name.is_empty() {
        errors.push(("name", "Connected App Name: You must enter a value".to_owned()));
    }
    let urls: Vec<String> =
        draft.callback_urls.lines().map(str::trim).filter(|l| !l.is_empty()).map(str::to_owned).collect();
    if urls.is_empty() {
        errors.push(("callback_urls", "Callback URL: You must enter a value".to_owned()));
    } else if let Some(bad) = urls.iter().find(|u| url::Url::parse(u).is_err()) {
        errors.push(("callback_urls", format!("Callback URL: {bad} is not a valid URL")));
    }
    if draft.scopes.is_empty() {
        errors.push(("scope", "Selected OAuth Scopes: select at least one".to_owned()));
    }
    if super::oauth::decoding_key(&draft.certificate).is_none() {
        errors.push(("certificate", "Use digital signatures: upload a valid X.509 certificate (PEM)".to_owned()));
    }
    if !errors.is_empty() {
        return render(&sim, draft, errors, None);
    }
    let consumer_key = format!("3MVG9{}", fastrand_key(40));
    let mut scopes = draft.scopes.clone();
    if scopes.iter().any(|s| s == "refresh_token") {
        scopes.push("offline_access".into());
    }
    sim.register_app(ConnectedApp {
        consumer_key: consumer_key.clone(),
        certificate_pem: draft.certificate.clone(),
        approved_users: draft.users.clone(),
        scopes,
        callback_urls: urls,
    });
    sim.state().app_names.insert(consumer_key, draft.name.clone());
    see_other(&format!("/__sim/setup?created={}", urlencode(&format!("the connected app {}", draft.name))))
}

fn fastrand_key(len: usize) -> String {
    const CHARS: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._";
    (0..len).map(|_| CHARS[fastrand::usize(..CHARS.len())] as char).collect()
}

fn urlencode(value: &str) -> String {
    url::form_urlencoded::byte_serialize(value.as_bytes()).collect()
}

fn see_other(location: &str) -> HttpResponse {
    HttpResponse::SeeOther().insert_header(("Location", location)).finish()
}

#[derive(Deserialize)]
struct NewChannel {
    #[serde(default)]
    definition: String,
}

/// Messaging Settings → New Channel: a channel of the chosen partner definition, active, with
/// a fresh Channel Address Identifier.
async fn new_channel(sim: web::Data<SalesforceSim>, form: web::Form<NewChannel>) -> HttpResponse {
    let known = sim
        .state()
        .tooling
        .iter()
        .any(|r| r.sobject == "ConversationChannelDefinition" && r.full_name == form.definition);
    if !known {
        let errors = vec![("definition", "Choose the channel definition of a partner app".to_owned())];
        return render(&sim, AppDraft::default(), errors, None);
    }
    let address = uuid::Uuid::new_v4().to_string();
    sim.add_channel(&address, &form.definition);
    see_other(&format!("/__sim/setup?created={}", urlencode(&format!("the messaging channel {address}"))))
}

#[derive(Deserialize)]
struct RecordPage {
    #[serde(default)]
    url: String,
}

/// Lightning App Builder: a web page component on the Messaging Session record page, given
/// the record's id as `?id=` (the console shows it beside each conversation).
async fn record_page(sim: web::Data<SalesforceSim>, form: web::Form<RecordPage>) -> HttpResponse {
    let url = form.url.trim();
    if url::Url::parse(url).is_err() {
        let errors = vec![("component", "URL: enter a valid URL".to_owned())];
        return render(&sim, AppDraft::default(), errors, None);
    }
    let sep = if url.contains('?') { '&' } else { '?' };
    sim.set_console_panel(&format!("{url}{sep}id={{id}}"));
    see_other(&format!("/__sim/setup?created={}", urlencode("the component on the Messaging Session page")))
}
