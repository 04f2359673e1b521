//! What Infobip needs to post to the bridge: the webhook URLs to paste into its
//! subscription, and the signing secret. The secret is the one the admin enters in
//! Infobip's security profile and then here, write-only: no page ever shows it.

use super::wizard::{Field, Instruction, Section};
use crate::db::apps::AppRow;
use crate::error::AppError;
use crate::provisioning::MIN_WEBHOOK_SECRET;
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
        Instruction::new(
            "Notifications webhook (events IDENTITY_CHANGE and MARKETING_SUBSCRIPTION_UPDATE: the agent is told):",
        )
        .value(format!("{base}/api/infobip/inbound/notifications/{}", app.name)),
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
