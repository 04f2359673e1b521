//! A customer's marketing STOP or RESUME as Salesforce consent. The notice to the agent is
//! always delivered; where the channel definition gives consent to the partner
//! (`ConsentOwner = Partner`) the bridge also sets it with `PATCH /consent`. BYOC Messaging
//! channels keep consent in Salesforce (the bridge creates them so), and there the notice is
//! all: Salesforce refuses the call with code 10022.

use serde::{Deserialize, Serialize};

use crate::jobs::JobContext;
use crate::salesforce::requests::{ConsentRequest, ConsentStatus};
use crate::worker::{Attempt, BackgroundJob, JobFailure};

pub const KIND: &str = "update_consent";

/// The `update_consent` job, queued behind the notice in the conversation's order (so
/// Salesforce knows the end user by the time it runs).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UpdateConsent {
    pub app_id: String,
    pub end_user: String,
    /// The customer asked to stop marketing messages (else to resume them).
    pub opted_out: bool,
}

impl BackgroundJob for UpdateConsent {
    const KIND: &'static str = KIND;
    type Context = JobContext;

    async fn run(self, ctx: &JobContext, _attempt: &Attempt) -> Result<(), JobFailure> {
        let app = ctx.active_app(&self.app_id).await?;
        let connection = &app.salesforce;
        let owner = ctx.salesforce.consent_owner(connection).await?;
        if owner != "Partner" {
            tracing::info!(app.id = %app.id, owner = %owner, "consent belongs to Salesforce; the agent was told");
            return Ok(());
        }
        let request = ConsentRequest {
            channel_address_identifier: connection.channel_address_identifier.clone(),
            end_user_client_id: self.end_user.clone(),
            // [I] A RESUME is the customer's own request: explicit, not implied.
            consent_status: if self.opted_out { ConsentStatus::OptedOut } else { ConsentStatus::ExplicitlyOptedIn },
        };
        ctx.salesforce.update_consent(connection, &request).await?;
        tracing::info!(app.id = %app.id, opted_out = self.opted_out, "updated the customer's consent in Salesforce");
        Ok(())
    }
}
