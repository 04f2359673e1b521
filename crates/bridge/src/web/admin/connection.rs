//! Step 1, the BYOC connection, in the order Salesforce allows it: first the certificate
//! (generated here, or the admin's own key), which Salesforce needs to create the connected
//! app; then the connected app, created in Salesforce Setup with the values shown; only then
//! its consumer key with the org's details, checked live (a JWT bearer token, then the setup
//! records through the Tooling API) before anything says "saved". What Salesforce refuses is
//! shown on the field it concerns and nothing is saved.

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, get, post, web};
use secrecy::ExposeSecret;
use serde::Deserialize;

use super::wizard::{Admin, Field, Instruction, Section, StepView, mark_errors, place_error, show, signed_in_admin};
use crate::db::OrgType;
use crate::db::apps::AppRow;
use crate::error::AppError;
use crate::provisioning::{self as prov, AppSpec, CTX_PRIVATE_KEY};
use crate::salesforce::setup::check_access;
use crate::salesforce::{Credentials, Error as SalesforceError, explain};
use crate::web::AppState;

#[derive(Debug, Default, Deserialize)]
pub struct ConnectionForm {
    csrf: String,
    #[serde(default)]
    pub(super) name: String,
    /// `production` or `sandbox`.
    org_type: String,
    /// Optional: the org's My Domain URL, where tokens are asked for.
    #[serde(default)]
    my_domain: String,
    org_id: String,
    integration_username: String,
    consumer_key: String,
    /// Advanced: another Pub/Sub API endpoint than Salesforce's public one.
    #[serde(default)]
    pubsub_endpoint: String,
}

impl ConnectionForm {
    pub(super) fn from_app(app: Option<&AppRow>) -> Self {
        let opt = |v: Option<&Option<String>>| v.and_then(Clone::clone).unwrap_or_default();
        Self {
            csrf: String::new(),
            name: app.map(|a| a.name.clone()).unwrap_or_else(|| "whatsapp".into()),
            org_type: app.map_or(OrgType::Production, |a| a.org_type).to_string(),
            // The default login hosts are the org type's, not a My Domain.
            my_domain: app
                .map(|a| a.login_url.clone())
                .filter(|u| u != OrgType::Production.audience() && u != OrgType::Sandbox.audience())
                .unwrap_or_default(),
            org_id: opt(app.map(|a| &a.org_id)),
            integration_username: opt(app.map(|a| &a.integration_username)),
            consumer_key: opt(app.map(|a| &a.consumer_key)),
            pubsub_endpoint: opt(app.map(|a| &a.pubsub_endpoint)),
        }
    }
}

fn org_type_field(value: &str) -> Field {
    let mut field = Field::text("org_type", "Type of org", value).kind("select").required().help(
        "A sandbox's tokens are for https://test.salesforce.com, a production org's for https://login.salesforce.com.",
    );
    field.options = vec![("production".into(), "Production".into()), ("sandbox".into(), "Sandbox".into())];
    field
}

impl ConnectionForm {
    /// Where tokens are asked for: the My Domain, or the login host of the org's type.
    fn login_url(&self) -> String {
        match self.my_domain.trim() {
            "" => self.org_type.parse::<OrgType>().unwrap_or(OrgType::Production).audience().to_owned(),
            url => url.to_owned(),
        }
    }
}

fn name_field(value: &str) -> Field {
    Field::text("name", "Name of this connection", value).required().help("Letters, digits, - and _.")
}

/// What to do in Salesforce Setup, with the exact values, once the certificate exists.
fn connected_app_instructions(base_url: &str, certificate: bool) -> Vec<Instruction> {
    let signature = Instruction::new("Tick \"Use digital signatures\" and upload this bridge's certificate:");
    let signature = if certificate {
        signature.link("/setup/certificate.crt", "Download the certificate (byoc-bridge.crt)")
    } else {
        Instruction::new("Tick \"Use digital signatures\" and upload the certificate of card 1 (make it first).")
    };
    vec![
        Instruction::new(
            "In Setup, open External Client App Manager (or App Manager for a connected app) and create a new app. Start its name with your channel's prefix, e.g. \"Partner1 WhatsApp\": the channel definition's API name must start with the same prefix.",
        ),
        Instruction::new("Enable OAuth. As the callback URL enter:").value(format!("{base_url}/setup/oauth/callback")),
        Instruction::new("Select these OAuth scopes:").value(
            "Access Interaction API resources (interaction_api), Manage user data via APIs (api), Perform requests at any time (refresh_token, offline_access), Access unique user identifiers (openid)",
        ),
        Instruction::new("Tick \"Issue JSON Web Token (JWT)-based access tokens for named users\"."),
        signature,
        Instruction::new(
            "Save. Under Policies, set Permitted Users to \"Admin approved users are pre-authorized\" and add the profile or permission set of the integration user (and of the agents and admins who sign in here).",
        ),
        Instruction::new("Open the app's consumer details (Manage Consumer Details) and copy the Consumer Key into card 3."),
    ]
}

pub(super) fn sections(base_url: &str, admin: &Admin, form: &ConnectionForm) -> Vec<Section> {
    let app = admin.app.as_ref();
    let has_key = app.is_some_and(|a| a.private_key_enc.is_some());
    let has_certificate = app.is_some_and(|a| a.certificate_pem.is_some());
    let mut out = Vec::new();

    if has_key {
        let mut ready = Section::text("1. Certificate");
        ready.lines.push((
            "good",
            "The key pair is ready. Its private key stays in the bridge, encrypted, and is never shown.".into(),
        ));
        if has_certificate {
            ready.links.push(("/setup/certificate.crt".into(), "Download the certificate".into()));
        }
        out.push(ready);
    } else {
        let naming = if app.is_none() { vec![name_field(&form.name)] } else { Vec::new() };
        let mut first =
            Section::form("1. Certificate", "/setup/connection/keypair", "Generate the certificate", naming.clone());
        first.lines.push((
            "muted",
            "Salesforce needs a certificate to create the connected app. Generate a key pair here (its private key never leaves the bridge), or use your own RSA key below.".into(),
        ));
        out.push(first);
        let mut own = Section::form("", "/setup/connection/key", "Use this key", naming);
        own.fields.extend(own_key_fields());
        own.multipart = true;
        out.push(own);
    }

    let mut create = Section::text("2. Create the connected app in Salesforce Setup");
    create.instructions = connected_app_instructions(base_url, has_certificate);
    out.push(create);

    if has_key {
        let fields = vec![
            org_type_field(&form.org_type),
            Field::text("my_domain", "My Domain URL (optional)", &form.my_domain)
                .kind("url")
                .help("https://<your domain>.my.salesforce.com (Setup → My Domain). Without it, tokens are asked from login.salesforce.com or test.salesforce.com."),
            Field::text("org_id", "Org ID", &form.org_id).required().help("Setup → Company Information → Salesforce.com Organization ID."),
            Field::text("integration_username", "Integration user's username", &form.integration_username).required(),
            Field::text("consumer_key", "Consumer key of the connected app", &form.consumer_key)
                .required()
                .help("From step 2's last instruction. It is checked with Salesforce before anything is saved."),
        ];
        let mut connect = Section::form("3. Connect to the org", "/setup/connection", "Check and save", fields);
        connect.advanced =
            vec![Field::text("pubsub_endpoint", "Pub/Sub API endpoint", &form.pubsub_endpoint).kind("url").help(
                format!(
                    "Where agents' replies are read from. Empty: Salesforce's public endpoint, {}.",
                    crate::salesforce::pubsub::DEFAULT_ENDPOINT
                ),
            )];
        out.push(connect);

        let replace = Section::form("Replace the key pair", "/setup/connection/keypair", "Generate a new key pair", Vec::new())
            .destructive("I will upload the new certificate to the connected app: until then the bridge cannot sign in to Salesforce.");
        out.push(replace);
        let mut own = Section::form("", "/setup/connection/key", "Use this key instead", own_key_fields())
            .destructive("Replace the current key with this one.");
        own.multipart = true;
        out.push(own);
    } else {
        let mut later = Section::text("3. Connect to the org");
        later.lines.push((
            "muted",
            "Once the connected app exists: its consumer key and your org's details, checked with Salesforce before they are saved.".into(),
        ));
        out.push(later);
    }
    out
}

fn own_key_fields() -> Vec<Field> {
    vec![
        Field::text("private_key_file", "Or use an existing RSA private key: its PEM file", "").kind("file"),
        Field::text("private_key", "or its text, pasted", "").kind("textarea"),
    ]
}

#[get("/setup/connection")]
pub async fn show_step(state: web::Data<AppState>, req: HttpRequest) -> Result<HttpResponse, AppError> {
    let admin = signed_in_admin!(state, req);
    let form = ConnectionForm::from_app(admin.app.as_ref());
    let view = StepView {
        current: "connection",
        notice: None,
        problem: None,
        sections: sections(&state.base_url, &admin, &form),
    };
    show(&admin, view, StatusCode::OK)
}

/// Which field a token refusal is about.
fn auth_field(error: &SalesforceError) -> &'static str {
    match error {
        SalesforceError::TokenRequest { error, description, .. } => {
            let d = description.to_ascii_lowercase();
            if error == "invalid_client_id" || d.contains("client identifier") {
                "consumer_key"
            } else if d.contains("user") {
                "integration_username"
            } else if d.contains("audience") {
                "org_type"
            } else {
                ""
            }
        }
        SalesforceError::LoginUnreachable(_) => "my_domain",
        _ => "",
    }
}

#[post("/setup/connection")]
pub async fn save(
    state: web::Data<AppState>,
    req: HttpRequest,
    form: web::Form<ConnectionForm>,
) -> Result<HttpResponse, AppError> {
    let admin = signed_in_admin!(state, req);
    super::check_csrf(&admin.session, &form.csrf)?;
    let form = form.into_inner();
    let mut sections = sections(&state.base_url, &admin, &form);
    let refuse = |sections: Vec<Section>, problem: String| {
        show(
            &admin,
            StepView { current: "connection", notice: None, problem: Some(problem), sections },
            StatusCode::BAD_REQUEST,
        )
    };
    let login_url = form.login_url();
    let spec = AppSpec {
        org_type: Some(form.org_type.trim().to_owned()),
        login_url: Some(login_url.clone()),
        org_id: Some(form.org_id.trim().to_owned()),
        integration_username: Some(form.integration_username.trim().to_owned()),
        consumer_key: Some(form.consumer_key.trim().to_owned()),
        pubsub_endpoint: Some(form.pubsub_endpoint.trim().to_owned()),
        ..AppSpec::default()
    };
    // Validate the values first (the same rules as the command line), without saving; the
    // login URL is what the My Domain field gives.
    // Every wrong value at once, each on its field. The login URL is the My Domain field's.
    let mut problems = Vec::new();
    if !form.my_domain.trim().is_empty()
        && let Err(e) = prov::validate::service_url("my_domain", form.my_domain.trim())
    {
        problems.push(e);
    }
    problems.extend(prov::spec_problems(&AppSpec { login_url: None, ..spec.clone() }));
    if let Some(problem) = mark_errors(&mut sections, &problems) {
        return refuse(sections, problem);
    }
    // The consumer key can only be checked with the certificate the connected app was made with.
    let Some(enc) = admin.app.as_ref().and_then(|a| a.private_key_enc.clone()) else {
        sections.iter_mut().for_each(|s| {
            s.mark("consumer_key", "Generate the certificate (card 1) and create the connected app with it first.");
        });
        return refuse(sections, "Nothing was saved: the certificate comes first.".into());
    };
    let key = state.cipher.decrypt(CTX_PRIVATE_KEY, &enc).map_err(|e| AppError::Internal(e.into()))?;
    let org_type = form.org_type.parse::<OrgType>().unwrap_or(OrgType::Production);
    let credentials = Credentials {
        login_url: &login_url,
        audience: org_type.audience(),
        consumer_key: form.consumer_key.trim(),
        username: form.integration_username.trim(),
        private_key: key.expose_secret(),
    };
    let token = match state.salesforce.sign_in(&credentials).await {
        Ok(token) => token,
        Err(e) => {
            let message = explain(&e);
            if !sections.iter_mut().any(|s| s.mark(auth_field(&e), &message)) {
                return refuse(sections, format!("Nothing was saved. {message}"));
            }
            return refuse(sections, "Nothing was saved: Salesforce refused the connection.".into());
        }
    };
    if let Err(e) = check_access(&state.salesforce, &token).await {
        return refuse(sections, format!("Nothing was saved: {}.", explain(&e)));
    }
    let notice = Some(format!(
        "Connected to org {} as {}. Next: the channel (step 2).",
        form.org_id.trim(),
        form.integration_username.trim()
    ));
    let (cipher, actor, app, name) = (state.cipher.clone(), admin.actor(), admin.app.clone(), form.name.clone());
    let saved = state
        .db
        .write(move |c| {
            let ctx = prov::Ctx { cipher: &cipher, actor: &actor };
            let result = match app.clone() {
                Some(mut row) => prov::update_app(c, &ctx, &mut row, &spec).map(|_| row),
                None => prov::create_app(c, &ctx, &name, &spec),
            };
            Ok(result)
        })
        .await?;
    match saved {
        Ok(row) => {
            if admin.session.app_id.as_deref() != Some(row.id.as_str()) {
                let (session, app_id) = (admin.session.id_hash.clone(), row.id.clone());
                state.db.write(move |c| crate::db::web::set_session_app(c, &session, &app_id)).await?;
            }
            state.directory.invalidate();
            let admin = Admin { session: admin.session, app: Some(row), progress: admin.progress };
            let sections = self::sections(&state.base_url, &admin, &form);
            let view = StepView { current: "connection", notice, problem: None, sections };
            show(&admin, view, StatusCode::OK)
        }
        Err(e) => {
            let problem = place_error(&mut sections, &e);
            refuse(sections, problem)
        }
    }
}

/// An access token with the app's saved settings (for the later steps' live checks).
pub async fn token_for(state: &AppState, app: &AppRow) -> Result<crate::salesforce::AccessToken, String> {
    let (Some(enc), Some(consumer_key), Some(username)) =
        (app.private_key_enc.as_ref(), app.consumer_key.as_ref(), app.integration_username.as_ref())
    else {
        return Err("The BYOC connection is not complete (step 1).".into());
    };
    let key = state.cipher.decrypt(CTX_PRIVATE_KEY, enc).map_err(|e| e.to_string())?;
    let credentials = Credentials {
        login_url: &app.login_url,
        audience: app.org_type.audience(),
        consumer_key,
        username,
        private_key: key.expose_secret(),
    };
    state.salesforce.sign_in(&credentials).await.map_err(|e| explain(&e))
}
