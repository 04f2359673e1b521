//! Steps 3 and 4: the app's Infobip accounts (keys checked live before they are saved) and
//! the WhatsApp numbers that carry its conversations.

use std::collections::BTreeSet;

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, get, post, web};
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;

use super::wizard::{Field, Section, StepView, place_error, show, signed_in_admin};
use crate::db::apps::{self as rows, AppRow, InfobipAccountRow, SenderRow};
use crate::error::AppError;
use crate::infobip::account::explain_key_problem;
use crate::infobip::{Credentials, Error as InfobipError};
use crate::provisioning::{self as prov, CTX_API_KEY};
use crate::web::AppState;

use crate::infobip::DEFAULT_BASE_URL;

async fn load(state: &AppState, app: &AppRow) -> Result<(Vec<InfobipAccountRow>, Vec<SenderRow>), AppError> {
    let id = app.id.clone();
    Ok(state.db.run(move |c| Ok((rows::accounts(c, &id)?, rows::senders(c, &id)?))).await?)
}

fn account_sections(accounts: &[InfobipAccountRow], form: &AccountForm) -> Vec<Section> {
    let mut list = Section { heading: "Connected accounts".into(), ..Section::default() };
    if accounts.is_empty() {
        list.lines.push(("muted", "No Infobip account yet.".into()));
    }
    for a in accounts {
        list.lines.push(("good", format!("{} at {} (API key set)", a.name, a.base_url)));
    }
    let add = Section::form(
        "Add an account, or replace an account's key",
        "/setup/infobip",
        "Check and save",
        vec![
            Field::text("name", "Account name", &form.name).required().help("Your own name for it, e.g. main."),
            Field::text("base_url", "Base URL", &form.base_url)
                .kind("url")
                .required()
                .help("Your personal base URL from the Infobip portal, or https://api.infobip.com."),
            Field::text("api_key", "API key", "")
                .kind("password")
                .required()
                .help("Write-only: a saved key is never shown again."),
        ],
    );
    let mut sections = vec![list, add];
    for a in accounts {
        let mut remove = Section::form("", "/setup/infobip/remove", &format!("Remove {}", a.name), Vec::new())
            .destructive(&format!(
                "Remove the account {}: its senders stop carrying conversations until another account has them.",
                a.name
            ));
        remove.fields.push(Field::text("name", "", &a.name).kind("hidden"));
        sections.push(remove);
    }
    sections
}

#[derive(Debug, Default, Deserialize)]
pub struct AccountForm {
    csrf: String,
    name: String,
    #[serde(default)]
    base_url: String,
    #[serde(default)]
    api_key: String,
    /// Ticked to remove an account.
    #[serde(default)]
    confirm: String,
}

#[get("/setup/infobip")]
pub async fn show_accounts(state: web::Data<AppState>, req: HttpRequest) -> Result<HttpResponse, AppError> {
    let admin = signed_in_admin!(state, req);
    let Some(app) = admin.app.as_ref() else { return Ok(super::to_step_one()) };
    let (accounts, _) = load(&state, app).await?;
    let form = AccountForm { name: "main".into(), base_url: DEFAULT_BASE_URL.into(), ..AccountForm::default() };
    let view =
        StepView { current: "infobip", notice: None, problem: None, sections: account_sections(&accounts, &form) };
    show(&admin, view, StatusCode::OK)
}

#[post("/setup/infobip")]
pub async fn save_account(
    state: web::Data<AppState>,
    req: HttpRequest,
    form: web::Form<AccountForm>,
) -> Result<HttpResponse, AppError> {
    let admin = signed_in_admin!(state, req);
    super::check_csrf(&admin.session, &form.csrf)?;
    let Some(app) = admin.app.clone() else { return Ok(super::to_step_one()) };
    let form = form.into_inner();
    let (accounts, _) = load(&state, &app).await?;
    let mut sections = account_sections(&accounts, &form);
    let refuse = |sections: Vec<Section>, problem: &str| {
        let view = StepView { current: "infobip", notice: None, problem: Some(problem.into()), sections };
        show(&admin, view, StatusCode::BAD_REQUEST)
    };
    let base_url = form.base_url.trim().to_owned();
    if let Err(e) = prov::validate::service_url("base_url", &base_url) {
        let problem = place_error(&mut sections, &e);
        return refuse(sections, &problem);
    }
    if form.api_key.trim().is_empty() {
        sections[1].mark("api_key", "Enter the account's API key.");
        return refuse(sections, "Nothing was saved: fix the marked field.");
    }
    if let Err(problem) =
        state.infobip.check_key(Credentials { base_url: &base_url, api_key: form.api_key.trim() }).await
    {
        let unreachable = matches!(problem, InfobipError::Transport(_) | InfobipError::BadUrl(_));
        let field = if unreachable { "base_url" } else { "api_key" };
        let message = if problem.is_wrong_key() {
            "The key is wrong: Infobip does not accept it. Copy it again from the Infobip portal.".to_owned()
        } else if problem.missing_scope().is_some() {
            format!("The key lacks a scope: {}.", explain_key_problem(&problem))
        } else {
            format!("{}.", explain_key_problem(&problem))
        };
        sections[1].mark(field, &message);
        return refuse(sections, "Nothing was saved: fix the marked field.");
    }
    let (cipher, actor, name) = (state.cipher.clone(), admin.actor(), form.name.trim().to_owned());
    let key = SecretString::from(form.api_key.trim().to_owned());
    let saved = state
        .db
        .write(move |c| {
            let ctx = prov::Ctx { cipher: &cipher, actor: &actor };
            Ok(prov::upsert_account(c, &ctx, &app, &name, Some(&base_url), Some(&key)).map(|(_, outcome)| outcome))
        })
        .await?;
    match saved {
        Ok(outcome) => {
            state.directory.invalidate();
            let app = admin.app.clone().ok_or_else(|| AppError::NotFound("app".into()))?;
            let (accounts, _) = load(&state, &app).await?;
            let mut admin = admin;
            admin.progress.accounts = accounts.len();
            let blank = AccountForm { base_url: DEFAULT_BASE_URL.into(), ..AccountForm::default() };
            let notice = Some(format!("Account {}: {outcome}. The key works.", form.name.trim()));
            show(
                &admin,
                StepView { current: "infobip", notice, problem: None, sections: account_sections(&accounts, &blank) },
                StatusCode::OK,
            )
        }
        Err(e) => {
            let problem = place_error(&mut sections, &e);
            refuse(sections, &problem)
        }
    }
}

#[post("/setup/infobip/remove")]
pub async fn remove_account(
    state: web::Data<AppState>,
    req: HttpRequest,
    form: web::Form<AccountForm>,
) -> Result<HttpResponse, AppError> {
    let admin = signed_in_admin!(state, req);
    super::check_csrf(&admin.session, &form.csrf)?;
    let Some(app) = admin.app.clone() else { return Ok(super::to_step_one()) };
    if form.confirm != "yes" {
        let (accounts, _) = load(&state, &app).await?;
        let blank = AccountForm { base_url: DEFAULT_BASE_URL.into(), ..AccountForm::default() };
        let problem = Some(format!("Nothing was removed: tick the box to confirm removing {}.", form.name));
        let view =
            StepView { current: "infobip", notice: None, problem, sections: account_sections(&accounts, &blank) };
        return show(&admin, view, StatusCode::BAD_REQUEST);
    }
    let (cipher, actor, name) = (state.cipher.clone(), admin.actor(), form.name.clone());
    state
        .db
        .write(move |c| {
            let ctx = prov::Ctx { cipher: &cipher, actor: &actor };
            prov::remove_account(c, &ctx, &app, &name).map_err(anyhow::Error::from)?;
            Ok(())
        })
        .await?;
    state.directory.invalidate();
    Ok(super::see_other("/setup/infobip"))
}

/// Each account's WhatsApp numbers, or why they cannot be listed.
async fn numbers(state: &AppState, accounts: &[InfobipAccountRow]) -> Vec<(String, Result<Vec<String>, String>)> {
    let mut all = Vec::new();
    for a in accounts {
        let listed = match state.cipher.decrypt(CTX_API_KEY, &a.api_key_enc) {
            Ok(key) => state
                .infobip
                .whatsapp_numbers(Credentials { base_url: &a.base_url, api_key: key.expose_secret() })
                .await
                .map_err(|e| explain_key_problem(&e)),
            Err(e) => Err(format!("the stored API key cannot be read: {e}")),
        };
        all.push((a.name.clone(), listed));
    }
    all
}

fn sender_sections(
    listed: &[(String, Result<Vec<String>, String>)],
    senders: &[SenderRow],
    accounts: &[InfobipAccountRow],
) -> Vec<Section> {
    let configured: BTreeSet<&str> = senders.iter().map(|s| s.number.as_str()).collect();
    let mut form = Section::form("WhatsApp numbers", "/setup/senders", "Save senders", Vec::new());
    if accounts.is_empty() {
        form.lines.push(("bad", "Connect an Infobip account first (step 3).".into()));
    }
    for (account, numbers) in listed {
        match numbers {
            Ok(list) if list.is_empty() => {
                form.lines.push(("muted", format!("Account {account} has no WhatsApp number.")))
            }
            Ok(list) => {
                for n in list {
                    let mut f = Field::text("sender", format!("+{n}"), format!("{account}:{n}")).kind("checkbox");
                    f.help = Some(format!("Infobip account {account}"));
                    f.checked = configured.contains(n.as_str());
                    form.fields.push(f);
                }
            }
            Err(e) => form.lines.push(("bad", format!("Account {account}: {e}."))),
        }
    }
    vec![form]
}

#[get("/setup/senders")]
pub async fn show_senders(state: web::Data<AppState>, req: HttpRequest) -> Result<HttpResponse, AppError> {
    let admin = signed_in_admin!(state, req);
    let Some(app) = admin.app.as_ref() else { return Ok(super::to_step_one()) };
    let (accounts, senders) = load(&state, app).await?;
    let listed = numbers(&state, &accounts).await;
    let view = StepView {
        current: "senders",
        notice: None,
        problem: None,
        sections: sender_sections(&listed, &senders, &accounts),
    };
    show(&admin, view, StatusCode::OK)
}

#[post("/setup/senders")]
pub async fn save_senders(
    state: web::Data<AppState>,
    req: HttpRequest,
    body: web::Bytes,
) -> Result<HttpResponse, AppError> {
    let admin = signed_in_admin!(state, req);
    // Repeated `sender` fields: read the pairs in order.
    let pairs: Vec<(String, String)> = url::form_urlencoded::parse(&body).into_owned().collect();
    let csrf = pairs.iter().find(|(k, _)| k == "csrf").map(|(_, v)| v.clone()).unwrap_or_default();
    super::check_csrf(&admin.session, &csrf)?;
    let Some(app) = admin.app.clone() else { return Ok(super::to_step_one()) };
    let wanted: Vec<(String, String)> = pairs
        .iter()
        .filter(|(k, _)| k == "sender")
        .filter_map(|(_, v)| v.split_once(':').map(|(a, n)| (a.to_owned(), n.to_owned())))
        .collect();
    let (cipher, actor, row) = (state.cipher.clone(), admin.actor(), app.clone());
    let saved = state
        .db
        .write(move |c| {
            let ctx = prov::Ctx { cipher: &cipher, actor: &actor };
            let result = (|| {
                let current = rows::senders(c, &row.id)?;
                for s in &current {
                    if !wanted.iter().any(|(_, n)| *n == s.number) {
                        prov::remove_sender(c, &ctx, &row, &s.number)?;
                    }
                }
                for (account, number) in &wanted {
                    if !current.iter().any(|s| s.number == *number) {
                        prov::add_sender(c, &ctx, &row, number, account)?;
                    }
                }
                Ok::<_, prov::ProvisionError>(())
            })();
            if let Err(e) = result {
                // Roll the whole change back: all senders or none.
                return Err(anyhow::anyhow!("{e}").into());
            }
            Ok(())
        })
        .await;
    let (accounts, senders) = load(&state, &app).await?;
    let mut admin = admin;
    admin.progress = super::wizard::Progress { accounts: accounts.len(), senders: senders.len() };
    let listed = numbers(&state, &accounts).await;
    let sections = sender_sections(&listed, &senders, &accounts);
    state.directory.invalidate();
    match saved {
        Ok(()) => show(
            &admin,
            StepView {
                current: "senders",
                notice: Some(format!("Saved: {} sender(s).", senders.len())),
                problem: None,
                sections,
            },
            StatusCode::OK,
        ),
        Err(e) => show(
            &admin,
            StepView { current: "senders", notice: None, problem: Some(format!("Nothing was saved: {e}")), sections },
            StatusCode::BAD_REQUEST,
        ),
    }
}
