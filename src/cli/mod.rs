//! Command line: `serve` (default), `migrate`, `check-config`, `app …`, `jobs …`.

mod app;
mod jobs;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

use crate::config::{ConfigError, Settings};
use crate::startup::{Application, Services};

#[derive(Debug, Parser)]
#[command(name = "byoc-bridge", version, about = "WhatsApp (Infobip) ⇄ Salesforce Service Cloud Messaging bridge")]
pub struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the service (the default).
    Serve,
    /// Apply pending database migrations and exit.
    Migrate,
    /// Load and validate the configuration, print it (secrets hidden) and exit.
    CheckConfig,
    /// Provision apps, Infobip accounts and senders.
    #[command(subcommand)]
    App(app::AppCommand),
    /// Inspect and retry dead-lettered jobs.
    #[command(subcommand)]
    Jobs(jobs::JobsCommand),
}

/// Parses arguments, loads configuration and runs the command. Exit code 2 for bad
/// configuration or usage, 1 for failures.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    let settings = match Settings::load() {
        Ok(s) => s,
        Err(e) => return config_failure(&e),
    };
    let command = cli.command.unwrap_or(Command::Serve);
    // Command-line tools log only warnings, so their own output stays readable.
    let mut telemetry = settings.telemetry.clone();
    if !matches!(command, Command::Serve) && std::env::var_os("RUST_LOG").is_none() {
        telemetry.log_filter = "warn".into();
    }
    crate::telemetry::init(&telemetry, std::io::stderr);
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(command, settings)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn config_failure(e: &ConfigError) -> ExitCode {
    eprintln!("{e}");
    ExitCode::from(2)
}

async fn run(command: Command, settings: Settings) -> anyhow::Result<()> {
    match command {
        Command::Serve => {
            let app = Application::build(settings).await?;
            let token = app.shutdown_token();
            tokio::spawn(async move {
                crate::startup::shutdown_signal().await;
                token.cancel();
            });
            app.run_until_stopped().await
        }
        Command::Migrate => {
            let mut settings = settings;
            settings.database.migrate_on_start = false;
            let services = Services::open(&settings).await?;
            let applied = crate::db::migrations::run_pending(&services.db).await?;
            if applied.is_empty() {
                println!("database is up to date ({})", services.db.backend());
            } else {
                println!("applied {} migration(s) on {}: {}", applied.len(), services.db.backend(), applied.join(", "));
            }
            Ok(())
        }
        Command::CheckConfig => {
            print!("{settings}");
            println!("configuration is valid");
            Ok(())
        }
        Command::App(cmd) => app::run(cmd, &Services::open(&settings).await?).await,
        Command::Jobs(cmd) => jobs::run(cmd, &Services::open(&settings).await?).await,
    }
}
