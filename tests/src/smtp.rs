//! Python's smtplib as a real SMTP client (`tests/py/smtp_send.py`): what it saw at each
//! step of sending one message, optionally after STARTTLS.

use std::process::Command;

/// What Python's smtplib saw, step by step (see tests/py/smtp_send.py).
#[derive(Debug, serde::Deserialize)]
pub struct SmtpResult {
    pub ehlo: Option<(u16, String)>,
    pub mail: Option<(u16, String)>,
    #[serde(default)]
    pub rcpt: Vec<(u16, String)>,
    pub data: Option<(u16, String)>,
    pub disconnected: Option<String>,
    pub starttls: Option<(u16, String)>,
    /// The reply to AUTH (0 when the server offered none).
    pub auth: Option<(u16, String)>,
    pub cipher: Option<String>,
    /// The SHA-256 of the certificate the server presented (hex), over TLS.
    #[serde(default)]
    pub peer_cert_sha256: Option<String>,
}

impl SmtpResult {
    /// The queue id the `250` to DATA names (its last word), asserting it was a `250`.
    pub fn queue_id(&self) -> String {
        let (code, text) = self.data.clone().unwrap_or_default();
        assert_eq!(code, 250, "{self:?}");
        text.rsplit(' ').next().unwrap_or_default().to_owned()
    }
}

/// Sends one message with Python's smtplib (a real SMTP client).
pub fn smtplib_send(host: &str, port: u16, from: &str, rcpts: &[&str], body: &[u8]) -> SmtpResult {
    smtplib_send_with(host, port, from, rcpts, body, &SmtpOptions::default())
}

/// How `smtplib_send_with` talks to the server.
#[derive(Debug, Clone, Default)]
pub struct SmtpOptions {
    /// STARTTLS before MAIL FROM.
    pub starttls: bool,
    /// The name given in EHLO (`client.example` when `None`).
    pub helo: Option<String>,
    /// AUTH with this login and password before MAIL FROM.
    pub login: Option<(String, String)>,
    /// TLS from the first byte (port 465) instead of plain text.
    pub implicit_tls: bool,
    /// Connect from this local address (any of 127/8), as a client on another network.
    pub source: Option<String>,
}

/// `smtplib_send`, with the session shaped by `options`.
pub fn smtplib_send_with(
    host: &str,
    port: u16,
    from: &str,
    rcpts: &[&str],
    body: &[u8],
    options: &SmtpOptions,
) -> SmtpResult {
    let dir = tempfile::tempdir().expect("tempdir");
    let body_file = dir.path().join("body.eml");
    std::fs::write(&body_file, body).expect("write body");
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/py/smtp_send.py");
    let mut cmd = Command::new("python3");
    if options.starttls {
        cmd.env("PEAGE_STARTTLS", "1");
    }
    if let Some(helo) = &options.helo {
        cmd.env("PEAGE_HELO", helo);
    }
    if options.implicit_tls {
        cmd.env("PEAGE_IMPLICIT_TLS", "1");
    }
    if let Some((login, password)) = &options.login {
        cmd.env("PEAGE_LOGIN", login)
            .env("PEAGE_PASSWORD", password);
    }
    let out = cmd
        .arg(script)
        .arg(host)
        .arg(port.to_string())
        .arg(from)
        .arg(rcpts.join(","))
        .arg(&body_file)
        .args(&options.source)
        .output()
        .expect("run python3");
    assert!(
        out.status.success(),
        "smtp_send.py failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("smtp_send.py prints JSON")
}

impl crate::cluster::TestCluster {
    /// Sends every one of `bodies` from `from` to `rcpt` into node `node`, over `sessions`
    /// SMTP sessions at once from the cluster's client addresses (mail-send, as sending
    /// MTAs would); each session sends its share one message after another. Fails on the
    /// first message that is not accepted.
    pub async fn send_all(
        &self,
        node: usize,
        from: &str,
        rcpt: &str,
        bodies: Vec<Vec<u8>>,
        sessions: usize,
    ) -> anyhow::Result<()> {
        let (host, port) = self.nodes[node].smtp_addr();
        let sessions = sessions.max(1);
        let mut shares: Vec<Vec<Vec<u8>>> = vec![Vec::new(); sessions];
        for (i, body) in bodies.into_iter().enumerate() {
            shares[i % sessions].push(body);
        }
        let mut tasks = tokio::task::JoinSet::new();
        for (n, share) in shares.into_iter().enumerate() {
            let source: std::net::IpAddr = self.client_source(n as u64).parse()?;
            let (host, from, rcpt) = (host.clone(), from.to_owned(), rcpt.to_owned());
            tasks.spawn(async move {
                let timeout = std::time::Duration::from_secs(30);
                let mut client =
                    crate::mta::connect(&host, port, source, "mta.client.example", timeout).await?;
                for body in share {
                    let message = mail_send::smtp::message::Message::new(
                        from.as_str(),
                        [rcpt.as_str()],
                        body.as_slice(),
                    );
                    client.send(message).await?;
                }
                let _ = client.quit().await;
                anyhow::Ok(())
            });
        }
        while let Some(done) = tasks.join_next().await {
            done??;
        }
        Ok(())
    }

    /// Sends one message with smtplib to node `node`'s SMTP port.
    pub fn smtp_send(&self, node: usize, from: &str, rcpts: &[&str], body: &[u8]) -> SmtpResult {
        let (host, port) = self.nodes[node].smtp_addr();
        smtplib_send(&host, port, from, rcpts, body)
    }
}
