//! `peage sink` with real SMTP clients: Python's smtplib delivers into per-recipient
//! maildirs, and a flood of connections from one address leaves other clients unaffected.

use std::io::{BufRead, BufReader};
use std::process::Command;
use std::time::Duration;

use peage_tests::SinkProcess;

async fn start_sink(ip: &str) -> (SinkProcess, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let sink = SinkProcess::start(&format!("{ip}:2626"), &dir.path().join("mail"))
        .await
        .unwrap();
    (sink, dir)
}

/// Sends one message with Python's smtplib, from `source_ip`.
fn smtplib_send(sink: &str, source_ip: &str, rcpts: &[&str], body: &str) -> std::process::Output {
    let (host, port) = sink.rsplit_once(':').unwrap();
    let script = format!(
        r#"
import smtplib, sys
s = smtplib.SMTP("{host}", {port}, source_address=("{source_ip}", 0), timeout=20)
s.ehlo("client.example")
refused = s.sendmail("sender@client.example", {rcpts:?}, {body:?})
s.quit()
print("refused:", refused)
"#
    );
    Command::new("python3")
        .arg("-c")
        .arg(script)
        .output()
        .unwrap()
}

#[tokio::test]
async fn smtplib_delivers_into_a_maildir_per_recipient() {
    let (sink, _dir) = start_sink("127.0.40.1").await;
    let body = "From: sender@client.example\r\nSubject: hello\r\n\r\nfirst line\r\n.dot line\r\n";
    let o = smtplib_send(
        &sink.addr,
        "127.0.40.1",
        &["a@example.test", "B@example.test"],
        body,
    );
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    for rcpt in ["a@example.test", "b@example.test"] {
        let msgs = sink.messages(rcpt);
        assert_eq!(msgs.len(), 1, "{rcpt}");
        assert!(msgs[0].contains("Subject: hello"), "{}", msgs[0]);
        assert!(
            msgs[0].contains("\r\n.dot line\r\n"),
            "dot-stuffing undone: {}",
            msgs[0]
        );
    }
}

#[tokio::test]
async fn a_thousand_connections_from_one_address_do_not_block_others() {
    let (sink, _dir) = start_sink("127.0.41.1").await;
    // Phase 1: 1,000 connections from one address (127.0.0.1); past the per-address limit
    // each gets 421.
    let mut held = Vec::new();
    let mut greeted = 0;
    let mut refused = 0;
    for _ in 0..1000 {
        let s = std::net::TcpStream::connect(&sink.addr).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
        let mut line = String::new();
        BufReader::new(&s).read_line(&mut line).unwrap();
        if line.starts_with("220") {
            greeted += 1;
        } else if line.starts_with("421") {
            refused += 1;
        } else {
            panic!("unexpected greeting {line:?}");
        }
        held.push(s);
    }
    assert_eq!(greeted + refused, 1000);
    assert!(
        greeted <= 20,
        "at most the per-address limit is served: {greeted}"
    );
    assert!(refused >= 980, "{refused}");

    // Phase 2: while they are held open, a client from another address is served normally.
    let o = smtplib_send(
        &sink.addr,
        "127.0.41.3",
        &["c@example.test"],
        "Subject: x\r\n\r\nhi\r\n",
    );
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(sink.messages("c@example.test").len(), 1);
    drop(held);
}
