//! Command line: `serve` (default), `migrate`, `check-config`, `app …`, `jobs …`.

mod app;
mod jobs;
#[cfg(feature = "sim")]
mod sandbox;
#[cfg(feature = "sim")]
mod sim;

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
    App(Box<app::AppCommand>),
    /// Inspect and retry dead-lettered jobs.
    #[command(subcommand)]
    Jobs(jobs::JobsCommand),
    /// Exit 0 if the local service answers `GET /healthz` (for container health checks).
    Healthcheck,
    /// Try the bridge: it starts between simulated Infobip and Salesforce, with one app.
    #[cfg(feature = "sim")]
    Sandbox(sandbox::SandboxArgs),
    /// Run a vendor simulator (Salesforce or Infobip) as its own process.
    #[cfg(feature = "sim")]
    #[command(subcommand)]
    Sim(sim::SimCommand),
}

impl Command {
    /// The long-running commands, which log at the configured level.
    fn is_service(&self) -> bool {
        match self {
            Command::Serve => true,
            #[cfg(feature = "sim")]
            Command::Sandbox(_) => true,
            _ => false,
        }
    }
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
    if !command.is_service() && std::env::var_os("RUST_LOG").is_none() {
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
            // Loaded once already: a bad configuration has exited with code 2 by now.
            print!("{}", Settings::report_from(&std::env::vars().collect::<Vec<_>>())?);
            println!("configuration is valid");
            Ok(())
        }
        Command::Healthcheck => healthcheck(&settings),
        #[cfg(feature = "sim")]
        Command::Sim(cmd) => sim::run(cmd).await,
        #[cfg(feature = "sim")]
        Command::Sandbox(args) => sandbox::run(args, settings).await,
        Command::App(cmd) => app::run(*cmd, &Services::open(&settings).await?).await,
        Command::Jobs(cmd) => jobs::run(cmd, &Services::open(&settings).await?).await,
    }
}

/// A dependency-free HTTP/1.0 probe of `/healthz` on the configured port, so container
/// images need no curl.
fn healthcheck(settings: &Settings) -> anyhow::Result<()> {
    use std::io::{Read, Write};
    use std::time::Duration;
    let host = match settings.server.host.as_str() {
        "0.0.0.0" | "::" | "[::]" => "127.0.0.1",
        other => other,
    };
    let address = format!("{host}:{}", settings.server.port);
    let timeout = Duration::from_secs(3);
    let socket = std::net::ToSocketAddrs::to_socket_addrs(&address)?
        .next()
        .ok_or_else(|| anyhow::anyhow!("cannot resolve {address}"))?;
    let mut stream = std::net::TcpStream::connect_timeout(&socket, timeout)?;
    stream.set_read_timeout(Some(timeout))?;
    stream.write_all(format!("GET /healthz HTTP/1.0\r\nHost: {address}\r\n\r\n").as_bytes())?;
    let mut response = String::new();
    stream.read_to_string(&mut response)?;
    let status_line = response.lines().next().unwrap_or_default();
    if status_line.split_whitespace().nth(1) == Some("200") {
        println!("healthy");
        Ok(())
    } else {
        anyhow::bail!("unhealthy: {status_line}")
    }
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    /// Every command, argument and flag says what it is for in `--help`.
    #[test]
    fn every_command_and_flag_has_help() {
        fn walk(command: &clap::Command, path: &str, missing: &mut Vec<String>) {
            let path = format!("{path} {}", command.get_name());
            if command.get_about().is_none() && command.get_long_about().is_none() {
                missing.push(format!("{path}: the command"));
            }
            for arg in command.get_arguments() {
                let id = arg.get_id().as_str();
                if matches!(id, "help" | "version") {
                    continue;
                }
                if arg.get_help().is_none() && arg.get_long_help().is_none() {
                    missing.push(format!("{path}: {id}"));
                }
            }
            for sub in command.get_subcommands() {
                if sub.get_name() != "help" {
                    walk(sub, &path, missing);
                }
            }
        }
        let mut missing = Vec::new();
        walk(&super::Cli::command(), "", &mut missing);
        assert!(missing.is_empty(), "without help text:\n{}", missing.join("\n"));
    }
}
