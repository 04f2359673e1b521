//! Registering what WhatsApp can show with Salesforce (`PATCH /api/v1/capabilities`), so the
//! console offers an agent only what will arrive. Queued by provisioning when an app becomes
//! active or its channel changes; retried like every call, a dead letter when refused.

use serde::{Deserialize, Serialize};

use crate::jobs::JobContext;
use crate::salesforce::capabilities;
use crate::worker::{Attempt, BackgroundJob, JobFailure};

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RegisterCapabilities {
    pub app_id: String,
}

impl BackgroundJob for RegisterCapabilities {
    const KIND: &'static str = crate::provisioning::REGISTER_CAPABILITIES;
    type Context = JobContext;

    async fn run(self, ctx: &JobContext, _attempt: &Attempt) -> Result<(), JobFailure> {
        let app = ctx.active_app(&self.app_id).await?;
        let connection = &app.salesforce;
        // [I] The namespace of a channel made in the org itself is the org (no package).
        let request =
            capabilities::whatsapp(&connection.authorization_context, crate::salesforce::org_id_15(&connection.org_id));
        ctx.salesforce.register_capabilities(connection, &request).await?;
        tracing::info!(app.id = %app.id, "registered WhatsApp's capabilities with Salesforce");
        Ok(())
    }
}
