//! The real binary: serving, SIGTERM, configuration errors, the `app` commands.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::Duration;

use crate::helpers::TestDb;

pub(crate) const BIN: &str = env!("CARGO_BIN_EXE_byoc-bridge");

crate::on_both_backends!(serves_and_exits_cleanly_on_sigterm, cli_apply_is_idempotent);

pub(crate) fn command(test_db: &TestDb, args: &[&str]) -> Command {
    command_of(test_db, BIN, args)
}

/// `program args`, with the test's database and nothing else of this process's environment.
pub(crate) fn command_of(test_db: &TestDb, program: &str, args: &[&str]) -> Command {
    let mut cmd = Command::new(program);
    cmd.args(args)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .envs(test_db.env())
        .env("BYOC__TELEMETRY__LOG_FORMAT", "json")
        .env("BYOC__TELEMETRY__LOG_FILTER", "info")
        .current_dir(test_db.dir.path());
    cmd
}

async fn serves_and_exits_cleanly_on_sigterm(test_db: TestDb) {
    // With the job worker on: it, too, must stop at a safe point.
    // Listening on every address, as in a container: the links printed must still be ones a
    // browser can open.
    let mut child = command(&test_db, &["serve"])
        .env("BYOC__WORKER__ENABLED", "true")
        .env("BYOC__SERVER__HOST", "0.0.0.0")
        .stderr(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let mut stdout = BufReader::new(child.stdout.take().unwrap());

    // The log line announcing the port (port 0 = the OS picked one).
    let (port_tx, port_rx) = std::sync::mpsc::channel();
    let reader = std::thread::spawn(move || {
        let mut lines = Vec::new();
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if let Ok(v) = serde_json::from_str::<serde_json::Value>(&line)
                && let Some(port) = v["port"].as_u64()
            {
                let _ = port_tx.send(port);
            }
            lines.push(line);
        }
        lines
    });
    let port = port_rx.recv_timeout(Duration::from_secs(30)).expect("service announced its port");
    // With JSON logs the one-time setup link is one JSON event on standard output.
    let mut first = String::new();
    stdout.read_line(&mut first).unwrap();
    let event: serde_json::Value = serde_json::from_str(&first).unwrap_or_else(|e| panic!("{e}: {first}"));
    assert_eq!(event["event"], "setup_link", "{event}");
    let link = event["url"].as_str().unwrap().to_owned();
    assert!(link.starts_with(&format!("http://localhost:{port}/setup/bootstrap?token=")), "{link}");
    let token = link.split("token=").nth(1).unwrap().to_owned();

    let client = reqwest::Client::builder().pool_max_idle_per_host(0).build().unwrap();
    let health = client.get(format!("http://127.0.0.1:{port}/healthz")).send().await.unwrap();
    assert_eq!(health.status(), 200);
    let ready = client.get(format!("http://127.0.0.1:{port}/readyz")).send().await.unwrap();
    assert_eq!(ready.status(), 200);

    let probe = command(&test_db, &["healthcheck"]).env("BYOC__SERVER__PORT", port.to_string()).output().unwrap();
    assert_eq!(probe.status.code(), Some(0), "the container health probe sees it healthy");

    let kill = Command::new("kill").args(["-TERM", &child.id().to_string()]).status().unwrap();
    assert!(kill.success());
    let status = tokio::task::spawn_blocking(move || child.wait()).await.unwrap().unwrap();
    assert_eq!(status.code(), Some(0), "SIGTERM is a clean exit");
    let lines = reader.join().unwrap();
    assert!(lines.iter().any(|l| l.contains("received SIGTERM")), "{lines:#?}");
    assert!(lines.iter().any(|l| l.contains("job worker stopped")), "{lines:#?}");
    assert!(lines.last().is_some_and(|l| l.contains("stopped")), "{lines:#?}");
    assert!(lines.iter().all(|l| !l.contains(&token)), "the setup token never reaches the log");
    let listening = lines.iter().find(|l| l.contains("byoc-bridge listening on")).expect("the listening line");
    assert!(listening.contains(&format!(r#""url":"http://localhost:{port}""#)), "a reachable URL: {listening}");
    assert!(client.get(format!("http://127.0.0.1:{port}/healthz")).send().await.is_err(), "no longer listening");
    let probe = command(&test_db, &["healthcheck"]).env("BYOC__SERVER__PORT", port.to_string()).output().unwrap();
    assert_eq!(probe.status.code(), Some(1));
}

async fn cli_apply_is_idempotent(test_db: TestDb) {
    let dir = test_db.dir.path();
    std::fs::write(dir.join("key.pem"), crate::helpers::test_private_key()).unwrap();
    std::fs::write(
        dir.join("app.toml"),
        "[[app]]\nname = \"acme\"\nprivate_key_file = \"key.pem\"\norg_id = \"00D5g00000AbCdE\"\n\n\
         [[app.infobip_account]]\nname = \"main\"\napi_key_env = \"KEY\"\n\n\
         [[app.sender]]\nnumber = \"447860099299\"\naccount = \"main\"\n",
    )
    .unwrap();

    let run = |args: &[&str]| {
        let out = command(&test_db, args).env("KEY", "secret-api-key").output().unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let (code, out, err) = run(&["app", "apply", "app.toml"]);
    assert_eq!(code, Some(0), "{out}{err}");
    assert!(out.contains("app acme: created") && out.ends_with("applied\n"), "{out}");

    let (code, out, _) = run(&["app", "apply", "app.toml"]);
    assert_eq!(code, Some(0));
    assert!(out.ends_with("nothing to change\n"), "{out}");

    let (code, out, _) = run(&["app", "show", "acme"]);
    assert_eq!(code, Some(0));
    assert!(out.contains("private_key                 set"), "{out}");
    assert!(!out.contains("secret-api-key") && !out.contains("PRIVATE KEY"), "secrets are never printed by show");

    let (code, out, _) = run(&["app", "update", "acme", "--welcome-message", "Hello"]);
    assert_eq!((code, out.as_str()), (Some(0), "app acme: updated (welcome_message)\n"));

    let (code, _, err) = run(&["app", "update", "acme", "--status", "active"]);
    assert_eq!(code, Some(1));
    assert!(err.contains("`status`: an active app needs"), "{err}");

    let (code, out, _) = run(&["app", "list"]);
    assert_eq!(code, Some(0));
    assert!(out.contains("\tacme\tdraft"), "{out}");
}

#[test]
fn configuration_errors_name_the_key_and_exit_2() {
    let test_db = TestDb::sqlite();
    for (var, value, expected) in [
        ("BYOC__SERVER__PORT", "eighty", "`server.port`"),
        ("BYOC__DATABASE__URL", "mysql://db/x", "`database.url`"),
        ("BYOC__WORKER__CONCURENCY", "3", "`worker.concurency`: unknown setting"),
        ("BYOC__SECURITY__MASTER_KEY", "c2hvcnQ=", "`security.master_key`"),
        ("BYOC__TELEMETRY__LOG_FORMAT", "xml", "`telemetry.log_format`"),
    ] {
        let out = command(&test_db, &["check-config"]).env(var, value).output().unwrap();
        assert_eq!(out.status.code(), Some(2), "{var}={value}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(stderr.lines().count(), 1, "one line: {stderr}");
        assert!(stderr.contains(expected), "{var}={value}: {stderr}");
    }
    let out = command(&test_db, &["check-config"]).output().unwrap();
    assert_eq!(out.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&out.stdout).contains("configuration is valid"));
}

/// Starts `byoc-bridge sim …`, returns the child and the base URL it announced.
fn start_simulator(args: &[&str]) -> (std::process::Child, String) {
    let test_db = TestDb::sqlite();
    let mut child = command(&test_db, args).stdout(Stdio::piped()).stderr(Stdio::null()).spawn().unwrap();
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    let mut first = String::new();
    stdout.read_line(&mut first).unwrap();
    // Keep reading, so the simulator's later output never meets a closed pipe.
    std::thread::spawn(move || std::io::copy(&mut stdout, &mut std::io::sink()));
    let url = first.split_whitespace().find(|w| w.starts_with("http://")).expect("announced URL").to_owned();
    (child, url)
}

fn stop(mut child: std::process::Child) -> Option<i32> {
    Command::new("kill").args(["-TERM", &child.id().to_string()]).status().unwrap();
    child.wait().unwrap().code()
}

#[tokio::test]
async fn simulators_run_as_their_own_processes() {
    let (infobip, url) =
        start_simulator(&["sim", "infobip", "--port", "0", "--api-key", "k1", "--sender", "447000000001"]);
    let balance = reqwest::Client::new()
        .get(format!("{url}/account/1/balance"))
        .header("Authorization", "App k1")
        .send()
        .await
        .unwrap();
    assert_eq!(balance.status(), 200);
    assert_eq!(stop(infobip), Some(0));

    let certificate = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/test_certificate.pem");
    let (salesforce, url) =
        start_simulator(&["sim", "salesforce", "--port", "0", "--pubsub-port", "0", "--certificate", certificate]);
    let state: serde_json::Value = reqwest::get(format!("{url}/__sim/state")).await.unwrap().json().await.unwrap();
    assert_eq!(state["org_id"], "00D5g00000SimOr");
    assert_eq!(state["channels"][0]["channel_definition"], "Bridge_WhatsApp");
    assert_eq!(stop(salesforce), Some(0));
}

/// Polls `url` until its text contains `needle` (the sandbox works in the background).
pub(crate) async fn until_page_contains(url: &str, needle: &str) -> String {
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    loop {
        let text = reqwest::get(url).await.unwrap().text().await.unwrap();
        if text.contains(needle) {
            return text;
        }
        assert!(std::time::Instant::now() < deadline, "{url} never showed {needle:?}:\n{text}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A running `byoc-bridge sandbox` and the links it printed.
pub(crate) struct Sandbox {
    pub child: std::process::Child,
    pub printed: String,
    _test_db: TestDb,
}

impl Sandbox {
    pub fn start() -> Self {
        Self::start_with(&[])
    }

    /// The sandbox with more flags (`--unconfigured`).
    pub fn start_with(flags: &[&str]) -> Self {
        let test_db = TestDb::sqlite();
        let mut args = vec!["sandbox", "--port", "0", "--salesforce-port", "0", "--infobip-port", "0"];
        args.extend_from_slice(flags);
        let mut child = command(&test_db, &args).stdout(Stdio::piped()).stderr(Stdio::null()).spawn().unwrap();
        let mut stdout = BufReader::new(child.stdout.take().unwrap());
        let mut printed = String::new();
        while !printed.contains("Stop with") {
            let mut line = String::new();
            assert!(stdout.read_line(&mut line).unwrap() > 0, "sandbox ended early: {printed}");
            printed.push_str(&line);
        }
        std::thread::spawn(move || std::io::copy(&mut stdout, &mut std::io::sink()));
        Self { child, printed, _test_db: test_db }
    }

    /// The link on the line that says `label`.
    pub fn link(&self, label: &str) -> String {
        let line =
            self.printed.lines().find(|l| l.contains(label)).unwrap_or_else(|| panic!("{label}: {}", self.printed));
        let start = line.find("http://").unwrap_or_else(|| panic!("no link: {line}"));
        line[start..].split(|c: char| c.is_whitespace() || c == '"').next().unwrap().to_owned()
    }

    /// SIGTERM, then its exit code.
    pub fn stop(mut self) -> Option<i32> {
        Command::new("kill").args(["-TERM", &self.child.id().to_string()]).status().unwrap();
        self.child.wait().unwrap().code()
    }
}

/// A test that fails half-way leaves no sandbox running behind it.
impl Drop for Sandbox {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[tokio::test]
async fn the_sandbox_carries_messages_both_ways() {
    let sandbox = Sandbox::start();
    let phone = sandbox.link("WhatsApp user");
    let agent = sandbox.link("as the agent");
    let client = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();

    let base = |u: &str| u.split("/__sim").next().unwrap().to_owned();
    let sent = client
        .post(format!("{}/__sim/phone/send", base(&phone)))
        .form(&[("user", "447700900123"), ("text", "Hello from WhatsApp")])
        .send()
        .await
        .unwrap();
    assert_eq!(sent.status(), 303);
    until_page_contains(&format!("{}/__sim/agent/list", base(&agent)), "447700900123").await;
    let state: serde_json::Value =
        reqwest::get(format!("{}/__sim/state", base(&agent))).await.unwrap().json().await.unwrap();
    let conversation = state["conversations"][0]["identifier"].as_str().unwrap().to_owned();
    until_page_contains(&format!("{}/__sim/agent/{conversation}/feed", base(&agent)), "Hello from WhatsApp").await;

    let reply = client
        .post(format!("{}/__sim/agent/{conversation}/text", base(&agent)))
        .form(&[("text", "Hi, this is Alex")])
        .send()
        .await
        .unwrap();
    assert_eq!(reply.status(), 303);
    until_page_contains(&format!("{}/__sim/phone/chat?user=447700900123", base(&phone)), "Hi, this is Alex").await;

    assert_eq!(sandbox.stop(), Some(0));
}

/// With no app, the sandbox prints the one-time setup link and where, in each simulator, the
/// admin does the vendors' part, with the values to type; each of them opens.
#[tokio::test]
async fn the_unconfigured_sandbox_prints_the_setup_link_and_every_value_to_type() {
    let sandbox = Sandbox::start_with(&["--unconfigured"]);
    let link = sandbox.link("one-time link to set up");
    let setup = sandbox.link("Salesforce Setup");
    let portal = sandbox.link("Infobip portal");
    for label in ["Org ID:", "My Domain URL:", "Integration user:", "Pub/Sub API endpoint:", "Infobip API key:"] {
        assert!(sandbox.printed.contains(label), "{label}: {}", sandbox.printed);
    }
    let client = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
    let first = client.get(&link).send().await.unwrap();
    assert_eq!(first.status(), 303, "the link signs in and opens the wizard");
    assert_eq!(first.headers()["location"], "/setup/connection");
    assert!(first.headers().contains_key("set-cookie"));
    let org = reqwest::get(&setup).await.unwrap().text().await.unwrap();
    assert!(org.contains("New Connected App") && org.contains("No connected app yet"), "{org}");
    let ib = reqwest::get(&portal).await.unwrap().text().await.unwrap();
    assert!(ib.contains("New subscription"), "{ib}");
    assert_eq!(sandbox.stop(), Some(0));
}

/// Waits (at most 20 s) until another process has made `ok` true.
async fn wait(what: &str, ok: impl Fn() -> bool) {
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while !ok() {
        assert!(std::time::Instant::now() < deadline, "timed out waiting until {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A `byoc-bridge serve` process, with what its log said about its port and subscription.
/// Both simulators and an active app in the test's database, for `serve` processes that
/// share `master_key` (each has a data directory of its own).
pub(crate) struct Provisioned {
    pub vendors: crate::bridge::Vendors,
    pub services: byoc_bridge::startup::Services,
    /// `BYOC__SECURITY__MASTER_KEY` for the processes.
    pub key_env: (&'static str, String),
    pub webhook_secret: String,
}

pub(crate) async fn provisioned(test_db: &TestDb) -> Provisioned {
    use secrecy::ExposeSecret;
    let vendors = crate::bridge::Vendors::start(byoc_sim::salesforce::SalesforceConfig::default()).await;
    let master_key = byoc_bridge::crypto::MasterKey::generate().unwrap().to_base64();
    let key_env = ("BYOC__SECURITY__MASTER_KEY", master_key.expose_secret().to_owned());
    let settings = test_db.settings_with(&[(key_env.0, key_env.1.as_str())]);
    let services = byoc_bridge::startup::Services::open(&settings).await.unwrap();
    let (_, webhook_secret) = vendors.provision(&services.db, services.cipher.clone()).await;
    Provisioned { vendors, services, key_env, webhook_secret }
}

pub(crate) struct Replica {
    pub child: std::process::Child,
    pub port: u16,
    pub owner: std::sync::Arc<std::sync::Mutex<Option<String>>>,
}

fn replica(test_db: &TestDb, env: &[(&str, String)]) -> Replica {
    serving(command(test_db, &["serve"]), test_db, env)
}

/// Starts `cmd` (a `serve`) with the worker and the subscription on, in a data directory of
/// its own; returns once it announced its port.
pub(crate) fn serving(cmd: Command, test_db: &TestDb, env: &[(&str, String)]) -> Replica {
    // Each replica has its own data directory; the shared master key comes from the environment.
    let data = test_db.dir.path().join(format!("replica-{}", uuid::Uuid::new_v4().simple()));
    serving_in(cmd, &data, env)
}

/// `serving` in the data directory `data` (a restart of the same replica uses the same one).
pub(crate) fn serving_in(mut cmd: Command, data: &std::path::Path, env: &[(&str, String)]) -> Replica {
    cmd.env("BYOC__WORKER__ENABLED", "true").env("BYOC__SALESFORCE__SUBSCRIBE", "true");
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.env("BYOC__SECURITY__DATA_DIR", data.display().to_string());
    let mut child = cmd.stderr(Stdio::piped()).stdout(Stdio::null()).spawn().unwrap();
    let stderr = child.stderr.take().unwrap();
    let (port_tx, port_rx) = std::sync::mpsc::channel();
    let owner: std::sync::Arc<std::sync::Mutex<Option<String>>> = std::sync::Arc::default();
    let seen_owner = owner.clone();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            let Ok(v) = serde_json::from_str::<serde_json::Value>(&line) else { continue };
            if let Some(port) = v["port"].as_u64() {
                let _ = port_tx.send(port as u16);
            }
            // The holder of the platform event's subscription (change events have their own).
            if v["message"] == "subscribed" && v["topic"].as_str().is_some_and(|t| t.starts_with("/event/")) {
                *seen_owner.lock().unwrap() = v["owner"].as_str().map(str::to_owned);
            }
        }
    });
    let port = port_rx.recv_timeout(Duration::from_secs(30)).expect("replica announced its port");
    Replica { child, port, owner }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_bridge_processes_on_one_postgres_send_each_reply_once_and_fail_over() {
    use crate::bridge::SENDER;
    use byoc_sim::infobip::webhooks::{inbound_envelope, inbound_result};
    let Some(test_db) = TestDb::postgres("process::two_bridge_processes").await else { return };
    let Provisioned { vendors, services, key_env, webhook_secret: secret } = provisioned(&test_db).await;

    let env = [
        key_env.clone(),
        ("BYOC__SALESFORCE__SUBSCRIPTION_LEASE_SECS", "1".to_owned()),
        ("BYOC__TELEMETRY__LOG_FILTER", "info".to_owned()),
    ];
    let a = replica(&test_db, &env);
    let b = replica(&test_db, &env);
    let user = "447700901300";
    let body = inbound_envelope(vec![inbound_result(
        user,
        SENDER,
        "wamid.rep.1",
        serde_json::json!({ "type": "TEXT", "text": "hi" }),
    )])
    .to_string();
    let signature = byoc_sim::infobip::webhooks::format_signature(
        byoc_sim::infobip::webhooks::HmacAlgorithm::HmacSha256,
        secret.as_bytes(),
        body.as_bytes(),
        byoc_sim::infobip::webhooks::Encoding::Hex,
        false,
    );
    let client = reqwest::Client::new();
    let res = client
        .post(format!("http://127.0.0.1:{}/api/infobip/inbound/messages", a.port))
        .header("X-Infobip-Signature", signature)
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);

    wait("the message reaches Salesforce", || vendors.sf.conversation_for(user).is_some()).await;
    let holders = || [&a, &b].iter().filter(|r| r.owner.lock().unwrap().is_some()).count();
    wait("one replica subscribes", || holders() == 1).await;
    let conversation = vendors.sf.conversation_for(user).unwrap().identifier;
    for i in 0..20 {
        vendors.sf.agent_send_text(&conversation, &format!("first {i:02}")).unwrap();
    }
    wait("the first replies arrive", || vendors.ib.sent().len() >= 20).await;
    // A holder killed between Infobip's answer and recording it would leave its job leased
    // (and resent later): kill only once the outbox is empty.
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    loop {
        let depth = services.db.run(|c| byoc_bridge::db::jobs::depth(c, byoc_bridge::db::now())).await.unwrap();
        if depth.due + depth.scheduled + depth.running == 0 {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "the outbox never emptied: {depth:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    // Kill the holder outright; the other replica takes the subscription over.
    let holder = |r: &Replica| r.owner.lock().unwrap().clone();
    assert_eq!(holders(), 1, "only one replica holds the subscription");
    let (mut dead, survivor) = if holder(&a).is_some() { (a, b) } else { (b, a) };
    dead.child.kill().unwrap();
    dead.child.wait().unwrap();
    wait("the survivor subscribes", || holder(&survivor).is_some()).await;
    for i in 0..20 {
        vendors.sf.agent_send_text(&conversation, &format!("second {i:02}")).unwrap();
    }
    wait("the second replies arrive", || vendors.ib.sent().len() >= 40).await;

    let texts: Vec<String> =
        vendors.ib.sent().iter().map(|m| m.body["content"]["text"].as_str().unwrap().to_owned()).collect();
    let expected: Vec<String> =
        (0..20).map(|i| format!("first {i:02}")).chain((0..20).map(|i| format!("second {i:02}"))).collect();
    assert_eq!(texts, expected, "each reply once, in order, across the failover");
    assert_eq!(stop(survivor.child), Some(0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_clean_stop_releases_the_subscription_so_the_standby_takes_over_before_the_lease_ends() {
    let Some(test_db) = TestDb::postgres("process::a_clean_stop_releases").await else { return };
    let Provisioned { vendors: _vendors, services, key_env, .. } = provisioned(&test_db).await;
    // A lease far longer than the waits below: only a release lets the standby in.
    let env = [key_env, ("BYOC__SALESFORCE__SUBSCRIPTION_LEASE_SECS", "120".to_owned())];
    let (a, b) = (replica(&test_db, &env), replica(&test_db, &env));
    let holder = |r: &Replica| r.owner.lock().unwrap().clone();
    wait("one replica subscribes", || holder(&a).is_some() || holder(&b).is_some()).await;
    let (stopping, standby) = if holder(&a).is_some() { (a, b) } else { (b, a) };
    let owners = || {
        services.db.run(|c| {
            use byoc_bridge::db::schema::event_cursors;
            use diesel::prelude::*;
            Ok(event_cursors::table.select(event_cursors::lease_owner).load::<Option<String>>(c)?)
        })
    };
    let stopped_owner = holder(&stopping).unwrap();
    assert!(owners().await.unwrap().contains(&Some(stopped_owner.clone())));
    assert_eq!(stop(stopping.child), Some(0), "SIGTERM: a clean stop");
    assert!(!owners().await.unwrap().contains(&Some(stopped_owner)), "the stopped replica let go of every lease");
    wait("the standby subscribes", || holder(&standby).is_some()).await;
    assert_eq!(stop(standby.child), Some(0));
}
