//! The benchmark's world: both simulators in this process, a fresh database, one active app
//! with its senders, and the bridge binary serving on it in a process of its own.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use anyhow::{Context, bail};
use byoc_bridge::config::Settings;
use byoc_bridge::provisioning::{self as prov, AppSpec, Ctx};
use byoc_bridge::startup::Services;
use byoc_sim::infobip::{InfobipConfig, InfobipSim};
use byoc_sim::salesforce::{ConnectedApp, SalesforceConfig, SalesforceSim};
use byoc_sim::server::Running;
use diesel::{Connection, RunQueryDsl};
use secrecy::{ExposeSecret, SecretString};

const CONSUMER_KEY: &str = "3MVG9-bench";
const USERNAME: &str = "integration@bench.example";
const CHANNEL: &str = "5d1f6b6e-0b8e-4a49-9a55-7d6a2f1c0b01";
const CONTEXT: &str = "Bench_WhatsApp";
const API_KEY: &str = "bench-infobip-key";
pub const APP: &str = "bench";

/// Which database the bridge runs on.
#[derive(Debug, Clone)]
pub enum Backend {
    Sqlite,
    /// A server URL of an account that may create databases; the benchmark makes its own.
    Postgres(String),
}

pub struct WorldOptions {
    pub backend: Backend,
    pub senders: usize,
    pub sends_per_second_per_sender: u32,
    pub bridge: PathBuf,
    /// Extra `BYOC__…` settings for the bridge.
    pub bridge_env: Vec<(String, String)>,
}

pub struct World {
    pub sf: SalesforceSim,
    pub ib: InfobipSim,
    pub senders: Vec<String>,
    pub webhook_secret: String,
    pub database_url: String,
    pub master_key: String,
    pub dir: tempfile::TempDir,
    _sf_running: Running,
    _ib_running: Running,
    _pubsub: tokio_util::sync::DropGuard,
    postgres: Option<(String, String)>,
}

impl World {
    pub async fn build(options: &WorldOptions) -> anyhow::Result<Self> {
        let dir = tempfile::tempdir().context("creating the benchmark's directory")?;
        // The connected app's key pair, made the way the setup wizard makes it.
        let keys =
            tokio::task::spawn_blocking(|| byoc_bridge::salesforce::certificate::generate("byoc-bench")).await??;
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
        sf.add_user("agent@bench.example", "Alex Agent", "Agent");
        sf.add_channel(CHANNEL, CONTEXT);
        let sf_running = sf.start("127.0.0.1", 0)?;
        let cancel = tokio_util::sync::CancellationToken::new();
        let pubsub = sf.start_pubsub("127.0.0.1", 0, cancel.clone()).await?;
        let limit = usize::try_from(options.sends_per_second_per_sender).unwrap_or(usize::MAX);
        let ib = InfobipSim::new(InfobipConfig { sends_per_second_per_sender: limit, ..InfobipConfig::default() });
        ib.add_api_key(API_KEY, byoc_bridge::infobip::account::NEEDED_SCOPES);
        let senders: Vec<String> = (0..options.senders).map(|i| format!("4478600{:05}", 10_000 + i)).collect();
        for sender in &senders {
            ib.add_sender(sender);
        }
        let ib_running = ib.start("127.0.0.1", 0)?;

        let (database_url, postgres) = match &options.backend {
            Backend::Sqlite => (format!("sqlite://{}", dir.path().join("bench.db").display()), None),
            Backend::Postgres(admin) => {
                let name = format!("byoc_bench_{}", uuid::Uuid::new_v4().simple());
                let mut conn = diesel::PgConnection::establish(admin).context("connecting to PostgreSQL")?;
                diesel::sql_query(format!("CREATE DATABASE {name}")).execute(&mut conn)?;
                (database_url_for(admin, &name)?, Some((admin.clone(), name)))
            }
        };
        let master_key = byoc_bridge::crypto::MasterKey::generate()?.to_base64().expose_secret().to_owned();
        let settings = Settings::load_from(&[
            ("BYOC__DATABASE__URL".to_owned(), database_url.clone()),
            ("BYOC__SECURITY__MASTER_KEY".to_owned(), master_key.clone()),
            ("BYOC__SECURITY__DATA_DIR".to_owned(), dir.path().join("setup").display().to_string()),
        ])?;
        let services = Services::open(&settings).await?;
        let cipher = services.cipher.clone();
        let (org_id, sf_url, ib_url) =
            (sf.org_id().to_owned(), sf_running.base_url.clone(), ib_running.base_url.clone());
        let app_senders = senders.clone();
        let webhook_secret = services
            .db
            .write(move |c| {
                let ctx = Ctx { cipher: &cipher, actor: "bench" };
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
                    ..AppSpec::default()
                };
                let mut app = prov::create_app(c, &ctx, APP, &spec).map_err(anyhow::Error::from)?;
                let key = SecretString::from(API_KEY.to_owned());
                prov::upsert_account(c, &ctx, &app, "main", Some(&ib_url), Some(&key)).map_err(anyhow::Error::from)?;
                for sender in &app_senders {
                    prov::add_sender(c, &ctx, &app, sender, "main").map_err(anyhow::Error::from)?;
                }
                let active = AppSpec { status: Some("active".into()), ..AppSpec::default() };
                prov::update_app(c, &ctx, &mut app, &active).map_err(anyhow::Error::from)?;
                Ok(prov::webhook_secret(&ctx, &app).map_err(anyhow::Error::from)?.expose_secret().to_owned())
            })
            .await?;
        Ok(Self {
            sf,
            ib,
            senders,
            webhook_secret,
            database_url,
            master_key,
            dir,
            _sf_running: sf_running,
            _ib_running: ib_running,
            _pubsub: cancel.drop_guard(),
            postgres,
        })
    }

    /// The bridge's settings for this world, as environment variables.
    fn bridge_env(&self, options: &WorldOptions) -> Vec<(String, String)> {
        let mut env = vec![
            ("BYOC__DATABASE__URL".to_owned(), self.database_url.clone()),
            ("BYOC__SECURITY__MASTER_KEY".to_owned(), self.master_key.clone()),
            ("BYOC__SECURITY__DATA_DIR".to_owned(), self.dir.path().join("bridge").display().to_string()),
            ("BYOC__SERVER__PORT".to_owned(), "0".to_owned()),
            ("BYOC__WORKER__ENABLED".to_owned(), "true".to_owned()),
            ("BYOC__SALESFORCE__SUBSCRIBE".to_owned(), "true".to_owned()),
            ("BYOC__TELEMETRY__LOG_FORMAT".to_owned(), "json".to_owned()),
            ("BYOC__TELEMETRY__LOG_FILTER".to_owned(), "warn,byoc_bridge::startup=info".to_owned()),
            ("BYOC__INFOBIP__SENDS_PER_SECOND_PER_SENDER".to_owned(), options.sends_per_second_per_sender.to_string()),
        ];
        env.extend(options.bridge_env.iter().cloned());
        env
    }

    /// Starts the bridge binary; returns once it is listening.
    pub fn start_bridge(&self, options: &WorldOptions) -> anyhow::Result<Bridge> {
        let mut child = Command::new(&options.bridge)
            .arg("serve")
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .envs(self.bridge_env(options))
            .current_dir(self.dir.path())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .with_context(|| format!("starting {}", options.bridge.display()))?;
        let stderr = child.stderr.take().context("the bridge's standard error")?;
        let (port_tx, port_rx) = std::sync::mpsc::channel();
        // Reads the log to the end (a full pipe would stall the bridge); shows its warnings.
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                match serde_json::from_str::<serde_json::Value>(&line) {
                    Ok(v) if v["port"].is_u64() => {
                        let _ = port_tx.send(v["port"].as_u64().unwrap_or_default());
                    }
                    Ok(v) if v["level"] == "INFO" => {}
                    _ => eprintln!("bridge: {line}"),
                }
            }
        });
        let port = port_rx.recv_timeout(Duration::from_secs(30)).context("the bridge did not start listening")?;
        Ok(Bridge { child, url: format!("http://127.0.0.1:{port}") })
    }
}

impl Drop for World {
    fn drop(&mut self) {
        if let Some((admin, name)) = &self.postgres
            && let Ok(mut conn) = diesel::PgConnection::establish(admin)
        {
            let _ = diesel::sql_query(format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)")).execute(&mut conn);
        }
    }
}

/// The bridge process.
pub struct Bridge {
    pub child: Child,
    pub url: String,
}

impl Bridge {
    pub fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for Bridge {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `admin` with its database name replaced by `name`.
fn database_url_for(admin: &str, name: &str) -> anyhow::Result<String> {
    let mut url = reqwest::Url::parse(admin).context("--postgres is not a URL")?;
    url.set_path(&format!("/{name}"));
    Ok(url.to_string())
}

/// The bridge binary next to this one (both are built by `cargo build --release --bins`).
pub fn default_bridge() -> anyhow::Result<PathBuf> {
    let me = std::env::current_exe().context("finding this program")?;
    let bridge = me.with_file_name("byoc-bridge");
    if !Path::new(&bridge).is_file() {
        bail!("{} is missing: build it with `cargo build --release --bins` or pass --bridge", bridge.display());
    }
    Ok(bridge)
}
