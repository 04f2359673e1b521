//! `byoc-bridge sandbox`: the bridge on a fresh SQLite database between both simulators,
//! with one app provisioned, so a newcomer sees messages cross both ways in a minute.

use anyhow::Context;
use clap::Args;
use secrecy::{ExposeSecret, SecretString};
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

    // The connected app's key pair, made fresh: the simulated org trusts its public half.
    let keys = tokio::task::spawn_blocking(|| crate::salesforce::certificate::generate("byoc-sandbox")).await??;
    let (private_pem, public_pem) = (keys.private_key, keys.certificate);
    let sf = SalesforceSim::new(SalesforceConfig::default());
    sf.register_app(ConnectedApp {
        consumer_key: CONSUMER_KEY.into(),
        certificate_pem: public_pem,
        approved_users: vec![USERNAME.into()],
        scopes: vec!["interaction_api".into(), "api".into()],
        callback_urls: vec![],
    });
    sf.add_user(USERNAME, "Integration User", "System Administrator");
    sf.add_user("agent@sandbox.example", "Alex Agent", "Agent");
    sf.add_channel(CHANNEL, CONTEXT);
    let sf_running = sf.start("127.0.0.1", args.salesforce_port)?;
    let cancel = CancellationToken::new();
    let pubsub = sf.start_pubsub("127.0.0.1", 0, cancel.clone()).await?;
    let ib = InfobipSim::new(InfobipConfig::default());
    ib.add_api_key(API_KEY, NEEDED_SCOPES);
    ib.add_sender(SENDER);
    let ib_running = ib.start("127.0.0.1", args.infobip_port)?;

    let services = Services::open(&settings).await?;
    let cipher = services.cipher.clone();
    let (org_id, sf_url, ib_url) = (sf.org_id().to_owned(), sf_running.base_url.clone(), ib_running.base_url.clone());
    let secret = services
        .db
        .write(move |c| {
            let ctx = Ctx { cipher: &cipher, actor: "sandbox" };
            let spec = AppSpec {
                org_id: Some(org_id),
                login_url: Some(sf_url.clone()),
                consumer_key: Some(CONSUMER_KEY.into()),
                integration_username: Some(USERNAME.into()),
                private_key: Some(private_pem),
                scrt_url: Some(sf_url),
                channel_address_identifier: Some(CHANNEL.into()),
                authorization_context: Some(CONTEXT.into()),
                platform_event: Some("WhatsApp_Event__e".into()),
                pubsub_endpoint: Some(format!("http://{pubsub}")),
                welcome_message: Some("Hang tight, an agent will join shortly.".into()),
                closing_message: Some("Thanks for chatting with us. Goodbye!".into()),
                ..AppSpec::default()
            };
            let mut app = prov::create_app(c, &ctx, "sandbox", &spec).map_err(anyhow::Error::from)?;
            prov::upsert_account(c, &ctx, &app, "main", Some(&ib_url), Some(&SecretString::from(API_KEY.to_owned())))
                .map_err(anyhow::Error::from)?;
            prov::add_sender(c, &ctx, &app, SENDER, "main").map_err(anyhow::Error::from)?;
            let active = AppSpec { status: Some("active".into()), ..AppSpec::default() };
            prov::update_app(c, &ctx, &mut app, &active).map_err(anyhow::Error::from)?;
            Ok(prov::webhook_secret(&ctx, &app).map_err(anyhow::Error::from)?.expose_secret().to_owned())
        })
        .await?;

    let app = Application::build_with(settings, services).await?;
    ib.set_webhook(WebhookSender::new(
        &format!("{}/api/infobip/inbound/messages", app.base_url()),
        WebhookAuth::Hmac {
            algorithm: HmacAlgorithm::HmacSha256,
            secret,
            header: "X-Infobip-Signature".into(),
            encoding: Encoding::Hex,
            prefix: false,
        },
    ));
    println!("Sandbox ready: the bridge between a simulated Infobip and a simulated Salesforce.");
    println!("  1. Write as a WhatsApp user:  {}/__sim/phone", ib_running.base_url);
    println!("  2. Answer as the agent:       {}/__sim/agent", sf_running.base_url);
    println!("  Bridge status:                {}/", app.base_url());
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
