//! Settings: compiled-in defaults (`config/default.toml`), an optional file named by
//! `BYOC_CONFIG`, then `BYOC__SECTION__KEY` environment variables. Validated once at start;
//! every failure names the key it is about.

use std::path::{Path, PathBuf};
use std::time::Duration;

use figment::Figment;
use figment::providers::{Format, Toml};
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;

mod report;

/// The defaults, also the documentation of every key.
pub const DEFAULTS: &str = include_str!("../config/default.toml");

/// Environment variable naming an optional TOML file layered over the defaults.
pub const CONFIG_FILE_VAR: &str = "BYOC_CONFIG";

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    pub server: ServerSettings,
    pub database: DatabaseSettings,
    pub security: SecuritySettings,
    pub telemetry: TelemetrySettings,
    pub salesforce: SalesforceSettings,
    pub infobip: InfobipSettings,
    pub worker: WorkerSettings,
    pub retention: RetentionSettings,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SalesforceSettings {
    /// Run the Pub/Sub subscriptions of the active apps in this process.
    pub subscribe: bool,
    /// With several replicas, one holds an app's subscription; another takes over after this.
    pub subscription_lease_secs: u64,
    /// How often each active app's org limits are read (`/limits`).
    pub limits_check_secs: u64,
    /// A PEM certificate authority to trust for the Pub/Sub API besides the system's.
    pub extra_ca_file: Option<String>,
    /// HTTP/2 PINGs on the Pub/Sub connection (0: none).
    pub pubsub_ping_secs: u64,
    pub request_timeout_ms: u64,
    pub token_max_age_secs: u64,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InfobipSettings {
    pub request_timeout_ms: u64,
    pub unknown_outcome_wait_secs: u64,
    pub sends_per_second_per_sender: u32,
    pub conversation_page_size: usize,
    pub template_cache_secs: u64,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerSettings {
    pub host: String,
    pub port: u16,
    pub public_base_url: String,
    pub workers: usize,
    pub max_body_bytes: usize,
    pub header_read_secs: u64,
    pub body_read_secs: u64,
    pub max_requests_per_client: usize,
    pub shutdown_timeout_secs: u64,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DatabaseSettings {
    /// May carry a password, hence secret.
    pub url: SecretString,
    pub max_connections: u32,
    pub acquire_timeout_ms: u64,
    pub sqlite_busy_timeout_ms: u64,
    pub sqlite_synchronous: SqliteSynchronous,
    pub migrate_on_start: bool,
}

/// When SQLite's write-ahead log reaches the disk (`PRAGMA synchronous`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SqliteSynchronous {
    /// At every commit: an acknowledged webhook survives a power loss.
    Full,
    /// At checkpoints: it survives a crash of the process, not of the machine.
    Normal,
}

impl SqliteSynchronous {
    pub fn pragma(self) -> &'static str {
        match self {
            SqliteSynchronous::Full => "FULL",
            SqliteSynchronous::Normal => "NORMAL",
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SecuritySettings {
    pub data_dir: PathBuf,
    pub master_key: SecretString,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TelemetrySettings {
    pub log_format: LogFormat,
    pub log_filter: String,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WorkerSettings {
    pub enabled: bool,
    pub concurrency: usize,
    pub claim_batch: i64,
    pub poll_interval_ms: u64,
    pub lease_secs: u64,
    pub slice_ms: u64,
    pub backoff_initial_ms: u64,
    pub backoff_max_secs: u64,
    pub max_attempts: i32,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RetentionSettings {
    pub message_body_hours: u64,
    pub message_record_days: u64,
    pub purge_interval_secs: u64,
}

/// A configuration problem, always tied to the key it concerns.
#[derive(Debug, thiserror::Error)]
#[error("configuration error: `{key}`: {problem}")]
pub struct ConfigError {
    pub key: String,
    pub problem: String,
}

impl ConfigError {
    fn new(key: impl Into<String>, problem: impl Into<String>) -> Self {
        Self { key: key.into(), problem: problem.into() }
    }
}

/// Where the database lives, decided from the URL's scheme (never by probing: SQLite would
/// accept any string as a file name).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DatabaseLocation {
    Sqlite(PathBuf),
    Postgres(String),
}

impl Settings {
    /// Loads from the process environment.
    pub fn load() -> Result<Self, ConfigError> {
        let vars: Vec<(String, String)> = std::env::vars().collect();
        Self::load_from(&vars)
    }

    /// Loads with the given environment; tests pass their own instead of mutating the process's.
    pub fn load_from(vars: &[(String, String)]) -> Result<Self, ConfigError> {
        let settings: Settings = layers(vars)?.extract().map_err(from_figment)?;
        settings.validate()?;
        Ok(settings)
    }

    /// Every effective key with its value and where it came from (`check-config`), or why
    /// the configuration is invalid.
    pub fn report_from(vars: &[(String, String)]) -> Result<String, ConfigError> {
        let figment = layers(vars)?;
        let settings: Settings = figment.extract().map_err(from_figment)?;
        settings.validate()?;
        report::report(&figment, &settings)
    }
}

/// The defaults, then the file named by `BYOC_CONFIG`, then `BYOC__…` variables.
fn layers(vars: &[(String, String)]) -> Result<Figment, ConfigError> {
    let mut figment = Figment::new().merge(Toml::string(DEFAULTS));
    if let Some((_, file)) = vars.iter().find(|(k, _)| k == CONFIG_FILE_VAR) {
        if !Path::new(file).is_file() {
            return Err(ConfigError::new(CONFIG_FILE_VAR, format!("file {file:?} does not exist or is not a file")));
        }
        figment = figment.merge(Toml::file_exact(file));
    }
    for (name, value) in vars {
        if let Some(rest) = name.strip_prefix("BYOC__") {
            figment = figment.merge(EnvVar::new(name, rest, value));
        }
    }
    Ok(figment)
}

impl Settings {
    fn validate(&self) -> Result<(), ConfigError> {
        if self.server.host.trim().is_empty() {
            return Err(ConfigError::new("server.host", "must not be empty"));
        }
        if !self.server.public_base_url.is_empty() {
            let url = url::Url::parse(&self.server.public_base_url)
                .map_err(|e| ConfigError::new("server.public_base_url", format!("not a URL: {e}")))?;
            if !matches!(url.scheme(), "http" | "https") {
                return Err(ConfigError::new("server.public_base_url", "must start with http:// or https://"));
            }
        }
        if self.server.header_read_secs == 0 || self.server.body_read_secs == 0 {
            let key =
                if self.server.header_read_secs == 0 { "server.header_read_secs" } else { "server.body_read_secs" };
            return Err(ConfigError::new(key, "must be at least 1 (a client may not hold a connection forever)"));
        }
        if self.server.max_body_bytes < 1024 {
            return Err(ConfigError::new("server.max_body_bytes", "must be at least 1024"));
        }
        self.database_location()?;
        if self.database.acquire_timeout_ms == 0 {
            return Err(ConfigError::new("database.acquire_timeout_ms", "must be greater than 0"));
        }
        if !self.security.master_key.expose_secret().is_empty() {
            crate::crypto::MasterKey::from_base64(self.security.master_key.expose_secret())
                .map_err(|e| ConfigError::new("security.master_key", e.to_string()))?;
        }
        tracing_subscriber::EnvFilter::try_new(&self.telemetry.log_filter)
            .map_err(|e| ConfigError::new("telemetry.log_filter", e.to_string()))?;
        let w = &self.worker;
        for (key, value) in [
            ("worker.concurrency", w.concurrency as u64),
            ("worker.claim_batch", w.claim_batch.max(0) as u64),
            ("worker.poll_interval_ms", w.poll_interval_ms),
            ("worker.lease_secs", w.lease_secs),
            ("worker.backoff_initial_ms", w.backoff_initial_ms),
            ("worker.backoff_max_secs", w.backoff_max_secs),
            ("worker.max_attempts", w.max_attempts.max(0) as u64),
            ("retention.message_record_days", self.retention.message_record_days),
            ("salesforce.request_timeout_ms", self.salesforce.request_timeout_ms),
            ("salesforce.subscription_lease_secs", self.salesforce.subscription_lease_secs),
            ("salesforce.limits_check_secs", self.salesforce.limits_check_secs),
            ("salesforce.token_max_age_secs", self.salesforce.token_max_age_secs),
            ("infobip.request_timeout_ms", self.infobip.request_timeout_ms),
            ("infobip.sends_per_second_per_sender", u64::from(self.infobip.sends_per_second_per_sender)),
            ("retention.purge_interval_secs", self.retention.purge_interval_secs),
        ] {
            if value == 0 {
                return Err(ConfigError::new(key, "must be greater than 0"));
            }
        }
        if w.slice_ms > w.lease_secs * 1000 / 2 {
            return Err(ConfigError::new("worker.slice_ms", "must be at most half of worker.lease_secs"));
        }
        let ping = self.salesforce.pubsub_ping_secs;
        if ping != 0 && ping < 300 {
            return Err(ConfigError::new(
                "salesforce.pubsub_ping_secs",
                "must be 0 (no pings) or at least 300: gRPC servers close connections that ping more often",
            ));
        }
        if !(1..=999).contains(&self.infobip.conversation_page_size) {
            return Err(ConfigError::new("infobip.conversation_page_size", "must be between 1 and 999"));
        }
        if w.backoff_max_secs * 1000 < w.backoff_initial_ms {
            return Err(ConfigError::new(
                "worker.backoff_max_secs",
                "must not be shorter than worker.backoff_initial_ms",
            ));
        }
        Ok(())
    }

    /// The database the URL points at; relative SQLite paths stay relative to the working directory.
    pub fn database_location(&self) -> Result<DatabaseLocation, ConfigError> {
        parse_database_url(self.database.url.expose_secret())
    }

    /// Connections in the pool: as configured, or (0) sized for the backend. SQLite's pool
    /// only reads (one thread writes), so a few suffice; on PostgreSQL every job and webhook in
    /// flight may hold one for a transaction, so the pool is as large as the worker's
    /// concurrency plus room for the HTTP handlers, within the server's default 100.
    pub fn database_pool_size(&self) -> u32 {
        match (self.database.max_connections, self.database_location()) {
            (0, Ok(DatabaseLocation::Postgres(_))) => {
                u32::try_from(self.worker.concurrency).unwrap_or(u32::MAX).saturating_add(16).min(90)
            }
            (0, _) => 8,
            (n, _) => n,
        }
    }

    /// HTTP worker threads: as configured, or (0) one per CPU core.
    pub fn http_workers(&self) -> usize {
        match self.server.workers {
            0 => std::thread::available_parallelism().map_or(1, usize::from),
            n => n,
        }
    }

    pub fn acquire_timeout(&self) -> Duration {
        Duration::from_millis(self.database.acquire_timeout_ms)
    }

    pub fn shutdown_timeout(&self) -> Duration {
        Duration::from_secs(self.server.shutdown_timeout_secs)
    }

    /// The externally visible base URL without a trailing slash.
    pub fn public_base_url(&self, bound_port: u16) -> String {
        if self.server.public_base_url.is_empty() {
            // A wildcard address is where to listen, not where to go: no browser reaches
            // http://0.0.0.0, while this machine reaches itself as localhost.
            let host = match self.server.host.as_str() {
                "0.0.0.0" | "::" | "[::]" => "localhost",
                host => host,
            };
            format!("http://{host}:{bound_port}")
        } else {
            self.server.public_base_url.trim_end_matches('/').to_owned()
        }
    }
}

pub fn parse_database_url(url: &str) -> Result<DatabaseLocation, ConfigError> {
    let url = url.trim();
    if url.is_empty() {
        return Err(ConfigError::new("database.url", "must not be empty"));
    }
    if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        url::Url::parse(url).map_err(|e| {
            // The URL may hold a password: describe the error, never echo the value.
            ConfigError::new("database.url", format!("not a valid PostgreSQL URL: {e}"))
        })?;
        return Ok(DatabaseLocation::Postgres(url.to_owned()));
    }
    if let Some(path) = url.strip_prefix("sqlite://").or_else(|| url.strip_prefix("sqlite:")) {
        if path.is_empty() {
            return Err(ConfigError::new("database.url", "sqlite:// needs a file path"));
        }
        return Ok(DatabaseLocation::Sqlite(PathBuf::from(path)));
    }
    if url.contains("://") {
        return Err(ConfigError::new("database.url", "unsupported scheme: use sqlite://<path> or postgres://…"));
    }
    Ok(DatabaseLocation::Sqlite(PathBuf::from(url)))
}

/// The URL libpq connects with: on loopback (or a Unix socket) with no `sslmode` given,
/// `sslmode=disable`, since libpq's default (`prefer`) would negotiate TLS with a local server
/// for nothing but cost on every connection and statement. Any other host keeps libpq's
/// default, and an explicit `sslmode` is always kept.
pub fn postgres_connect_url(url: &str) -> String {
    let Ok(mut parsed) = url::Url::parse(url) else { return url.to_owned() };
    if parsed.query_pairs().any(|(k, _)| k == "sslmode") {
        return url.to_owned();
    }
    let local = match parsed.host() {
        None => true,
        // `postgres://` is not a special scheme to the URL parser: its hosts stay text.
        Some(url::Host::Domain(d)) => {
            d.is_empty()
                || d == "localhost"
                || d.trim_matches(['[', ']']).parse::<std::net::IpAddr>().is_ok_and(|ip| ip.is_loopback())
        }
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
    };
    if !local {
        return url.to_owned();
    }
    parsed.query_pairs_mut().append_pair("sslmode", "disable");
    parsed.to_string()
}

/// One `BYOC__SECTION__KEY` variable as a figment layer, so an error names the variable.
struct EnvVar {
    name: String,
    path: Vec<String>,
    value: figment::value::Value,
}

impl EnvVar {
    fn new(name: &str, rest: &str, raw: &str) -> Self {
        // Parsed the way figment parses environment values: numbers, booleans, else a string.
        let value =
            raw.parse::<figment::value::Value>().unwrap_or_else(|_| figment::value::Value::from(raw.to_owned()));
        Self { name: name.to_owned(), path: rest.split("__").map(str::to_ascii_lowercase).collect(), value }
    }
}

impl figment::Provider for EnvVar {
    fn metadata(&self) -> figment::Metadata {
        figment::Metadata::named(format!("environment variable {}", self.name))
    }

    fn data(&self) -> Result<figment::value::Map<figment::Profile, figment::value::Dict>, figment::Error> {
        let mut value = self.value.clone();
        for segment in self.path.iter().rev() {
            let mut dict = figment::value::Dict::new();
            dict.insert(segment.clone(), value);
            value = dict.into();
        }
        let dict = value.into_dict().unwrap_or_default();
        Ok(figment::Profile::Default.collect(dict))
    }
}

/// Turns figment's error into one line naming the key and, when it came from the
/// environment, the variable.
fn from_figment(error: figment::Error) -> ConfigError {
    let key = if error.path.is_empty() { "(root)".to_owned() } else { error.path.join(".") };
    let mut problem = match &error.kind {
        figment::error::Kind::UnknownField(field, _) => {
            let key = if error.path.last() == Some(field) || error.path.is_empty() {
                if error.path.is_empty() { field.clone() } else { key }
            } else {
                format!("{key}.{field}")
            };
            let source = error.metadata.as_ref().map(|m| format!(" (from {})", m.name)).unwrap_or_default();
            return ConfigError::new(
                key,
                format!("unknown setting{source}; see crates/bridge/config/default.toml for the valid keys"),
            );
        }
        figment::error::Kind::Message(m) => m.clone(),
        other => other.to_string(),
    };
    if let Some(meta) = &error.metadata {
        problem.push_str(&format!(" (from {})", meta.name));
    }
    ConfigError::new(key, problem)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(vars: &[(&str, &str)]) -> Result<Settings, ConfigError> {
        let vars: Vec<(String, String)> = vars.iter().map(|(k, v)| ((*k).into(), (*v).into())).collect();
        Settings::load_from(&vars)
    }

    /// `check-config` names every key of the defaults file as it is set, says where each
    /// value came from, resolves the automatic ones, and shows no secret.
    #[test]
    fn the_report_names_every_key_and_hides_secrets() {
        let vars: Vec<(String, String)> = [
            ("BYOC__WORKER__CONCURRENCY", "7"),
            ("BYOC__DATABASE__URL", "postgres://bridge:s3cret-pw@db.internal:5432/byoc?password=other-secret"),
            ("BYOC__SECURITY__MASTER_KEY", "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA="),
            ("BYOC__SERVER__HOST", "0.0.0.0"),
        ]
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
        let report = Settings::report_from(&vars).unwrap();
        let defaults: toml::Table = toml::from_str(DEFAULTS).unwrap();
        for (section, keys) in &defaults {
            for key in keys.as_table().unwrap().keys() {
                let name = format!("{section}.{key} ");
                assert!(report.lines().any(|l| l.starts_with(&name)), "{name}missing from:\n{report}");
            }
        }
        let line = |key: &str| report.lines().find(|l| l.starts_with(&format!("{key} "))).unwrap().to_owned();
        assert!(line("worker.concurrency").contains("= 7  # environment variable BYOC__WORKER__CONCURRENCY"));
        assert!(line("worker.lease_secs").ends_with("# default"), "{}", line("worker.lease_secs"));
        assert!(line("database.max_connections").contains("automatic: 23 connections"));
        assert!(line("server.public_base_url").contains("links use http://localhost:8080"), "never 0.0.0.0");
        assert!(line("database.url").contains("postgres://bridge:hidden@db.internal:5432/byoc?(options hidden)"));
        assert!(line("security.master_key").contains("(set, hidden)"));
        for secret in ["s3cret-pw", "other-secret", "AAAAAAAA"] {
            assert!(!report.contains(secret), "{secret} shown");
        }
    }

    #[test]
    fn defaults_are_valid_and_use_sqlite() {
        let s = load(&[]).unwrap();
        assert_eq!(s.server.port, 8080);
        assert_eq!(s.database_location().unwrap(), DatabaseLocation::Sqlite("data/byoc-bridge.db".into()));
        assert!(s.worker.enabled);
        assert!(s.salesforce.pubsub_ping_secs >= 300, "Pub/Sub pings no more often than servers allow");
    }

    #[test]
    fn environment_overrides_nested_keys() {
        let s = load(&[
            ("BYOC__SERVER__PORT", "9000"),
            ("BYOC__SERVER__PUBLIC_BASE_URL", "https://bridge.example.com/"),
            ("BYOC__WORKER__ENABLED", "false"),
            ("BYOC__DATABASE__URL", "postgres://u:p@db:5432/byoc"),
        ])
        .unwrap();
        assert_eq!(s.server.port, 9000);
        assert_eq!(s.public_base_url(9000), "https://bridge.example.com");
        assert!(!s.worker.enabled);
        assert!(matches!(s.database_location().unwrap(), DatabaseLocation::Postgres(_)));
    }

    #[test]
    fn loopback_postgres_skips_tls_unless_told_otherwise() {
        let url = postgres_connect_url;
        assert_eq!(url("postgres://u:p@127.0.0.1:5432/db"), "postgres://u:p@127.0.0.1:5432/db?sslmode=disable");
        assert_eq!(
            url("postgres://localhost/db?application_name=x"),
            "postgres://localhost/db?application_name=x&sslmode=disable"
        );
        assert_eq!(url("postgres://[::1]/db"), "postgres://[::1]/db?sslmode=disable");
        assert_eq!(url("postgres://127.0.0.1/db?sslmode=require"), "postgres://127.0.0.1/db?sslmode=require");
        assert_eq!(url("postgres://db.example.com/db"), "postgres://db.example.com/db");
    }

    #[test]
    fn the_pool_is_sized_for_the_backend_unless_set() {
        let sqlite = load(&[]).unwrap();
        assert_eq!(sqlite.database_pool_size(), 8);
        let pg = load(&[("BYOC__DATABASE__URL", "postgres://127.0.0.1/db")]).unwrap();
        assert_eq!(pg.database_pool_size(), 64 + 16, "every worker slot and the HTTP handlers");
        let set = load(&[("BYOC__DATABASE__URL", "postgres://127.0.0.1/db"), ("BYOC__DATABASE__MAX_CONNECTIONS", "5")]);
        assert_eq!(set.unwrap().database_pool_size(), 5);
    }

    #[test]
    fn config_file_layers_between_defaults_and_environment() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("byoc.toml");
        std::fs::write(&file, "[server]\nport = 7000\nhost = \"0.0.0.0\"\n").unwrap();
        let path = file.to_str().unwrap();
        let s = load(&[(CONFIG_FILE_VAR, path)]).unwrap();
        assert_eq!((s.server.port, s.server.host.as_str()), (7000, "0.0.0.0"));
        let s = load(&[(CONFIG_FILE_VAR, path), ("BYOC__SERVER__PORT", "7001")]).unwrap();
        assert_eq!(s.server.port, 7001);

        let err = load(&[(CONFIG_FILE_VAR, "/nonexistent/byoc.toml")]).unwrap_err();
        assert_eq!(err.key, CONFIG_FILE_VAR);

        std::fs::write(&file, "[server]\nport = \"x\"\n").unwrap();
        let err = load(&[(CONFIG_FILE_VAR, path)]).unwrap_err();
        assert_eq!(err.key, "server.port");
    }

    #[test]
    fn errors_name_the_key() {
        let cases = [
            ("BYOC__SERVER__PORT", "99999", "server.port"),
            ("BYOC__SERVER__PUBLIC_BASE_URL", "ftp://x", "server.public_base_url"),
            ("BYOC__DATABASE__URL", "", "database.url"),
            ("BYOC__DATABASE__MAX_CONNECTIONS", "-1", "database.max_connections"),
            ("BYOC__SECURITY__MASTER_KEY", "tooshort", "security.master_key"),
            ("BYOC__TELEMETRY__LOG_FILTER", "info,[[[", "telemetry.log_filter"),
            ("BYOC__WORKER__CONCURRENCY", "0", "worker.concurrency"),
            // Pings more often than every 5 minutes get connections closed (too_many_pings).
            ("BYOC__SALESFORCE__PUBSUB_PING_SECS", "60", "salesforce.pubsub_ping_secs"),
            ("BYOC__NOPE__X", "1", "nope"),
        ];
        for (var, value, key) in cases {
            let err = load(&[(var, value)]).unwrap_err();
            assert_eq!(err.key, key, "{var}={value}: {err}");
            assert!(err.to_string().starts_with(&format!("configuration error: `{key}`")), "{err}");
        }
    }

    #[test]
    fn secrets_are_not_printed() {
        let key = crate::crypto::MasterKey::generate().unwrap().to_base64();
        let s = load(&[
            ("BYOC__DATABASE__URL", "postgres://user:hunter2@db/byoc"),
            ("BYOC__SECURITY__MASTER_KEY", key.expose_secret()),
        ])
        .unwrap();
        let vars = [
            ("BYOC__DATABASE__URL".to_owned(), "postgres://user:hunter2@db/byoc".to_owned()),
            ("BYOC__SECURITY__MASTER_KEY".to_owned(), key.expose_secret().to_owned()),
        ];
        for text in [format!("{s:?}"), Settings::report_from(&vars).unwrap()] {
            assert!(!text.contains("hunter2"), "{text}");
            assert!(!text.contains(key.expose_secret()), "{text}");
        }
        let bad = load(&[("BYOC__DATABASE__URL", "postgres://user:hunter2@[bad")]).unwrap_err();
        assert!(!bad.to_string().contains("hunter2"), "{bad}");
    }
}
