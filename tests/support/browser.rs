//! A headless Chromium for the console's browser tests, driven through WebDriver (Debian's
//! `chromium` and `chromium-driver`, installed here when missing, as `scripts/test` installs
//! PostgreSQL). One browser at a time on the whole test binary (`Browser::start` waits its turn);
//! every wait is explicit: poll for a condition until a deadline, never sleep.
#![allow(dead_code)]

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use fantoccini::elements::Element;
use fantoccini::{Client, ClientBuilder, Locator};
use tokio::sync::{Mutex, MutexGuard};

/// How long any one wait may take before the test fails.
pub const DEADLINE: Duration = Duration::from_secs(30);

fn turn() -> &'static Mutex<()> {
    static TURN: OnceLock<Mutex<()>> = OnceLock::new();
    TURN.get_or_init(|| Mutex::new(()))
}

fn installed() -> bool {
    Command::new("chromedriver")
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// Installs Debian's chromium and chromium-driver unless chromedriver is already there.
fn ensure_installed() {
    static ONCE: OnceLock<()> = OnceLock::new();
    ONCE.get_or_init(|| {
        if installed() {
            return;
        }
        eprintln!("browser tests: installing chromium and chromium-driver from Debian's packages");
        let apt = |args: &[&str]| {
            Command::new("apt-get")
                .args(args)
                .env("DEBIAN_FRONTEND", "noninteractive")
                .status()
                .is_ok_and(|s| s.success())
        };
        let _ = apt(&["update", "-qq"]);
        assert!(
            apt(&["install", "-y", "-qq", "chromium", "chromium-driver"]),
            "could not install chromium and chromium-driver (apt-get install)"
        );
        assert!(installed(), "chromedriver is still not on PATH");
    });
}

/// The cadence of an explicit wait: look again every 100 ms until the condition holds or the
/// deadline passes.
fn poll() -> tokio::time::Interval {
    tokio::time::interval(Duration::from_millis(100))
}

/// Where the tests write screenshots.
pub fn screenshot_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/screenshots")
}

/// A running chromedriver with one headless Chromium session.
pub struct Browser {
    pub client: Client,
    driver: Child,
    _turn: MutexGuard<'static, ()>,
}

impl Browser {
    /// Waits for the browser's turn, then starts chromedriver on a free port and a session.
    pub async fn start() -> Self {
        let turn = turn().lock().await;
        ensure_installed();
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let driver = Command::new("chromedriver")
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("chromedriver starts");
        let deadline = Instant::now() + DEADLINE;
        let mut poll = poll();
        while tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_err()
        {
            assert!(Instant::now() < deadline, "chromedriver did not listen");
            poll.tick().await;
        }
        let mut caps = serde_json::Map::new();
        caps.insert(
            "goog:chromeOptions".to_owned(),
            serde_json::json!({"args": [
                "--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                "--ignore-certificate-errors", "--window-size=1366,900", "--lang=en-GB",
                "--no-first-run", "--disable-extensions"
            ]}),
        );
        caps.insert("acceptInsecureCerts".to_owned(), serde_json::json!(true));
        let connector = hyper_util::client::legacy::connect::HttpConnector::new();
        let client = ClientBuilder::new(connector)
            .capabilities(caps)
            .connect(&format!("http://127.0.0.1:{port}"))
            .await
            .expect("a WebDriver session");
        Self {
            client,
            driver,
            _turn: turn,
        }
    }

    pub async fn goto(&self, url: &str) {
        self.client.goto(url).await.unwrap();
    }

    /// Waits until an element matching `css` is on the page.
    pub async fn wait_for(&self, css: &str) -> Element {
        match self
            .client
            .wait()
            .at_most(DEADLINE)
            .every(Duration::from_millis(100))
            .for_element(Locator::Css(css))
            .await
        {
            Ok(element) => element,
            Err(e) => panic!(
                "no element {css} within {DEADLINE:?}: {e}; {}",
                self.describe().await
            ),
        }
    }

    /// The current URL and the start of the page, for a failure message.
    pub async fn describe(&self) -> String {
        let url = self.client.current_url().await.map(|u| u.to_string());
        let page = self.client.source().await.unwrap_or_default();
        format!(
            "at {url:?}: {}",
            page.chars().take(3000).collect::<String>()
        )
    }

    /// Waits until the text of the element matching `css` satisfies `ready`; returns it.
    pub async fn wait_for_text(&self, css: &str, ready: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + DEADLINE;
        let mut poll = poll();
        let mut last = String::new();
        loop {
            if let Ok(element) = self.client.find(Locator::Css(css)).await {
                if let Ok(text) = element.text().await {
                    if ready(&text) {
                        return text;
                    }
                    last = text;
                }
            }
            if Instant::now() >= deadline {
                let url = self.client.current_url().await.map(|u| u.to_string());
                let page = self.client.source().await.unwrap_or_default();
                panic!(
                    "{css} did not get the expected text within {DEADLINE:?}; last: {last:?}; \
                     at {url:?}: {}",
                    page.chars().take(3000).collect::<String>()
                );
            }
            poll.tick().await;
        }
    }

    /// Waits until the browser is at a URL whose path is `path`.
    pub async fn wait_for_path(&self, path: &str) {
        let deadline = Instant::now() + DEADLINE;
        let mut poll = poll();
        loop {
            let url = self.client.current_url().await.unwrap();
            if url.path() == path {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "still at {url}, not {path}, after {DEADLINE:?}"
            );
            poll.tick().await;
        }
    }

    pub async fn refresh_page(&self) {
        self.client.refresh().await.unwrap();
    }

    pub async fn find(&self, css: &str) -> Element {
        match self.client.find(Locator::Css(css)).await {
            Ok(element) => element,
            Err(e) => panic!("no element {css}: {e}; {}", self.describe().await),
        }
    }

    pub async fn exists(&self, css: &str) -> bool {
        !self
            .client
            .find_all(Locator::Css(css))
            .await
            .unwrap()
            .is_empty()
    }

    pub async fn click(&self, css: &str) {
        self.find(css).await.click().await.unwrap();
    }

    pub async fn text(&self, css: &str) -> String {
        self.find(css).await.text().await.unwrap()
    }

    /// Clears the field matching `css` and types `text` into it.
    pub async fn fill(&self, css: &str, text: &str) {
        let field = self.find(css).await;
        field.clear().await.unwrap();
        field.send_keys(text).await.unwrap();
    }

    /// Picks the option with value `value` of the select matching `css`.
    pub async fn select(&self, css: &str, value: &str) {
        self.find(css).await.select_by_value(value).await.unwrap();
    }

    /// The whole page's visible text.
    pub async fn body(&self) -> String {
        self.text("body").await
    }

    /// Saves a screenshot of the window as `target/screenshots/{name}.png`.
    pub async fn screenshot(&self, name: &str) -> PathBuf {
        let png = self.client.screenshot().await.unwrap();
        let dir = screenshot_dir();
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join(format!("{name}.png"));
        std::fs::write(&path, png).unwrap();
        path
    }

    /// The value of the session cookie the browser holds for the console.
    pub async fn cookie(&self, name: &str) -> String {
        self.client
            .get_named_cookie(name)
            .await
            .unwrap()
            .value()
            .to_owned()
    }

    /// Signs in through the console's sign-in page and the Entra emulator's form, and waits to
    /// be back at `/`.
    pub async fn sign_in(&self, base: &str, username: &str) {
        self.goto(&format!("{base}/")).await;
        self.wait_for_path("/sign-in").await;
        self.click("a[href^='/auth/sign-in']").await;
        self.wait_for("input[name=username]").await;
        self.fill("input[name=username]", username).await;
        self.click("button[type=submit]").await;
        self.wait_for("#signed-in-as").await;
        self.wait_for_path("/").await;
    }

    pub async fn stop(mut self) {
        let _ = self.client.clone().close().await;
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}
