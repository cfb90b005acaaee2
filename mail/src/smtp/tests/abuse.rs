//! Abuse a session must survive: errors of every kind counted like Postfix's, clients that
//! talk before the banner, trickled messages, sessions that would never end, and more
//! message bytes at once than the node keeps memory for.

use std::time::Duration;

use super::{start, Client};
use crate::smtp::{DataMemory, SessionConfig};

#[tokio::test]
async fn too_many_errors_close_the_session() {
    let (mut c, _rec, _stop, task) = start(SessionConfig {
        max_errors: 3,
        ..SessionConfig::default()
    });
    c.line().await;
    c.send(b"BAD1\r\nBAD2\r\nBAD3\r\n").await;
    for _ in 0..3 {
        c.line().await;
    }
    assert!(c.line().await.starts_with("421"));
    task.await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn refused_recipients_long_lines_and_unknown_verbs_all_count_and_slow_down() {
    let (mut c, _rec, _stop, task) = start(SessionConfig {
        max_errors: 6,
        slow_errors_after: 3,
        error_delay: Duration::from_secs(1),
        ..SessionConfig::default()
    });
    c.line().await;
    c.cmd("EHLO x").await;
    c.cmd("MAIL FROM:<a@sender.example>").await;
    let started = tokio::time::Instant::now();
    for (i, line) in [
        "RCPT TO:<x@remote.example>",
        "XYZZY",
        "",
        "RCPT TO:<y@remote.example>",
        "VRFY bob",
    ]
    .iter()
    .enumerate()
    {
        let r = if line.is_empty() {
            // A line too long, arriving in pieces.
            c.send(&vec![b'A'; 10_000]).await;
            c.send(b"\r\n").await;
            c.line().await
        } else {
            c.cmd(line).await
        };
        assert!(r.starts_with('5'), "error {}: {r}", i + 1);
    }
    // Errors 4 and 5 waited a second each (paused time: the waits pass at once).
    let waited = tokio::time::Instant::now() - started;
    assert!(
        waited >= Duration::from_secs(2) && waited < Duration::from_secs(3),
        "{waited:?}"
    );
    let r = c.cmd("RCPT TO:<z@remote.example>").await;
    assert!(r.starts_with("550"), "{r}");
    assert!(
        c.line().await.starts_with("421 4.7.0"),
        "the sixth error ends it"
    );
    task.await.unwrap();
}

#[tokio::test]
async fn a_client_that_talks_before_the_banner_is_dropped() {
    let (mut c, rec, _stop, task) = start(SessionConfig::default());
    c.send(b"EHLO bot\r\nMAIL FROM:<a@sender.example>\r\n")
        .await;
    let r = c.line().await;
    assert!(r.starts_with("554 5.5.1"), "{r}");
    task.await.unwrap();
    assert!(rec.messages.lock().unwrap().is_empty());
}

#[tokio::test(start_paused = true)]
async fn a_trickled_message_is_cut_once_past_the_grace() {
    let (mut c, rec, _stop, task) = start(SessionConfig {
        min_data_rate: 1000,
        data_grace: Duration::from_secs(60),
        ..SessionConfig::default()
    });
    c.line().await;
    c.cmd("EHLO x").await;
    c.cmd("MAIL FROM:<a@sender.example>").await;
    c.cmd("RCPT TO:<bob@example.test>").await;
    assert!(c.cmd("DATA").await.starts_with("354"));
    let started = tokio::time::Instant::now();
    // A byte every 50 s: inside the data timeout (600 s), far under 1,000 bytes/s.
    let mut cut = None;
    for _ in 0..10 {
        c.send(b"x").await;
        if let Ok(line) = tokio::time::timeout(Duration::from_secs(50), c.line()).await {
            cut = Some(line);
            break;
        }
    }
    let cut = cut.expect("the session is cut within 500 s");
    assert!(
        cut.starts_with("421 4.4.2") && cut.contains("too slowly"),
        "{cut}"
    );
    let after = tokio::time::Instant::now() - started;
    assert!(after < Duration::from_secs(120), "cut after {after:?}");
    task.await.unwrap();
    assert!(rec.messages.lock().unwrap().is_empty());
}

#[tokio::test(start_paused = true)]
async fn no_session_outlives_its_deadline() {
    let (mut c, _rec, _stop, task) = start(SessionConfig {
        session_deadline: Duration::from_secs(100),
        ..SessionConfig::default()
    });
    c.line().await;
    let mut last = String::new();
    for _ in 0..10 {
        // A NOOP every 30 s, well inside the command timeout; the server may speak first.
        if let Ok(line) = tokio::time::timeout(Duration::from_secs(30), c.line()).await {
            last = line;
            break;
        }
        last = c.cmd("NOOP").await;
        if !last.starts_with("250") {
            break;
        }
    }
    assert!(
        last.starts_with("421 4.4.2") && last.contains("session too long"),
        "{last}"
    );
    task.await.unwrap();
}

#[tokio::test]
async fn a_message_past_its_hop_limit_is_refused_as_a_loop() {
    let (mut c, rec, _stop, _task) = start(SessionConfig {
        max_hops: 3,
        ..SessionConfig::default()
    });
    c.line().await;
    c.cmd("EHLO x").await;
    let received = "Received: from a by b; Mon, 7 Dec 2026 10:00:00 +0000\r\n";
    // Case does not hide a header; a `Received:` in the body is not one.
    let at_limit = format!(
        "{}rEcEiVeD: x\r\nSubject: s\r\n\r\n{received}",
        received.repeat(2)
    );
    let past_limit = format!("{}Subject: s\r\n\r\nhi\r\n", received.repeat(4));
    for (message, code) in [(at_limit, "250"), (past_limit, "554 5.4.6")] {
        assert!(c.cmd("MAIL FROM:<a@b.example>").await.starts_with("250"));
        c.cmd("RCPT TO:<bob@example.test>").await;
        assert!(c.cmd("DATA").await.starts_with("354"));
        c.send(format!("{message}.\r\n").as_bytes()).await;
        let r = c.line().await;
        assert!(r.starts_with(code), "{r}");
    }
    assert_eq!(rec.messages.lock().unwrap().len(), 1);
}

/// Messages being received share the node's memory for them: one that would pass it is
/// read to its end and answered `452 4.3.1` (try later), and the memory comes back as soon
/// as a message is answered, so the same message then goes through.
#[tokio::test]
async fn a_message_past_the_nodes_memory_for_messages_is_deferred_until_it_frees() {
    let memory = DataMemory::new(100_000);
    let config = SessionConfig {
        data_memory: memory.clone(),
        ..SessionConfig::default()
    };
    let (mut a, _rec_a, _stop_a, _task_a) = start(config.clone());
    let (mut b, rec_b, _stop_b, _task_b) = start(config);
    a.line().await;
    b.line().await;
    let line = format!("{}\r\n", "x".repeat(998));
    let message = |lines: usize| format!("Subject: s\r\n\r\n{}", line.repeat(lines));
    // A is 60 KB into its message.
    start_message(&mut a).await;
    a.send(message(60).as_bytes()).await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while memory.used() < 60_000 {
        assert!(tokio::time::Instant::now() < deadline, "{}", memory.used());
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    // B's 50 KB do not fit beside them.
    start_message(&mut b).await;
    b.send(format!("{}.\r\n", message(50)).as_bytes()).await;
    let r = b.line().await;
    assert!(r.starts_with("452 4.3.1"), "{r}");
    assert!(memory.used() < 70_000, "B holds nothing: {}", memory.used());
    a.send(b".\r\n").await;
    let r = a.line().await;
    assert!(r.starts_with("250"), "{r}");
    assert_eq!(memory.used(), 0, "given back once answered");
    start_message(&mut b).await;
    b.send(format!("{}.\r\n", message(50)).as_bytes()).await;
    let r = b.line().await;
    assert!(r.starts_with("250"), "{r}");
    assert_eq!(rec_b.messages.lock().unwrap().len(), 1);
}

async fn start_message(c: &mut Client) {
    c.cmd("EHLO x").await;
    assert!(c.cmd("MAIL FROM:<a@b.example>").await.starts_with("250"));
    assert!(c.cmd("RCPT TO:<bob@example.test>").await.starts_with("250"));
    assert!(c.cmd("DATA").await.starts_with("354"));
}
