//! The setup wizard over HTTP, against the simulators: sign-in, CSRF, framing, every step,
//! and each live check's refusal shown on its field with nothing saved.

use byoc_bridge::infobip::account::NEEDED_SCOPES as BRIDGE_SCOPES;
use byoc_sim::salesforce::{ConnectedApp, SalesforceConfig};
use reqwest::redirect::Policy;

use crate::bridge::{API_KEY, CHANNEL, CONSUMER_KEY, CONTEXT, SENDER, USERNAME, Vendors};
use crate::helpers::{TestApp, TestDb};

crate::on_both_backends!(
    the_wizard_walks_from_the_setup_link_to_an_active_app_with_every_check_green,
    salesforce_refusals_show_on_their_field_and_save_nothing,
    infobip_key_problems_show_on_the_key_and_save_nothing,
    pages_need_a_session_a_valid_csrf_token_and_an_org_admin,
    an_admins_own_key_comes_from_its_file_or_its_text,
    a_sign_in_returns_only_to_a_path_of_this_site,
    starting_a_sign_in_writes_no_row_and_its_cookie_serves_once,
    the_connection_goes_in_salesforces_order_and_a_wrong_key_is_never_saved,
    progress_shows_what_is_finished_and_activation_waits_for_it
);

/// The progress bar says, in words, which steps are finished (not which one is open), and
/// "Activate" refuses, in the wizard's own words, while something is missing or red.
async fn progress_shows_what_is_finished_and_activation_waits_for_it(db: TestDb) {
    let setup = fresh(db, &[]).await;
    let mut admin = setup.bootstrap().await;
    setup.make_certificate(&mut admin).await;
    let page = admin.get("/setup/connection").await;
    assert_eq!(page.html.matches("✓ Done").count(), 0, "a certificate alone finishes nothing: {}", page.html);
    assert_eq!(page.html.matches(">To do<").count(), 5, "{}", page.html);

    setup.create_connected_app(&mut admin, &["interaction_api", "api"]).await;
    let fields = setup.connection_fields();
    let form: Vec<(&str, &str)> = fields.iter().skip(1).map(|(k, v)| (*k, v.as_str())).collect();
    let page = admin.submit("/setup/connection", "/setup/connection", &form).await;
    assert_eq!(page.status, 200, "{}", page.html);
    let page = admin.get("/setup/summary").await;
    assert_eq!(page.html.matches("✓ Done").count(), 1, "the connection is finished, wherever the admin is");
    assert!(page.html.contains("Activating needs 2. Application: the channel definition"), "{}", page.html);

    let refused = admin.submit("/setup/summary", "/setup/activate", &[]).await;
    assert_eq!(refused.status, 400, "{}", refused.html);
    assert!(
        refused.html.contains(
            "Not activated: first finish 2. Application: the channel definition, the messaging channel, the SCRT URL."
        ),
        "{}",
        refused.html
    );
    for internal in ["`status`", "scrt_url", "channel_address_identifier"] {
        assert!(!refused.html.contains(internal), "no internal name ({internal}): {}", refused.html);
    }

    assert_eq!(setup.define_channel(&mut admin).await.status, 200);
    assert_eq!(setup.choose_channel(&mut admin).await.status, 200);
    let ib = setup.vendors.ib_running.base_url.clone();
    let page = admin
        .submit("/setup/infobip", "/setup/infobip", &[("name", "main"), ("base_url", &ib), ("api_key", API_KEY)])
        .await;
    assert!(page.html.contains("The key works"), "{}", page.html);
    assert_eq!(page.html.matches("✓ Done").count(), 3, "{}", page.html);
    let page = admin.get("/setup/senders").await;
    assert!(page.html.contains(&format!("value=\"main:{SENDER}\"")), "{}", page.html);
    assert!(
        page.html.contains(&format!("> +{SENDER}</label>")),
        "the checkbox is labelled with the number: {}",
        page.html
    );

    // Everything is set, but no sender is chosen: a red check activation cannot fix.
    let refused = admin.submit("/setup/summary", "/setup/activate", &[]).await;
    assert_eq!(refused.status, 400, "{}", refused.html);
    assert!(refused.html.contains("check(s) above are red"), "{}", refused.html);
    assert_eq!(setup.app_row().await.unwrap().status, byoc_bridge::db::AppStatus::Draft);
}

/// Salesforce gives the consumer key only once a connected app exists, and creating one needs
/// the certificate: the page asks in that order, says exactly what to enter in Setup, and a
/// key Salesforce does not know is never reported saved.
async fn the_connection_goes_in_salesforces_order_and_a_wrong_key_is_never_saved(db: TestDb) {
    let setup = fresh(db, &[]).await;
    let mut admin = setup.bootstrap().await;
    let page = admin.get("/setup/connection").await;
    assert!(page.html.contains("Admin (one-time setup link)"), "the header names who is signed in");
    let certificate_card = page.html.find("1. Certificate").expect("the certificate comes first");
    let setup_card = page.html.find("2. Create the connected app").expect("then the connected app");
    assert!(certificate_card < setup_card, "{}", page.html);
    assert!(!page.html.contains("name=\"consumer_key\""), "no key can be typed before there is a certificate");
    let refused = admin.submit("/setup/connection", "/setup/connection", &[("consumer_key", "3MVG9-early")]).await;
    assert_eq!(refused.status, 400, "{}", refused.html);
    assert!(setup.app_row().await.is_none(), "a key posted before the certificate saves nothing");

    setup.make_certificate(&mut admin).await;
    let page = admin.get("/setup/connection").await;
    let callback = format!("{}/setup/oauth/callback", setup.app.address);
    assert!(page.html.contains(&format!("<code>{callback}</code>")), "the callback URL to enter: {}", page.html);
    assert!(page.html.contains("Access Interaction API resources (interaction_api)"), "the scopes to select");
    assert!(page.html.contains("Admin approved users are pre-authorized"), "the policy to set");
    assert!(page.html.contains("href=\"/setup/certificate.crt\""), "the certificate to upload");
    assert!(page.html.contains("class=\"button destructive\""), "replacing the key is marked destructive");
    assert!(page.html.contains("name=\"pubsub_endpoint\""), "the Pub/Sub endpoint, under Advanced");

    setup.create_connected_app(&mut admin, &["interaction_api", "api"]).await;
    // Every wrong value at once, each on its own field, before Salesforce is asked.
    let mut fields = setup.connection_fields();
    for (field, value) in [("org_id", "not-an-org"), ("my_domain", "not a url"), ("integration_username", " ")] {
        fields.iter_mut().filter(|(k, _)| *k == field).for_each(|(_, v)| *v = value.into());
    }
    let form: Vec<(&str, &str)> = fields.iter().skip(1).map(|(k, v)| (*k, v.as_str())).collect();
    let page = admin.submit("/setup/connection", "/setup/connection", &form).await;
    assert_eq!(page.status, 400, "{}", page.html);
    for field in ["org_id", "my_domain", "integration_username"] {
        assert!(page.field_error(field).is_some(), "no error on {field}: {}", page.html);
    }
    for asked_in_step_2 in ["authorization_context", "platform_event", "event_type_field", "payload_field"] {
        assert!(!page.html.contains(&format!("name=\"{asked_in_step_2}\"")), "step 1 asks {asked_in_step_2}");
    }
    assert!(page.html.contains("fix the 3 marked fields"), "{}", page.html);
    assert_eq!(setup.vendors.sf.tokens_issued(), 0, "Salesforce was not asked");

    let mut fields = setup.connection_fields();
    fields.iter_mut().filter(|(k, _)| *k == "consumer_key").for_each(|(_, v)| *v = "3MVG9-mistyped".into());
    let form: Vec<(&str, &str)> = fields.iter().skip(1).map(|(k, v)| (*k, v.as_str())).collect();
    let page = admin.submit("/setup/connection", "/setup/connection", &form).await;
    assert_eq!(page.status, 400, "{}", page.html);
    assert!(page.field_error("consumer_key").unwrap().contains("does not know this consumer key"), "{}", page.html);
    assert!(!page.html.contains("Saved") && !page.html.contains("Connected"), "{}", page.html);
    assert_eq!(setup.app_row().await.unwrap().consumer_key, None, "nothing saved");

    let mut fields = setup.connection_fields();
    fields.push(("pubsub_endpoint", "https://pubsub.acme.example:7443".into()));
    let form: Vec<(&str, &str)> = fields.iter().skip(1).map(|(k, v)| (*k, v.as_str())).collect();
    let page = admin.submit("/setup/connection", "/setup/connection", &form).await;
    assert_eq!(page.status, 200, "{}", page.html);
    assert!(page.html.contains("Connected to org"), "{}", page.html);
    let row = setup.app_row().await.unwrap();
    assert_eq!(row.consumer_key.as_deref(), Some(CONSUMER_KEY));
    assert_eq!(row.pubsub_endpoint.as_deref(), Some("https://pubsub.acme.example:7443"));
    assert!(page.html.contains("<details class=\"advanced\" open>"), "a set advanced value is shown: {}", page.html);
}

/// A browser without JavaScript: a cookie jar (name → value, paths ignored), redirects
/// followed by hand.
pub struct Admin {
    pub base: String,
    http: reqwest::Client,
    jar: std::collections::BTreeMap<String, String>,
}

pub struct Page {
    pub status: u16,
    pub html: String,
}

impl Page {
    /// The form's CSRF token.
    pub fn csrf(&self) -> String {
        let marker = "name=\"csrf\" value=\"";
        let start = self.html.find(marker).expect("a form with a CSRF token") + marker.len();
        self.html[start..].split('"').next().unwrap().to_owned()
    }

    /// The error shown next to the field `name`.
    pub fn field_error(&self, name: &str) -> Option<String> {
        let marker = format!("<p class=\"error\" id=\"{name}-error\">");
        let start = self.html.find(&marker)? + marker.len();
        Some(self.html[start..].split("</p>").next()?.to_owned())
    }
}

impl Admin {
    pub fn new(base: &str) -> Self {
        let http = reqwest::Client::builder().redirect(Policy::none()).build().unwrap();
        Self { base: base.to_owned(), http, jar: Default::default() }
    }

    pub fn jar_has_no(&self, name: &str) -> bool {
        !self.jar.contains_key(name)
    }

    /// The session token the bridge gave this browser.
    pub fn session(&self) -> Option<String> {
        self.jar.get(byoc_bridge::web::admin::COOKIE).cloned()
    }

    fn with_cookies(&self, req: reqwest::RequestBuilder) -> reqwest::RequestBuilder {
        if self.jar.is_empty() {
            return req;
        }
        let header: Vec<String> = self.jar.iter().map(|(k, v)| format!("{k}={v}")).collect();
        req.header("Cookie", header.join("; "))
    }

    fn keep_cookies(&mut self, res: &reqwest::Response) {
        for set in res.headers().get_all("set-cookie").iter().filter_map(|v| v.to_str().ok()) {
            assert!(set.contains("Secure") && set.contains("HttpOnly"), "{set}");
            if set.starts_with("byoc_session=") {
                assert!(set.contains("SameSite=None") && set.contains("Partitioned"), "{set}");
            }
            let (name, value) = set.split(';').next().unwrap().split_once('=').unwrap();
            let gone = value.is_empty() || set.contains("Max-Age=0");
            if gone {
                self.jar.remove(name);
            } else {
                self.jar.insert(name.to_owned(), value.to_owned());
            }
        }
    }

    async fn send(&mut self, req: reqwest::RequestBuilder) -> Page {
        let mut res = self.with_cookies(req).send().await.unwrap();
        for _ in 0..5 {
            self.keep_cookies(&res);
            if !res.status().is_redirection() {
                break;
            }
            let location = res.headers()["location"].to_str().unwrap().to_owned();
            let url = if location.starts_with('/') { format!("{}{location}", self.base) } else { location };
            res = self.with_cookies(self.http.get(url)).send().await.unwrap();
        }
        Page { status: res.status().as_u16(), html: res.text().await.unwrap() }
    }

    /// Where a GET of `path` redirects to (not followed).
    pub async fn redirect_of(&mut self, path: &str) -> String {
        self.redirect_of_url(&format!("{}{path}", self.base)).await
    }

    pub async fn redirect_of_url(&mut self, url: &str) -> String {
        let res = self.with_cookies(self.http.get(url)).send().await.unwrap();
        assert!(res.status().is_redirection(), "{url}: {}", res.status());
        self.keep_cookies(&res);
        res.headers()["location"].to_str().unwrap().to_owned()
    }

    pub async fn get(&mut self, path: &str) -> Page {
        let req = self.http.get(format!("{}{path}", self.base));
        self.send(req).await
    }

    pub async fn post(&mut self, path: &str, form: &[(&str, &str)]) -> Page {
        let req = self.http.post(format!("{}{path}", self.base)).form(form);
        self.send(req).await
    }

    /// Posts a `multipart/form-data` form (a file upload) with the CSRF token of `page_path`.
    pub async fn upload(&mut self, page_path: &str, action: &str, form: reqwest::multipart::Form) -> Page {
        let csrf = self.get(page_path).await.csrf();
        let req = self.http.post(format!("{}{action}", self.base)).multipart(form.text("csrf", csrf));
        self.send(req).await
    }

    /// Submits a step's form with the CSRF token of the page it is on.
    pub async fn submit(&mut self, page_path: &str, action: &str, fields: &[(&str, &str)]) -> Page {
        let csrf = self.get(page_path).await.csrf();
        let mut form = vec![("csrf", csrf.as_str())];
        form.extend_from_slice(fields);
        self.post(action, &form).await
    }
}

pub struct Setup {
    pub vendors: Vendors,
    pub app: TestApp,
    _db: TestDb,
}

/// The bridge with no app yet, beside both simulators.
pub async fn fresh(db: TestDb, settings: &[(&str, &str)]) -> Setup {
    fresh_with_org(db, settings, SalesforceConfig::default()).await
}

pub async fn fresh_with_org(db: TestDb, settings: &[(&str, &str)], org: SalesforceConfig) -> Setup {
    let vendors = Vendors::start(org).await;
    let app = TestApp::spawn_with(db.settings_with(settings)).await;
    Setup { vendors, app, _db: db }
}

impl Setup {
    pub async fn bootstrap(&self) -> Admin {
        let link = byoc_bridge::web::admin::signin::issue_bootstrap(&self.app.db, &self.app.address)
            .await
            .unwrap()
            .expect("a setup link while nothing is configured");
        let mut admin = Admin::new(&self.app.address);
        let page = admin.get(link.trim_start_matches(&self.app.address)).await;
        assert_eq!(page.status, 200, "{}", page.html);
        assert!(page.html.contains("BYOC connection"));
        admin
    }

    pub fn connection_fields(&self) -> Vec<(&'static str, String)> {
        vec![
            ("name", "acme".into()),
            ("org_type", "production".into()),
            ("my_domain", self.vendors.sf_running.base_url.clone()),
            ("org_id", self.vendors.sf.org_id().to_owned()),
            ("integration_username", USERNAME.into()),
            ("consumer_key", CONSUMER_KEY.into()),
        ]
    }

    /// Step 2, card 1: the channel definition the org's channel was made from, and its event.
    pub async fn define_channel(&self, admin: &mut Admin) -> Page {
        let form = [
            ("authorization_context", CONTEXT),
            ("platform_event", "WhatsApp_Event__e"),
            ("event_type_field", "EventType__c"),
            ("payload_field", "Payload__c"),
        ];
        admin.submit("/setup/application", "/setup/application/definition", &form).await
    }

    /// Step 2, card 3: the org's channel, picked, and the SCRT URL.
    pub async fn choose_channel(&self, admin: &mut Admin) -> Page {
        let sf = self.vendors.sf_running.base_url.clone();
        let form = [("channel_address_identifier", CHANNEL), ("scrt_url", sf.as_str())];
        admin.submit("/setup/application", "/setup/application", &form).await
    }

    /// Setting the webhook signing secret the admin entered in Infobip.
    pub async fn set_webhook_secret(&self, admin: &mut Admin, secret: &str) -> Page {
        admin.submit("/setup/summary", "/setup/webhook-secret", &[("webhook_secret", secret)]).await
    }

    /// Step 1 in Salesforce's order: the certificate generated for a new connection, the
    /// connected app created with it and `scopes`, as the admin does in Salesforce, then the
    /// org's details with its consumer key, checked live.
    pub async fn connect(&self, admin: &mut Admin, scopes: &[&str]) -> Page {
        self.make_certificate(admin).await;
        self.create_connected_app(admin, scopes).await;
        let fields = self.connection_fields();
        let form: Vec<(&str, &str)> = fields.iter().skip(1).map(|(k, v)| (*k, v.as_str())).collect();
        admin.submit("/setup/connection", "/setup/connection", &form).await
    }

    /// Card 1: the new connection "acme" and its key pair.
    pub async fn make_certificate(&self, admin: &mut Admin) {
        let page = admin.submit("/setup/connection", "/setup/connection/keypair", &[("name", "acme")]).await;
        assert_eq!(page.status, 200, "{}", page.html);
        assert!(page.html.contains("The key pair is ready"), "{}", page.html);
    }

    /// What the admin does in Salesforce Setup with the certificate (card 2).
    pub async fn create_connected_app(&self, admin: &mut Admin, scopes: &[&str]) {
        let certificate = admin.get("/setup/certificate.crt").await.html;
        assert!(certificate.starts_with("-----BEGIN CERTIFICATE-----"), "{certificate}");
        self.vendors.sf.register_app(ConnectedApp {
            consumer_key: CONSUMER_KEY.into(),
            certificate_pem: certificate,
            approved_users: vec![USERNAME.into()],
            scopes: scopes.iter().map(|s| (*s).to_owned()).collect(),
            callback_urls: vec![format!("{}/setup/oauth/callback", self.app.address)],
        });
    }

    pub async fn app_row(&self) -> Option<byoc_bridge::db::apps::AppRow> {
        self.app.db.run(|c| byoc_bridge::db::apps::find(c, "acme")).await.unwrap()
    }
}

async fn the_wizard_walks_from_the_setup_link_to_an_active_app_with_every_check_green(db: TestDb) {
    let org = SalesforceConfig { platform_event_deployed: false, ..SalesforceConfig::default() };
    let setup = fresh_with_org(db, &[], org).await;
    let mut admin = setup.bootstrap().await;

    // 1. The connection: key pair, certificate, live check.
    let page = setup.connect(&mut admin, &["interaction_api", "api"]).await;
    assert_eq!(page.status, 200, "{}", page.html);
    assert!(page.html.contains("Connected to org"), "{}", page.html);
    assert!(setup.vendors.sf.tooling_records().is_empty(), "step 1 creates nothing in the org");
    assert!(!page.html.contains("BEGIN"), "no key material on the page");

    // 2. The application, in Salesforce's order: the definition first, created in the org.
    let page = admin.get("/setup/application").await;
    let cards: Vec<usize> = ["1. Channel definition", "2. Create the messaging channel", "3. Choose the channel"]
        .iter()
        .map(|c| page.html.find(c).unwrap_or_else(|| panic!("{c}: {}", page.html)))
        .collect();
    assert!(cards.windows(2).all(|w| w[0] < w[1]), "{}", page.html);
    let page = setup.define_channel(&mut admin).await;
    assert_eq!(page.status, 200, "{}", page.html);
    assert!(page.html.contains(&format!("ConversationVendorInfo {CONTEXT}_Vendor")), "{}", page.html);
    assert!(page.html.contains(&format!("ConversationChannelDefinition {CONTEXT}")), "{}", page.html);
    // The org had no platform event: the wizard made it, its fields, and sfdc_scrt2's access.
    assert!(page.html.contains("CustomObject WhatsApp_Event__e ("), "{}", page.html);
    let event = setup.vendors.sf.custom_objects()["WhatsApp_Event__e"].clone();
    assert_eq!(event, ["EventType__c", "Payload__c"]);
    let grants = setup.vendors.sf.object_permissions();
    assert_eq!(grants.len(), 1);
    assert_eq!(
        (&grants[0]["SobjectType"], &grants[0]["PermissionsRead"], &grants[0]["PermissionsCreate"]),
        (&serde_json::json!("WhatsApp_Event__e"), &serde_json::json!(true), &serde_json::json!(true))
    );
    let records = setup.vendors.sf.tooling_records();
    let created: Vec<&str> = records.iter().map(|r| r.sobject.as_str()).collect();
    assert_eq!(
        created,
        ["CustomObject", "CustomField", "CustomField", "ConversationVendorInfo", "ConversationChannelDefinition"]
    );
    let event_record = &records[0].metadata;
    assert_eq!(
        (&event_record["eventType"], &event_record["deploymentStatus"]),
        (&serde_json::json!("HighVolume"), &serde_json::json!("Deployed"))
    );
    let ccd = records.iter().find(|r| r.sobject == "ConversationChannelDefinition").unwrap();
    assert_eq!(ccd.metadata["routingOwner"], "Salesforce");
    assert_eq!(ccd.metadata["customEventPayloadField"], "WhatsApp_Event__e.Payload__c");
    // Creating again finds the records instead of creating them twice.
    let again = setup.define_channel(&mut admin).await;
    assert!(again.html.contains("found"), "{}", again.html);
    assert!(!again.html.contains("created"), "{}", again.html);
    assert_eq!(setup.vendors.sf.tooling_records().len(), 5);
    assert_eq!(setup.vendors.sf.object_permissions().len(), 1);

    // The channel is picked from the org's channels, named with its definition; the
    // authorization context is the picked channel's, typed nowhere.
    let page = admin.get("/setup/application").await;
    assert!(page.html.contains(&format!("<option value=\"{CHANNEL}\"")), "{}", page.html);
    assert!(page.html.contains(&format!("WhatsApp 1 ({CONTEXT})")), "{}", page.html);
    let sf = setup.vendors.sf_running.base_url.clone();
    let channel = |queue: &'static str| {
        [
            ("channel_address_identifier", CHANNEL),
            ("scrt_url", sf.as_str()),
            ("welcome_message", "Hello from the agents"),
            ("closing_message", "Bye"),
            ("queue_message", queue),
            ("wait_message", "About {minutes} min to go."),
        ]
    };
    // A queue message without its placeholder is marked on its field; nothing is saved.
    let refused = admin.submit("/setup/application", "/setup/application", &channel("Please wait")).await;
    assert_eq!(refused.status, 400, "{}", refused.html);
    assert!(refused.field_error("queue_message").unwrap().contains("{position}"), "{}", refused.html);
    assert_eq!(setup.app_row().await.unwrap().channel_address_identifier, None);
    let page = admin.submit("/setup/application", "/setup/application", &channel("You are number {position}.")).await;
    assert_eq!(page.status, 200, "{}", page.html);
    assert!(page.html.contains("You are number {position}."), "the saved message is shown: {}", page.html);
    assert!(page.html.contains(&format!("Conversations use the channel definition {CONTEXT}")), "{}", page.html);
    let row = setup.app_row().await.unwrap();
    assert_eq!(row.authorization_context.as_deref(), Some(CONTEXT));
    assert_eq!((row.event_type_field.as_str(), row.payload_field.as_str()), ("EventType__c", "Payload__c"));

    // 3. The Infobip account, key checked live.
    let ib = setup.vendors.ib_running.base_url.clone();
    let page = admin
        .submit("/setup/infobip", "/setup/infobip", &[("name", "main"), ("base_url", &ib), ("api_key", API_KEY)])
        .await;
    assert!(page.html.contains("The key works"), "{}", page.html);
    assert!(!page.html.contains(API_KEY), "the key is never shown back");

    // 4. The senders.
    let page = admin.get("/setup/senders").await;
    assert!(page.html.contains(&format!("value=\"main:{SENDER}\"")), "{}", page.html);
    let sender = format!("main:{SENDER}");
    let page = admin.submit("/setup/senders", "/setup/senders", &[("sender", &sender)]).await;
    assert!(page.html.contains("Saved: 1 sender(s)."), "{}", page.html);

    // 5. Summary: the webhooks to paste into Infobip; the secret is the admin's, write-only.
    let page = admin.get("/setup/summary").await;
    assert!(page.html.contains("Infobip webhooks: set the signing secret"), "{}", page.html);
    let refused = setup.set_webhook_secret(&mut admin, "too-short").await;
    assert_eq!(refused.status, 400, "{}", refused.html);
    assert!(refused.field_error("webhook_secret").unwrap().contains("16 to 255 characters"), "{}", refused.html);
    let chosen = "a-long-random-secret-entered-in-infobip";
    let page = setup.set_webhook_secret(&mut admin, chosen).await;
    assert!(page.html.contains("The signing secret is set."), "{}", page.html);
    assert!(!page.html.contains(chosen), "the secret is never shown back");
    // Activation; the subscription starts, and every check turns green.
    let cancel = tokio_util::sync::CancellationToken::new();
    tokio::spawn(setup.app.subscriber.clone().run(cancel.clone()));
    let page = admin.submit("/setup/summary", "/setup/activate", &[]).await;
    assert!(page.html.contains("Activated"), "{}", page.html);
    // Activation tells Salesforce what WhatsApp can show, once (the sim checks the schema).
    setup.app.runner.drain_at(byoc_bridge::db::now()).await.unwrap();
    let registered = setup.vendors.sf.capabilities();
    assert_eq!(registered.len(), 1, "{registered:?}");
    let channel = &registered[0]["capabilities"]["channelCapabilities"][0];
    assert_eq!(channel["customIntegration"]["conversationChannelDefinitionDevName"], CONTEXT);
    let formats: Vec<&str> = channel["messageTypeCapabilities"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|m| m["formatTypeCapabilities"].as_array().unwrap())
        .map(|f| f["formatType"].as_str().unwrap())
        .collect();
    assert_eq!(formats, ["Text", "Attachments", "Buttons", "ListPicker"]);
    assert!(page.html.contains("Still to do in Salesforce Setup"), "the checklist after activation");
    assert!(page.html.contains("To do: the template panel"), "no agent has opened it yet: {}", page.html);
    assert!(page.html.contains(&format!("<code>{}/templates</code>", setup.app.address)), "the URL to paste");
    assert!(page.html.contains("/api/infobip/inbound/answers/acme"));
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    loop {
        let page = admin.get("/setup/summary").await;
        if !page.html.contains("class=\"bad\"") {
            assert_eq!(page.html.matches("class=\"good\"").count(), 7, "{}", page.html);
            break;
        }
        assert!(std::time::Instant::now() < deadline, "checks stayed red: {}", page.html);
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    // The same secret in Infobip's subscription (the portal's form): its posts are accepted.
    let ib_url = setup.vendors.ib_running.base_url.clone();
    let http = reqwest::Client::builder().redirect(Policy::none()).build().unwrap();
    let inbound_url = format!("{}/api/infobip/inbound/messages/acme", setup.app.address);
    let subscribed = http
        .post(format!("{ib_url}/__sim/portal/subscription"))
        .form(&[("inbound_url", inbound_url.as_str()), ("secret_key", chosen), ("algorithm", "HMAC_SHA_256")])
        .send()
        .await
        .unwrap();
    assert_eq!(subscribed.status(), 303);
    let posted: serde_json::Value = http
        .post(format!("{ib_url}/__sim/webhooks/inbound"))
        .json(&serde_json::json!({ "from": "447700900555", "text": "Hello" }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(posted["statuses"], serde_json::json!([200]), "signed with the admin's secret: {posted}");

    // The org's limits are on the summary; one running low is a warning there.
    assert!(admin.get("/setup/summary").await.html.contains("Org limits left today:"));
    setup.vendors.sf.set_limit("DailyDeliveredPlatformEvents", 50_000, 900);
    let page = admin.get("/setup/summary").await;
    assert!(page.html.contains("Warning: the org is running out of delivered platform events"), "{}", page.html);
    cancel.cancel();
    let row = setup.app_row().await.unwrap();
    assert_eq!(row.status, byoc_bridge::db::AppStatus::Active);
    let audit = setup
        .app
        .db
        .run(|c| {
            use byoc_bridge::db::schema::audit_log;
            use diesel::prelude::*;
            Ok(audit_log::table.select(audit_log::actor).load::<String>(c)?)
        })
        .await
        .unwrap();
    assert!(audit.iter().all(|a| a == "web:setup link"), "{audit:?}");
    assert!(audit.len() >= 5);
}

async fn salesforce_refusals_show_on_their_field_and_save_nothing(db: TestDb) {
    let setup = fresh(db, &[]).await;
    let mut admin = setup.bootstrap().await;
    // Without the api scope the token works but the setup records cannot be written.
    let page = setup.connect(&mut admin, &["interaction_api"]).await;
    assert_eq!(page.status, 400);
    assert!(page.html.contains("Manage user data via APIs (api)"), "{}", page.html);
    setup.vendors.sf.register_app(ConnectedApp {
        scopes: vec!["interaction_api".into(), "api".into()],
        ..setup.vendors.sf.connected_app(CONSUMER_KEY).unwrap()
    });
    let fields = setup.connection_fields();
    let form: Vec<(&str, &str)> = fields.iter().skip(1).map(|(k, v)| (*k, v.as_str())).collect();
    assert_eq!(admin.submit("/setup/connection", "/setup/connection", &form).await.status, 200);
    let saved = setup.app_row().await.unwrap();

    let mut fields = fields;
    for (field, value, expected) in [
        ("integration_username", "someone@else.example", "No active user has this username"),
        ("consumer_key", "3MVG9-unknown", "Salesforce does not know this consumer key"),
        ("my_domain", "http://127.0.0.1:9", "cannot be reached"),
        // The org is a production org: a sandbox's token audience is refused, and the advice
        // is about the org type, not the URL the token is asked from.
        ("org_type", "sandbox", "choose Sandbox for a sandbox org"),
        ("org_id", "not-an-org", "15- or 18-character"),
    ] {
        let mut form: Vec<(&str, String)> = std::mem::take(&mut fields);
        let original = form.iter().find(|(k, _)| *k == field).unwrap().1.clone();
        form.iter_mut().filter(|(k, _)| *k == field).for_each(|(_, v)| *v = value.to_owned());
        let refs: Vec<(&str, &str)> = form.iter().skip(1).map(|(k, v)| (*k, v.as_str())).collect();
        let page = admin.submit("/setup/connection", "/setup/connection", &refs).await;
        assert_eq!(page.status, 400, "{field}: {}", page.html);
        let error = page.field_error(field).unwrap_or_else(|| panic!("no error on {field}: {}", page.html));
        assert!(error.contains(expected), "{field}: {error}");
        assert_eq!(setup.app_row().await.unwrap(), saved, "nothing saved after a wrong {field}");
        form.iter_mut().filter(|(k, _)| *k == field).for_each(|(_, v)| *v = original.clone());
        fields = form;
    }
    // The connected app holds another certificate than the one of the bridge's key.
    let foreign =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/test_certificate.pem")).unwrap();
    let current = setup.vendors.sf.connected_app(CONSUMER_KEY).unwrap();
    setup.vendors.sf.register_app(ConnectedApp { certificate_pem: foreign, ..current.clone() });
    let refs: Vec<(&str, &str)> = fields.iter().skip(1).map(|(k, v)| (*k, v.as_str())).collect();
    let page = admin.submit("/setup/connection", "/setup/connection", &refs).await;
    assert_eq!(page.status, 400);
    assert!(page.html.contains("does not match this key"), "{}", page.html);
    assert_eq!(setup.app_row().await.unwrap(), saved);
    setup.vendors.sf.register_app(current);
    // A user the connected app does not admit.
    setup.vendors.sf.add_user("other@acme.example", "Other", "Standard User");
    fields.iter_mut().filter(|(k, _)| *k == "integration_username").for_each(|(_, v)| *v = "other@acme.example".into());
    let refs: Vec<(&str, &str)> = fields.iter().skip(1).map(|(k, v)| (*k, v.as_str())).collect();
    let page = admin.submit("/setup/connection", "/setup/connection", &refs).await;
    assert!(page.field_error("integration_username").unwrap().contains("Permitted Users"), "{}", page.html);
    assert_eq!(setup.app_row().await.unwrap(), saved);
}

async fn infobip_key_problems_show_on_the_key_and_save_nothing(db: TestDb) {
    let setup = fresh(db, &[]).await;
    let mut admin = setup.bootstrap().await;
    setup.connect(&mut admin, &["interaction_api", "api"]).await;
    let narrow: Vec<&str> = BRIDGE_SCOPES.iter().copied().filter(|s| *s != "numbers:manage").collect();
    setup.vendors.ib.add_api_key("narrow-key", &narrow);
    let ib = setup.vendors.ib_running.base_url.clone();
    for (key, expected) in [("wrong-key", "The key is wrong"), ("narrow-key", "numbers:manage")] {
        let page = admin
            .submit("/setup/infobip", "/setup/infobip", &[("name", "main"), ("base_url", &ib), ("api_key", key)])
            .await;
        assert_eq!(page.status, 400);
        assert!(page.field_error("api_key").unwrap().contains(expected), "{}", page.html);
    }
    let page = admin
        .submit(
            "/setup/infobip",
            "/setup/infobip",
            &[("name", "main"), ("base_url", "http://127.0.0.1:9"), ("api_key", API_KEY)],
        )
        .await;
    assert!(page.field_error("base_url").unwrap().contains("cannot be reached"), "{}", page.html);
    let app_id = setup.app_row().await.unwrap().id;
    let id = app_id.clone();
    let accounts = setup.app.db.run(move |c| byoc_bridge::db::apps::accounts(c, &id)).await.unwrap();
    assert!(accounts.is_empty());

    // Removing an account is destructive: marked so, and only with the box ticked.
    let page = admin
        .submit("/setup/infobip", "/setup/infobip", &[("name", "main"), ("base_url", &ib), ("api_key", API_KEY)])
        .await;
    assert!(page.html.contains("The key works"), "{}", page.html);
    assert!(page.html.contains("class=\"button destructive\">Remove main</button>"), "{}", page.html);
    let refused = admin.submit("/setup/infobip", "/setup/infobip/remove", &[("name", "main")]).await;
    assert_eq!(refused.status, 400, "{}", refused.html);
    assert!(refused.html.contains("tick the box to confirm removing main"), "{}", refused.html);
    let db = &setup.app.db;
    let count =
        |id: String| async move { db.run(move |c| byoc_bridge::db::apps::accounts(c, &id)).await.unwrap().len() };
    assert_eq!(count(app_id.clone()).await, 1, "nothing removed without the tick");
    let removed =
        admin.submit("/setup/infobip", "/setup/infobip/remove", &[("name", "main"), ("confirm", "yes")]).await;
    assert_eq!(removed.status, 200, "{}", removed.html);
    assert_eq!(count(app_id).await, 0);
}

async fn pages_need_a_session_a_valid_csrf_token_and_an_org_admin(db: TestDb) {
    let setup = fresh(db, &[]).await;
    let mut stranger = Admin::new(&setup.app.address);
    for path in ["/", "/setup/connection", "/setup/summary", "/setup/certificate.crt"] {
        let page = stranger.get(path).await;
        assert_eq!(page.status, 401, "{path}");
        assert!(page.html.contains("Sign in"), "{path}");
    }
    let mut admin = setup.bootstrap().await;
    // The setup link works once.
    let again = byoc_bridge::web::admin::signin::issue_bootstrap(&setup.app.db, &setup.app.address).await.unwrap();
    let link = again.unwrap();
    assert_eq!(Admin::new(&setup.app.address).get(link.trim_start_matches(&setup.app.address)).await.status, 200);
    assert_eq!(Admin::new(&setup.app.address).get(link.trim_start_matches(&setup.app.address)).await.status, 401);

    // A form without the page's CSRF token changes nothing.
    let fields = setup.connection_fields();
    let mut form: Vec<(&str, &str)> = fields.iter().map(|(k, v)| (*k, v.as_str())).collect();
    form.push(("csrf", "forged"));
    let page = admin.post("/setup/connection", &form).await;
    assert_eq!(page.status, 403);
    assert!(page.html.starts_with('{'), "a program gets the refusal as JSON: {}", page.html);
    assert!(setup.app_row().await.is_none());
    // A browser gets it as a page, in words.
    let browser = reqwest::Client::new()
        .post(format!("{}/setup/connection", setup.app.address))
        .header("Cookie", format!("byoc_session={}", admin.session().unwrap()))
        .header("Accept", "text/html,application/xhtml+xml,*/*;q=0.8")
        .form(&form)
        .send()
        .await
        .unwrap();
    assert_eq!(browser.status(), 403);
    assert!(browser.headers()["content-type"].to_str().unwrap().starts_with("text/html"));
    let html = browser.text().await.unwrap();
    assert!(html.contains("<h1>Not allowed</h1>") && html.contains("did not come from this page"), "{html}");

    // Framing: only the org's Salesforce origins (here the simulator's) may frame the pages.
    setup.connect(&mut admin, &["interaction_api", "api"]).await;
    let res = reqwest::Client::new()
        .get(format!("{}/setup/connection", setup.app.address))
        .header("Cookie", format!("byoc_session={}", admin.session().unwrap()))
        .send()
        .await
        .unwrap();
    let csp = res.headers()["content-security-policy"].to_str().unwrap().to_owned();
    assert!(csp.ends_with(&format!("frame-ancestors {}", setup.vendors.sf_running.base_url)), "{csp}");

    // Once the org is connected, admins sign in with Salesforce and get the setup; agents of the
    // org sign in but the setup stays closed to them; people of another org are turned away.
    setup.vendors.sf.add_user("admin@acme.example", "Ada Admin", "System Administrator");
    setup.vendors.sf.add_user("agent@acme.example", "Agent Smith", "Standard User");
    setup.vendors.sf.add_user_in_org("admin@elsewhere.example", "Eve", "System Administrator", "00D5g00000Other");
    for (user, status, setup_status) in
        [("admin@acme.example", 200, 200), ("agent@acme.example", 200, 403), ("admin@elsewhere.example", 403, 401)]
    {
        let mut browser = Admin::new(&setup.app.address);
        let authorize = browser.redirect_of("/setup/signin").await;
        assert!(authorize.contains("code_challenge_method=S256"), "{authorize}");
        let callback = browser.redirect_of_url(&format!("{authorize}&login_hint={user}")).await;
        let page = browser.get(callback.trim_start_matches(&setup.app.address)).await;
        assert_eq!(page.status, status, "{user}: {}", page.html);
        assert_eq!(browser.get("/setup/connection").await.status, setup_status, "{user}");
        if user.starts_with("admin@acme") {
            assert!(page.html.contains("Signed in as Ada Admin"), "{}", page.html);
        }
    }
}

/// The certificate comes first, as Salesforce needs it to create the connected app: a new
/// connection can start from the admin's own key, and a key that exists is replaced only when
/// the admin confirms it.
async fn an_admins_own_key_comes_from_its_file_or_its_text(db: TestDb) {
    use reqwest::multipart::{Form, Part};
    let setup = fresh(db, &[]).await;
    let mut admin = setup.bootstrap().await;
    let page = admin.get("/setup/connection").await;
    assert!(page.html.contains("enctype=\"multipart/form-data\""), "{}", page.html);
    assert!(!page.html.contains("name=\"consumer_key\""), "no consumer key before the certificate: {}", page.html);
    let file = |bytes: Vec<u8>, name: &str| Part::bytes(bytes).file_name(name.to_owned());
    let key = |name: &str| std::fs::read(format!("{}/tests/fixtures/{name}", env!("CARGO_MANIFEST_DIR"))).unwrap();

    // Nothing chosen (browsers still send an empty file part), then a file that is no key.
    let nothing =
        Form::new().text("name", "acme").part("private_key_file", file(Vec::new(), "")).text("private_key", "");
    let page = admin.upload("/setup/connection", "/setup/connection/key", nothing).await;
    assert_eq!(page.status, 400);
    assert!(page.field_error("private_key").unwrap().contains("Choose the PEM file of the key"), "{}", page.html);
    let not_a_key = Form::new()
        .text("name", "acme")
        .part("private_key_file", file(b"hello".to_vec(), "notes.txt"))
        .text("private_key", "");
    let page = admin.upload("/setup/connection", "/setup/connection/key", not_a_key).await;
    assert_eq!(page.status, 400);
    assert!(page.field_error("private_key_file").is_some(), "{}", page.html);
    assert!(setup.app_row().await.is_none(), "nothing saved, not even the connection");

    // The key's file starts the connection: the bridge signs with it, so the certificate it
    // offers lets the JWT in.
    let from_file =
        Form::new().text("name", "acme").part("private_key_file", file(key("test_private_key.pem"), "key.pem"));
    let page = admin.upload("/setup/connection", "/setup/connection/key", from_file).await;
    assert!(page.html.contains("The key pair is ready"), "{}", page.html);
    assert!(page.html.contains("/setup/oauth/callback"), "the connected app's values are shown: {}", page.html);
    assert!(!page.html.contains("BEGIN"), "no key material on the page");
    let certificate = admin.get("/setup/certificate.crt").await.html;
    setup.create_connected_app(&mut admin, &["interaction_api", "api"]).await;
    let fields = setup.connection_fields();
    let form: Vec<(&str, &str)> = fields.iter().skip(1).map(|(k, v)| (*k, v.as_str())).collect();
    let page = admin.submit("/setup/connection", "/setup/connection", &form).await;
    assert_eq!(page.status, 200, "{}", page.html);
    assert!(page.html.contains("Connected to org"), "the token worked: {}", page.html);
    assert_eq!(admin.get("/setup/certificate.crt").await.html, certificate);

    // Another key, pasted, replaces the first only once the admin confirms it.
    let pasted = String::from_utf8(key("other_private_key.pem")).unwrap();
    let page = admin
        .upload("/setup/connection", "/setup/connection/key", Form::new().text("private_key", pasted.clone()))
        .await;
    assert_eq!(page.status, 400);
    assert!(page.field_error("confirm").is_some() || page.html.contains("Tick the box to confirm"), "{}", page.html);
    assert_eq!(admin.get("/setup/certificate.crt").await.html, certificate, "not replaced");
    let confirmed = Form::new().text("private_key", pasted).text("confirm", "yes");
    let page = admin.upload("/setup/connection", "/setup/connection/key", confirmed).await;
    assert!(page.html.contains("The key pair is ready"), "{}", page.html);
    assert_ne!(admin.get("/setup/certificate.crt").await.html, certificate);
}

/// The org connected and its admin known to Salesforce, for the sign-in tests.
async fn connected_with_admin(db: TestDb) -> Setup {
    let setup = fresh(db, &[]).await;
    let mut admin = setup.bootstrap().await;
    setup.connect(&mut admin, &["interaction_api", "api"]).await;
    setup.vendors.sf.add_user("admin@acme.example", "Ada Admin", "System Administrator");
    setup
}

async fn a_sign_in_returns_only_to_a_path_of_this_site(db: TestDb) {
    let setup = connected_with_admin(db).await;
    for (next, back_to) in [
        ("/%20/evil.example/x", "/"),
        ("//evil.example/x", "/"),
        ("/%5Cevil.example", "/"),
        ("https://evil.example/", "/"),
        ("/setup/../templates%3Fid%3D0Mw1", "/templates?id=0Mw1"),
    ] {
        let mut browser = Admin::new(&setup.app.address);
        let authorize = browser.redirect_of(&format!("/setup/signin?next={next}")).await;
        let callback = browser.redirect_of_url(&format!("{authorize}&login_hint=admin@acme.example")).await;
        let page = browser.get(callback.trim_start_matches(&setup.app.address)).await;
        assert_eq!(page.status, 200, "{next}: {}", page.html);
        assert!(page.html.contains(&format!("href=\"{back_to}\">continue here")), "{next}: {}", page.html);
        // The iframe's hand-off lands on the same path.
        let code = page.html.split("data-code=\"").nth(1).unwrap().split('"').next().unwrap().to_owned();
        let landing = Admin::new(&setup.app.address).redirect_of(&format!("/setup/handoff?code={code}")).await;
        assert_eq!(landing, back_to, "{next}");
    }
    // Browsers drop a tab or line break inside a URL (`/\t/evil.example` is `//evil.example`);
    // such a `next` only comes from a crafted link: refused, naming `next`, before Salesforce.
    for next in ["/%09/evil.example/x", "/%0D%0ASet-Cookie:%20x=1", "/a%0Ab"] {
        let res = reqwest::get(format!("{}/setup/signin?next={next}", setup.app.address)).await.unwrap();
        assert_eq!(res.status(), 400, "{next}");
        assert!(res.headers().get("set-cookie").is_none(), "{next}");
        assert!(res.text().await.unwrap().contains("`next`"), "{next}");
    }
}

async fn starting_a_sign_in_writes_no_row_and_its_cookie_serves_once(db: TestDb) {
    let setup = connected_with_admin(db).await;
    let before = crate::helpers::snapshot(&setup.app.db).await;
    let mut starts = Vec::new();
    for _ in 0..20 {
        let mut stranger = Admin::new(&setup.app.address);
        let authorize = stranger.redirect_of("/setup/signin?next=/setup/summary").await;
        starts.push((stranger, authorize));
    }
    assert_eq!(crate::helpers::snapshot(&setup.app.db).await, before, "nobody signed in: nothing stored");

    // Salesforce's answer counts only in the browser that started that sign-in.
    let (mut first, authorize) = starts.remove(0);
    let callback = first.redirect_of_url(&format!("{authorize}&login_hint=admin@acme.example")).await;
    let path = callback.trim_start_matches(&setup.app.address).to_owned();
    let mut other = starts.remove(0).0;
    let page = other.get(&path).await;
    assert_eq!(page.status, 401, "another browser's cookie does not match the state: {}", page.html);
    assert_eq!(Admin::new(&setup.app.address).get(&path).await.status, 401, "no cookie, no sign-in");
    let page = first.get(&path).await;
    assert!(page.html.contains("Signed in as Ada Admin"), "{}", page.html);
    // The cookie is spent: the same answer again signs nobody in.
    assert!(first.jar_has_no("byoc_signin"));
    let mut replay = Admin::new(&setup.app.address);
    assert_eq!(replay.get(&path).await.status, 401);
}
