//! Submission against real nodes, with Python's smtplib as the mail client: accounts made
//! with `peagectl user`, AUTH refused before TLS (538), a wrong password refused (535) and
//! then throttled (454), the right one accepted over STARTTLS (587) and implicit TLS (465),
//! the sender held to the account's domains (553 at MAIL FROM, and for the header From),
//! and the mail relayed on.

use std::io::{BufRead, BufReader, Write};
use std::time::Duration;

use peage_tests::{smtplib_send_with, DnsServer, SinkProcess, SmtpOptions, TestCluster, Tuning};

use super::with_local_domain_tuned;

pub const PASSWORD: &str = "correct-horse-battery";

pub fn message(from: &str, subject: &str) -> Vec<u8> {
    format!(
        "From: <{from}>\r\nTo: <bob@elsewhere.example>\r\nSubject: {subject}\r\n\
         Date: Sun, 06 Dec 2026 10:00:00 +0000\r\nMessage-ID: <{subject}@shop.example>\r\n\r\n\
         Hello Bob, about {subject}.\r\n"
    )
    .into_bytes()
}

/// smtplib on node `node`'s submission port: STARTTLS on 587, or implicit TLS on 465.
fn submit(
    c: &TestCluster,
    node: usize,
    implicit_tls: bool,
    login: (&str, &str),
    from: &str,
    body: &[u8],
) -> peage_tests::SmtpResult {
    submit_to(
        c,
        (node, implicit_tls),
        login,
        from,
        &["bob@elsewhere.example"],
        body,
    )
}

/// alice@shop.example sends `body` to `rcpts` through node `node`'s 587 (STARTTLS).
pub fn submit_as_alice(
    c: &TestCluster,
    node: usize,
    rcpts: &[&str],
    body: &[u8],
) -> peage_tests::SmtpResult {
    let alice = ("alice@shop.example", PASSWORD);
    submit_to(c, (node, false), alice, "alice@shop.example", rcpts, body)
}

/// `submit`, to `rcpts`.
pub fn submit_to(
    c: &TestCluster,
    (node, implicit_tls): (usize, bool),
    login: (&str, &str),
    from: &str,
    rcpts: &[&str],
    body: &[u8],
) -> peage_tests::SmtpResult {
    let (host, _) = c.nodes[node].smtp_addr();
    let port = if implicit_tls { 465 } else { 587 };
    let options = SmtpOptions {
        starttls: !implicit_tls,
        implicit_tls,
        login: Some((login.0.to_owned(), login.1.to_owned())),
        ..SmtpOptions::default()
    };
    smtplib_send_with(&host, port, from, rcpts, body, &options)
}

/// What the server answers `AUTH PLAIN` with on 587 before any TLS (a raw client: smtplib
/// will not even try without the extension advertised).
fn auth_in_clear(c: &TestCluster) -> String {
    let (host, _) = c.nodes[0].smtp_addr();
    let stream = std::net::TcpStream::connect((host.as_str(), 587)).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    let mut writer = stream;
    let mut line = String::new();
    reader.read_line(&mut line).unwrap();
    writer.write_all(b"EHLO client.example\r\n").unwrap();
    loop {
        line.clear();
        reader.read_line(&mut line).unwrap();
        assert!(!line.contains("AUTH"), "AUTH advertised in clear: {line}");
        if line.as_bytes().get(3) == Some(&b' ') {
            break;
        }
    }
    writer
        .write_all(b"AUTH PLAIN AGFsaWNlAHgAeA==\r\n")
        .unwrap();
    line.clear();
    reader.read_line(&mut line).unwrap();
    line
}

/// A cluster with submission (587, 465), its sink, and the account alice@shop.example
/// (made with `peagectl user add`, its password on standard input); the cluster tuned as
/// `tuning` otherwise.
pub async fn with_alice(tuning: Tuning) -> (TestCluster, SinkProcess) {
    let c = with_local_domain_tuned(Tuning {
        tls: true,
        ..tuning
    })
    .await;
    let sink = c.start_sink().await.unwrap();
    c.add_account("alice@shop.example", "shop.example", PASSWORD)
        .unwrap();
    (c, sink)
}

#[tokio::test]
async fn accounts_send_over_tls_as_their_own_domains_only() {
    let (c, sink) = with_alice(Tuning::default()).await;
    let listed = c.peagectl(2, &["user", "ls"]);
    let listed = String::from_utf8_lossy(&listed.stdout).into_owned();
    assert!(
        listed.contains("alice@shop.example") && !listed.contains("argon2"),
        "{listed}"
    );

    assert!(auth_in_clear(&c).starts_with("538 5.7.11"));
    let alice = ("alice@shop.example", PASSWORD);
    // STARTTLS, then AUTH: accepted and relayed (here to the sink, the outbound route).
    let r = submit(
        &c,
        1,
        false,
        alice,
        "alice@shop.example",
        &message("alice@shop.example", "587"),
    );
    assert_eq!(r.auth.as_ref().map(|a| a.0), Some(235), "{r:?}");
    assert_eq!(r.data.as_ref().map(|d| d.0), Some(250), "{r:?}");
    // Implicit TLS with swaks, AUTH LOGIN this time.
    let (host, _) = c.nodes[0].smtp_addr();
    let out = std::process::Command::new("swaks")
        .args([
            "--server",
            &format!("{host}:465"),
            "--tlsc",
            "--auth",
            "LOGIN",
        ])
        .args([
            "--auth-user",
            "alice@shop.example",
            "--auth-password",
            PASSWORD,
        ])
        .args([
            "--from",
            "alice@shop.example",
            "--to",
            "carol@elsewhere.example",
        ])
        .args([
            "--header",
            "From: <alice@shop.example>",
            "--header",
            "Subject: swaks",
        ])
        .output()
        .expect("swaks (scripts/ensure-deps installs it)");
    let transcript = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{transcript}");
    assert!(
        transcript.contains("235 2.7.0") && transcript.contains("250 2.0.0 Ok: queued"),
        "{transcript}"
    );
    // Implicit TLS.
    let r = submit(
        &c,
        2,
        true,
        alice,
        "alice@shop.example",
        &message("alice@shop.example", "465"),
    );
    assert_eq!(r.data.as_ref().map(|d| d.0), Some(250), "{r:?}");
    // Another domain as the envelope sender, or in the header From: refused.
    let r = submit(
        &c,
        1,
        false,
        alice,
        "ceo@bank.example",
        &message("ceo@bank.example", "x"),
    );
    assert_eq!(r.mail.as_ref().map(|m| m.0), Some(553), "{r:?}");
    let r = submit(
        &c,
        1,
        false,
        alice,
        "alice@shop.example",
        &message("ceo@bank.example", "y"),
    );
    assert_eq!(r.data.as_ref().map(|d| d.0), Some(553), "{r:?}");
    sink.wait_for_messages(
        "bob@elsewhere.example",
        2,
        "both submissions relayed",
        Duration::from_secs(30),
    )
    .await;
    // Marked as an authenticated submission for the filters downstream (RFC 3848).
    for relayed in sink.messages("bob@elsewhere.example") {
        assert!(relayed.contains(" (Peage) with ESMTPSA ("), "{relayed}");
    }

    // A guesser at Paris: refused, then throttled even with the right password. (smtplib
    // tries PLAIN, then LOGIN, on each login: every call is one or two guesses.)
    let guess = ("alice@shop.example", "guess-guess-guess");
    let mut replies = Vec::new();
    for _ in 0..peage_node::logins::MAX_FAILURES {
        let r = submit(&c, 0, false, guess, "alice@shop.example", b"x");
        replies.push(r.auth.map_or(0, |a| a.0));
    }
    assert_eq!(replies[0], 535, "{replies:?}");
    assert!(replies.ends_with(&[454]), "{replies:?}");
    let r = submit(&c, 0, false, alice, "alice@shop.example", b"x");
    assert_eq!(r.auth.as_ref().map(|a| a.0), Some(454), "{r:?}");
    // Removed: the account cannot log in anywhere.
    let out = c.peagectl(0, &["user", "rm", "alice@shop.example"]);
    assert!(out.status.success(), "{out:?}");
    c.peagectl(1, &["user", "ls"]);
    let r = submit(&c, 1, false, alice, "alice@shop.example", b"x");
    assert_eq!(r.auth.as_ref().map(|a| a.0), Some(535), "{r:?}");
}

const GTUBE: &str = "XJS*C4JDBQADN1.NSBN3*2IDNEN*GTUBE-STANDARD-ANTI-UBE-TEST-EMAIL*C.34X";

#[tokio::test]
async fn a_spam_run_spread_over_three_sites_locks_the_account_on_all_of_them() {
    let (c, sink) = with_alice(Tuning::default()).await;
    let alice = ("alice@shop.example", PASSWORD);
    let spam = |n: usize| {
        let mut m = message("alice@shop.example", &format!("run-{n}"));
        m.extend_from_slice(GTUBE.as_bytes());
        m.extend_from_slice(b"\r\n");
        m
    };
    // Five spam messages, one site after another: each is held, none refused.
    for n in 0..5 {
        let r = submit(&c, n % 3, false, alice, "alice@shop.example", &spam(n));
        assert_eq!(r.data.as_ref().map(|d| d.0), Some(250), "{r:?}");
    }
    // Locked on every site within 2 s of the fifth verdict (each site's own replica).
    let fifth = std::time::Instant::now();
    for node in 0..3 {
        peage_tests::wait_for("the lock at every site", Duration::from_secs(2), || {
            let out = c.peagectl(node, &["--stale", "outbound", "identity", "ls"]);
            let listed = String::from_utf8_lossy(&out.stdout).contains("alice@shop.example");
            async move { listed.then_some(()) }
        })
        .await
        .unwrap();
    }
    assert!(fifth.elapsed() < Duration::from_secs(2));
    // The sixth, at yet another site: refused at MAIL FROM.
    let r = submit(&c, 2, false, alice, "alice@shop.example", &spam(5));
    assert_eq!(r.mail.as_ref().map(|m| m.0), Some(550), "{r:?}");
    assert!(r.mail.as_ref().unwrap().1.contains("locked"), "{r:?}");
    // The domain's postmaster and the operator hear of it; the evidence stays held.
    for who in ["postmaster@shop.example", "abuse@example.test"] {
        sink.wait_for_messages(who, 1, "the lock notification", Duration::from_secs(30))
            .await;
        let note = &sink.messages(who)[0];
        assert!(
            note.contains("alice@shop.example") && note.contains("locked"),
            "{note}"
        );
    }
    // Held apart from incoming mail, each traced to its identity.
    let held = super::outbound_quarantine(&c, 1).await;
    assert_eq!(held.len(), 5);
    assert!(
        super::quarantine(&c, 1).await.is_empty(),
        "not in the incoming quarantine"
    );
    assert!(held[0]
        .symbols
        .iter()
        .any(|s| s.name == "OUTBOUND_IDENTITY" && s.reason.starts_with("alice@shop.example via")));
    // An operator unlocks it: clean mail goes again.
    let out = c.peagectl(1, &["outbound", "identity", "unlock", "alice@shop.example"]);
    assert!(out.status.success(), "{out:?}");
    c.peagectl(0, &["outbound", "identity", "ls"]);
    let clean = message("alice@shop.example", "after-unlock");
    let r = submit(&c, 0, false, alice, "alice@shop.example", &clean);
    assert_eq!(r.data.as_ref().map(|d| d.0), Some(250), "{r:?}");
}

/// `peagectl dkim generate` for shop.example, its record published in `dns`.
fn dkim_key(c: &TestCluster, dns: &DnsServer, algorithm: &str, selector: &str) -> bool {
    let args = [
        "--json",
        "dkim",
        "generate",
        "shop.example",
        "--algorithm",
        algorithm,
        "--selector",
        selector,
    ];
    let out = c.peagectl(0, &args);
    assert!(out.status.success(), "{out:?}");
    let reply: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let key = &reply["key"];
    dns.add_txt(
        key["dns_name"].as_str().unwrap(),
        key["dns_record"].as_str().unwrap(),
    );
    key["active"].as_bool().unwrap()
}

#[tokio::test]
async fn outgoing_mail_is_dkim_signed_with_either_algorithm_and_verifies() {
    let dns = DnsServer::start("127.0.0.1", &[]).unwrap();
    let (c, sink) = with_alice(Tuning {
        dns_server: Some(dns.addr),
        ..Tuning::default()
    })
    .await;
    // The domain's first key signs at once; the second waits for its turn (rotation).
    assert!(dkim_key(&c, &dns, "ed25519", "ed1"));
    assert!(!dkim_key(&c, &dns, "rsa", "rsa1"));
    let alice = ("alice@shop.example", PASSWORD);
    // Whitespace-only lines at the end of the body (mail-auth 0.13.3 hashes them wrongly).
    let mut first = message("alice@shop.example", "signed-ed");
    first.extend_from_slice(b" \r\n\t\r\n");
    let r = submit(&c, 1, false, alice, "alice@shop.example", &first);
    assert_eq!(r.data.as_ref().map(|d| d.0), Some(250), "{r:?}");
    let out = c.peagectl(2, &["dkim", "activate", "shop.example", "rsa1"]);
    assert!(out.status.success(), "{out:?}");
    c.peagectl(1, &["dkim", "ls"]);
    let r = submit(
        &c,
        1,
        false,
        alice,
        "alice@shop.example",
        &message("alice@shop.example", "signed-rsa"),
    );
    assert_eq!(r.data.as_ref().map(|d| d.0), Some(250), "{r:?}");
    sink.wait_for_messages(
        "bob@elsewhere.example",
        2,
        "both signed messages",
        Duration::from_secs(30),
    )
    .await;
    let dir = tempfile::tempdir().unwrap();
    for (subject, selector, algorithm) in [
        ("signed-ed", "ed1", "ed25519-sha256"),
        ("signed-rsa", "rsa1", "rsa-sha256"),
    ] {
        let all = sink.messages("bob@elsewhere.example");
        let m = all.iter().find(|m| m.contains(subject)).expect("delivered");
        assert!(
            m.contains(&format!("s={selector}")) && m.contains(&format!("a={algorithm}")),
            "{m}"
        );
        // Verified by the cluster's own DKIM check, against the published records.
        let file = dir.path().join(format!("{subject}.eml"));
        std::fs::write(&file, m).unwrap();
        let out = c.peagectl(
            0,
            &[
                "check",
                file.to_str().unwrap(),
                "--from",
                "alice@shop.example",
            ],
        );
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(
            text.contains("DKIM_VALID") && !text.contains("DKIM_INVALID"),
            "{subject}: {text}"
        );
    }
}

#[tokio::test]
async fn outgoing_mail_reaches_the_next_mx_when_the_preferred_one_is_down() {
    let dns = DnsServer::start("127.0.0.1", &[]).unwrap();
    let (c, sink) = with_alice(Tuning {
        dns_server: Some(dns.addr),
        ..Tuning::default()
    })
    .await;
    // elsewhere.example's mail servers, as the DNS names them: not the bounce route's
    // sink. The preferred one does not answer; the message goes to the next.
    let (down_ip, mx_ip) = (format!("{}.202", c.net), format!("{}.201", c.net));
    dns.add_mxs(
        "elsewhere.example",
        &[
            (20, "mx2.elsewhere.example", &mx_ip),
            (10, "mx1.elsewhere.example", &down_ip),
        ],
    );
    let dir = tempfile::tempdir().unwrap();
    let mx = SinkProcess::start(&format!("{mx_ip}:2626"), dir.path())
        .await
        .unwrap();
    let alice = ("alice@shop.example", PASSWORD);
    let body = message("alice@shop.example", "via-mx");
    let r = submit(&c, 2, false, alice, "alice@shop.example", &body);
    assert_eq!(r.data.as_ref().map(|d| d.0), Some(250), "{r:?}");
    mx.wait_for_messages(
        "bob@elsewhere.example",
        1,
        "delivery to the MX",
        Duration::from_secs(30),
    )
    .await;
    assert!(sink.messages("bob@elsewhere.example").is_empty());
}
