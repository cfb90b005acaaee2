//! The session driven through an in-memory stream: the protocol, relay control, limits and
//! abuse, without a network.

use std::net::IpAddr;
use std::sync::Mutex;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt, DuplexStream};

mod abuse;
mod submission;

use super::address::Recipient;
use super::connection::serve;
use super::*;
use crate::shutdown::Trigger;

/// Accepts recipients at `example.test` only and records what it is handed.
#[derive(Default)]
struct Recorder {
    messages: Mutex<Vec<(Envelope, Vec<u8>)>>,
    /// Refuse every transaction at MAIL FROM, as a node without a majority does.
    closed: std::sync::atomic::AtomicBool,
    /// The principal every client is trusted as (a platform MTA's network).
    trusted: Option<String>,
}

impl Acceptor for Recorder {
    fn check_sender(
        &self,
        _ip: IpAddr,
        _mail_from: &str,
        _login: Option<&str>,
    ) -> Result<(), Reply> {
        if self.closed.load(std::sync::atomic::Ordering::SeqCst) {
            return Err(Reply::new(451, "4.4.1 closed"));
        }
        Ok(())
    }

    async fn check_recipient(&self, rcpt: &Recipient, login: Option<&str>) -> Result<(), Reply> {
        if rcpt.domain == "example.test" || login.is_some() {
            Ok(())
        } else {
            Err(Reply::new(550, "5.7.1 Relaying denied"))
        }
    }

    async fn accept(&self, envelope: Envelope, message: Vec<u8>) -> Reply {
        self.messages.lock().unwrap().push((envelope, message));
        Reply::new(250, "2.0.0 Ok: queued as TEST")
    }

    fn trusted_principal(&self, _client_ip: IpAddr) -> Option<String> {
        self.trusted.clone()
    }

    async fn authenticate(&self, _ip: IpAddr, login: &str, password: &str) -> Result<(), Reply> {
        if (login, password) == ("alice@example.test", "s3cret") {
            Ok(())
        } else {
            Err(Reply::new(535, "5.7.8 Authentication credentials invalid"))
        }
    }
}

struct Client {
    io: DuplexStream,
    pending: Vec<u8>,
}

impl Client {
    async fn send(&mut self, bytes: &[u8]) {
        self.io.write_all(bytes).await.unwrap();
    }

    /// Reads one reply line (the last line of a multi-line reply), with a deadline.
    async fn line(&mut self) -> String {
        loop {
            let line = self.line_any().await;
            if line.as_bytes().get(3) != Some(&b'-') {
                return line;
            }
        }
    }

    /// Reads the next line, a multi-line reply's inner ones included.
    async fn line_any(&mut self) -> String {
        loop {
            if let Some(pos) = self.pending.windows(2).position(|w| w == b"\r\n") {
                let line: Vec<u8> = self.pending.drain(..pos + 2).collect();
                return String::from_utf8_lossy(&line[..pos]).into_owned();
            }
            let mut buf = [0u8; 4096];
            let n = tokio::time::timeout(Duration::from_secs(120), self.io.read(&mut buf))
                .await
                .expect("reply within 120 s")
                .unwrap();
            if n == 0 {
                return String::new();
            }
            self.pending.extend_from_slice(&buf[..n]);
        }
    }

    async fn cmd(&mut self, c: &str) -> String {
        self.send(format!("{c}\r\n").as_bytes()).await;
        self.line().await
    }
}

fn start(config: SessionConfig) -> (Client, Arc<Recorder>, Trigger, tokio::task::JoinHandle<()>) {
    start_in(config, Tls::Unavailable)
}

/// As `start`, the session standing at `tls` from its first byte.
fn start_in(
    config: SessionConfig,
    tls: Tls,
) -> (Client, Arc<Recorder>, Trigger, tokio::task::JoinHandle<()>) {
    start_for(config, tls, Recorder::default())
}

/// As `start_in`, handing the session to `rec`.
fn start_for(
    config: SessionConfig,
    tls: Tls,
    rec: Recorder,
) -> (Client, Arc<Recorder>, Trigger, tokio::task::JoinHandle<()>) {
    let (a, b) = tokio::io::duplex(1 << 20);
    let rec = Arc::new(rec);
    let (stop_tx, stop_rx) = Trigger::new();
    let r = rec.clone();
    let task = tokio::spawn(async move {
        let _ = serve(
            b,
            "192.0.2.10".parse().unwrap(),
            &config,
            &*r,
            tls,
            &super::admission::Ticket::unlisted(),
            stop_rx,
        )
        .await;
    });
    (
        Client {
            io: a,
            pending: Vec::new(),
        },
        rec,
        stop_tx,
        task,
    )
}

use std::sync::Arc;

#[tokio::test]
async fn a_message_goes_through_and_the_envelope_is_handed_over() {
    let (mut c, rec, _stop, _t) = start(SessionConfig::default());
    assert!(c.line().await.starts_with("220 localhost"));
    let ehlo = c.cmd("EHLO client.example").await;
    assert_eq!(ehlo, "250 SMTPUTF8");
    assert!(c
        .cmd("MAIL FROM:<a@sender.example>")
        .await
        .starts_with("250"));
    assert!(c.cmd("RCPT TO:<bob@Example.Test>").await.starts_with("250"));
    assert!(c.cmd("DATA").await.starts_with("354"));
    c.send(b"Subject: hi\r\n\r\n..leading dot\r\nbody\r\n.\r\n")
        .await;
    assert_eq!(c.line().await, "250 2.0.0 Ok: queued as TEST");
    assert!(c.cmd("QUIT").await.starts_with("221"));
    let m = rec.messages.lock().unwrap();
    assert_eq!(m.len(), 1);
    assert_eq!(m[0].0.mail_from, "a@sender.example");
    assert_eq!(m[0].0.rcpt_to[0].domain, "example.test");
    assert_eq!(m[0].0.helo, "client.example");
    assert_eq!(m[0].1, b"Subject: hi\r\n\r\n.leading dot\r\nbody\r\n");
}

#[tokio::test]
async fn relay_attempts_and_tricks_are_refused_and_nothing_is_handed_over() {
    let (mut c, rec, _stop, _t) = start(SessionConfig::default());
    c.line().await;
    c.cmd("EHLO x").await;
    c.cmd("MAIL FROM:<a@sender.example>").await;
    for rcpt in [
        "<someone@remote.example>",
        "<user%remote.example@example.test>",
        "<\"user@remote.example\"@example.test>",
        "<@example.test:user@remote.example>",
        "<user@remote.example@example.test>",
        "<user@[192.0.2.1]>",
        "<user@example.test.>",
        "<user@REMOTE.example>",
    ] {
        let r = c.cmd(&format!("RCPT TO:{rcpt}")).await;
        assert!(r.starts_with("550") || r.starts_with("501"), "{rcpt}: {r}");
    }
    assert!(
        c.cmd("DATA").await.starts_with("554"),
        "no recipient was accepted"
    );
    assert!(rec.messages.lock().unwrap().is_empty());
}

#[tokio::test]
async fn quoted_local_parts_that_would_inject_or_traverse_get_553() {
    let (mut c, rec, _stop, _t) = start(SessionConfig::default());
    c.line().await;
    c.cmd("EHLO x").await;
    let r = c
        .cmd(r#"MAIL FROM:<"a> NOTIFY=NEVER"@sender.example>"#)
        .await;
    assert!(r.starts_with("553 5.1.7"), "{r}");
    assert!(c
        .cmd("MAIL FROM:<a@sender.example>")
        .await
        .starts_with("250"));
    for rcpt in [
        r#"<"bob> NOTIFY=NEVER"@example.test>"#,
        r#"<"../../../x"@example.test>"#,
        r#"<"bob smith"@example.test>"#,
    ] {
        let r = c.cmd(&format!("RCPT TO:{rcpt}")).await;
        assert!(r.starts_with("553 5.1.3"), "{rcpt}: {r}");
    }
    // A bare postmaster names no mailbox of the many domains the cluster is MX for.
    let r = c.cmd("RCPT TO:<Postmaster>").await;
    assert!(
        r.starts_with("553 5.1.3") && r.contains("postmaster@DOMAIN"),
        "{r}"
    );
    // Quotes around a local part that needs none change nothing: it is the same mailbox.
    let r = c.cmd(r#"RCPT TO:<"bob"@example.test>"#).await;
    assert!(r.starts_with("250"), "{r}");
    assert!(c.cmd("DATA").await.starts_with("354"));
    c.send(b"Subject: hi\r\n\r\nbody\r\n.\r\n").await;
    assert!(c.line().await.starts_with("250"));
    let m = rec.messages.lock().unwrap();
    let rcpts: Vec<String> = m[0].0.rcpt_to.iter().map(|r| r.address()).collect();
    assert_eq!(rcpts, ["bob@example.test"]);
}

#[tokio::test]
async fn sequence_errors_vrfy_and_unknown_commands() {
    let (mut c, _rec, _stop, _t) = start(SessionConfig::default());
    c.line().await;
    assert!(c.cmd("MAIL FROM:<a@b.example>").await.starts_with("503"));
    c.cmd("HELO x").await;
    assert!(c.cmd("RCPT TO:<bob@example.test>").await.starts_with("503"));
    assert!(c.cmd("DATA").await.starts_with("503"));
    assert!(c.cmd("VRFY bob").await.starts_with("502"));
    assert!(c.cmd("EXPN staff").await.starts_with("502"));
    assert!(c.cmd("FOO bar").await.starts_with("500"));
    assert!(c.cmd("NOOP").await.starts_with("250"));
    assert!(c.cmd("RSET").await.starts_with("250"));
}

#[tokio::test]
async fn a_pipelined_burst_is_answered_in_order() {
    let (mut c, rec, _stop, _t) = start(SessionConfig::default());
    c.line().await;
    c.send(b"EHLO x\r\nMAIL FROM:<a@b.example>\r\nRCPT TO:<u1@example.test>\r\nRCPT TO:<u@remote.example>\r\nRCPT TO:<u2@example.test>\r\nDATA\r\n")
        .await;
    let replies: Vec<String> = {
        let mut v = Vec::new();
        for _ in 0..6 {
            v.push(c.line().await);
        }
        v
    };
    let codes: Vec<&str> = replies.iter().map(|r| &r[..3]).collect();
    assert_eq!(
        codes,
        ["250", "250", "250", "550", "250", "354"],
        "{replies:?}"
    );
    c.send(b"x\r\n.\r\n").await;
    assert!(c.line().await.starts_with("250"));
    assert_eq!(rec.messages.lock().unwrap()[0].0.rcpt_to.len(), 2);
}

#[tokio::test]
async fn a_huge_line_without_crlf_is_refused_and_the_session_goes_on() {
    let (mut c, _rec, _stop, _t) = start(SessionConfig::default());
    c.line().await;
    let junk = vec![b'A'; 10 * 1024 * 1024];
    c.send(&junk).await;
    c.send(b"\r\n").await;
    assert!(c.line().await.starts_with("500 5.5.2"));
    assert!(
        c.cmd("NOOP").await.starts_with("250"),
        "the session survives"
    );
}

#[tokio::test]
async fn oversized_bare_lf_and_nul_messages_are_refused() {
    let (mut c, rec, _stop, _t) = start(SessionConfig {
        max_message_bytes: 1000,
        ..SessionConfig::default()
    });
    c.line().await;
    c.cmd("EHLO x").await;
    assert!(c
        .cmd("MAIL FROM:<a@b.example> SIZE=5000")
        .await
        .starts_with("552"));
    for (body, code) in [
        (vec![b'x'; 5000], "552 5.3.4"),
        (b"line one\nline two\r\n".to_vec(), "554 5.6.0"),
        (
            b"hello\r\n.\rMAIL FROM:<e@x.example>\r\n".to_vec(),
            "554 5.6.0",
        ),
        (b"nul \0 here\r\n".to_vec(), "554 5.6.0"),
    ] {
        // Each refusal resets the transaction, so a new MAIL is not "nested".
        assert!(c.cmd("MAIL FROM:<a@b.example>").await.starts_with("250"));
        c.cmd("RCPT TO:<bob@example.test>").await;
        assert!(c.cmd("DATA").await.starts_with("354"));
        let mut msg = body;
        msg.extend_from_slice(b"\r\n.\r\n");
        c.send(&msg).await;
        let r = c.line().await;
        assert!(r.starts_with(code), "{r}");
    }
    assert!(rec.messages.lock().unwrap().is_empty());
    assert!(c.cmd("NOOP").await.starts_with("250"));
}

#[tokio::test(start_paused = true)]
async fn a_slow_client_is_timed_out() {
    let (mut c, _rec, _stop, task) = start(SessionConfig {
        command_timeout: Duration::from_secs(30),
        ..SessionConfig::default()
    });
    c.line().await;
    // Paused time: the 30 s pass at once, and the session says why it closes.
    let r = c.line().await;
    assert!(r.starts_with("421 4.4.2"), "{r}");
    task.await.unwrap();
}

#[tokio::test]
async fn shutdown_answers_421_and_ends_the_session() {
    let (mut c, _rec, stop, task) = start(SessionConfig::default());
    c.line().await;
    stop.fire();
    assert!(c.line().await.starts_with("421 4.3.0"));
    task.await.unwrap();
}

#[tokio::test]
async fn starttls_is_refused_when_not_configured_and_not_advertised() {
    let (mut c, _rec, _stop, _t) = start(SessionConfig::default());
    c.line().await;
    c.send(b"EHLO x\r\n").await;
    let mut ehlo = String::new();
    loop {
        let mut buf = [0u8; 1024];
        let n = c.io.read(&mut buf).await.unwrap();
        ehlo.push_str(&String::from_utf8_lossy(&buf[..n]));
        if ehlo.contains("250 ") {
            break;
        }
    }
    assert!(!ehlo.contains("STARTTLS"), "{ehlo}");
    assert!(c.cmd("STARTTLS").await.starts_with("502"));
}

#[tokio::test]
async fn an_acceptor_that_cannot_take_mail_refuses_at_mail_from() {
    let (mut c, rec, _stop, _t) = start(SessionConfig::default());
    c.line().await;
    c.cmd("EHLO x").await;
    rec.closed.store(true, std::sync::atomic::Ordering::SeqCst);
    assert_eq!(
        c.cmd("MAIL FROM:<a@sender.example>").await,
        "451 4.4.1 closed"
    );
    assert!(c.cmd("RCPT TO:<bob@example.test>").await.starts_with("503"));
    rec.closed.store(false, std::sync::atomic::Ordering::SeqCst);
    assert!(c
        .cmd("MAIL FROM:<a@sender.example>")
        .await
        .starts_with("250"));
}

#[test]
fn a_reply_is_counted_by_its_enhanced_status_code_or_else_its_code() {
    let code = |code, text: &str| Reply::new(code, text).status_code();
    assert_eq!(code(550, "5.1.1 <x@y>: no such user"), "5.1.1");
    assert_eq!(code(451, "4.3.0 try again"), "4.3.0");
    assert_eq!(code(554, "no enhanced code here"), "554");
    assert_eq!(code(550, "5.1 too short"), "550");
    assert_eq!(code(550, "5.x.1 not digits"), "550");
    assert_eq!(code(550, ""), "550");
}
