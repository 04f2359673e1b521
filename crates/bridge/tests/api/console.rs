//! The operations console over HTTP: dead letters with their reason and retry, each
//! conversation's trace (attempts, masked numbers, no bodies), subscription state and the
//! live health checks, for signed-in admins only.

use byoc_bridge::db::{cursors, jobs};
use byoc_sim::faults::Fault;
use byoc_sim::infobip::webhooks::{inbound_envelope, inbound_result};
use byoc_sim::salesforce::ConnectedApp;
use serde_json::json;

use crate::bridge::{Bridge, CHANNEL, CONSUMER_KEY, SENDER};
use crate::helpers::TestDb;
use crate::wizard::Admin;

crate::on_both_backends!(
    a_dead_letter_shows_its_reason_and_trace_and_a_retry_delivers_it,
    a_failed_attempt_and_its_retry_are_in_the_trace,
    the_console_is_for_the_apps_admins_and_its_forms_need_their_token,
    subscriptions_show_who_holds_them_and_where_they_resume,
    a_conversation_is_found_by_its_number_or_a_salesforce_id,
    an_agents_reply_shows_its_way_to_the_phone
);

pub const CUSTOMER: &str = "447700900002";
const BODY: &str = "my parcel never came";

/// Salesforce knows an admin of the org, and the connected app lets them sign in to the bridge.
pub fn allow_admin(bridge: &Bridge) {
    let app = bridge.sf.connected_app(CONSUMER_KEY).unwrap();
    bridge.sf.register_app(ConnectedApp {
        callback_urls: vec![format!("{}/setup/oauth/callback", bridge.app.address)],
        ..app
    });
    bridge.sf.add_user("admin@acme.example", "Ada Admin", "System Administrator");
}

/// An admin of the bridge's org, signed in with Salesforce over HTTP, on the console.
pub async fn admin_of(bridge: &Bridge) -> Admin {
    allow_admin(bridge);
    let mut admin = Admin::new(&bridge.app.address);
    let authorize = admin.redirect_of("/setup/signin?app=acme&next=/console").await;
    let callback = admin.redirect_of_url(&format!("{authorize}&login_hint=admin@acme.example")).await;
    let page = admin.get(callback.trim_start_matches(&bridge.app.address)).await;
    assert!(page.html.contains("Signed in as Ada Admin"), "{}", page.html);
    admin
}

/// The customer's message, which Salesforce refuses for good while the channel is off.
pub async fn dead_letter(bridge: &Bridge) -> i64 {
    bridge.sf.set_channel_active(CHANNEL, false);
    let message = inbound_result(CUSTOMER, SENDER, "wamid.c1", json!({ "type": "TEXT", "text": BODY }));
    let (status, _) = bridge.post_inbound(&inbound_envelope(vec![message])).await;
    assert_eq!(status, 200);
    assert_eq!(bridge.drain().await.dead, 1);
    bridge.app.db.run(|c| jobs::dead_letters(c, 10)).await.unwrap()[0].id
}

pub async fn conversation_id(bridge: &Bridge) -> i64 {
    let (app, sender) = (bridge.app_id.clone(), SENDER.to_owned());
    bridge
        .app
        .db
        .run(move |c| byoc_bridge::db::conversations::find_id(c, &app, CUSTOMER, &sender))
        .await
        .unwrap()
        .unwrap()
}

async fn a_dead_letter_shows_its_reason_and_trace_and_a_retry_delivers_it(db: TestDb) {
    let bridge = Bridge::start(db).await;
    let job = dead_letter(&bridge).await;
    let mut admin = admin_of(&bridge).await;

    let summary = admin.get("/setup/summary").await;
    assert!(summary.html.contains("<a class=\"button\" href=\"/console\">Operations console</a>"), "{}", summary.html);
    let overview = admin.get("/console").await;
    assert_eq!(overview.status, 200, "{}", overview.html);
    assert!(overview.html.contains("1 dead letter(s)"), "{}", overview.html);
    let page = admin.get("/console/dead-letters").await;
    assert!(page.html.contains(&format!("Customer&#39;s message to Salesforce (job {job})")), "{}", page.html);
    assert!(page.html.contains("10031"), "Salesforce's reason is shown: {}", page.html);
    assert!(page.html.contains(&format!("action=\"/console/dead-letters/{job}/retry\"")), "{}", page.html);

    let conversation = conversation_id(&bridge).await;
    assert!(page.html.contains(&format!("href=\"/console/conversations/{conversation}\"")), "{}", page.html);
    let trace = admin.get(&format!("/console/conversations/{conversation}")).await;
    assert_eq!(trace.status, 200, "{}", trace.html);
    assert!(trace.html.contains("Customer …0002 with +447860099299"), "{}", trace.html);
    assert!(trace.html.contains("It became a dead letter."), "{}", trace.html);
    assert!(trace.html.contains("Dead letter since"), "{}", trace.html);
    assert!(!trace.html.contains(".."), "one full stop after a vendor's reason: {}", trace.html);
    for private in [CUSTOMER, BODY] {
        assert!(!trace.html.contains(private), "no number or body on the page ({private}): {}", trace.html);
    }

    // The admin turns the channel back on and retries from the trace: it is delivered.
    bridge.sf.set_channel_active(CHANNEL, true);
    let back = format!("/console/conversations/{conversation}");
    let retried = admin.submit(&back, &format!("/console/dead-letters/{job}/retry"), &[("back", &back)]).await;
    assert_eq!(retried.status, 200, "{}", retried.html);
    assert!(retried.html.contains("Put back in the queue"), "back on the trace, saying so: {}", retried.html);
    bridge.drain().await;
    assert_eq!(bridge.sf.conversation_for(CUSTOMER).unwrap().entries.len(), 1);

    let trace = admin.get(&back).await;
    assert!(trace.html.contains("Retried: put back in the queue by Ada Admin"), "{}", trace.html);
    assert!(trace.html.contains("In Salesforce"), "{}", trace.html);
    assert!(trace.html.contains("It became a dead letter."), "the failed attempt stays in the trace");
    assert!(!trace.html.contains("Dead letter since"), "{}", trace.html);
    let page = admin.get("/console/dead-letters").await;
    assert!(page.html.contains("None: every piece of work was done"), "{}", page.html);

    // A second retry of the same job finds nothing, and says so.
    let again = admin.submit("/console/dead-letters", &format!("/console/dead-letters/{job}/retry"), &[]).await;
    assert!(again.html.contains("Nothing to retry"), "{}", again.html);
}

async fn a_failed_attempt_and_its_retry_are_in_the_trace(db: TestDb) {
    // The retry must still be ahead when the page is read, however slow the machine: with
    // the default half a second, a busy CI saw "attempt 2 is due" instead.
    let slow_retry = [("BYOC__WORKER__BACKOFF_INITIAL_MS", "3600000"), ("BYOC__WORKER__BACKOFF_MAX_SECS", "3600")];
    let bridge = Bridge::start_with(db, &slow_retry).await;
    bridge.sf.faults.script("/api/v1/interactions", Fault::ServerError);
    let message = inbound_result(CUSTOMER, SENDER, "wamid.c2", json!({ "type": "TEXT", "text": BODY }));
    bridge.post_inbound(&inbound_envelope(vec![message])).await;
    assert_eq!(bridge.drain().await.retried, 1);
    let conversation = conversation_id(&bridge).await;
    let mut admin = admin_of(&bridge).await;

    let trace = admin.get(&format!("/console/conversations/{conversation}")).await;
    assert!(trace.html.contains("Attempt 1 failed"), "{}", trace.html);
    assert!(trace.html.contains("Tried again later."), "{}", trace.html);
    assert!(trace.html.contains("Attempt 2 waits until"), "{}", trace.html);
    assert!(trace.html.contains(">Waiting<"), "{}", trace.html);

    bridge.drain_all().await;
    let trace = admin.get(&format!("/console/conversations/{conversation}")).await;
    assert!(trace.html.contains("Tried again later."), "the failure stays: {}", trace.html);
    assert!(trace.html.contains(">Delivered<"), "{}", trace.html);
    assert!(!trace.html.contains("waits until"), "{}", trace.html);
}

async fn the_console_is_for_the_apps_admins_and_its_forms_need_their_token(db: TestDb) {
    let bridge = Bridge::start(db).await;
    let (mut agent, _) = crate::panel::agent_at_session(&bridge).await;
    let job = dead_letter(&bridge).await;
    for path in ["/console", "/console/dead-letters", "/console/conversations", "/console/conversations/1"] {
        assert_eq!(Admin::new(&bridge.app.address).get(path).await.status, 401, "{path} needs a sign-in");
    }
    assert_eq!(agent.get("/console/dead-letters").await.status, 403, "agents are no admins");

    let mut admin = admin_of(&bridge).await;
    let forged = admin.post(&format!("/console/dead-letters/{job}/retry"), &[("csrf", "forged"), ("back", "/")]).await;
    assert_eq!(forged.status, 403, "{}", forged.html);
    let all = admin.post("/console/dead-letters/retry-all", &[("csrf", "forged")]).await;
    assert_eq!(all.status, 403);
    let dead = bridge.app.db.run(|c| jobs::dead_letters(c, 10)).await.unwrap();
    assert_eq!(dead.len(), 1, "nothing was retried");

    // A form cannot send the admin off the console.
    let page =
        admin.submit("/console/dead-letters", "/console/dead-letters/retry-all", &[("back", "//evil.example/")]).await;
    assert!(page.html.contains("<h1>Dead letters</h1>"), "{}", page.html);
    assert!(bridge.app.db.run(|c| jobs::dead_letters(c, 10)).await.unwrap().is_empty());
    assert_eq!(admin.get("/console/conversations/999999").await.status, 404);
}

async fn subscriptions_show_who_holds_them_and_where_they_resume(db: TestDb) {
    let bridge = Bridge::start(db).await;
    let mut admin = admin_of(&bridge).await;
    let app = bridge.app_id.clone();
    let topic = format!(
        "/event/{}",
        bridge
            .app
            .db
            .run({
                let app = app.clone();
                move |c| Ok(byoc_bridge::db::apps::find(c, &app)?.unwrap().platform_event.unwrap())
            })
            .await
            .unwrap()
    );
    let now = byoc_bridge::db::now();
    let (a, t) = (app.clone(), topic.clone());
    bridge
        .app
        .db
        .write(move |c| {
            cursors::acquire_lease(c, &a, &t, "replica-7", now + chrono::Duration::minutes(5), now)?;
            cursors::set(c, &a, &t, cursors::EARLIEST)?;
            cursors::acquire_lease(c, &a, "/data/MessagingSessionChangeEvent", "replica-7", now, now)
        })
        .await
        .unwrap();

    let page = admin.get("/console").await;
    assert!(page.html.contains("<h2>Health checks</h2>"), "{}", page.html);
    assert!(page.html.contains("Salesforce token (JWT bearer flow) obtained."), "{}", page.html);
    let platform_event = page.html.split(&topic).nth(1).unwrap().split("</li>").next().unwrap();
    assert!(platform_event.contains(">Up<") && platform_event.contains("replica-7"), "{platform_event}");
    assert!(platform_event.contains("earliest event Salesforce keeps"), "{platform_event}");
    let sessions = page.html.split("/data/MessagingSessionChangeEvent").nth(1).unwrap().split("</li>").next().unwrap();
    assert!(sessions.contains(">Down<"), "its lease ran out: {sessions}");
}

async fn a_conversation_is_found_by_its_number_or_a_salesforce_id(db: TestDb) {
    let bridge = Bridge::start(db).await;
    let sf_conversation = bridge.open_conversation(CUSTOMER).await;
    bridge.open_conversation("447700900777").await;
    let conversation = conversation_id(&bridge).await;
    let mut admin = admin_of(&bridge).await;
    let link = format!("href=\"/console/conversations/{conversation}\"");

    let latest = admin.get("/console/conversations").await;
    assert_eq!(latest.html.matches("href=\"/console/conversations/").count(), 2, "{}", latest.html);
    for q in ["0002", "%2B44%207700%20900002", sf_conversation.as_str()] {
        let found = admin.get(&format!("/console/conversations?q={q}")).await;
        assert_eq!(found.status, 200, "{q}");
        assert!(found.html.contains("Found: 1") && found.html.contains(&link), "{q}: {}", found.html);
    }
    let none = admin.get("/console/conversations?q=9999").await;
    assert!(none.html.contains("Found: 0"), "{}", none.html);
    let short = admin.get("/console/conversations?q=02").await;
    assert_eq!(short.status, 400);
    assert!(short.field_error("q").unwrap().contains("at least four digits"), "{}", short.html);
}

async fn an_agents_reply_shows_its_way_to_the_phone(db: TestDb) {
    let bridge = Bridge::start(db).await;
    let sf_conversation = bridge.open_conversation(CUSTOMER).await;
    let _subscription = bridge.subscribe().await;
    bridge.sf.agent_send_text(&sf_conversation, "your parcel is on its way").unwrap();
    bridge.until_relays_queued(1).await;
    let mut admin = admin_of(&bridge).await;
    let path = format!("/console/conversations/{}", conversation_id(&bridge).await);

    let waiting = admin.get(&path).await;
    assert!(waiting.html.contains("Messages: 2"), "{}", waiting.html);
    assert!(waiting.html.contains("2. Agent → WhatsApp"), "{}", waiting.html);
    assert!(waiting.html.contains("Taken from Salesforce and stored"), "{}", waiting.html);
    assert!(waiting.html.contains("Attempt 1 is due"), "{}", waiting.html);

    bridge.drain().await;
    let sent = bridge.ib.sent()[0].body["messageId"].as_str().unwrap().to_owned();
    let report = byoc_sim::infobip::webhooks::delivery_report(&sent, CUSTOMER, true).to_string().into_bytes();
    let signature = bridge.signature(&report);
    let (status, _) =
        bridge.post_raw("/api/infobip/inbound/reports", report, &[("X-Infobip-Signature", &signature)]).await;
    assert_eq!(status, 200);
    bridge.drain_all().await;
    let delivered = admin.get(&path).await;
    assert!(delivered.html.contains("On the customer&#39;s phone"), "{}", delivered.html);
    assert!(!delivered.html.contains("your parcel"), "no body: {}", delivered.html);
}
