//! Test scaffolding: a fresh database per test on each backend, and a running app.

use std::io::Write;
use std::time::Duration;

use byoc_bridge::config::Settings;
use byoc_bridge::db::{Backend, Db};
use byoc_bridge::startup::{Application, Services};
use diesel::{Connection, RunQueryDsl};
use tokio_util::sync::CancellationToken;

pub const DEFAULT_POSTGRES_URL: &str = "postgres://postgres@127.0.0.1:5432/postgres";

/// Generates `mod NAME { sqlite(); postgres() }` tests that call `async fn NAME(TestDb)`.
/// The PostgreSQL variant reports a skip when no server answers, unless `CI=true`.
#[macro_export]
macro_rules! on_both_backends {
    ($($name:ident),* $(,)?) => {
        $(
            mod $name {
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn sqlite() {
                    super::$name($crate::helpers::TestDb::sqlite()).await;
                }

                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn postgres() {
                    if let Some(db) = $crate::helpers::TestDb::postgres(concat!(module_path!(), "::postgres")).await {
                        super::$name(db).await;
                    }
                }
            }
        )*
    };
}

/// One test's own database (and data directory), removed when dropped.
pub struct TestDb {
    pub backend: Backend,
    pub url: String,
    pub dir: tempfile::TempDir,
    admin_url: Option<String>,
    pg_name: Option<String>,
}

impl TestDb {
    pub fn sqlite() -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let url = format!("sqlite://{}", dir.path().join("test.db").display());
        Self { backend: Backend::Sqlite, url, dir, admin_url: None, pg_name: None }
    }

    /// A fresh database on the local PostgreSQL (`BYOC_TEST_POSTGRES_URL` to point elsewhere).
    pub async fn postgres(test: &str) -> Option<Self> {
        let admin_url = std::env::var("BYOC_TEST_POSTGRES_URL").unwrap_or_else(|_| DEFAULT_POSTGRES_URL.to_owned());
        let name = format!("byoc_test_{}", uuid::Uuid::new_v4().simple());
        let create = {
            let admin_url = admin_url.clone();
            let name = name.clone();
            tokio::task::spawn_blocking(move || -> Result<(), String> {
                let mut conn = diesel::PgConnection::establish(&admin_url).map_err(|e| e.to_string())?;
                diesel::sql_query(format!("CREATE DATABASE {name}")).execute(&mut conn).map_err(|e| e.to_string())?;
                Ok(())
            })
            .await
            .expect("join")
        };
        if let Err(e) = create {
            if std::env::var("CI").is_ok_and(|v| v == "true") {
                panic!("PostgreSQL is required when CI=true, but {admin_url} failed: {e}");
            }
            // Written to the real stderr, past the test harness's capture, so the skip shows.
            let _ = writeln!(std::io::stderr(), "SKIPPED {test}: PostgreSQL not reachable ({e})");
            return None;
        }
        let mut url = url::Url::parse(&admin_url).expect("admin url");
        url.set_path(&name);
        Some(Self {
            backend: Backend::Postgres,
            url: url.to_string(),
            dir: tempfile::tempdir().expect("tempdir"),
            admin_url: Some(admin_url),
            pg_name: Some(name),
        })
    }

    /// Environment for the configuration loader: this database, a private data dir, port 0.
    pub fn env(&self) -> Vec<(String, String)> {
        vec![
            ("BYOC__DATABASE__URL".into(), self.url.clone()),
            ("BYOC__SECURITY__DATA_DIR".into(), self.dir.path().join("data").display().to_string()),
            ("BYOC__SERVER__PORT".into(), "0".into()),
            ("BYOC__SERVER__WORKERS".into(), "1".into()),
            ("BYOC__DATABASE__MAX_CONNECTIONS".into(), "4".into()),
            ("BYOC__TELEMETRY__LOG_FILTER".into(), "warn".into()),
            // Tests drive the worker step by step instead of waiting for it.
            ("BYOC__WORKER__ENABLED".into(), "false".into()),
            ("BYOC__SALESFORCE__SUBSCRIBE".into(), "false".into()),
        ]
    }

    pub fn settings(&self) -> Settings {
        self.settings_with(&[])
    }

    pub fn settings_with(&self, extra: &[(&str, &str)]) -> Settings {
        let mut env = self.env();
        env.extend(extra.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())));
        Settings::load_from(&env).expect("test settings")
    }

    /// Storage with migrations applied.
    pub async fn services(&self) -> Services {
        Services::open(&self.settings()).await.expect("open services")
    }

    /// A pool without running migrations.
    pub fn raw_db(&self) -> Db {
        Db::new(&self.settings()).expect("db")
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        if let (Some(admin_url), Some(name)) = (&self.admin_url, &self.pg_name)
            && let Ok(mut conn) = diesel::PgConnection::establish(admin_url)
        {
            let _ = diesel::sql_query(format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)")).execute(&mut conn);
        }
    }
}

/// A running service on a random port.
pub struct TestApp {
    pub address: String,
    pub db: Db,
    pub runner: byoc_bridge::worker::Runner,
    pub directory: byoc_bridge::directory::Directory,
    pub subscriber: byoc_bridge::outbound::subscriber::Subscriber,
    pub client: reqwest::Client,
    shutdown: CancellationToken,
    handle: tokio::task::JoinHandle<anyhow::Result<()>>,
}

impl TestApp {
    pub async fn spawn(test_db: &TestDb) -> Self {
        Self::spawn_with(test_db.settings()).await
    }

    pub async fn spawn_with(settings: Settings) -> Self {
        let services = Services::open(&settings).await.expect("services");
        let app = Application::build_with(settings, services).await.expect("build app");
        let address = format!("http://127.0.0.1:{}", app.port());
        let db = app.db().clone();
        let runner = app.runner().clone();
        let directory = app.directory().clone();
        let subscriber = app.subscriber().clone();
        let shutdown = app.shutdown_token();
        let handle = tokio::spawn(app.run_until_stopped());
        Self {
            address,
            db,
            runner,
            directory,
            subscriber,
            client: reqwest::Client::builder()
                .timeout(Duration::from_secs(10))
                // Idle keep-alive connections would hold up graceful shutdown until they time out.
                .pool_max_idle_per_host(0)
                .build()
                .expect("client"),
            shutdown,
            handle,
        }
    }

    pub async fn get(&self, path: &str) -> reqwest::Response {
        self.client.get(format!("{}{path}", self.address)).send().await.expect("request")
    }

    /// Stops the app gracefully and returns how `run_until_stopped` ended.
    pub async fn stop(self) -> anyhow::Result<()> {
        self.shutdown.cancel();
        self.handle.await.expect("join app")
    }
}

pub fn test_private_key() -> String {
    std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/test_private_key.pem"))
        .expect("fixture key")
        .trim()
        .to_owned()
}

/// The vendors' contracts, loaded once per process.
pub fn specs() -> std::sync::Arc<byoc_sim::contract::Specs> {
    byoc_sim::contract::Specs::shared()
        .expect("the contract: contract/ in the repository, or the directory in BYOC_SPECS_DIR")
}

/// Every row of every table (but the migrations' own), each as text, sorted: equal snapshots
/// mean a request changed nothing that is stored.
pub async fn snapshot(db: &Db) -> std::collections::BTreeMap<String, Vec<String>> {
    use diesel::sql_types::Text;
    #[derive(diesel::QueryableByName)]
    struct Name {
        #[diesel(sql_type = Text)]
        name: String,
    }
    #[derive(diesel::QueryableByName)]
    struct Row {
        #[diesel(sql_type = Text)]
        row: String,
    }
    db.run(|conn| {
        let (tables, columns): (&str, fn(&str) -> String) = match conn {
            byoc_bridge::db::DbConn::Sqlite(_) => {
                ("SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'", |t| {
                    format!("SELECT name FROM pragma_table_info('{t}')")
                })
            }
            byoc_bridge::db::DbConn::Postgres(_) => (
                "SELECT CAST(table_name AS TEXT) AS name FROM information_schema.tables \
                 WHERE table_schema = current_schema()",
                |t| {
                    format!(
                        "SELECT CAST(column_name AS TEXT) AS name FROM information_schema.columns \
                         WHERE table_schema = current_schema() AND table_name = '{t}'"
                    )
                },
            ),
        };
        let mut all = std::collections::BTreeMap::new();
        let names: Vec<Name> = byoc_bridge::dispatch!(conn, |c| diesel::sql_query(tables).load(c)?);
        for table in names.into_iter().map(|n| n.name).filter(|t| t != "__diesel_schema_migrations") {
            let cols: Vec<Name> = byoc_bridge::dispatch!(conn, |c| diesel::sql_query(columns(&table)).load(c)?);
            let expr: Vec<String> =
                cols.iter().map(|c| format!("COALESCE(CAST(\"{}\" AS TEXT), '<null>')", c.name)).collect();
            let sql = format!("SELECT {} AS row FROM \"{table}\"", expr.join(" || '|' || "));
            let rows: Vec<Row> = byoc_bridge::dispatch!(conn, |c| diesel::sql_query(&sql).load(c)?);
            let mut rows: Vec<String> = rows.into_iter().map(|r| r.row).collect();
            rows.sort();
            all.insert(table, rows);
        }
        Ok(all)
    })
    .await
    .unwrap()
}

/// What the bridge logs in this test process, as the service writes it (JSON lines, `info`
/// and the bridge's own `debug`), from the first call of `captured_logs` on. Tests looking
/// for what must never be logged share it, so every test running alongside is checked too.
#[derive(Clone)]
pub struct CapturedLogs(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

struct LogSink(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

impl Write for LogSink {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl CapturedLogs {
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }
}

pub fn captured_logs() -> CapturedLogs {
    static LOGS: std::sync::OnceLock<CapturedLogs> = std::sync::OnceLock::new();
    LOGS.get_or_init(|| {
        let buffer = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let env = [
            ("BYOC__TELEMETRY__LOG_FORMAT".to_owned(), "json".to_owned()),
            ("BYOC__TELEMETRY__LOG_FILTER".to_owned(), "info,byoc_bridge=debug".to_owned()),
        ];
        let settings = Settings::load_from(&env).expect("log settings");
        let sink = buffer.clone();
        byoc_bridge::telemetry::init(&settings.telemetry, move || LogSink(sink.clone()));
        CapturedLogs(buffer)
    })
    .clone()
}
