//! Sender authentication against real nodes and a DNS server of the test's own (offline):
//! SPF pass, fail and softfail, DKIM signatures (ed25519 and RSA) verified and a tampered one
//! failed, an ARC chain checked, DMARC's reject policy honoured, the `Authentication-Results`
//! field the mailbox gets, the client named by its confirmed reverse DNS (in `Received:`
//! and tracking), and allow-listing that counts only for proved senders.

use base64::Engine;
use mail_auth::arc::ArcSealer;
use mail_auth::common::crypto::{Ed25519Key, RsaKey, Sha256};
use mail_auth::common::headers::HeaderWriter;
use mail_auth::dkim::DkimSigner;
use mail_auth::{AuthenticatedMessage, AuthenticationResults, MessageAuthenticator};
use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::pki_types::PrivateKeyDer;

use peage_tests::{smtplib_send_with, SinkProcess, SmtpOptions, TestCluster, Tuning};

use super::tracking::track_until;

fn message(from: &str, subject: &str) -> String {
    format!(
        "From: <{from}>\r\nTo: <bob@example.test>\r\nSubject: {subject}\r\n\
         Date: Sat, 05 Dec 2026 10:00:00 +0000\r\nMessage-ID: <{subject}@test>\r\n\r\n\
         Hello Bob, about {subject}.\r\n"
    )
}

/// The delivered copy whose Subject is `subject`.
async fn delivered(sink: &SinkProcess, n: usize, subject: &str) -> String {
    sink.wait_for_messages(
        "bob@example.test",
        n,
        "the accepted messages are delivered",
        std::time::Duration::from_secs(30),
    )
    .await;
    let all = sink.messages("bob@example.test");
    let found = all
        .iter()
        .find(|m| m.contains(&format!("Subject: {subject}\r\n")));
    found.cloned().expect("delivered")
}

/// A DKIM-Signature field for `message`, by signed.example's selector `sel`.
fn sign(pkcs8: &[u8], message: &str) -> String {
    DkimSigner::from_key(Ed25519Key::from_pkcs8_der(pkcs8).unwrap())
        .domain("signed.example")
        .selector("sel")
        .headers(["From", "To", "Subject", "Date", "Message-ID"])
        .sign(message.as_bytes())
        .unwrap()
        .to_header()
}

/// A client whose reverse DNS names a host whose address is the client's is named by it in
/// our `Received:` field and its tracking events; one without is `unknown`. The resolver
/// answers loopback from the hosts file or itself (RFC 6761): 127.0.0.1 has a name (which
/// one depends on the machine) whose address it is; 127.0.0.5 a name whose address it is not.
async fn the_client_is_named_by_its_confirmed_reverse_dns(c: &TestCluster, sink: &SinkProcess) {
    let (host, port) = c.nodes[1].smtp_addr();
    for (source, subject) in [("127.0.0.1", "named"), ("127.0.0.5", "unnamed")] {
        let options = SmtpOptions {
            source: Some(source.into()),
            ..Default::default()
        };
        let from = "alice@pass.example";
        let body = message(from, subject);
        let rcpts = ["bob@example.test"];
        let r = smtplib_send_with(&host, port, from, &rcpts, body.as_bytes(), &options);
        assert_eq!(r.data.clone().unwrap_or_default().0, 250, "{r:?}");
    }
    let named = delivered(sink, 6, "named").await;
    let name = named
        .strip_prefix("Received: from client.example (")
        .and_then(|rest| rest.split_once(" [127.0.0.1])"))
        .map(|(name, _)| name);
    let name = name.unwrap_or_else(|| panic!("{named}"));
    assert!(name != "unknown" && named.contains("iprev=pass"), "{named}");
    let unnamed = delivered(sink, 6, "unnamed").await;
    assert!(
        unnamed.starts_with("Received: from client.example (unknown [127.0.0.5])")
            && unnamed.contains("iprev=fail"),
        "{unnamed}"
    );
    let accepted_from = |events: &[serde_json::Value], ip: &str| {
        let accepted = |e: &&serde_json::Value| e["kind"] == "accepted" && e["client_ip"] == ip;
        events.iter().find(accepted).map(|e| e["rdns"].clone())
    };
    let (events, _) = track_until(c, 0, &["--sender", "alice@pass.example"], |events, _| {
        ["127.0.0.1", "127.0.0.5"]
            .iter()
            .all(|ip| accepted_from(events, ip).is_some())
    })
    .await;
    assert_eq!(
        accepted_from(&events, "127.0.0.1").unwrap(),
        name,
        "{events:?}"
    );
    assert_eq!(
        accepted_from(&events, "127.0.0.5").unwrap(),
        "",
        "{events:?}"
    );
}

#[tokio::test]
async fn spf_dkim_and_dmarc_are_checked_and_reported() {
    let pkcs8 = Ed25519Key::generate_pkcs8().unwrap();
    let key = Ed25519Key::from_pkcs8_der(&pkcs8).unwrap();
    let public = base64::engine::general_purpose::STANDARD.encode(key.public_key());
    let dkim_record = format!("v=DKIM1; k=ed25519; p={public}");
    let (c, _dns) = TestCluster::start_authenticating(
        Tuning::default(),
        &[
            ("pass.example", "v=spf1 ip4:127.0.0.0/8 -all"),
            ("_dmarc.pass.example", "v=DMARC1; p=reject"),
            ("fail.example", "v=spf1 ip4:192.0.2.1 -all"),
            ("_dmarc.fail.example", "v=DMARC1; p=reject"),
            ("soft.example", "v=spf1 ~all"),
            ("signed.example", "v=spf1 -all"),
            ("sel._domainkey.signed.example", &dkim_record),
            ("_dmarc.signed.example", "v=DMARC1; p=reject"),
        ],
    )
    .await
    .unwrap();
    let sink = c.start_sink().await.unwrap();
    let send = |from: &str, body: &str| {
        let r = c.smtp_send(1, from, &["bob@example.test"], body.as_bytes());
        r.data.clone().unwrap_or_default()
    };

    // SPF passes, aligned with the From: DMARC passes.
    assert_eq!(
        send("alice@pass.example", &message("alice@pass.example", "pass")).0,
        250
    );
    // SPF fails and nothing else aligns: the domain's p=reject is honoured.
    let (code, text) = send(
        "mallory@fail.example",
        &message("mallory@fail.example", "fail"),
    );
    assert_eq!(code, 550, "{text}");
    assert!(text.contains("DMARC"), "{text}");
    // Softfail, no DMARC record: scored, delivered.
    assert_eq!(
        send("x@soft.example", &message("x@soft.example", "soft")).0,
        250
    );
    // SPF fails, but an aligned DKIM signature passes: DMARC passes.
    let plain = message("news@signed.example", "signed");
    let signed = format!("{}{plain}", sign(&pkcs8, &plain));
    assert_eq!(send("news@signed.example", &signed).0, 250);
    // Whitespace-only lines at the end change nothing under relaxed canonicalisation (RFC
    // 6376 §3.4.4): a signature made without them still verifies with them (mail-auth
    // 0.13.3 hashes them wrongly; the node works around it).
    let plain = message("news@signed.example", "trailing");
    let signed = format!("{}{plain} \r\n\t\r\n  \r\n", sign(&pkcs8, &plain));
    assert_eq!(send("news@signed.example", &signed).0, 250);

    let m = delivered(&sink, 4, "trailing").await;
    assert!(m.contains("dkim=pass") && m.contains("DKIM_VALID"), "{m}");
    let m = delivered(&sink, 4, "pass").await;
    let header = &m[..m.find("\r\n\r\n").unwrap()];
    assert!(
        header.contains("Authentication-Results: roubaix.peage;"),
        "{header}"
    );
    assert!(
        header.contains("spf=pass") && header.contains("dmarc=pass"),
        "{header}"
    );
    assert!(
        header.contains("SPF_PASS") && header.contains("DMARC_PASS"),
        "{header}"
    );
    let m = delivered(&sink, 4, "soft").await;
    assert!(
        m.contains("spf=softfail") && m.contains("SPF_SOFTFAIL"),
        "{m}"
    );
    let m = delivered(&sink, 4, "signed").await;
    assert!(m.contains("dkim=pass") && m.contains("DKIM_VALID"), "{m}");
    assert!(m.contains("dmarc=pass") && m.contains("spf=fail"), "{m}");
    the_client_is_named_by_its_confirmed_reverse_dns(&c, &sink).await;
}

#[tokio::test]
async fn an_allow_listed_sender_counts_only_when_spf_or_dkim_proves_it() {
    let (c, _dns) = TestCluster::start_authenticating(
        Tuning::default(),
        &[("partner.example", "v=spf1 ip4:127.0.0.0/8 -all")],
    )
    .await
    .unwrap();
    let sink = c.start_sink().await.unwrap();
    for domain in ["partner.example", "unproved.example"] {
        let out = c.peagectl(0, &["list", "add", "domain", domain, "--list", "allow"]);
        assert!(out.status.success(), "{out:?}");
    }
    for (from, subject) in [
        ("news@partner.example", "proved"),
        ("news@unproved.example", "claimed"),
    ] {
        let r = c.smtp_send(
            1,
            from,
            &["bob@example.test"],
            message(from, subject).as_bytes(),
        );
        assert_eq!(r.data.as_ref().map(|d| d.0), Some(250), "{r:?}");
    }
    let m = delivered(&sink, 2, "proved").await;
    assert!(
        m.contains("ALLOWLIST") && !m.contains("ALLOWLIST_UNPROVED"),
        "{m}"
    );
    let m = delivered(&sink, 2, "claimed").await;
    assert!(m.contains("ALLOWLIST_UNPROVED"), "{m}");
}

/// The RSA test key (a fixture: ring cannot make RSA keys) and its public half for DNS.
fn rsa_key() -> (RsaKey<Sha256>, String) {
    let fixtures = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures");
    let pem = std::fs::read_to_string(fixtures.join("dkim-rsa-2048.pem")).unwrap();
    let public = std::fs::read_to_string(fixtures.join("dkim-rsa-2048.pub.b64")).unwrap();
    let der = PrivateKeyDer::from_pem_slice(pem.as_bytes()).unwrap();
    let key = RsaKey::<Sha256>::from_key_der(der).unwrap();
    (key, format!("v=DKIM1; k=rsa; p={}", public.trim()))
}

#[tokio::test]
async fn rsa_signatures_verify_tampering_fails_and_an_arc_chain_is_checked() {
    let (_, rsa_record) = rsa_key();
    let (c, _dns) = TestCluster::start_authenticating(
        Tuning::default(),
        &[
            ("rsa._domainkey.rsa.example", &rsa_record),
            ("arc._domainkey.forwarder.example", &rsa_record),
        ],
    )
    .await
    .unwrap();
    let sink = c.start_sink().await.unwrap();
    let send = |from: &str, body: &str| {
        let r = c.smtp_send(0, from, &["bob@example.test"], body.as_bytes());
        assert_eq!(r.data.as_ref().map(|d| d.0), Some(250), "{r:?}");
    };
    let sign = |message: &str| {
        DkimSigner::from_key(rsa_key().0)
            .domain("rsa.example")
            .selector("rsa")
            .headers(["From", "To", "Subject", "Date", "Message-ID"])
            .sign(message.as_bytes())
            .unwrap()
            .to_header()
    };
    // An RSA signature verifies.
    let plain = message("news@rsa.example", "rsa-signed");
    send("news@rsa.example", &format!("{}{plain}", sign(&plain)));
    // The same signature over a body changed on the way: the signature fails.
    let plain = message("news@rsa.example", "tampered");
    let tampered = format!("{}{plain}", sign(&plain)).replace("Hello Bob", "Hello Eve");
    send("news@rsa.example", &tampered);
    // Sealed by a forwarder (ARC, RFC 8617): the chain is checked.
    let plain = message("list@forwarder.example", "sealed");
    let parsed = AuthenticatedMessage::parse(plain.as_bytes()).unwrap();
    let resolver = MessageAuthenticator::new_google().unwrap();
    let arc = resolver.verify_arc(&parsed).await;
    let results = AuthenticationResults::new("forwarder.example");
    let set = ArcSealer::from_key(rsa_key().0)
        .domain("forwarder.example")
        .selector("arc")
        .headers(["From", "To", "Subject", "Date", "Message-ID"])
        .seal(&parsed, &results, &arc)
        .unwrap();
    send(
        "list@forwarder.example",
        &format!("{}{plain}", set.to_header()),
    );

    let m = delivered(&sink, 3, "rsa-signed").await;
    assert!(m.contains("dkim=pass") && m.contains("DKIM_VALID"), "{m}");
    let m = delivered(&sink, 3, "tampered").await;
    // mail-auth reports a body that no longer matches its hash as `neutral`.
    assert!(
        m.contains("body hash did not verify") && m.contains("DKIM_INVALID"),
        "{m}"
    );
    assert!(!m.contains("dkim=pass"), "{m}");
    let m = delivered(&sink, 3, "sealed").await;
    assert!(m.contains("arc=pass") && m.contains("ARC_VALID"), "{m}");
}

#[tokio::test]
async fn each_local_domain_chooses_what_a_failing_dmarc_policy_does() {
    let (c, _dns) = TestCluster::start_authenticating(
        Tuning::default(),
        &[
            ("fail.example", "v=spf1 ip4:192.0.2.1 -all"),
            ("_dmarc.fail.example", "v=DMARC1; p=reject"),
        ],
    )
    .await
    .unwrap();
    let sink = c.start_sink().await.unwrap();
    let route = format!("smtp://{}", c.sink_addr());
    for (domain, dmarc) in [("held.example", "quarantine"), ("scored.example", "score")] {
        let args = ["domain", "add", domain, "--route", &route, "--dmarc", dmarc];
        let out = c.peagectl(0, &args);
        assert!(out.status.success(), "{out:?}");
    }
    // Thresholds above what the failure weighs alone (SPF_FAIL 2 + DMARC_FAIL_REJECT 6), so
    // that the verdict shows what the policy setting did, not what the points did.
    let out = c.peagectl(
        0,
        &["policy", "set", "--quarantine", "10", "--reject", "20"],
    );
    assert!(out.status.success(), "{out:?}");
    let out = c.peagectl(1, &["domain", "ls"]);
    let table = String::from_utf8_lossy(&out.stdout);
    assert!(
        table.contains("quarantine") && table.contains("default"),
        "{table}"
    );
    let send = |node: usize, rcpt: &str, subject: &str| {
        let body = message("mallory@fail.example", subject);
        let r = c.smtp_send(node, "mallory@fail.example", &[rcpt], body.as_bytes());
        r.data.clone().unwrap_or_default()
    };
    // The node's own setting (honour): the sender's p=reject is refused.
    let (code, text) = send(1, "bob@example.test", "to-default");
    assert_eq!(code, 550, "{text}");
    // held.example holds it instead; scored.example only scores it.
    assert_eq!(send(1, "bob@held.example", "to-held").0, 250);
    assert_eq!(send(2, "bob@scored.example", "to-scored").0, 250);
    // With recipients in both, the most lenient decides: delivered, scored.
    let body = message("mallory@fail.example", "to-both");
    let rcpts = ["carol@held.example", "carol@scored.example"];
    let r = c.smtp_send(0, "mallory@fail.example", &rcpts, body.as_bytes());
    assert_eq!(r.data.as_ref().map(|d| d.0), Some(250), "{r:?}");

    sink.wait_for_messages(
        "bob@scored.example",
        1,
        "the scored message is delivered",
        std::time::Duration::from_secs(30),
    )
    .await;
    let m = &sink.messages("bob@scored.example")[0];
    assert!(m.contains("DMARC_FAIL_REJECT"), "{m}");
    let held = super::quarantine(&c, 0).await;
    assert_eq!(held.len(), 1, "{held:?}");
    assert_eq!(held[0].rcpt_to, ["bob@held.example"], "{held:?}");
}
