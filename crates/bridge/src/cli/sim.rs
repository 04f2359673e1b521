//! `byoc-bridge sim salesforce|infobip`: the simulators as their own processes, for trying
//! the bridge by hand or pointing other tools at them.

use std::path::PathBuf;

use anyhow::Context;
use clap::{Args, Subcommand};

use byoc_sim::infobip::{InfobipConfig, InfobipSim};

use crate::infobip::account::NEEDED_SCOPES;
use byoc_sim::salesforce::{ConnectedApp, SalesforceConfig, SalesforceSim};

#[derive(Debug, Subcommand)]
pub enum SimCommand {
    /// A Salesforce org: OAuth (JWT bearer, web-server sign-in), Interaction Service API,
    /// REST/Tooling for setup objects.
    Salesforce(SalesforceArgs),
    /// An Infobip account: WhatsApp sends, templates, numbers, balance, Conversations, media.
    Infobip(InfobipArgs),
}

#[derive(Debug, Args)]
pub struct SalesforceArgs {
    #[arg(long, default_value = "127.0.0.1")]
    host: String,
    #[arg(long, default_value_t = 9101)]
    port: u16,
    /// The org's 15-character id.
    #[arg(long, default_value = "00D5g00000SimOr")]
    org_id: String,
    /// Consumer key of the connected app the bridge signs in with.
    #[arg(long, default_value = "3MVG9-sandbox-consumer-key")]
    consumer_key: String,
    /// PEM certificate (or public key) of the connected app; JWTs must be signed by its key.
    #[arg(long)]
    certificate: PathBuf,
    /// The integration user (pre-authorised for the app).
    #[arg(long, default_value = "integration@sandbox.example")]
    username: String,
    /// Messaging channel as ADDRESS_IDENTIFIER:CHANNEL_DEFINITION (repeatable).
    #[arg(long = "channel", default_value = "7c0c7f4e-1b1a-4c3f-9a7e-2f4b7a1d5e6f:Bridge_WhatsApp")]
    channels: Vec<String>,
    /// Callback URL allowed for page sign-in (repeatable).
    #[arg(long = "callback-url")]
    callback_urls: Vec<String>,
    /// Access-token lifetime in seconds.
    #[arg(long, default_value_t = 7200)]
    token_ttl_secs: u64,
    /// Port of the Pub/Sub API (gRPC, plaintext).
    #[arg(long, default_value_t = 9103)]
    pubsub_port: u16,
    /// The custom platform event carrying conversation entries.
    #[arg(long, default_value = "WhatsApp_Event__e")]
    platform_event: String,
}

#[derive(Debug, Args)]
pub struct InfobipArgs {
    #[arg(long, default_value = "127.0.0.1")]
    host: String,
    #[arg(long, default_value_t = 9102)]
    port: u16,
    /// API key accepted with every scope the bridge needs.
    #[arg(long, default_value = "sandbox-infobip-key")]
    api_key: String,
    /// WhatsApp sender numbers of the account (repeatable).
    #[arg(long = "sender", default_value = "447860099299")]
    senders: Vec<String>,
    /// Sends per second per sender before 429.
    #[arg(long, default_value_t = 80)]
    rate_limit: usize,
}

pub async fn run(cmd: SimCommand) -> anyhow::Result<()> {
    let running = match cmd {
        SimCommand::Salesforce(a) => {
            let certificate = std::fs::read_to_string(&a.certificate)
                .with_context(|| format!("reading {}", a.certificate.display()))?;
            let sim = SalesforceSim::new(SalesforceConfig {
                org_id: a.org_id.clone(),
                token_ttl: std::time::Duration::from_secs(a.token_ttl_secs),
                platform_event: a.platform_event.clone(),
                ..SalesforceConfig::default()
            });
            sim.register_app(ConnectedApp {
                consumer_key: a.consumer_key.clone(),
                certificate_pem: certificate,
                approved_users: vec![a.username.clone()],
                scopes: vec!["interaction_api".into(), "api".into(), "refresh_token".into()],
                callback_urls: a.callback_urls.clone(),
            });
            sim.add_user(&a.username, "Integration User", "System Administrator");
            sim.add_user("admin@sandbox.example", "Avery Admin", "System Administrator");
            sim.add_user("agent@sandbox.example", "Alex Agent", "Agent");
            for channel in &a.channels {
                let (address, definition) =
                    channel.split_once(':').context("--channel takes ADDRESS_IDENTIFIER:CHANNEL_DEFINITION")?;
                sim.add_channel(address, definition);
            }
            let running = sim.start(&a.host, a.port)?;
            println!(
                "Salesforce simulator on {} (org {}, consumer key {}, user {})",
                running.base_url, a.org_id, a.consumer_key, a.username
            );
            println!("  login URL, instance URL and SCRT URL: {}", running.base_url);
            println!("  state: {}/__sim/state", running.base_url);
            running
        }
        SimCommand::Infobip(a) => {
            let sim = InfobipSim::new(InfobipConfig {
                sends_per_second_per_sender: a.rate_limit,
                ..InfobipConfig::default()
            });
            sim.add_api_key(&a.api_key, NEEDED_SCOPES);
            for sender in &a.senders {
                sim.add_sender(sender);
            }
            let running = sim.start(&a.host, a.port)?;
            println!(
                "Infobip simulator on {} (API key {}, senders {})",
                running.base_url,
                a.api_key,
                a.senders.join(", ")
            );
            println!("  state: {}/__sim/state", running.base_url);
            running
        }
    };
    tokio::select! {
        result = running.wait() => result.context("simulator server")?,
        () = crate::startup::shutdown_signal() => {}
    }
    Ok(())
}
