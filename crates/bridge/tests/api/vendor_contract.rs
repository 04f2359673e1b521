//! Where the bridge once disagreed with the vendors, found by clients and fakes written by
//! others; each test fails against the old behaviour, because the simulators refuse it as the
//! vendors do.

use byoc_bridge::db::OrgType;
use byoc_sim::infobip::webhooks::{inbound_envelope, inbound_result};
use byoc_sim::salesforce::SalesforceConfig;
use serde_json::json;

use crate::bridge::{Bridge, SENDER};
use crate::helpers::TestDb;

crate::on_both_backends!(a_sandbox_gets_its_tokens_for_the_sandbox_audience);

/// The JWT audience follows the org's kind, not the URL the token is asked from (here the
/// simulator's, as a My Domain would be).
async fn a_sandbox_gets_its_tokens_for_the_sandbox_audience(db: TestDb) {
    let bridge = Bridge::start_full(db, &[], SalesforceConfig { sandbox: true, ..SalesforceConfig::default() }).await;
    bridge
        .change_app(|c, ctx, row| {
            let spec = byoc_bridge::provisioning::AppSpec { org_type: Some("sandbox".into()), ..Default::default() };
            byoc_bridge::provisioning::update_app(c, ctx, row, &spec)
        })
        .await;
    let row = bridge.app_row().await;
    assert_eq!(row.org_type, OrgType::Sandbox);
    assert!(row.login_url.starts_with("http://127.0.0.1"), "the token endpoint stays the org's own host");
    let message = inbound_result("447700900301", SENDER, "wamid.sandbox.1", json!({ "type": "TEXT", "text": "hi" }));
    assert_eq!(bridge.post_inbound(&inbound_envelope(vec![message])).await.0, 200);
    let report = bridge.drain().await;
    assert_eq!((report.completed, report.dead), (1, 0), "{report:?}");
    assert_eq!(bridge.sf.tokens_issued(), 1);
}
