//! Step 5: everything configured, what to paste elsewhere, and live health checks with the
//! fix for each that fails. Activating the app switches the bridge on for it.

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, get, post, web};
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;

use super::connection::token_for;
use super::wizard::{Admin, Instruction, Section, StepView, place_error, show, signed_in_admin};
use crate::db::apps::{self as rows, AppRow};
use crate::error::AppError;
use crate::infobip::Credentials;
use crate::infobip::account::explain_key_problem;
use crate::provisioning::{self as prov, AppSpec, CTX_API_KEY};
use crate::salesforce::Error as SalesforceError;
use crate::salesforce::interactions::Channel;
use crate::web::AppState;

/// One health check: passed, what was checked, and the fix when it failed.
pub(super) struct Check {
    pub(super) ok: bool,
    pub(super) text: String,
    /// Whether "Activate" waits for it. Not the subscription (activation starts it), nor a
    /// warning that an org limit runs low (the org's to fix, and messages still flow).
    blocks_activation: bool,
}

fn pass(text: impl Into<String>) -> Check {
    Check { ok: true, text: text.into(), blocks_activation: true }
}

fn fail(text: impl Into<String>) -> Check {
    Check { ok: false, text: text.into(), blocks_activation: true }
}

/// Reaches the Interaction API with a harmless call that Salesforce answers only once the
/// token, org, authorization context and channel are all accepted.
async fn interaction_api(state: &AppState, app: &AppRow, token: &crate::salesforce::AccessToken) -> Check {
    let (Some(scrt), Some(org), Some(context), Some(channel)) =
        (&app.scrt_url, &app.org_id, &app.authorization_context, &app.channel_address_identifier)
    else {
        return fail("Interaction API: the application settings are incomplete (step 2).");
    };
    let target =
        Channel { scrt_url: scrt, org_id: org, authorization_context: context, channel_address_identifier: channel };
    match state.salesforce.probe_channel(target, token).await {
        Ok(()) => pass("Interaction API reachable, and the channel and context accepted."),
        Err(SalesforceError::Transport(e)) => {
            fail(format!("Interaction API cannot be reached at the SCRT URL: {e}. Check the SCRT URL (step 2)."))
        }
        Err(e) => fail(format!(
            "Interaction API refused ({}). Check the SCRT URL, the channel and the authorization context (step 2).",
            e.detail()
        )),
    }
}

/// The org's limits for today, a warning while one runs low (never blocking: the org's to
/// raise, and messages flow until it is used up).
async fn org_limits(state: &AppState, token: &crate::salesforce::AccessToken) -> Option<Check> {
    let limits = state.salesforce.limits(token).await.ok().filter(|l| !l.is_empty())?;
    let left: Vec<String> = limits.iter().map(|l| format!("{} of {} {}", l.remaining, l.max, l.words())).collect();
    let low: Vec<&str> = limits.iter().filter(|l| l.low()).map(|l| l.words()).collect();
    Some(if low.is_empty() {
        pass(format!("Org limits left today: {}.", left.join(", ")))
    } else {
        Check {
            blocks_activation: false,
            ..fail(format!(
                "Warning: the org is running out of {} for today ({} left). When none are left, messages stop until the limit resets; raise it in Salesforce or lower other use.",
                low.join(" and "),
                left.join(", ")
            ))
        }
    })
}

/// The live checks; `secret_set` is whether an admin set the webhook secret (see
/// [`super::webhooks::chosen`]), read once by the caller, whose page shows it too.
pub(super) async fn checks(state: &AppState, app: &AppRow, secret_set: bool) -> Result<Vec<Check>, AppError> {
    let mut checks = Vec::new();
    match token_for(state, app).await {
        Ok(token) => {
            checks.push(pass("Salesforce token (JWT bearer flow) obtained."));
            checks.push(interaction_api(state, app, &token).await);
            checks.extend(org_limits(state, &token).await);
        }
        Err(why) => {
            checks.push(fail(format!("Salesforce token: {why}")));
            checks.push(fail("Interaction API: not checked without a token."));
        }
    }
    let topic = format!("/event/{}", app.platform_event.clone().unwrap_or_default());
    let (id, now) = (app.id.clone(), crate::db::now());
    let (lease, accounts, senders) = state
        .db
        .run(move |c| {
            Ok((crate::db::cursors::live_lease(c, &id, &topic, now)?, rows::accounts(c, &id)?, rows::senders(c, &id)?))
        })
        .await?;
    checks.push(match (lease, app.status.as_str()) {
        (Some(_), _) => pass("Pub/Sub subscription up: agents' replies are being received."),
        (None, "active") => fail("Pub/Sub subscription not up yet: it starts within seconds of activation; if it stays red, check that salesforce.subscribe is on and the logs."),
        (None, _) => Check { blocks_activation: false, ..fail("Pub/Sub subscription not up: activate the app below.") },
    });
    if accounts.is_empty() {
        checks.push(fail("Infobip: no account connected (step 3)."));
    }
    let mut numbers = Vec::new();
    for a in &accounts {
        let key = state.cipher.decrypt(CTX_API_KEY, &a.api_key_enc).map_err(|e| AppError::Internal(e.into()))?;
        let to = Credentials { base_url: &a.base_url, api_key: key.expose_secret() };
        match state.infobip.check_key(to).await {
            Ok(()) => {
                checks.push(pass(format!("Infobip key of account {} is valid.", a.name)));
                if let Ok(list) = state.infobip.whatsapp_numbers(to).await {
                    numbers.extend(list);
                }
            }
            Err(e) => checks.push(fail(format!(
                "Infobip account {}: {}. Replace the key (step 3).",
                a.name,
                explain_key_problem(&e)
            ))),
        }
    }
    checks.push(if secret_set {
        pass("Infobip webhooks: the signing secret is set.")
    } else {
        fail("Infobip webhooks: set the signing secret you entered in Infobip (5. Summary, Signing secret).")
    });
    if senders.is_empty() {
        checks.push(fail("Senders: no WhatsApp number chosen (step 4)."));
    }
    for s in &senders {
        if numbers.contains(&s.number) {
            checks.push(pass(format!("Sender +{} found in its Infobip account.", s.number)));
        } else {
            checks
                .push(fail(format!("Sender +{} is not a WhatsApp number of its Infobip account (step 4).", s.number)));
        }
    }
    Ok(checks)
}

/// The summary's cards; `checked` are the live checks when the caller ran them already.
async fn sections(state: &AppState, app: &AppRow, checked: Option<Vec<Check>>) -> Result<Vec<Section>, AppError> {
    let base = &state.base_url;
    let chosen = super::webhooks::chosen(state, app).await?;
    let paste = super::webhooks::card(base, app, chosen);
    let mut health = Section { heading: "Health checks".into(), ..Section::default() };
    let mut blocking = 0;
    let checked = match checked {
        Some(checked) => checked,
        None => checks(state, app, chosen).await?,
    };
    let interaction_ok = checked.iter().any(|c| c.ok && c.text.starts_with("Interaction API"));
    for c in checked {
        blocking += usize::from(!c.ok && c.blocks_activation);
        health.lines.push((if c.ok { "good" } else { "bad" }, c.text));
    }
    let mut status = Section::form("Status", "/setup/activate", "Activate", Vec::new());
    status.lines.push(("", format!("The app is {}.", app.status)));
    let missing = super::wizard::missing_for_activation(app);
    if !missing.is_empty() {
        status.lines.push(("bad", format!("Activating needs {} first.", missing.join("; "))));
    } else if blocking > 0 && app.status != crate::db::AppStatus::Active {
        status
            .lines
            .push(("bad", "Fix the red checks above before activating: the bridge would not carry messages.".into()));
    }
    if app.status == crate::db::AppStatus::Active {
        status.submit = "Check again".into();
        status.action = "/setup/summary".into();
        status.links.push(("/console".into(), "Operations console".into()));
    }
    let mut cards = vec![health, paste, status];
    if app.status == crate::db::AppStatus::Active {
        cards.push(still_to_do(state, app, interaction_ok).await?);
    }
    Ok(cards)
}

/// What is left in Salesforce Setup once the app is active, each with the value to enter,
/// and, where the bridge can tell, whether it is done.
async fn still_to_do(state: &AppState, app: &AppRow, channel_ok: bool) -> Result<Section, AppError> {
    let base = &state.base_url;
    let (id, now) = (app.id.clone(), crate::db::now());
    let (agent_seen, routed) = state
        .db
        .run(move |c| {
            Ok((crate::db::web::agent_signed_in(c, &id, now)?, crate::db::conversations::any_in_a_session(c, &id)?))
        })
        .await?;
    let state_of = |done: bool, what: &str| if done { format!("✓ Done: {what}") } else { format!("To do: {what}") };
    let context = app.authorization_context.clone().unwrap_or_default();
    let mut card = Section::text("Still to do in Salesforce Setup");
    card.instructions = vec![
        Instruction::new(state_of(
            channel_ok,
            "a messaging channel of the Partner Messaging type, with this channel definition (Setup → Messaging Settings → New Channel):",
        ))
        .value(context),
        Instruction::new(
            "The setup as a Lightning page: in Lightning App Builder make an App Page with a web page (iframe) component showing:",
        )
        .value(format!("{base}/")),
        Instruction::new(state_of(
            agent_seen,
            "the template panel on the Messaging Session record page: add the same component, with the record id passed as ?id=, showing:",
        ))
        .value(format!("{base}/templates")),
        Instruction::new(state_of(
            routed,
            "routing: on the channel, route conversations with an Omni-Channel flow or a queue, so that a customer's first message reaches an agent",
        )),
        Instruction::new(
            "Permission sets: give agents and admins access to the connected app (Permitted Users) and agents read access to Messaging Session and Messaging End User, which the panel reads.",
        ),
    ];
    Ok(card)
}

#[get("/setup/summary")]
pub async fn show_step(state: web::Data<AppState>, req: HttpRequest) -> Result<HttpResponse, AppError> {
    let admin = signed_in_admin!(state, req);
    let Some(app) = admin.app.clone() else { return Ok(super::to_step_one()) };
    let sections = sections(&state, &app, None).await?;
    // After the secret's form (a redirect, so a reload does not post it again).
    let notice = req.query_string().contains("secret=set").then(|| "The signing secret is set.".to_owned());
    show(&admin, StepView { current: "summary", notice, problem: None, sections }, StatusCode::OK)
}

#[post("/setup/summary")]
pub async fn recheck(
    state: web::Data<AppState>,
    req: HttpRequest,
    form: web::Form<super::CsrfForm>,
) -> Result<HttpResponse, AppError> {
    let admin = signed_in_admin!(state, req);
    super::check_csrf(&admin.session, &form.csrf)?;
    Ok(super::see_other("/setup/summary"))
}

#[post("/setup/activate")]
pub async fn activate(
    state: web::Data<AppState>,
    req: HttpRequest,
    form: web::Form<super::CsrfForm>,
) -> Result<HttpResponse, AppError> {
    let admin = signed_in_admin!(state, req);
    super::check_csrf(&admin.session, &form.csrf)?;
    let Some(row) = admin.app.clone() else { return Ok(super::to_step_one()) };
    // Not with a setting missing, nor while a check that activation cannot fix is red.
    let missing = super::wizard::missing_for_activation(&row);
    let checked = checks(&state, &row, super::webhooks::chosen(&state, &row).await?).await?;
    let red = checked.iter().filter(|c| !c.ok && c.blocks_activation).count();
    if !missing.is_empty() || red > 0 {
        let problem = if missing.is_empty() {
            format!("Not activated: {red} check(s) above are red; fix them first.")
        } else {
            format!("Not activated: first finish {}.", missing.join("; "))
        };
        let sections = sections(&state, &row, Some(checked)).await?;
        return show(
            &admin,
            StepView { current: "summary", notice: None, problem: Some(problem), sections },
            StatusCode::BAD_REQUEST,
        );
    }
    let (cipher, actor) = (state.cipher.clone(), admin.actor());
    let result = state
        .db
        .write(move |c| {
            let ctx = prov::Ctx { cipher: &cipher, actor: &actor };
            let spec = AppSpec { status: Some("active".into()), ..AppSpec::default() };
            let mut row = row.clone();
            Ok(prov::update_app(c, &ctx, &mut row, &spec).map(|_| row))
        })
        .await?;
    match result {
        Ok(row) => {
            state.directory.invalidate();
            let sections = sections(&state, &row, None).await?;
            let admin = Admin { session: admin.session, app: Some(row), progress: admin.progress };
            let notice = Some("Activated: the bridge now carries this app's conversations.".into());
            show(&admin, StepView { current: "summary", notice, problem: None, sections }, StatusCode::OK)
        }
        Err(e) => {
            let app = admin.app.clone().ok_or_else(|| AppError::NotFound("app".into()))?;
            let mut sections = sections(&state, &app, None).await?;
            let problem = Some(place_error(&mut sections, &e));
            show(&admin, StepView { current: "summary", notice: None, problem, sections }, StatusCode::BAD_REQUEST)
        }
    }
}

/// The webhook signing secret the admin entered in Infobip (write-only; see `webhooks`).
#[derive(Deserialize)]
pub struct SecretForm {
    csrf: String,
    webhook_secret: String,
}

#[post("/setup/webhook-secret")]
pub async fn set_secret(
    state: web::Data<AppState>,
    req: HttpRequest,
    form: web::Form<SecretForm>,
) -> Result<HttpResponse, AppError> {
    let admin = signed_in_admin!(state, req);
    super::check_csrf(&admin.session, &form.csrf)?;
    let Some(row) = admin.app.clone() else { return Ok(super::to_step_one()) };
    let secret = SecretString::from(form.into_inner().webhook_secret);
    let (cipher, actor) = (state.cipher.clone(), admin.actor());
    let saved = state
        .db
        .write(move |c| {
            let ctx = prov::Ctx { cipher: &cipher, actor: &actor };
            let mut row = row.clone();
            Ok(prov::set_webhook_secret(c, &ctx, &mut row, &secret).map(|()| row))
        })
        .await?;
    match saved {
        Ok(_) => {
            state.directory.invalidate();
            Ok(super::see_other("/setup/summary?secret=set"))
        }
        Err(e) => {
            let app = admin.app.clone().ok_or_else(|| AppError::NotFound("app".into()))?;
            let mut sections = sections(&state, &app, None).await?;
            let problem = Some(place_error(&mut sections, &e));
            show(&admin, StepView { current: "summary", notice: None, problem, sections }, StatusCode::BAD_REQUEST)
        }
    }
}
