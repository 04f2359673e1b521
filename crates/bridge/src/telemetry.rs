//! Logging. Text for people, JSON for collectors; `RUST_LOG` overrides the configured filter.
//! Log lines carry ids (app, job, message ids), never phone numbers, bodies or secrets.

use tracing_subscriber::EnvFilter;
use tracing_subscriber::fmt::MakeWriter;

use crate::config::{LogFormat, TelemetrySettings};

/// Installs the global subscriber. Safe to call more than once (tests): later calls do nothing.
pub fn init<W>(settings: &TelemetrySettings, writer: W)
where
    W: for<'a> MakeWriter<'a> + Send + Sync + 'static,
{
    let filter = std::env::var("RUST_LOG")
        .ok()
        .and_then(|v| EnvFilter::try_new(v).ok())
        .unwrap_or_else(|| EnvFilter::new(&settings.log_filter));
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(writer);
    let result = match settings.log_format {
        LogFormat::Json => builder.json().flatten_event(true).with_current_span(true).with_span_list(true).try_init(),
        LogFormat::Text => {
            builder.with_target(false).with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr())).try_init()
        }
    };
    // Already installed (a second Application in one test process): keep the first.
    drop(result);
}
