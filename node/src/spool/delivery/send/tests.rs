//! The sending half against fake SMTP servers: connections shared and replaced, addresses
//! quoted, SMTPUTF8 declared where it is offered and needed, a downstream slow to answer the
//! end of data waited for, not retried, and STARTTLS taken when offered, plain text when its
//! handshake fails.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpListener;

use super::*;

/// A minimal SMTP server: counts connections and messages, and closes each connection
/// after `per_connection` messages (0: never).
struct FakeServer {
    route: String,
    connections: Arc<AtomicUsize>,
    messages: Arc<AtomicUsize>,
    /// Every MAIL and RCPT line received, as sent.
    envelope_lines: Arc<std::sync::Mutex<Vec<String>>>,
}

async fn fake_server(per_connection: usize) -> FakeServer {
    fake_server_offering(per_connection, b"250-fake\r\n250 8BITMIME\r\n").await
}

/// The same, answering EHLO with `ehlo`.
async fn fake_server_offering(per_connection: usize, ehlo: &'static [u8]) -> FakeServer {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let route = format!("smtp://{}", listener.local_addr().unwrap());
    let (connections, messages) = (Arc::<AtomicUsize>::default(), Arc::<AtomicUsize>::default());
    let envelope_lines = Arc::<std::sync::Mutex<Vec<String>>>::default();
    let (c, m, e) = (
        Arc::clone(&connections),
        Arc::clone(&messages),
        Arc::clone(&envelope_lines),
    );
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            c.fetch_add(1, Ordering::SeqCst);
            tokio::spawn(session(stream, m.clone(), e.clone(), per_connection, ehlo));
        }
    });
    FakeServer {
        route,
        connections,
        messages,
        envelope_lines,
    }
}

async fn session(
    stream: tokio::net::TcpStream,
    messages: Arc<AtomicUsize>,
    envelope_lines: Arc<std::sync::Mutex<Vec<String>>>,
    limit: usize,
    ehlo: &'static [u8],
) {
    let (read, mut write) = stream.into_split();
    let mut lines = BufReader::new(read).lines();
    let (mut in_data, mut here) = (false, 0);
    write.write_all(b"220 fake ESMTP\r\n").await.unwrap();
    while let Ok(Some(line)) = lines.next_line().await {
        let reply: &[u8] = if in_data {
            if line != "." {
                continue;
            }
            in_data = false;
            messages.fetch_add(1, Ordering::SeqCst);
            here += 1;
            b"250 2.0.0 queued\r\n"
        } else if line.starts_with("MAIL") || line.starts_with("RCPT") {
            envelope_lines.lock().unwrap().push(line.clone());
            b"250 ok\r\n"
        } else if line.starts_with("EHLO") {
            ehlo
        } else if line == "DATA" {
            in_data = true;
            b"354 go on\r\n"
        } else if line == "QUIT" {
            b"221 bye\r\n"
        } else {
            b"250 ok\r\n"
        };
        write.write_all(reply).await.unwrap();
        if line == "QUIT" || (limit > 0 && here == limit && !in_data) {
            return;
        }
    }
}

fn downstream() -> Downstream {
    Downstream {
        helo_name: "test.example".into(),
        connect_timeout: Duration::from_secs(5),
        starttls: true,
        command_timeout: Duration::from_secs(5),
        data_timeout: Duration::from_secs(5),
        bind_address: None,
        bounce_route: None,
        mx: None,
        connections: Connections::new(2),
    }
}

async fn send_n(d: &Downstream, route: &str, n: usize) {
    for i in 0..n {
        let rcpts = vec![format!("user{i}@example.test")];
        let r = send(d, route, "a@x.test", &rcpts, b"Subject: t\r\n\r\nhello\r\n").await;
        assert_eq!(r.done, rcpts, "message {i}: {r:?}");
    }
}

#[tokio::test]
async fn messages_to_one_route_share_a_connection() {
    let server = fake_server(0).await;
    let d = downstream();
    send_n(&d, &server.route, 5).await;
    assert_eq!(server.messages.load(Ordering::SeqCst), 5);
    assert_eq!(
        server.connections.load(Ordering::SeqCst),
        1,
        "one connection for five"
    );
    assert_eq!(
        d.connections.idle(&server.route),
        1,
        "kept for the next message"
    );
}

#[tokio::test]
async fn a_connection_the_server_closed_is_replaced_without_failing_a_message() {
    let server = fake_server(2).await;
    let d = downstream();
    send_n(&d, &server.route, 5).await;
    assert_eq!(server.messages.load(Ordering::SeqCst), 5);
    assert_eq!(
        server.connections.load(Ordering::SeqCst),
        3,
        "two messages per connection"
    );
}

#[tokio::test]
async fn addresses_reach_the_downstream_quoted_and_never_as_parameters() {
    let server = fake_server(0).await;
    let rcpts = vec![
        "bob> NOTIFY=NEVER@example.test".to_owned(),
        "carol@example.test".to_owned(),
        "dave\r\nRSET@example.test".to_owned(),
    ];
    let body = b"Subject: t\r\n\r\nhello\r\n";
    let r = send(&downstream(), &server.route, "a b@x.test", &rcpts, body).await;
    assert_eq!(r.done.len(), 3, "{r:?}");
    assert_eq!(r.failed.len(), 1, "the one no quoting can carry: {r:?}");
    assert_eq!(r.failed[0].0, rcpts[2]);
    assert_eq!(
        *server.envelope_lines.lock().unwrap(),
        [
            r#"MAIL FROM:<"a b"@x.test>"#,
            r#"RCPT TO:<"bob> NOTIFY=NEVER"@example.test>"#,
            "RCPT TO:<carol@example.test>",
        ]
    );
}

/// A non-ASCII address goes with SMTPUTF8 to a downstream that offers it (RFC 6531), and
/// as it is to one that does not (most take it, Postfix among them); ASCII-only envelopes
/// never carry it.
#[tokio::test]
async fn a_non_ascii_address_is_sent_with_smtputf8_when_the_downstream_offers_it() {
    let body = b"Subject: t\r\n\r\nhello\r\n";
    let rcpts = vec![
        "anna@example.test".to_owned(),
        "zoë@example.test".to_owned(),
    ];
    let offering = fake_server_offering(0, b"250-fake\r\n250 SMTPUTF8\r\n").await;
    let silent = fake_server(0).await;
    for server in [&offering, &silent] {
        let d = downstream();
        let r = send(&d, &server.route, "jürgen@x.test", &rcpts, body).await;
        assert_eq!(r.done, rcpts, "{r:?}");
        let ascii = ["bob@example.test".to_owned()];
        let r = send(&d, &server.route, "a@x.test", &ascii, body).await;
        assert_eq!(r.done, ascii, "{r:?}");
    }
    let expected = |param: &str| {
        [
            format!("MAIL FROM:<jürgen@x.test>{param}"),
            "RCPT TO:<anna@example.test>".into(),
            "RCPT TO:<zoë@example.test>".into(),
            "MAIL FROM:<a@x.test>".into(),
            "RCPT TO:<bob@example.test>".into(),
        ]
    };
    assert_eq!(
        *offering.envelope_lines.lock().unwrap(),
        expected(" SMTPUTF8")
    );
    assert_eq!(*silent.envelope_lines.lock().unwrap(), expected(""));
}

/// A downstream that answers the end of data only after `scan` (as one scanning a large
/// attachment does); every message it received is counted.
async fn slow_scanner(scan: Duration) -> (String, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let route = format!("smtp://{}", listener.local_addr().unwrap());
    let messages = Arc::<AtomicUsize>::default();
    let counted = Arc::clone(&messages);
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let counted = Arc::clone(&counted);
            tokio::spawn(async move {
                let (read, mut write) = stream.into_split();
                let mut lines = BufReader::new(read).lines();
                write.write_all(b"220 slow ESMTP\r\n").await.unwrap();
                let mut in_data = false;
                while let Ok(Some(line)) = lines.next_line().await {
                    let reply: &[u8] = match (in_data, line.as_str()) {
                        (true, ".") => {
                            counted.fetch_add(1, Ordering::SeqCst);
                            tokio::time::sleep(scan).await;
                            in_data = false;
                            b"250 2.0.0 queued after a scan\r\n"
                        }
                        (true, _) => continue,
                        (false, "DATA") => {
                            in_data = true;
                            b"354 go on\r\n"
                        }
                        _ => b"250 ok\r\n",
                    };
                    if write.write_all(reply).await.is_err() {
                        return;
                    }
                }
            });
        }
    });
    (route, messages)
}

#[tokio::test]
async fn a_downstream_slow_to_answer_the_end_of_data_is_waited_for_not_sent_the_message_again() {
    let (route, received) = slow_scanner(Duration::from_millis(1500)).await;
    let d = Downstream {
        connect_timeout: Duration::from_millis(500),
        command_timeout: Duration::from_millis(500),
        ..downstream()
    };
    let rcpts = vec!["bob@example.test".to_owned()];
    let r = send(
        &d,
        &route,
        "a@x.test",
        &rcpts,
        b"Subject: t\r\n\r\nhello\r\n",
    )
    .await;
    assert_eq!(r.done, rcpts, "{r:?}");
    assert!(r.retry.is_empty(), "{r:?}");
    assert_eq!(received.load(Ordering::SeqCst), 1);
}

/// What a STARTTLS downstream counts: connections, and messages in plain text and in TLS.
#[derive(Default)]
struct TlsCounts {
    connections: AtomicUsize,
    plain: AtomicUsize,
    tls: AtomicUsize,
}

/// A downstream that offers STARTTLS; with `acceptor` None it says 220 to STARTTLS and
/// then hangs up, a handshake that fails.
async fn starttls_server(acceptor: Option<tokio_rustls::TlsAcceptor>) -> (String, Arc<TlsCounts>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let route = format!("smtp://{}", listener.local_addr().unwrap());
    let counts = Arc::<TlsCounts>::default();
    let seen = Arc::clone(&counts);
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            seen.connections.fetch_add(1, Ordering::SeqCst);
            let (seen, acceptor) = (Arc::clone(&seen), acceptor.clone());
            tokio::spawn(async move {
                let mut plain = BufReader::new(tcp);
                let _ = plain.get_mut().write_all(b"220 tls ESMTP\r\n").await;
                if !serve_until_starttls(&mut plain, &seen.plain).await {
                    return;
                }
                let _ = plain.get_mut().write_all(b"220 2.0.0 go ahead\r\n").await;
                let Some(acceptor) = acceptor else { return };
                if let Ok(tls) = acceptor.accept(plain.into_inner()).await {
                    serve_until_starttls(&mut BufReader::new(tls), &seen.tls).await;
                }
            });
        }
    });
    (route, counts)
}

/// One SMTP session after its greeting, each message counted in `delivered`; true when
/// the client asked for STARTTLS (the caller does the handshake).
async fn serve_until_starttls<S>(stream: &mut BufReader<S>, delivered: &AtomicUsize) -> bool
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    let (mut line, mut in_data) = (String::new(), false);
    loop {
        line.clear();
        if stream.read_line(&mut line).await.unwrap_or(0) == 0 {
            return false;
        }
        let reply: &[u8] = match (in_data, line.trim_end()) {
            (true, ".") => {
                in_data = false;
                delivered.fetch_add(1, Ordering::SeqCst);
                b"250 2.0.0 queued\r\n"
            }
            (true, _) => continue,
            (false, "STARTTLS") => return true,
            (false, "DATA") => {
                in_data = true;
                b"354 go on\r\n"
            }
            (false, command) if command.starts_with("EHLO") => b"250-tls\r\n250 STARTTLS\r\n",
            _ => b"250 ok\r\n",
        };
        if stream.get_mut().write_all(reply).await.is_err() {
            return false;
        }
    }
}

/// A TLS acceptor with a certificate of a CA nobody trusts, as many MX have.
fn self_signed_acceptor(dir: &std::path::Path) -> tokio_rustls::TlsAcceptor {
    crate::tools::cert::make_ca(dir).unwrap();
    crate::tools::cert::make_node(dir, "mx", &["127.0.0.1".to_owned()]).unwrap();
    peage_mail::smtp::tls::acceptor(&dir.join("mx.pem"), &dir.join("mx.key")).unwrap()
}

impl TlsCounts {
    /// (connections, messages in plain text, messages inside TLS).
    fn seen(&self) -> (usize, usize, usize) {
        let n = |c: &AtomicUsize| c.load(Ordering::SeqCst);
        (n(&self.connections), n(&self.plain), n(&self.tls))
    }
}

#[tokio::test]
async fn starttls_is_taken_when_offered_and_the_connection_reused_inside_it() {
    let dir = tempfile::tempdir().unwrap();
    let (route, counts) = starttls_server(Some(self_signed_acceptor(dir.path()))).await;
    send_n(&downstream(), &route, 2).await;
    assert_eq!(
        counts.seen(),
        (1, 0, 2),
        "both inside TLS, on one connection"
    );

    // Turned off: plain text, though offered.
    let (route, counts) = starttls_server(Some(self_signed_acceptor(&dir.path().join("b")))).await;
    let d = Downstream {
        starttls: false,
        ..downstream()
    };
    send_n(&d, &route, 1).await;
    assert_eq!(counts.seen(), (1, 1, 0));
}

#[tokio::test]
async fn a_failed_tls_handshake_falls_back_to_plain_text_and_delivers() {
    let (route, counts) = starttls_server(None).await;
    send_n(&downstream(), &route, 1).await;
    assert_eq!(
        counts.seen(),
        (2, 1, 0),
        "in plain text, on a second connection"
    );
}
