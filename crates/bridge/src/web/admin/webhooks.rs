//! What Infobip needs to post to the bridge: the webhook URLs to paste into its
//! subscription, and the signing secret. The secret is the one the admin enters in
//! Infobip's security profile and then here, write-only: no page ever shows it.

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, post, web};
use secrecy::SecretString;
use serde::Deserialize;

use super::wizard::{Field, Instruction, Section, StepView, place_error, show, signed_in_admin};
use crate::db::apps::AppRow;
use crate::error::AppError;
use crate::provisioning::{self as prov, MIN_WEBHOOK_SECRET};
use crate::web::AppState;

/// The card: the URLs to paste, and the secret's form. `chosen` says whether an admin has
/// set the secret already (the health checks say it too).
pub fn card(base: &str, app: &AppRow, chosen: bool) -> Section {
    let mut card = Section::form(
        "Paste these into Infobip and Salesforce",
        "/setup/webhook-secret",
        "Set the secret",
        vec![Field::text("webhook_secret", "Signing secret", "").kind("password").required().help(format!(
            "The secret key of the HMAC security profile in Infobip ({}). {MIN_WEBHOOK_SECRET} to 255 characters; write-only: it is never shown again. The previous secret stays accepted until the next change, so no message is refused while Infobip switches.",
            app.webhook_hmac_algorithm
        ))],
    );
    card.instructions = vec![
        Instruction::new("Inbound messages webhook (subscription events INBOUND_MESSAGE):")
            .value(format!("{base}/api/infobip/inbound/messages/{}", app.name)),
        Instruction::new("Delivery and seen reports webhook (events DELIVERY, SEEN):")
            .value(format!("{base}/api/infobip/inbound/reports/{}", app.name)),
        Instruction::new("Chatbot handover URL (Answers API element):")
            .value(format!("{base}/api/infobip/inbound/answers/{}", app.name)),
        Instruction::new(format!(
            "Security: HMAC, algorithm {}, signature in the header {}. Choose a long random secret, enter it in Infobip and below.",
            app.webhook_hmac_algorithm, app.webhook_signature_header
        )),
        Instruction::new("Salesforce iframe component of the setup (an App Page):").value(format!("{base}/")),
        Instruction::new("Salesforce iframe component of the template panel (the Messaging Session page):")
            .value(format!("{base}/templates")),
    ];
    if chosen {
        card.submit = "Change the secret".into();
    }
    card
}

/// Whether an admin set the secret (the generated first one is known to nobody).
pub async fn chosen(state: &AppState, app: &AppRow) -> Result<bool, AppError> {
    let id = app.id.clone();
    Ok(state.db.run(move |c| Ok(crate::db::audit::last(c, &id, "set_webhook_secret")?.is_some())).await?)
}

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
    let Some(mut row) = admin.app.clone() else { return Ok(super::to_step_one()) };
    let secret = SecretString::from(form.into_inner().webhook_secret);
    let (cipher, actor) = (state.cipher.clone(), admin.actor());
    let saved = state
        .db
        .write(move |c| {
            let ctx = prov::Ctx { cipher: &cipher, actor: &actor };
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
            let mut sections = super::summary::sections(&state, &app, None).await?;
            let problem = Some(place_error(&mut sections, &e));
            show(&admin, StepView { current: "summary", notice: None, problem, sections }, StatusCode::BAD_REQUEST)
        }
    }
}
