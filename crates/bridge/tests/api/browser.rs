//! Headless Chromium (Debian's `chromium` and `chromium-driver`, installed by `.ci/run`)
//! driven through chromedriver. Without them the browser tests print SKIPPED and pass,
//! except under `CI=true`. Screenshots go to `target/test-artifacts/<test>/`.

use std::os::unix::process::CommandExt;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fantoccini::{Client, ClientBuilder, Locator};

const CHROMEDRIVER: &str = "/usr/bin/chromedriver";
const CHROMIUM: &str = "/usr/bin/chromium";

pub struct Browser {
    pub client: Client,
    driver: Child,
    artifacts: std::path::PathBuf,
    shots: usize,
}

impl Browser {
    /// A headless browser, or `None` (test skipped) where Chromium is not installed.
    pub async fn start(test: &str) -> Option<Self> {
        Self::start_sized(test, 1280, 1200).await
    }

    /// A browser whose window is `width` × `height` pixels (400 wide: a Salesforce side panel).
    pub async fn start_sized(test: &str, width: u32, height: u32) -> Option<Self> {
        if !std::path::Path::new(CHROMEDRIVER).exists() || !std::path::Path::new(CHROMIUM).exists() {
            assert!(
                std::env::var("CI").as_deref() != Ok("true"),
                "CI=true but Chromium is missing: install chromium and chromium-driver"
            );
            eprintln!("SKIPPED {test}: Chromium is not installed (apt-get install chromium chromium-driver)");
            return None;
        }
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        // Its own process group: dropping the browser ends chromedriver and Chromium together,
        // even when a test fails half-way.
        let driver = Command::new(CHROMEDRIVER)
            .process_group(0)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start chromedriver");
        let mut options = serde_json::json!({
            "binary": CHROMIUM,
            "args": ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                     format!("--window-size={},{height}", width.max(500)), "--lang=en-GB"]
        });
        // Chromium's windows are at least 500 px wide: a narrower viewport is emulated.
        if width < 500 {
            options["mobileEmulation"] =
                serde_json::json!({ "deviceMetrics": { "width": width, "height": height, "pixelRatio": 1.0 } });
        }
        let caps: serde_json::Map<String, serde_json::Value> =
            serde_json::from_value(serde_json::json!({ "browserName": "chrome", "goog:chromeOptions": options }))
                .unwrap();
        // chromedriver takes a moment to listen: retry the session for a few seconds.
        let deadline = Instant::now() + Duration::from_secs(20);
        let client = loop {
            match ClientBuilder::native().capabilities(caps.clone()).connect(&format!("http://127.0.0.1:{port}")).await
            {
                Ok(client) => break client,
                Err(e) => {
                    assert!(Instant::now() < deadline, "chromedriver did not start: {e}");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
        };
        let artifacts = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target/test-artifacts").join(test);
        // Only this run's screenshots: an earlier run's, numbered otherwise, would mislead.
        let _ = std::fs::remove_dir_all(&artifacts);
        std::fs::create_dir_all(&artifacts).unwrap();
        Some(Self { client, driver, artifacts, shots: 0 })
    }

    pub async fn goto(&self, url: &str) {
        self.client.goto(url).await.unwrap();
    }

    /// Replaces the value of the input or textarea called `name`.
    pub async fn fill(&self, name: &str, value: &str) {
        let field = self.client.find(Locator::Css(&format!("[name=\"{name}\"]"))).await.unwrap();
        field.clear().await.unwrap();
        field.send_keys(value).await.unwrap();
    }

    /// Clicks what matches `css`, and when that loads a new page, waits until it has loaded.
    pub async fn click(&self, css: &str) {
        let old = self.client.find(Locator::Css("html")).await.unwrap();
        self.client.find(Locator::Css(css)).await.unwrap_or_else(|e| panic!("{css}: {e}")).click().await.unwrap();
        let navigates = css.contains("button") || css.starts_with("a[");
        if !navigates {
            return;
        }
        let deadline = Instant::now() + Duration::from_secs(20);
        // The old page's root goes stale once the browser has replaced the document.
        while old.tag_name().await.is_ok() {
            assert!(Instant::now() < deadline, "{css} did not load a page");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        while self.client.execute("return document.readyState", vec![]).await.ok()
            != Some(serde_json::Value::from("complete"))
        {
            assert!(Instant::now() < deadline, "{css}: the page did not finish loading");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Chooses the file at `path` in the file input called `name`.
    pub async fn attach(&self, name: &str, path: &std::path::Path) {
        let field = self.client.find(Locator::Css(&format!("input[type=file][name=\"{name}\"]"))).await.unwrap();
        field.send_keys(&path.display().to_string()).await.unwrap();
    }

    /// The texts of every element matching `css`.
    pub async fn texts(&self, css: &str) -> Vec<String> {
        let mut out = Vec::new();
        for e in self.client.find_all(Locator::Css(css)).await.unwrap_or_default() {
            out.push(e.text().await.unwrap_or_default());
        }
        out
    }

    /// Asserts the page is `width` px wide and needs no sideways scrolling.
    pub async fn assert_fits(&self, width: u32) {
        let measured = self
            .client
            .execute("return [window.innerWidth, document.documentElement.scrollWidth]", vec![])
            .await
            .unwrap();
        assert_eq!(measured[0], serde_json::json!(width), "the viewport");
        assert!(measured[1].as_u64().unwrap() <= u64::from(width), "sideways scrolling: {measured}");
    }

    /// Submits the form posting to `action`.
    pub async fn submit(&self, action: &str) {
        self.click(&format!("form[action=\"{action}\"] button[type=submit]")).await;
    }

    pub async fn html(&self) -> String {
        self.client.source().await.unwrap()
    }

    /// The text of the element matching `css`, if there is one.
    pub async fn text(&self, css: &str) -> Option<String> {
        match self.client.find(Locator::Css(css)).await {
            Ok(e) => e.text().await.ok(),
            Err(_) => None,
        }
    }

    /// Saves a screenshot as `NN-name.png`.
    pub async fn screenshot(&mut self, name: &str) {
        self.shots += 1;
        let png = self.client.screenshot().await.unwrap();
        std::fs::write(self.artifacts.join(format!("{:02}-{name}.png", self.shots)), png).unwrap();
    }

    /// What `path` of `base` answers with the browser's session (a download the browser
    /// would save, such as the certificate).
    pub async fn download(&self, base: &str, path: &str) -> String {
        let cookie = self.cookie("byoc_session").await.expect("the browser holds the session");
        reqwest::Client::new()
            .get(format!("{base}{path}"))
            .header("Cookie", format!("byoc_session={cookie}"))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    }

    /// The value of the session cookie the browser holds.
    pub async fn cookie(&self, name: &str) -> Option<String> {
        self.client.get_named_cookie(name).await.ok().map(|c| c.value().to_owned())
    }

    pub async fn close(self) {
        let _ = self.client.clone().close().await;
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        let group = format!("-{}", self.driver.id());
        let _ = Command::new("kill").args(["-TERM", "--", &group]).status();
        let _ = self.driver.wait();
    }
}
