//! The agents' template panel over HTTP, against the simulators: an agent of the org signs
//! in with Salesforce, chooses a sender and a template, fills it and sends it; what is
//! wrong is shown on its field and nothing is sent.

use byoc_sim::infobip::webhooks::{delivery_report, inbound_envelope, inbound_result};
use byoc_sim::salesforce::ConnectedApp;
use serde_json::{Value, json};

use crate::bridge::{Bridge, CONSUMER_KEY, SENDER};
use crate::helpers::TestDb;
use crate::wizard::{Admin, Page};

crate::on_both_backends!(
    an_agent_sends_a_template_from_the_messaging_session,
    wrong_values_and_infobip_errors_send_nothing_wrong,
    without_a_sender_the_panel_says_how_to_fix_it,
    a_template_list_infobip_refuses_is_explained_and_not_kept,
    a_customers_marketing_stop_holds_marketing_templates_back_until_they_resume
);

/// WhatsApp's marketing STOP (the vendor's notification shape) tells the agent in the
/// conversation and makes the panel refuse marketing templates to that customer, saying why;
/// utility templates still go, and RESUME lifts it.
async fn a_customers_marketing_stop_holds_marketing_templates_back_until_they_resume(db: TestDb) {
    let bridge = Bridge::start(db).await;
    let (mut agent, session) = agent_at_session(&bridge).await;
    let update = |status: &str| {
        json!({ "from": SENDER, "content": { "sender": SENDER, "from": USER, "notificationMessagesStatus": status,
                                             "description": "User requested it" },
                "createdAt": format!("2026-01-0{}T01:00:00.000+0000", if status == "stop" { 1 } else { 2 }) })
        .to_string()
        .into_bytes()
    };
    let b = &bridge;
    let post = |body: Vec<u8>| {
        let signature = b.signature(&body);
        async move { b.post_raw("/api/infobip/inbound/notifications", body, &[("X-Infobip-Signature", &signature)]).await }
    };
    assert_eq!(post(update("stop")).await.0, 200);
    bridge.drain().await;
    let entries = bridge.sf.conversation_for(USER).unwrap().entries;
    assert!(entries.iter().any(|e| e.payload.to_string().contains("asked to stop marketing messages")), "{entries:?}");

    let page = agent.get(&format!("/templates?id={session}&sender={SENDER}&template=spring_sale%7Cen_GB")).await;
    let refused = send(&mut agent, &page, &[]).await;
    assert_eq!(refused.status, 409, "{}", refused.html);
    assert!(
        refused.html.contains("opted out of marketing messages from this number on 2026-01-01"),
        "{}",
        refused.html
    );
    assert!(bridge.ib.sent().is_empty(), "nothing went to the customer");

    assert_eq!(post(update("resume")).await.0, 200);
    let page = agent.get(&format!("/templates?id={session}&sender={SENDER}&template=spring_sale%7Cen_GB")).await;
    let sent = send(&mut agent, &page, &[]).await;
    assert_eq!(sent.status, 200, "{}", sent.html);
    assert_eq!(bridge.ib.sent().len(), 1);
}

pub const USER: &str = "447700900800";

pub fn templates() -> Vec<Value> {
    vec![
        json!({ "id": "1", "name": "order_update", "language": "en", "status": "APPROVED", "category": "UTILITY",
                "structure": { "type": "TEXT",
                    "header": { "format": "TEXT", "text": "Order {{1}}" },
                    "body": { "text": "Hi {{1}}, your order {{2}} has shipped.", "examples": ["Ann", "A-1042"] },
                    "footer": { "text": "Acme" },
                    "buttons": [
                        { "type": "URL", "text": "Track", "url": "https://acme.example/track/{{1}}" },
                        { "type": "QUICK_REPLY", "text": "Thanks" },
                        { "type": "PHONE_NUMBER", "text": "Call us", "phoneNumber": "+441234567" }
                    ] } }),
        json!({ "id": "2", "name": "spring_sale", "language": "en_GB", "status": "APPROVED", "category": "MARKETING",
                "structure": { "type": "TEXT", "body": { "text": "Spring sale!" } } }),
        json!({ "id": "3", "name": "rejected_one", "language": "en", "status": "REJECTED", "category": "UTILITY",
                "structure": { "type": "TEXT", "body": { "text": "No" } } }),
    ]
}

/// The bridge with a conversation whose customer last wrote two days ago, templates, and an
/// agent the connected app lets sign in to the bridge; returns the Messaging Session id.
pub async fn prepare_session(bridge: &Bridge) -> String {
    for t in templates() {
        bridge.ib.add_template(SENDER, t);
    }
    bridge.sf.set_end_user(USER, "Ann Example", Some("Ann Contact"), Some("Acme Ltd"));
    let message = inbound_result(USER, SENDER, "wamid.panel-1", json!({ "type": "TEXT", "text": "hello" }));
    assert_eq!(bridge.post_inbound(&inbound_envelope(vec![message])).await.0, 200);
    bridge.drain().await;
    bridge
        .app
        .db
        .write(|c| {
            use byoc_bridge::db::schema::conversations;
            use diesel::prelude::*;
            let two_days_ago = byoc_bridge::db::now() - chrono::Duration::days(2);
            diesel::update(conversations::table).set(conversations::last_inbound_at.eq(two_days_ago)).execute(c)?;
            Ok(())
        })
        .await
        .unwrap();
    let session = bridge.sf.conversation_for(USER).unwrap().messaging_session_id;
    // The connected app allows the bridge's sign-in callback; an agent signs in.
    let app = bridge.sf.connected_app(CONSUMER_KEY).unwrap();
    bridge.sf.register_app(ConnectedApp {
        callback_urls: vec![format!("{}/setup/oauth/callback", bridge.app.address)],
        ..app
    });
    bridge.sf.add_user("agent@acme.example", "Agent Smith", "Standard User");
    session
}

/// `prepare_session`, and the agent signed in (over HTTP).
pub async fn agent_at_session(bridge: &Bridge) -> (Admin, String) {
    let session = prepare_session(bridge).await;
    let mut agent = Admin::new(&bridge.app.address);
    let page = agent.get(&format!("/templates?id={session}")).await;
    assert_eq!(page.status, 401, "no session, no panel");
    let authorize = agent.redirect_of(&format!("/setup/signin?app=acme&next=/templates?id={session}")).await;
    let callback = agent.redirect_of_url(&format!("{authorize}&login_hint=agent@acme.example")).await;
    let signed_in = agent.get(callback.trim_start_matches(&bridge.app.address)).await;
    assert!(signed_in.html.contains("Signed in as Agent Smith"), "{}", signed_in.html);
    assert!(signed_in.html.contains(&format!("href=\"/templates?id={session}\"")), "{}", signed_in.html);
    // Agents are no admins: the setup stays closed to them.
    assert_eq!(agent.get("/setup/connection").await.status, 403);
    (agent, session)
}

fn form_of(page: &Page) -> Vec<(String, String)> {
    let mut fields = Vec::new();
    for name in ["csrf", "id", "sender", "template", "send_id", "to"] {
        let named = page.html.rfind(&format!("name=\"{name}\"")).unwrap_or_else(|| panic!("no {name}: {}", page.html));
        let at = named + page.html[named..].find("value=\"").unwrap() + "value=\"".len();
        fields.push((name.to_owned(), page.html[at..].split('"').next().unwrap().to_owned()));
    }
    fields
}

async fn send(agent: &mut Admin, page: &Page, values: &[(&str, &str)]) -> Page {
    let mut form = form_of(page);
    form.extend(values.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())));
    let refs: Vec<(&str, &str)> = form.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    agent.post("/templates/send", &refs).await
}

async fn an_agent_sends_a_template_from_the_messaging_session(db: TestDb) {
    let bridge = Bridge::start(db).await;
    let (mut agent, session) = agent_at_session(&bridge).await;

    // A page without a readable session still works: the agent types the number.
    let page = agent.get(&format!("/templates?id=not-a-record&sender={SENDER}&template=order_update%7Cen")).await;
    assert!(page.html.contains("No Messaging Session id in the page address"), "{}", page.html);
    assert!(page.html.contains("name=\"to\" type=\"text\" value=\"\""), "{}", page.html);
    let page = agent.get(&format!("/templates?id={session}")).await;
    assert_eq!(page.status, 200, "{}", page.html);
    assert!(page.html.contains("Outside the 24-hour window"), "{}", page.html);
    // The app's lone sender is chosen already: its templates show at once.
    assert!(page.html.contains("order_update") && page.html.contains("spring_sale"), "{}", page.html);
    assert!(page.html.contains(&format!("<option value=\"{SENDER}\" selected")), "{}", page.html);
    let page = agent.get(&format!("/templates?id={session}&sender={SENDER}")).await;
    assert!(page.html.contains("order_update") && page.html.contains("spring_sale"));
    assert!(!page.html.contains("rejected_one"), "only approved templates");
    let page = agent.get(&format!("/templates?id={session}&sender={SENDER}&q=marketing")).await;
    assert!(page.html.contains("spring_sale") && !page.html.contains(">order_update<"), "{}", page.html);

    let page = agent.get(&format!("/templates?id={session}&sender={SENDER}&template=order_update%7Cen")).await;
    for field in ["header_text", "body_1", "body_2", "button_1", "button_2"] {
        assert!(page.html.contains(&format!("name=\"{field}\"")), "{field}: {}", page.html);
    }
    assert!(page.html.contains("placeholder=\"e.g. A-1042\""), "the registered examples guide the agent");
    assert!(page.html.contains("Call us (phone number)"), "fixed buttons shown read-only");
    assert!(page.html.contains(&format!("name=\"to\" type=\"text\" value=\"{USER}\"")), "recipient from the session");
    assert!(page.html.contains("Contact name: Ann Contact") && page.html.contains("Account name: Acme Ltd"));
    assert!(page.html.contains("Hi [1], your order [2] has shipped."), "{}", page.html);

    let sent =
        send(&mut agent, &page, &[("header_text", "42"), ("body_1", "Ann"), ("body_2", "A-42"), ("button_1", "A-42")])
            .await;
    assert_eq!(sent.status, 200, "{}", sent.html);
    assert!(sent.html.contains(&format!("Sent to +{USER}.")), "{}", sent.html);
    let out = bridge.ib.sent();
    assert_eq!(out.len(), 1);
    assert_eq!((out[0].kind.as_str(), out[0].to.as_str(), out[0].from.as_str()), ("template", USER, SENDER));
    assert_eq!(
        out[0].body["content"]["templateData"],
        json!({ "body": { "placeholders": ["Ann", "A-42"] }, "header": { "type": "TEXT", "placeholder": "42" },
                "buttons": [{ "type": "URL", "parameter": "A-42" }, { "type": "QUICK_REPLY", "parameter": "Thanks" }] })
    );
    // The same form again (a double click) sends nothing more.
    let again =
        send(&mut agent, &page, &[("header_text", "42"), ("body_1", "Ann"), ("body_2", "A-42"), ("button_1", "A-42")])
            .await;
    assert!(again.html.contains("already sent"), "{}", again.html);
    assert_eq!(bridge.ib.sent().len(), 1);

    // The delivery report shows on the panel; the customer's answer reopens the window.
    let report = delivery_report(&out[0].message_id, USER, true).to_string().into_bytes();
    let signature = bridge.signature(&report);
    let (status, _) =
        bridge.post_raw("/api/infobip/inbound/reports", report, &[("X-Infobip-Signature", &signature)]).await;
    assert_eq!(status, 200);
    let message = inbound_result(USER, SENDER, "wamid.panel-2", json!({ "type": "TEXT", "text": "thanks" }));
    bridge.post_inbound(&inbound_envelope(vec![message])).await;
    let page = agent.get(&format!("/templates?id={session}&sender={SENDER}")).await;
    let frame = format!("/templates/sent?to={USER}&#38;sender={SENDER}");
    assert!(page.html.contains(&format!("<iframe class=\"sent\" src=\"{frame}\"")), "{}", page.html);
    // The frame shows where each send is, and reloads itself until nothing more can change.
    let sent = agent.get(&frame.replace("&#38;", "&")).await;
    assert!(sent.html.contains("order_update by Agent Smith · <strong>delivered</strong>"), "{}", sent.html);
    assert!(sent.html.contains("<meta http-equiv=\"refresh\" content=\"5\">"), "delivered may still become read");
    let seen = byoc_sim::infobip::webhooks::seen_report(&out[0].message_id, USER, SENDER).to_string().into_bytes();
    let signature = bridge.signature(&seen);
    let (status, _) =
        bridge.post_raw("/api/infobip/inbound/reports", seen, &[("X-Infobip-Signature", &signature)]).await;
    assert_eq!(status, 200);
    let sent = agent.get(&frame.replace("&#38;", "&")).await;
    assert!(sent.html.contains("<strong>read</strong>"), "{}", sent.html);
    assert!(!sent.html.contains("http-equiv=\"refresh\""), "a read message no longer changes: {}", sent.html);
    assert!(page.html.contains("Inside the 24-hour window"), "{}", page.html);
    let row = bridge
        .app
        .db
        .run(|c| {
            use byoc_bridge::db::schema::messages;
            use diesel::prelude::*;
            Ok(messages::table
                .filter(messages::kind.eq("template"))
                .select(messages::body)
                .first::<Option<String>>(c)?)
        })
        .await
        .unwrap()
        .unwrap();
    let row: Value = serde_json::from_str(&row).unwrap();
    assert_eq!(
        (row["panel"]["sentBy"].as_str(), row["panel"]["messagingSessionId"].as_str()),
        (Some("Agent Smith"), Some(session.as_str()))
    );
}

async fn wrong_values_and_infobip_errors_send_nothing_wrong(db: TestDb) {
    let bridge = Bridge::start(db).await;
    let (mut agent, session) = agent_at_session(&bridge).await;
    let page = agent.get(&format!("/templates?id={session}&sender={SENDER}&template=order_update%7Cen")).await;
    let long = "x".repeat(129);
    for (values, field, expected) in [
        (vec![("header_text", "42"), ("body_1", "Ann"), ("button_1", "A-42")], "body_2", "is required"),
        (
            vec![
                ("header_text", "42"),
                ("body_1", "Ann"),
                ("body_2", "2"),
                ("button_1", "A-42"),
                ("button_2", long.as_str()),
            ],
            "button_2",
            "128",
        ),
        (
            vec![("header_text", "42"), ("body_1", "Ann"), ("body_2", "2"), ("button_1", "has spaces")],
            "button_1",
            "spaces",
        ),
        (
            vec![("header_text", "two\nlines"), ("body_1", "Ann"), ("body_2", "2"), ("button_1", "A")],
            "header_text",
            "one line",
        ),
    ] {
        let refused = send(&mut agent, &page, &values).await;
        assert_eq!(refused.status, 400, "{field}");
        let error = refused.field_error(field).unwrap_or_else(|| panic!("no error on {field}: {}", refused.html));
        assert!(error.contains(expected), "{field}: {error}");
    }
    let mut form = form_of(&page);
    form.iter_mut().filter(|(k, _)| k == "to").for_each(|(_, v)| *v = "call me".into());
    form.extend(
        [("body_1", "Ann"), ("body_2", "2"), ("header_text", "1"), ("button_1", "A")]
            .map(|(k, v)| (k.to_owned(), v.to_owned())),
    );
    let refs: Vec<(&str, &str)> = form.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let refused = agent.post("/templates/send", &refs).await;
    assert_eq!(refused.status, 400);
    assert!(refused.field_error("to").unwrap().contains("phone number"), "{}", refused.html);
    assert!(bridge.ib.sent().is_empty());

    // Infobip failing: the agent reads why, and the send is recorded as failed.
    bridge.ib.faults.script("/whatsapp/1/message", byoc_sim::faults::Fault::ServerError);
    let failed =
        send(&mut agent, &page, &[("header_text", "42"), ("body_1", "Ann"), ("body_2", "2"), ("button_1", "A")]).await;
    assert_eq!(failed.status, 502);
    assert!(failed.html.contains("Not sent. Infobip is temporarily unavailable"), "{}", failed.html);
    let frame = agent.get(&format!("/templates/sent?to={USER}&sender={SENDER}")).await;
    assert!(frame.html.contains("<strong>failed:"), "{}", frame.html);

    // A sender of no app (a stale or edited form) is the agent's mistake: 400, nothing sent.
    let mut stranger = form_of(&page);
    stranger.iter_mut().filter(|(k, _)| k == "sender").for_each(|(_, v)| *v = "441134960999".into());
    let refs: Vec<(&str, &str)> = stranger.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let refused = agent.post("/templates/send", &refs).await;
    assert_eq!(refused.status, 400, "{}", refused.html);
    assert!(refused.html.contains("This number is not a sender of the app."), "{}", refused.html);

    // A forged form is refused.
    let mut forged = form_of(&page);
    forged.iter_mut().filter(|(k, _)| k == "csrf").for_each(|(_, v)| *v = "forged".into());
    let refs: Vec<(&str, &str)> = forged.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    assert_eq!(agent.post("/templates/send", &refs).await.status, 403);
    assert!(bridge.ib.sent().is_empty());
    assert_eq!(bridge.ib.template_reads(), 1, "every view and send used the list fetched first");
}

async fn a_template_list_infobip_refuses_is_explained_and_not_kept(db: TestDb) {
    let bridge = Bridge::start(db).await;
    let (mut agent, session) = agent_at_session(&bridge).await;
    let without_manage: Vec<&str> =
        byoc_bridge::infobip::account::NEEDED_SCOPES.iter().copied().filter(|s| *s != "whatsapp:manage").collect();
    bridge.ib.add_api_key(crate::bridge::API_KEY, &without_manage);
    let page = agent.get(&format!("/templates?id={session}&sender={SENDER}")).await;
    assert!(page.html.contains("lacks the whatsapp:manage scope"), "{}", page.html);
    assert!(!page.html.contains("order_update"));
    let csrf = page.html.split("name=\"csrf\" value=\"").nth(1).and_then(|v| v.split('"').next()).unwrap();
    let form = [
        ("csrf", csrf),
        ("id", session.as_str()),
        ("sender", SENDER),
        ("template", "order_update|en"),
        ("send_id", "a-fresh-form"),
        ("to", USER),
        ("body_1", "Ann"),
    ];
    let sent = agent.post("/templates/send", &form).await;
    assert_eq!(sent.status, 502);
    assert!(sent.html.contains("lacks the whatsapp:manage scope"), "{}", sent.html);
    assert!(bridge.ib.sent().is_empty());

    // Once the key has the scope, the next view lists the templates: the refusal was not kept.
    bridge.ib.add_api_key(crate::bridge::API_KEY, byoc_bridge::infobip::account::NEEDED_SCOPES);
    let page = agent.get(&format!("/templates?id={session}&sender={SENDER}")).await;
    assert!(page.html.contains("order_update"), "{}", page.html);
    assert!(!page.html.contains("lacks the whatsapp:manage scope"));
}

async fn without_a_sender_the_panel_says_how_to_fix_it(db: TestDb) {
    let bridge = Bridge::start(db).await;
    let (mut agent, session) = agent_at_session(&bridge).await;
    bridge.change_app(|c, ctx, row| byoc_bridge::provisioning::remove_sender(c, ctx, row, SENDER)).await;
    let page = agent.get(&format!("/templates?id={session}")).await;
    assert!(
        page.html.contains(
            "No WhatsApp sender is configured for this app: an admin adds one in the setup (step 4, Senders)."
        ),
        "{}",
        page.html
    );
    assert!(!page.html.contains("2. Template"), "no template list without a sender");
}
