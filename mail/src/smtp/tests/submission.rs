//! The submission listener's session: AUTH only inside TLS (538 before), PLAIN and LOGIN,
//! wrong credentials refused, nothing accepted before AUTH, and the login handed over with
//! the envelope; a client on a trusted network sends as its principal without AUTH; port
//! 25 offers no AUTH at all.

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine;

use super::*;

fn submission(implicit_tls: bool) -> SessionConfig {
    SessionConfig {
        submission: true,
        implicit_tls,
        ..SessionConfig::default()
    }
}

const INSIDE_TLS: Tls = Tls::Active {
    version: "TLSv1_3",
    cipher: "TLS13_AES_256_GCM_SHA384",
};

/// A recorder that trusts every client as `principal`.
fn trusted_as(principal: &str) -> Recorder {
    Recorder {
        trusted: Some(principal.into()),
        ..Recorder::default()
    }
}

/// One message from `from` to an outside address, each step answered 2xx/3xx.
async fn send_out(c: &mut Client, from: &str) {
    assert!(c
        .cmd(&format!("MAIL FROM:<{from}>"))
        .await
        .starts_with("250"));
    let r = c.cmd("RCPT TO:<carol@elsewhere.example>").await;
    assert!(r.starts_with("250"), "{r}");
    assert!(c.cmd("DATA").await.starts_with("354"));
    c.send(b"Subject: out\r\n\r\nhello\r\n.\r\n").await;
    assert!(c.line().await.starts_with("250"));
}

#[tokio::test]
async fn before_tls_auth_is_neither_offered_nor_taken() {
    let (mut c, rec, _stop, _t) = start(submission(false));
    assert!(c.line().await.starts_with("220"));
    c.send(b"EHLO client.example\r\n").await;
    let mut ehlo = Vec::new();
    loop {
        let line = c.line_any().await;
        ehlo.push(line.clone());
        if line.as_bytes().get(3) == Some(&b' ') {
            break;
        }
    }
    assert!(!ehlo.iter().any(|l| l.contains("AUTH")), "{ehlo:?}");
    let plain = BASE64.encode("\0alice@example.test\0s3cret");
    let r = c.cmd(&format!("AUTH PLAIN {plain}")).await;
    assert!(r.starts_with("538 5.7.11"), "{r}");
    let r = c.cmd("MAIL FROM:<alice@example.test>").await;
    assert!(r.starts_with("530 5.7.0"), "{r}");
    assert!(rec.messages.lock().unwrap().is_empty());
}

#[tokio::test]
async fn inside_tls_a_login_is_checked_and_handed_over_with_the_message() {
    // Implicit TLS (465): the banner comes first inside it.
    let (mut c, rec, _stop, _t) = start_in(submission(true), INSIDE_TLS);
    assert!(c.line().await.starts_with("220"), "the banner inside TLS");
    c.send(b"EHLO client.example\r\n").await;
    let mut offered = false;
    loop {
        let line = c.line_any().await;
        offered |= line.contains("AUTH PLAIN LOGIN");
        if line.as_bytes().get(3) == Some(&b' ') {
            break;
        }
    }
    assert!(offered, "AUTH is offered inside TLS");
    let r = c.cmd("MAIL FROM:<alice@example.test>").await;
    assert!(r.starts_with("530"), "{r}");
    // A wrong password, then a cancelled exchange.
    let wrong = BASE64.encode("\0alice@example.test\0guess");
    let r = c.cmd(&format!("AUTH PLAIN {wrong}")).await;
    assert!(r.starts_with("535 5.7.8"), "{r}");
    assert_eq!(c.cmd("AUTH LOGIN").await, "334 VXNlcm5hbWU6");
    assert!(c.cmd("*").await.starts_with("501"));
    assert!(c.cmd("AUTH CRAM-MD5").await.starts_with("504"));
    // LOGIN, step by step.
    assert_eq!(c.cmd("AUTH LOGIN").await, "334 VXNlcm5hbWU6");
    let user = BASE64.encode("alice@example.test");
    assert_eq!(c.cmd(&user).await, "334 UGFzc3dvcmQ6");
    let r = c.cmd(&BASE64.encode("s3cret")).await;
    assert!(r.starts_with("235 2.7.0"), "{r}");
    assert!(c.cmd("AUTH PLAIN").await.starts_with("503"), "only once");
    // Authenticated: any destination is the acceptor's call (it relays for a login).
    send_out(&mut c, "alice@example.test").await;
    let messages = rec.messages.lock().unwrap();
    assert_eq!(messages[0].0.login.as_deref(), Some("alice@example.test"));
}

#[tokio::test]
async fn port_25_offers_no_auth() {
    let (mut c, _rec, _stop, _t) = start_in(SessionConfig::default(), INSIDE_TLS);
    assert!(c.cmd("EHLO client.example").await.starts_with("250"));
    let r = c.cmd("AUTH PLAIN").await;
    assert!(r.starts_with("503"), "{r}");
}

#[tokio::test]
async fn a_client_on_a_trusted_network_sends_as_its_principal_without_auth() {
    let trusted = trusted_as("platform");
    let (mut c, rec, _stop, _t) = start_for(submission(false), Tls::Unavailable, trusted);
    assert!(c.line().await.starts_with("220"));
    assert!(c.cmd("HELO mta.platform.example").await.starts_with("250"));
    send_out(&mut c, "bob@example.test").await;
    let messages = rec.messages.lock().unwrap();
    assert_eq!(messages[0].0.login.as_deref(), Some("platform"));
}

#[tokio::test]
async fn port_25_trusts_no_network() {
    let trusted = trusted_as("platform");
    let (mut c, _rec, _stop, _t) = start_for(SessionConfig::default(), Tls::Unavailable, trusted);
    c.line().await;
    assert!(c.cmd("HELO mta.platform.example").await.starts_with("250"));
    c.cmd("MAIL FROM:<bob@example.test>").await;
    let r = c.cmd("RCPT TO:<carol@elsewhere.example>").await;
    assert!(r.starts_with("550 5.7.1"), "{r}");
}
