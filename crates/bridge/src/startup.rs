//! Building and running the service: storage, HTTP server, background workers, and an
//! orderly stop on SIGTERM/SIGINT.

use std::net::TcpListener;
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix_web::dev::{Server, ServerHandle};
use actix_web::middleware::from_fn;
use actix_web::{App, HttpServer, web};
use anyhow::Context;
use secrecy::ExposeSecret;
use tokio_util::sync::CancellationToken;
use tracing_actix_web::TracingLogger;

use crate::config::Settings;
use crate::crypto::{Cipher, MasterKey};
use crate::db::{Db, migrations};
use crate::directory::Directory;
use crate::jobs::JobContext;
use crate::metrics::Metrics;
use crate::web::AppState;
use crate::worker::{Registry, Runner};

/// Storage and keys, shared by the server and the command-line tools.
pub struct Services {
    pub db: Db,
    pub cipher: Cipher,
}

impl Services {
    /// Opens the database (applying migrations when configured to) and loads the master key.
    pub async fn open(settings: &Settings) -> anyhow::Result<Self> {
        let key = if settings.security.master_key.expose_secret().is_empty() {
            let (key, created) = MasterKey::load_or_create(&settings.security.data_dir)?;
            if created {
                tracing::warn!(
                    path = %settings.security.data_dir.join(crate::crypto::KEY_FILE_NAME).display(),
                    "generated a new master key for encrypting stored secrets; back it up, or set security.master_key"
                );
            }
            key
        } else {
            MasterKey::from_base64(settings.security.master_key.expose_secret())?
        };
        let db = Db::new(settings)?;
        if settings.database.migrate_on_start {
            let applied = migrations::run_pending(&db).await.context("applying database migrations")?;
            if !applied.is_empty() {
                tracing::info!(backend = %db.backend(), migrations = ?applied, "applied database migrations");
            }
        }
        Ok(Self { cipher: Cipher::new(&key), db })
    }
}

pub struct Application {
    port: u16,
    base_url: String,
    server: Server,
    state: web::Data<AppState>,
    runner: Runner,
    subscriber: crate::outbound::subscriber::Subscriber,
    shutdown: CancellationToken,
    /// This process's name in leases, held until it stops.
    replica: crate::replica::Replica,
}

impl Application {
    /// Opens storage and binds the listener (port 0 picks a free port). Nothing runs until
    /// [`Application::run_until_stopped`].
    pub async fn build(settings: Settings) -> anyhow::Result<Self> {
        let services = Services::open(&settings).await?;
        Self::build_with(settings, services).await
    }

    /// Like `build`, with storage already opened.
    pub async fn build_with(settings: Settings, services: Services) -> anyhow::Result<Self> {
        let settings = Arc::new(settings);
        let metrics = Arc::new(Metrics::new());
        let address = format!("{}:{}", settings.server.host, settings.server.port);
        let listener = TcpListener::bind(&address).with_context(|| format!("binding {address}"))?;
        let port = listener.local_addr()?.port();
        let directory = Directory::new(services.db.clone(), services.cipher.clone());
        let replica = crate::replica::Replica::claim(&settings.security.data_dir);
        let wake = Arc::new(tokio::sync::Notify::new());
        let media = crate::media_links::MediaLinks::new(
            &settings.public_base_url(port),
            services.cipher.derive_key("media-links"),
        );
        let limiter = crate::infobip::rate::SenderLimiter::new(settings.infobip.sends_per_second_per_sender);
        let observed = metrics.clone();
        let counted = metrics.clone();
        let salesforce = crate::salesforce::Client::new(&settings.salesforce)?
            .with_token_observer(Arc::new(move |app, granted| observed.token_request(&app.app_name, granted)))
            .with_interaction_observer(Arc::new(move |app, took| counted.interaction_request(app, took)));
        let timed = metrics.clone();
        let infobip = crate::infobip::Client::new(Duration::from_millis(settings.infobip.request_timeout_ms))
            .context("building the Infobip HTTP client")?
            .with_call_observer(Arc::new(move |took| timed.vendor_request("infobip", took)));
        let jobs = JobContext {
            db: services.db.clone(),
            directory: directory.clone(),
            salesforce: salesforce.clone(),
            infobip: infobip.clone(),
            metrics: metrics.clone(),
            media: media.clone(),
            limiter: limiter.clone(),
            settings: settings.clone(),
            history_refused: Arc::default(),
        };
        let runner = Runner::new(services.db.clone(), registry(jobs), metrics.clone(), settings.worker.clone())
            .with_waker(wake.clone())
            .with_owner(format!("worker-{}", replica.id()));
        let subscriber = crate::outbound::subscriber::Subscriber {
            db: services.db.clone(),
            directory: directory.clone(),
            salesforce: salesforce.clone(),
            metrics: metrics.clone(),
            wake,
            owner: replica.id().to_owned(),
            lease: Duration::from_secs(settings.salesforce.subscription_lease_secs),
        };
        let state = web::Data::new(AppState {
            settings: settings.clone(),
            db: services.db.clone(),
            cipher: services.cipher,
            metrics: metrics.clone(),
            directory,
            media,
            base_url: settings.public_base_url(port),
            salesforce,
            templates: crate::infobip::catalog::TemplateCatalog::new(
                infobip.clone(),
                Duration::from_secs(settings.infobip.template_cache_secs),
            ),
            infobip,
            limiter,
            wake: runner.waker(),
            started_at: Instant::now(),
        });
        match crate::web::admin::signin::issue_bootstrap(&state.db, &state.base_url).await {
            Ok(Some(link)) => announce_setup_link(&link, settings.telemetry.log_format),
            Ok(None) => {}
            // Migrations not applied yet (readiness says so): no link this start.
            Err(e) => tracing::warn!(error = %e, "no setup link issued"),
        }
        let max_body = settings.server.max_body_bytes;
        let app_state = state.clone();
        let limits = web::Data::new(crate::web::guard::ClientLimits::new(
            settings.server.max_requests_per_client,
            Duration::from_secs(settings.server.body_read_secs),
        ));
        let workers = settings.http_workers();
        let mut server = HttpServer::new(move || {
            App::new()
                .wrap(from_fn(crate::web::guard::limit_clients))
                .app_data(limits.clone())
                .wrap(from_fn(crate::web::html_errors))
                .wrap(from_fn(crate::web::record_metrics))
                .wrap(TracingLogger::<crate::web::request_span::RequestSpan>::new())
                .app_data(app_state.clone())
                .app_data(web::PayloadConfig::new(max_body))
                .app_data(web::JsonConfig::default().limit(max_body))
                .configure(crate::web::configure)
        })
        .client_request_timeout(Duration::from_secs(settings.server.header_read_secs))
        .max_connections(crate::web::guard::max_connections_per_worker(workers))
        .listen(listener)?
        // Signals are ours to handle: the workers must stop too, not just the HTTP server.
        .disable_signals()
        .shutdown_timeout(settings.server.shutdown_timeout_secs);
        server = server.workers(workers);
        Ok(Self {
            port,
            base_url: settings.public_base_url(port),
            server: server.run(),
            state,
            runner,
            subscriber,
            shutdown: CancellationToken::new(),
            replica,
        })
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn base_url(&self) -> &str {
        &self.base_url
    }

    pub fn db(&self) -> &Db {
        &self.state.db
    }

    pub fn runner(&self) -> &Runner {
        &self.runner
    }

    /// The cached view of the active apps (a change made around the service shows after
    /// its refresh, or at once after `invalidate`).
    pub fn directory(&self) -> &Directory {
        &self.state.directory
    }

    /// The Pub/Sub subscriber (runs by itself when `salesforce.subscribe` is on).
    pub fn subscriber(&self) -> &crate::outbound::subscriber::Subscriber {
        &self.subscriber
    }

    /// Cancelling this token stops the service gracefully.
    pub fn shutdown_token(&self) -> CancellationToken {
        self.shutdown.clone()
    }

    /// Serves until the shutdown token is cancelled, then stops accepting connections, lets
    /// in-flight requests finish, and waits for workers to reach a safe point.
    pub async fn run_until_stopped(self) -> anyhow::Result<()> {
        let settings = self.state.settings.clone();
        let handle: ServerHandle = self.server.handle();
        let worker =
            settings.worker.enabled.then(|| tokio::spawn(self.runner.clone().run(self.shutdown.child_token())));
        let subscriptions = settings
            .salesforce
            .subscribe
            .then(|| tokio::spawn(self.subscriber.clone().run(self.shutdown.child_token())));
        let maintenance = tokio::spawn(crate::worker::maintenance::run(
            self.state.db.clone(),
            settings.retention.clone(),
            self.shutdown.child_token(),
        ));
        // Where this process talks to Salesforce on its own (the subscriptions run here).
        let limits = settings.salesforce.subscribe.then(|| {
            tokio::spawn(crate::worker::limits::run(
                self.state.directory.clone(),
                self.state.salesforce.clone(),
                self.state.metrics.clone(),
                Duration::from_secs(settings.salesforce.limits_check_secs),
                self.shutdown.child_token(),
            ))
        });
        tracing::info!(
            port = self.port,
            url = %self.base_url,
            backend = %self.state.db.backend(),
            replica = %self.replica.id(),
            "byoc-bridge listening on {}",
            self.base_url
        );
        let mut server = tokio::spawn(self.server);
        tokio::select! {
            result = &mut server => {
                // The server ended on its own: an error; stop the rest too.
                self.shutdown.cancel();
                result.context("HTTP server task")?.context("HTTP server")?;
            }
            () = self.shutdown.cancelled() => {
                tracing::info!("shutting down: finishing in-flight requests and jobs");
                handle.stop(true).await;
                server.await.context("HTTP server task")?.context("HTTP server")?;
            }
        }
        if let Some(subscriptions) = subscriptions
            && let Err(e) = subscriptions.await
        {
            tracing::warn!(error = %e, "subscriber ended abnormally");
        }
        if let Some(limits) = limits
            && let Err(e) = limits.await
        {
            tracing::warn!(error = %e, "limits watcher ended abnormally");
        }
        if let Err(e) = maintenance.await {
            tracing::warn!(error = %e, "maintenance task ended abnormally");
        }
        if let Some(worker) = worker {
            match tokio::time::timeout(settings.shutdown_timeout(), worker).await {
                Ok(joined) => joined.context("job worker task")?,
                Err(_) => tracing::warn!("job worker did not stop in time; its leased jobs will be retried"),
            }
        }
        tracing::info!("stopped");
        Ok(())
    }
}

/// Every job kind of the service.
fn registry(ctx: JobContext) -> Registry<JobContext> {
    Registry::new(ctx)
        .register::<crate::inbound::deliver::DeliverInbound>()
        .register::<crate::inbound::receipts::Acknowledge>()
        .register::<crate::inbound::receipts::ReportDeliveryFailure>()
        .register::<crate::handover::import::ImportHandover>()
        .register::<crate::proactive::start::StartProactive>()
        .register::<crate::outbound::relay::RelayOutbound>()
        .register::<crate::outbound::capabilities::RegisterCapabilities>()
        .register::<crate::inbound::consent::UpdateConsent>()
}

/// The machine's name, to make lease owners recognisable in the database.
/// Resolves when the process receives SIGTERM or SIGINT (Ctrl-C).
pub async fn shutdown_signal() {
    let ctrl_c = async {
        if let Err(e) = tokio::signal::ctrl_c().await {
            tracing::error!(error = %e, "cannot listen for Ctrl-C");
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(e) => {
                tracing::error!(error = %e, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => tracing::info!("received SIGINT"),
        () = terminate => tracing::info!("received SIGTERM"),
    }
}

/// Shows the one-time setup link on standard output: a line for people, or with JSON logs one
/// JSON event (`"event": "setup_link"`) a collector can pick out. It never goes through the
/// logging pipeline, which holds no secrets: the link signs its first visitor in as an admin.
fn announce_setup_link(link: &str, format: crate::config::LogFormat) {
    let message = "Open this one-time link to set up byoc-bridge (valid 24 hours)";
    match format {
        crate::config::LogFormat::Text => println!("{message}: {link}"),
        crate::config::LogFormat::Json => println!(
            "{}",
            serde_json::json!({
                "timestamp": chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Micros, true),
                "level": "INFO",
                "event": "setup_link",
                "message": message,
                "url": link,
                "valid_hours": 24,
            })
        ),
    }
    tracing::info!("a one-time setup link was issued; it is on standard output");
}
