//! `byoc-bridge sim salesforce|infobip`: the simulators as their own processes, for trying
//! the bridge by hand or pointing other tools at them. Everything a test does in-process is
//! reachable from outside: faults from flags or `/__sim/faults`, stream breaks and token
//! expiry from `/__sim/pubsub/break` and `/__sim/tokens/expire`, webhooks from
//! `/__sim/webhooks/…` (see `byoc_sim::control`).

use std::path::PathBuf;

use anyhow::Context;
use clap::{Args, Subcommand};
use tokio_util::sync::CancellationToken;

use byoc_sim::faults::{Fault, FaultRates, Faults};
use byoc_sim::infobip::webhooks::{Encoding, HmacAlgorithm, WebhookAuth, WebhookSender};
use byoc_sim::infobip::{InfobipConfig, InfobipSim};
use byoc_sim::salesforce::{ConnectedApp, SalesforceConfig, SalesforceSim};
use byoc_sim::server::TlsIdentity;

use crate::infobip::account::NEEDED_SCOPES;

#[derive(Debug, Subcommand)]
pub enum SimCommand {
    /// A Salesforce org: OAuth (JWT bearer, web-server sign-in), Interaction Service API,
    /// REST/Tooling for setup objects, and the Pub/Sub API.
    Salesforce(Box<SalesforceArgs>),
    /// An Infobip account: WhatsApp sends, templates, numbers, balance, Conversations, media,
    /// and webhooks to the bridge.
    Infobip(Box<InfobipArgs>),
}

/// Fault injection on the HTTP API, from the start (change it later with `/__sim/faults`).
#[derive(Debug, Args)]
pub struct FaultArgs {
    /// PATH=FAULT: the next request under PATH gets FAULT, one of server_error,
    /// throttle[:SECS], slow:MILLIS, drop (repeatable; repeats queue in order).
    #[arg(long = "fault", value_name = "PATH=FAULT")]
    faults: Vec<String>,
    /// KIND=RATE: random faults at this rate between 0 and 1, KIND one of server_error,
    /// throttle, slow, drop (repeatable).
    #[arg(long = "fault-rate", value_name = "KIND=RATE")]
    rates: Vec<String>,
    /// Seed of the random faults, so a run can be repeated.
    #[arg(long, default_value_t = 1)]
    fault_seed: u64,
    /// Random faults only for paths starting with this.
    #[arg(long, default_value = "")]
    fault_path: String,
}

impl FaultArgs {
    fn apply(&self, faults: &Faults) -> anyhow::Result<()> {
        for spec in &self.faults {
            let (path, fault) = spec.split_once('=').context("--fault takes PATH=FAULT")?;
            let fault: Fault = fault.parse().map_err(anyhow::Error::msg).with_context(|| format!("--fault {spec}"))?;
            faults.script(path, fault);
        }
        if !self.rates.is_empty() {
            let mut rates = FaultRates { path_prefix: self.fault_path.clone(), ..FaultRates::default() };
            rates.retry_after_secs = 1;
            rates.slow_by = std::time::Duration::from_secs(2);
            for spec in &self.rates {
                rates.set(spec).map_err(anyhow::Error::msg).with_context(|| format!("--fault-rate {spec}"))?;
            }
            faults.set_rates(rates, self.fault_seed);
        }
        Ok(())
    }
}

/// HTTPS (and, for Salesforce, TLS on the Pub/Sub API), as the real services speak.
#[derive(Debug, Args)]
pub struct TlsArgs {
    /// PEM certificate chain; with --tls-key, the simulator speaks TLS only.
    #[arg(long, requires = "tls_key")]
    tls_cert: Option<PathBuf>,
    /// PEM private key of --tls-cert.
    #[arg(long, requires = "tls_cert")]
    tls_key: Option<PathBuf>,
}

impl TlsArgs {
    fn identity(&self) -> anyhow::Result<Option<TlsIdentity>> {
        let (Some(cert), Some(key)) = (&self.tls_cert, &self.tls_key) else { return Ok(None) };
        let read = |p: &PathBuf| std::fs::read(p).with_context(|| format!("reading {}", p.display()));
        Ok(Some(TlsIdentity { cert_pem: read(cert)?, key_pem: read(key)? }))
    }
}

#[derive(Debug, Args)]
pub struct SalesforceArgs {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1")]
    host: String,
    /// Port to listen on (0 = any free port).
    #[arg(long, default_value_t = 9101)]
    port: u16,
    /// The org's 15-character id.
    #[arg(long, default_value = "00D5g00000SimOr")]
    org_id: String,
    /// The org is a sandbox: JWTs must name https://test.salesforce.com as audience
    /// (else https://login.salesforce.com).
    #[arg(long)]
    sandbox: bool,
    /// Consumer key of the connected app the bridge signs in with.
    #[arg(long, default_value = "3MVG9-sandbox-consumer-key")]
    consumer_key: String,
    /// PEM certificate (or public key) of a connected app registered at start; JWTs must be
    /// signed by its key. Without it, create the connected app on the Setup page.
    #[arg(long)]
    certificate: Option<PathBuf>,
    /// The integration user (pre-authorised for the app).
    #[arg(long, default_value = "integration@sandbox.example")]
    username: String,
    /// Messaging channel as ADDRESS_IDENTIFIER:CHANNEL_DEFINITION (repeatable). With
    /// --certificate and no channel, 7c0c7f4e-1b1a-4c3f-9a7e-2f4b7a1d5e6f:Bridge_WhatsApp.
    #[arg(long = "channel")]
    channels: Vec<String>,
    /// Callback URL allowed for page sign-in (repeatable).
    #[arg(long = "callback-url")]
    callback_urls: Vec<String>,
    /// Access-token lifetime in seconds.
    #[arg(long, default_value_t = 7200)]
    token_ttl_secs: u64,
    /// Port of the Pub/Sub API (gRPC, over TLS with --tls-cert).
    #[arg(long, default_value_t = 9103)]
    pubsub_port: u16,
    #[command(flatten)]
    tls: TlsArgs,
    /// How long events are kept for replay (Salesforce: 72 hours).
    #[arg(long, default_value_t = 72 * 3600)]
    retention_secs: u64,
    /// Keep-alive interval of idle streams (Salesforce: within 270 s).
    #[arg(long, default_value_t = 270)]
    keepalive_secs: u64,
    /// The custom platform event carrying conversation entries.
    #[arg(long, default_value = "WhatsApp_Event__e")]
    platform_event: String,
    #[command(flatten)]
    faults: FaultArgs,
}

#[derive(Debug, Args)]
pub struct InfobipArgs {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1")]
    host: String,
    /// Port to listen on (0 = any free port).
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
    /// Where inbound messages are posted: the bridge's inbound messages webhook.
    #[arg(long)]
    webhook_url: Option<String>,
    /// Where delivery and seen reports are posted: the bridge's reports webhook.
    #[arg(long)]
    report_webhook_url: Option<String>,
    /// Where notifications (identity changes) are posted: the bridge's notifications webhook.
    #[arg(long)]
    notification_webhook_url: Option<String>,
    /// The webhook signing secret (HMAC); without it and --webhook-basic, posts are unsigned.
    #[arg(long, env = "BYOC_SIM_WEBHOOK_SECRET", hide_env_values = true)]
    webhook_secret: Option<String>,
    /// HMAC algorithm: sha1, sha224, sha256, sha384 or sha512.
    #[arg(long, default_value = "sha256")]
    webhook_algorithm: String,
    /// The header carrying the signature.
    #[arg(long, default_value = "X-Infobip-Signature")]
    webhook_header: String,
    /// How the signature is written: hex or base64.
    #[arg(long, default_value = "hex")]
    webhook_encoding: String,
    /// USER:PASSWORD for basic authentication instead of a signature.
    #[arg(long, env = "BYOC_SIM_WEBHOOK_BASIC", hide_env_values = true, conflicts_with = "webhook_secret")]
    webhook_basic: Option<String>,
    #[command(flatten)]
    tls: TlsArgs,
    #[command(flatten)]
    faults: FaultArgs,
}

impl InfobipArgs {
    fn webhook_auth(&self) -> anyhow::Result<WebhookAuth> {
        if let Some(basic) = &self.webhook_basic {
            let (username, password) = basic.split_once(':').context("--webhook-basic takes USER:PASSWORD")?;
            return Ok(WebhookAuth::Basic { username: username.into(), password: password.into() });
        }
        let Some(secret) = &self.webhook_secret else { return Ok(WebhookAuth::None) };
        let algorithm = match self.webhook_algorithm.as_str() {
            "sha1" => HmacAlgorithm::HmacSha1,
            "sha224" => HmacAlgorithm::HmacSha224,
            "sha256" => HmacAlgorithm::HmacSha256,
            "sha384" => HmacAlgorithm::HmacSha384,
            "sha512" => HmacAlgorithm::HmacSha512,
            other => anyhow::bail!("--webhook-algorithm {other}: use sha1, sha224, sha256, sha384 or sha512"),
        };
        let encoding = match self.webhook_encoding.as_str() {
            "hex" => Encoding::Hex,
            "base64" => Encoding::Base64,
            other => anyhow::bail!("--webhook-encoding {other}: use hex or base64"),
        };
        Ok(WebhookAuth::Hmac {
            algorithm,
            secret: secret.clone(),
            header: self.webhook_header.clone(),
            encoding,
            prefix: false,
        })
    }
}

pub async fn run(cmd: SimCommand) -> anyhow::Result<()> {
    let cancel = CancellationToken::new();
    let running = match cmd {
        SimCommand::Salesforce(a) => salesforce(*a, cancel.clone()).await?,
        SimCommand::Infobip(a) => infobip(*a)?,
    };
    tokio::select! {
        result = running.wait() => result.context("simulator server")?,
        () = crate::startup::shutdown_signal() => {}
    }
    cancel.cancel();
    Ok(())
}

async fn salesforce(a: SalesforceArgs, cancel: CancellationToken) -> anyhow::Result<byoc_sim::server::Running> {
    let certificate = match &a.certificate {
        Some(path) => Some(std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?),
        None => None,
    };
    let sim = SalesforceSim::new(SalesforceConfig {
        org_id: a.org_id.clone(),
        sandbox: a.sandbox,
        token_ttl: std::time::Duration::from_secs(a.token_ttl_secs),
        platform_event: a.platform_event.clone(),
        pubsub: byoc_sim::pubsub::PubSubSimConfig {
            retention: std::time::Duration::from_secs(a.retention_secs),
            keepalive_interval: std::time::Duration::from_secs(a.keepalive_secs.max(1)),
            ..Default::default()
        },
        ..SalesforceConfig::default()
    });
    a.faults.apply(&sim.faults)?;
    if let Some(certificate) = certificate {
        sim.register_app(ConnectedApp {
            consumer_key: a.consumer_key.clone(),
            certificate_pem: certificate,
            approved_users: vec![a.username.clone()],
            scopes: vec!["interaction_api".into(), "api".into(), "refresh_token".into()],
            callback_urls: a.callback_urls.clone(),
        });
    }
    sim.add_user(&a.username, "Integration User", "System Administrator");
    sim.add_user("admin@sandbox.example", "Avery Admin", "System Administrator");
    sim.add_user("agent@sandbox.example", "Alex Agent", "Agent");
    let default_channel = ["7c0c7f4e-1b1a-4c3f-9a7e-2f4b7a1d5e6f:Bridge_WhatsApp".to_owned()];
    let channels = if a.channels.is_empty() && a.certificate.is_some() { &default_channel[..] } else { &a.channels };
    for channel in channels {
        let (address, definition) =
            channel.split_once(':').context("--channel takes ADDRESS_IDENTIFIER:CHANNEL_DEFINITION")?;
        sim.add_channel(address, definition);
    }
    let tls = a.tls.identity()?;
    let running = match &tls {
        Some(tls) => sim.start_tls(&a.host, a.port, tls)?,
        None => sim.start(&a.host, a.port)?,
    };
    let pubsub = start_pubsub(&sim, &a, tls, cancel).await?;
    sim.set_pubsub_url(&pubsub);
    let url = &running.base_url;
    println!("Salesforce simulator on {url}");
    println!("  Setup (connected app, messaging channel): {url}/__sim/setup");
    println!("  Values for the bridge's setup:");
    println!("    Org ID:               {}", a.org_id);
    println!("    Type of org:          {}", if a.sandbox { "Sandbox" } else { "Production" });
    println!("    My Domain URL:        {url} (also the instance and SCRT URL)");
    println!("    Integration user:     {}", a.username);
    println!("    Pub/Sub API endpoint: {pubsub}");
    match &a.certificate {
        Some(_) => println!("    Consumer key:         {}", a.consumer_key),
        None => println!("    Consumer key:         made on the Setup page, from the bridge's certificate"),
    }
    println!("  agent console: {}/__sim/agent", running.base_url);
    println!("  state: {}/__sim/state; faults: {}/__sim/faults", running.base_url, running.base_url);
    Ok(running)
}

/// Serves the org's Pub/Sub API, over TLS when a certificate is given; returns its URL.
async fn start_pubsub(
    sim: &SalesforceSim,
    a: &SalesforceArgs,
    tls: Option<TlsIdentity>,
    cancel: CancellationToken,
) -> anyhow::Result<String> {
    let listener = tokio::net::TcpListener::bind((a.host.as_str(), a.pubsub_port))
        .await
        .with_context(|| format!("binding the Pub/Sub port {}:{}", a.host, a.pubsub_port))?;
    let port = listener.local_addr()?.port();
    let pubsub = sim.pubsub.clone();
    let scheme = if tls.is_some() { "https" } else { "http" };
    tokio::spawn(async move {
        let served = match tls {
            Some(tls) => pubsub.serve_tls(listener, cancel, &tls.cert_pem, &tls.key_pem).await,
            None => pubsub.serve(listener, cancel).await,
        };
        if let Err(e) = served {
            tracing::error!(error = %e, "the simulated Pub/Sub API stopped");
        }
    });
    Ok(format!("{scheme}://{}:{port}", a.host))
}

fn infobip(a: InfobipArgs) -> anyhow::Result<byoc_sim::server::Running> {
    let sim = InfobipSim::new(InfobipConfig { sends_per_second_per_sender: a.rate_limit, ..InfobipConfig::default() });
    a.faults.apply(&sim.faults)?;
    sim.add_api_key(&a.api_key, NEEDED_SCOPES);
    for sender in &a.senders {
        sim.add_sender(sender);
    }
    let auth = a.webhook_auth()?;
    if let Some(url) = &a.webhook_url {
        sim.set_webhook(WebhookSender::new(url, auth.clone()));
    }
    if let Some(url) = &a.report_webhook_url {
        sim.set_report_webhook(WebhookSender::new(url, auth.clone()));
    }
    if let Some(url) = &a.notification_webhook_url {
        sim.set_notification_webhook(WebhookSender::new(url, auth));
    }
    let running = match a.tls.identity()? {
        Some(tls) => sim.start_tls(&a.host, a.port, &tls)?,
        None => sim.start(&a.host, a.port)?,
    };
    println!("Infobip simulator on {}", running.base_url);
    println!("  Portal (subscription to the bridge's webhooks): {}/__sim/portal", running.base_url);
    println!("  Values for the bridge's setup:");
    println!("    Base URL: {}", running.base_url);
    println!("    API key:  {}", a.api_key);
    println!("    Senders:  {}", a.senders.join(", "));
    println!("  WhatsApp phone: {}/__sim/phone", running.base_url);
    println!("  state: {}/__sim/state; faults: {}/__sim/faults", running.base_url, running.base_url);
    Ok(running)
}
