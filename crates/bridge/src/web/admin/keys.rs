//! The key pair of step 1: generated here, or the admin's own RSA key (a PEM file or its
//! text), and the certificate made from it that the connected app in Salesforce holds.
//! Replacing a key the connected app already trusts must be confirmed.

use actix_multipart::form::MultipartForm;
use actix_multipart::form::bytes::Bytes as FileBytes;
use actix_multipart::form::text::Text;
use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, get, post, web};
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;

use super::connection::{ConnectionForm, sections};
use super::wizard::{Admin, StepView, show, signed_in_admin};
use crate::error::AppError;
use crate::provisioning::{self as prov, AppSpec};
use crate::salesforce::certificate;
use crate::web::AppState;

#[derive(Deserialize)]
pub struct KeyForm {
    csrf: String,
    /// The new connection's name, when this key is its first step.
    #[serde(default)]
    name: String,
    /// Ticked to replace a key that exists.
    #[serde(default)]
    confirm: String,
}

/// The admin's own key: a PEM file, or its text pasted (the file wins when both are given).
#[derive(MultipartForm)]
pub struct KeyUpload {
    csrf: Text<String>,
    name: Option<Text<String>>,
    confirm: Option<Text<String>>,
    private_key: Option<Text<String>>,
    #[multipart(limit = "64KiB")]
    private_key_file: Option<FileBytes>,
}

/// Step 1 again, with `error` on `field` and nothing saved.
fn refuse_key(state: &AppState, admin: &Admin, name: &str, field: &str, error: &str) -> Result<HttpResponse, AppError> {
    let mut form = ConnectionForm::from_app(admin.app.as_ref());
    if !name.is_empty() {
        form.name = name.to_owned();
    }
    let mut sections = sections(&state.base_url, admin, &form);
    let placed = sections.iter_mut().any(|s| s.mark(field, error));
    let problem = if placed {
        "Nothing was saved: see the marked field.".to_owned()
    } else {
        format!("Nothing was saved: {error}")
    };
    let view = StepView { current: "connection", notice: None, problem: Some(problem), sections };
    show(admin, view, StatusCode::BAD_REQUEST)
}

/// The admin's app, created (a draft of that name) when the key is the connection's first step.
async fn app_for_key(state: &AppState, admin: Admin, name: &str) -> Result<Result<Admin, HttpResponse>, AppError> {
    if admin.app.is_some() {
        return Ok(Ok(admin));
    }
    let (cipher, actor, name) = (state.cipher.clone(), admin.actor(), name.trim().to_owned());
    let created = state
        .db
        .write(move |c| {
            let ctx = prov::Ctx { cipher: &cipher, actor: &actor };
            Ok(prov::create_app(c, &ctx, &name, &AppSpec::default()))
        })
        .await?;
    match created {
        Ok(row) => {
            let (session, app_id) = (admin.session.id_hash.clone(), row.id.clone());
            state.db.write(move |c| crate::db::web::set_session_app(c, &session, &app_id)).await?;
            Ok(Ok(Admin { session: admin.session, app: Some(row), progress: admin.progress }))
        }
        Err(e) => {
            let message = match &e {
                prov::ProvisionError::Invalid { problem, .. } => format!("{problem}."),
                other => format!("{other}."),
            };
            Ok(Err(refuse_key(state, &admin, "", "name", &message)?))
        }
    }
}

/// Replacing a key the connected app already holds must be meant.
fn confirmed(admin: &Admin, confirm: &str) -> bool {
    admin.app.as_ref().is_none_or(|a| a.private_key_enc.is_none()) || confirm == "yes"
}

const CONFIRM_REPLACE: &str =
    "Tick the box to confirm: the connected app must then get the new certificate before the bridge can sign in again.";

async fn store_key(state: &AppState, admin: &Admin, pair: certificate::KeyPair) -> Result<(), AppError> {
    let (cipher, actor) = (state.cipher.clone(), admin.actor());
    let Some(row) = admin.app.clone() else {
        return Err(AppError::BadRequest("the connection has no name yet".into()));
    };
    let spec =
        AppSpec { private_key: Some(pair.private_key), certificate_pem: Some(pair.certificate), ..AppSpec::default() };
    state
        .db
        .write(move |c| {
            let ctx = prov::Ctx { cipher: &cipher, actor: &actor };
            let mut row = row.clone();
            prov::update_app(c, &ctx, &mut row, &spec).map_err(anyhow::Error::from)?;
            Ok(())
        })
        .await?;
    state.directory.invalidate();
    Ok(())
}

#[post("/setup/connection/keypair")]
pub async fn generate(
    state: web::Data<AppState>,
    req: HttpRequest,
    form: web::Form<KeyForm>,
) -> Result<HttpResponse, AppError> {
    let admin = signed_in_admin!(state, req);
    super::check_csrf(&admin.session, &form.csrf)?;
    if !confirmed(&admin, &form.confirm) {
        return refuse_key(&state, &admin, "", "confirm", CONFIRM_REPLACE);
    }
    let admin = match app_for_key(&state, admin, &form.name).await? {
        Ok(admin) => admin,
        Err(page) => return Ok(page),
    };
    let name = admin.app.as_ref().map(|a| a.name.clone()).unwrap_or_default();
    let pair = web::block(move || certificate::generate(&format!("byoc-bridge {name}")))
        .await
        .map_err(|e| AppError::Internal(e.into()))?
        .map_err(|e| AppError::Internal(e.into()))?;
    store_key(&state, &admin, pair).await?;
    Ok(super::see_other("/setup/connection"))
}

#[post("/setup/connection/key")]
pub async fn upload(
    state: web::Data<AppState>,
    req: HttpRequest,
    MultipartForm(form): MultipartForm<KeyUpload>,
) -> Result<HttpResponse, AppError> {
    let admin = signed_in_admin!(state, req);
    super::check_csrf(&admin.session, &form.csrf)?;
    let confirm = form.confirm.as_ref().map(|t| t.as_str().to_owned()).unwrap_or_default();
    if !confirmed(&admin, &confirm) {
        return refuse_key(&state, &admin, "", "confirm", CONFIRM_REPLACE);
    }
    let new_name = form.name.as_ref().map(|t| t.as_str().to_owned()).unwrap_or_default();
    let name = admin.app.as_ref().map(|a| a.name.clone()).unwrap_or_else(|| new_name.clone());
    // Browsers send an empty file part when no file was chosen.
    let (field, pem) = match form.private_key_file.filter(|f| !f.data.is_empty()) {
        Some(file) => ("private_key_file", String::from_utf8(file.data.to_vec()).unwrap_or_default()),
        None => ("private_key", form.private_key.map(|t| t.into_inner()).unwrap_or_default()),
    };
    let pem = SecretString::from(pem.trim().to_owned());
    let checked = if pem.expose_secret().is_empty() {
        Err("Choose the PEM file of the key, or paste its text".to_owned())
    } else {
        certificate::certificate_for_pem(pem.expose_secret(), &format!("byoc-bridge {name}")).map_err(|e| e.to_string())
    };
    match checked {
        Ok(pair) => {
            let admin = match app_for_key(&state, admin, &new_name).await? {
                Ok(admin) => admin,
                Err(page) => return Ok(page),
            };
            store_key(&state, &admin, pair).await?;
            Ok(super::see_other("/setup/connection"))
        }
        Err(e) => refuse_key(&state, &admin, &new_name, field, &format!("{e}.")),
    }
}

/// The certificate to upload to the connected app (public, but only for signed-in admins).
#[get("/setup/certificate.crt")]
pub async fn download_certificate(state: web::Data<AppState>, req: HttpRequest) -> Result<HttpResponse, AppError> {
    let admin = signed_in_admin!(state, req);
    let certificate = admin
        .app
        .as_ref()
        .and_then(|a| a.certificate_pem.clone())
        .ok_or_else(|| AppError::NotFound("certificate".into()))?;
    Ok(HttpResponse::Ok()
        .content_type("application/x-pem-file")
        .insert_header(("Content-Disposition", "attachment; filename=\"byoc-bridge.crt\""))
        .body(certificate))
}
