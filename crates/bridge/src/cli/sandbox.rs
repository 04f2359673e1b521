//! `byoc-bridge sandbox`: the bridge on a fresh SQLite database between both simulators,
//! with one app provisioned, so a newcomer sees all three users' surfaces in a minute: the
//! customer's phone, the agent's console with the template panel beside the conversation, and
//! the admin's setup pages, signed in.

use anyhow::Context;
use clap::Args;
use secrecy::SecretString;
use tokio_util::sync::CancellationToken;

use crate::config::Settings;
use crate::provisioning::{self as prov, AppSpec, Ctx};
use byoc_sim::infobip::webhooks::{Encoding, HmacAlgorithm, WebhookAuth, WebhookSender};
use byoc_sim::infobip::{InfobipConfig, InfobipSim};

use crate::infobip::account::NEEDED_SCOPES;
use crate::startup::{Application, Services};
use byoc_sim::salesforce::{ConnectedApp, SalesforceConfig, SalesforceSim};

const CONSUMER_KEY: &str = "3MVG9-sandbox";
const USERNAME: &str = "integration@sandbox.example";
const CHANNEL: &str = "7c0c7f4e-1b1a-4c3f-9a7e-2f4b7a1d5e6f";
const CONTEXT: &str = "Sandbox_WhatsApp";
const SENDER: &str = "447860099299";
const API_KEY: &str = "sandbox-infobip-key";
const ADMIN: &str = "admin@sandbox.example";
const AGENT: &str = "agent@sandbox.example";
const APP: &str = "sandbox";

/// WhatsApp templates of the sandbox's number, so the panel has something to send.
fn templates() -> Vec<serde_json::Value> {
    vec![
        serde_json::json!({ "id": "1", "name": "order_update", "language": "en", "status": "APPROVED", "category": "UTILITY",
            "structure": { "type": "TEXT",
                "header": { "format": "TEXT", "text": "Order {{1}}" },
                "body": { "text": "Hi {{1}}, your order {{2}} has shipped.", "examples": ["Ann", "A-1042"] },
                "footer": { "text": "Sandbox Shop" },
                "buttons": [{ "type": "QUICK_REPLY", "text": "Thanks" }] } }),
        serde_json::json!({ "id": "2", "name": "appointment_reminder", "language": "en_GB", "status": "APPROVED", "category": "UTILITY",
            "structure": { "type": "TEXT", "body": { "text": "Hello {{1}}, a reminder of your appointment on {{2}}." } } }),
    ]
}

#[derive(Debug, Args)]
pub struct SandboxArgs {
    /// Port of the bridge (0 = any free port).
    #[arg(long, default_value_t = 8080)]
    port: u16,
    /// Port of the simulated Salesforce (0 = any).
    #[arg(long, default_value_t = 9101)]
    salesforce_port: u16,
    /// Port of the simulated Infobip (0 = any).
    #[arg(long, default_value_t = 9102)]
    infobip_port: u16,
    /// Start with no app: walk the setup wizard from its one-time link against the
    /// simulators' Salesforce Setup and Infobip portal pages.
    #[arg(long)]
    unconfigured: bool,
}

pub async fn run(args: SandboxArgs, mut settings: Settings) -> anyhow::Result<()> {
    let dir = std::env::temp_dir().join(format!("byoc-sandbox-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    settings.database.url = SecretString::from(format!("sqlite://{}", dir.join("sandbox.db").display()));
    settings.security.data_dir = dir.clone();
    settings.security.master_key = SecretString::from(String::new());
    settings.server.port = args.port;
    settings.server.public_base_url = String::new();
    settings.worker.enabled = true;
    settings.salesforce.subscribe = true;

    let sf = SalesforceSim::new(SalesforceConfig::default());
    sf.add_user(USERNAME, "Integration User", "System Administrator");
    sf.add_user(ADMIN, "Avery Admin", "System Administrator");
    sf.add_user(AGENT, "Alex Agent", "Agent");
    let sf_running = sf.start("127.0.0.1", args.salesforce_port)?;
    let cancel = CancellationToken::new();
    let pubsub = sf.start_pubsub("127.0.0.1", 0, cancel.clone()).await?;
    let ib = InfobipSim::new(InfobipConfig::default());
    ib.add_api_key(API_KEY, NEEDED_SCOPES);
    ib.add_sender(SENDER);
    for template in templates() {
        ib.add_template(SENDER, template);
    }
    let ib_running = ib.start("127.0.0.1", args.infobip_port)?;
    let sims = Sims { sf, ib, sf_url: sf_running.base_url.clone(), ib_url: ib_running.base_url.clone(), pubsub };

    let services = Services::open(&settings).await?;
    let provisioned = if args.unconfigured { None } else { Some(provision(&sims, &services).await?) };
    let app = Application::build_with(settings, services).await?;
    let bridge = app.base_url().to_owned();
    match provisioned {
        Some(provisioned) => connect(&sims, &bridge, provisioned),
        None => print_unconfigured(&sims, &bridge),
    }
    println!("  Service status:               {bridge}/status");
    println!("  Data (a temporary directory): {}", dir.display());
    println!("Stop with Ctrl-C.");
    let token = app.shutdown_token();
    tokio::spawn(async move {
        crate::startup::shutdown_signal().await;
        token.cancel();
    });
    let result = app.run_until_stopped().await;
    cancel.cancel();
    sf_running.stop().await;
    ib_running.stop().await;
    result
}

/// The bridge's Salesforce sign-in for `user` of the sandbox's org (the simulated org signs a
/// hinted user in at once; the real one would fill in the username).
fn sign_in_link(bridge: &str, user: &str) -> String {
    let user: String = url::form_urlencoded::byte_serialize(user.as_bytes()).collect();
    format!("{bridge}/setup/signin?app={APP}&login_hint={user}")
}

/// Both simulators and where they listen.
struct Sims {
    sf: SalesforceSim,
    ib: InfobipSim,
    sf_url: String,
    ib_url: String,
    pubsub: std::net::SocketAddr,
}

/// The sandbox's app, provisioned and active; returns the webhook secret Infobip signs with.
async fn provision(sims: &Sims, services: &Services) -> anyhow::Result<Provisioned> {
    // The connected app's key pair, made fresh: the simulated org trusts its public half.
    let keys = tokio::task::spawn_blocking(|| crate::salesforce::certificate::generate("byoc-sandbox")).await??;
    sims.sf.register_app(connected_app(&keys.certificate, Vec::new()));
    sims.sf.add_channel(CHANNEL, CONTEXT);
    let secret = crate::crypto::random_token()?;
    let cipher = services.cipher.clone();
    let (org_id, sf_url, ib_url, pubsub) =
        (sims.sf.org_id().to_owned(), sims.sf_url.clone(), sims.ib_url.clone(), sims.pubsub);
    let (private_pem, chosen) = (keys.private_key, SecretString::from(secret.clone()));
    services
        .db
        .write(move |c| {
            let ctx = Ctx { cipher: &cipher, actor: "sandbox" };
            let spec = AppSpec {
                org_id: Some(org_id.clone()),
                login_url: Some(sf_url.clone()),
                consumer_key: Some(CONSUMER_KEY.into()),
                integration_username: Some(USERNAME.into()),
                private_key: Some(private_pem.clone()),
                scrt_url: Some(sf_url.clone()),
                channel_address_identifier: Some(CHANNEL.into()),
                authorization_context: Some(CONTEXT.into()),
                platform_event: Some("WhatsApp_Event__e".into()),
                pubsub_endpoint: Some(format!("http://{pubsub}")),
                welcome_message: Some("Hang tight, an agent will join shortly.".into()),
                closing_message: Some("Thanks for chatting with us. Goodbye!".into()),
                ..AppSpec::default()
            };
            let mut app = prov::create_app(c, &ctx, APP, &spec).map_err(anyhow::Error::from)?;
            prov::set_webhook_secret(c, &ctx, &mut app, &chosen).map_err(anyhow::Error::from)?;
            prov::upsert_account(c, &ctx, &app, "main", Some(&ib_url), Some(&SecretString::from(API_KEY.to_owned())))
                .map_err(anyhow::Error::from)?;
            prov::add_sender(c, &ctx, &app, SENDER, "main").map_err(anyhow::Error::from)?;
            let active = AppSpec { status: Some("active".into()), ..AppSpec::default() };
            prov::update_app(c, &ctx, &mut app, &active).map_err(anyhow::Error::from)?;
            Ok(())
        })
        .await?;
    Ok(Provisioned { secret, certificate: keys.certificate })
}

/// What the configured sandbox hands the simulators once the bridge listens.
struct Provisioned {
    secret: String,
    certificate: String,
}

fn connected_app(certificate: &str, callback_urls: Vec<String>) -> ConnectedApp {
    ConnectedApp {
        consumer_key: CONSUMER_KEY.into(),
        certificate_pem: certificate.to_owned(),
        approved_users: vec![USERNAME.into(), ADMIN.into(), AGENT.into()],
        scopes: vec!["interaction_api".into(), "api".into(), "openid".into()],
        callback_urls,
    }
}

/// The configured sandbox: the org knows the bridge's callback URL and shows the panel on
/// the Messaging Session page; Infobip posts to the bridge, signed.
fn connect(sims: &Sims, bridge: &str, provisioned: Provisioned) {
    sims.sf.register_app(connected_app(&provisioned.certificate, vec![format!("{bridge}/setup/oauth/callback")]));
    // The Messaging Session page's component: the panel, the agent signed in through the org.
    sims.sf.set_console_panel(&format!("{}&next=%2Ftemplates%3Fid%3D{{id}}", sign_in_link(bridge, AGENT)));
    sims.ib.set_webhook(WebhookSender::new(
        &format!("{bridge}/api/infobip/inbound/messages"),
        WebhookAuth::Hmac {
            algorithm: HmacAlgorithm::HmacSha256,
            secret: provisioned.secret,
            header: "X-Infobip-Signature".into(),
            encoding: Encoding::Hex,
            prefix: false,
        },
    ));
    println!("Sandbox ready: the bridge between a simulated Infobip and a simulated Salesforce.");
    println!("  1. Write as a WhatsApp user:  {}/__sim/phone", sims.ib_url);
    println!("  2. Answer as the agent:       {}/__sim/agent", sims.sf_url);
    println!("     (the console shows the WhatsApp template panel beside the conversation)");
    println!("  3. Set up as the admin:       {}", sign_in_link(bridge, ADMIN));
}

/// The unconfigured sandbox: what the admin needs to walk the wizard, value by value.
fn print_unconfigured(sims: &Sims, bridge: &str) {
    let (sf, ib) = (&sims.sf_url, &sims.ib_url);
    println!("Sandbox ready with no app: set it up as an admin would, against the simulators.");
    println!("  1. Open the one-time setup link printed above (the bridge's wizard).");
    println!("  2. Salesforce Setup (connected app, channel): {sf}/__sim/setup");
    println!("  3. Infobip portal (subscription, secret):     {ib}/__sim/portal");
    println!("  Values for the wizard:");
    println!("    Org ID:                    {}", sims.sf.org_id());
    println!("    Type of org:               Production");
    println!("    My Domain URL:             {sf}");
    println!("    Integration user:          {USERNAME}");
    println!("    Pub/Sub API endpoint:      http://{} (step 1, Advanced)", sims.pubsub);
    println!("    SCRT URL:                  {sf}");
    println!("    Infobip base URL:          {ib}");
    println!("    Infobip API key:           {API_KEY}");
    println!("    Callback URL (Setup):      {bridge}/setup/oauth/callback");
    println!("    Template panel (Setup):    {bridge}/templates (the Messaging Session page)");
    println!("  Then write as a WhatsApp user: {ib}/__sim/phone; answer as the agent: {sf}/__sim/agent");
}
