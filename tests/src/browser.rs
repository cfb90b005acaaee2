//! A headless Chromium (Debian's, which `scripts/ensure-deps` installs) driven through
//! ChromeDriver's W3C WebDriver API, JSON over HTTP on loopback: open a page, read it,
//! click an element, take a screenshot. The driver and its browser run in a process group
//! of their own, killed whole when the `Browser` is dropped.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use anyhow::{bail, Context};
use serde_json::{json, Value};

use crate::wait_for;

/// The W3C name of an element reference in a reply.
const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";

pub struct Browser {
    driver: Child,
    port: u16,
    session: String,
    _profile: tempfile::TempDir,
}

impl Browser {
    /// Starts ChromeDriver and a headless Chromium that accepts the test's self-signed
    /// certificates and makes no connection of its own beyond loopback.
    pub async fn start() -> anyhow::Result<Browser> {
        let port = std::net::TcpListener::bind("127.0.0.1:0")?
            .local_addr()?
            .port();
        let driver = {
            use std::os::unix::process::CommandExt;
            Command::new("chromedriver")
                .arg(format!("--port={port}"))
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .process_group(0)
                .spawn()
                .context(
                    "chromedriver (Debian's chromium-driver; scripts/ensure-deps installs it)",
                )?
        };
        let profile = tempfile::tempdir()?;
        let mut browser = Browser {
            driver,
            port,
            session: String::new(),
            _profile: profile,
        };
        wait_for("chromedriver answers", Duration::from_secs(20), || async {
            let status = browser.call("GET", "/status", None).await.ok()?;
            status["ready"].as_bool().filter(|r| *r)
        })
        .await?;
        let args = [
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--window-size=1100,800",
        ]
        .map(String::from)
        .into_iter()
        .chain([format!(
            "--user-data-dir={}",
            browser._profile.path().display()
        )])
        .collect::<Vec<_>>();
        let capabilities = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "acceptInsecureCerts": true,
            "goog:chromeOptions": {"binary": "/usr/bin/chromium", "args": args},
        }}});
        let session = browser.call("POST", "/session", Some(capabilities)).await?;
        browser.session = session["sessionId"]
            .as_str()
            .context("no session id")?
            .to_owned();
        Ok(browser)
    }

    /// One WebDriver call: the reply's `value`, or its error.
    async fn call(&self, method: &str, path: &str, body: Option<Value>) -> anyhow::Result<Value> {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let body = body.map(|b| b.to_string()).unwrap_or_default();
        let mut s = tokio::net::TcpStream::connect(("127.0.0.1", self.port)).await?;
        let request = format!(
            "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{}\r\nConnection: close\r\n\
             Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
            self.port,
            body.len()
        );
        s.write_all(request.as_bytes()).await?;
        // ChromeDriver keeps the connection open: the body is as long as it says.
        let read = async {
            let mut raw = Vec::new();
            let mut chunk = [0u8; 16 * 1024];
            loop {
                let text = String::from_utf8_lossy(&raw).into_owned();
                if let Some((head, body)) = text.split_once("\r\n\r\n") {
                    let length = head
                        .lines()
                        .filter_map(|l| l.split_once(':'))
                        .find(|(n, _)| n.trim().eq_ignore_ascii_case("content-length"))
                        .and_then(|(_, v)| v.trim().parse::<usize>().ok());
                    if length.is_some_and(|n| body.len() >= n) {
                        return anyhow::Ok(body.to_owned());
                    }
                }
                let n = s.read(&mut chunk).await?;
                if n == 0 {
                    let text = String::from_utf8_lossy(&raw).into_owned();
                    let (_, body) = text.split_once("\r\n\r\n").context("no end of headers")?;
                    return Ok(body.to_owned());
                }
                raw.extend_from_slice(&chunk[..n]);
            }
        };
        let json = tokio::time::timeout(Duration::from_secs(60), read)
            .await
            .context("no WebDriver reply within 60 s")??;
        let reply: Value = serde_json::from_str(&json).context("a reply that is not JSON")?;
        let value = reply["value"].clone();
        if let Some(error) = value["error"].as_str() {
            bail!("WebDriver {method} {path}: {error}: {}", value["message"]);
        }
        Ok(value)
    }

    fn at(&self, rest: &str) -> String {
        format!("/session/{}{rest}", self.session)
    }

    pub async fn goto(&self, url: &str) -> anyhow::Result<()> {
        self.call("POST", &self.at("/url"), Some(json!({"url": url})))
            .await
            .map(drop)
    }

    pub async fn url(&self) -> anyhow::Result<String> {
        let v = self.call("GET", &self.at("/url"), None).await?;
        Ok(v.as_str().unwrap_or_default().to_owned())
    }

    /// The page's HTML as the browser holds it now.
    pub async fn source(&self) -> anyhow::Result<String> {
        let v = self.call("GET", &self.at("/source"), None).await?;
        Ok(v.as_str().unwrap_or_default().to_owned())
    }

    /// The page once it holds `text` (a click's navigation may end after the click's
    /// answer), or an error naming what the page held at the deadline.
    pub async fn page_with(&self, text: &str) -> anyhow::Result<String> {
        let found = wait_for(
            &format!("a page with `{text}`"),
            Duration::from_secs(15),
            || async {
                let page = self.source().await.ok()?;
                page.contains(text).then_some(page)
            },
        )
        .await;
        match found {
            Ok(page) => Ok(page),
            Err(e) => bail!("{e}; the page: {}", self.source().await.unwrap_or_default()),
        }
    }

    /// Runs `script` in the page (WebDriver's scripts are not the page's: its CSP does not
    /// stop them).
    pub async fn run_script(&self, script: &str) -> anyhow::Result<Value> {
        let body = json!({"script": script, "args": []});
        self.call("POST", &self.at("/execute/sync"), Some(body))
            .await
    }

    /// Clicks the first element `css` selects.
    pub async fn click(&self, css: &str) -> anyhow::Result<()> {
        let find = json!({"using": "css selector", "value": css});
        let found = self.call("POST", &self.at("/element"), Some(find)).await?;
        let id = found[ELEMENT]
            .as_str()
            .with_context(|| format!("no element reference in {found}"))?;
        let path = self.at(&format!("/element/{id}/click"));
        self.call("POST", &path, Some(json!({}))).await.map(drop)
    }

    /// Saves a PNG of the viewport to `path`.
    pub async fn screenshot(&self, path: &Path) -> anyhow::Result<()> {
        use base64::Engine;
        let v = self.call("GET", &self.at("/screenshot"), None).await?;
        let png = base64::engine::general_purpose::STANDARD.decode(v.as_str().unwrap_or(""))?;
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        std::fs::write(path, png)?;
        Ok(())
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        // The driver's group holds the browser too: both go.
        let group = -(self.driver.id() as i32);
        // SAFETY: kill(2) on a process group this test started; no memory is touched.
        unsafe {
            libc::kill(group, libc::SIGKILL);
        }
        let _ = self.driver.wait();
    }
}
