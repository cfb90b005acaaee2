//! The platform's own MTAs relaying through the submission port without AUTH, trusted by
//! their network, each message counted as the identity the MTA's `Received` names; and one
//! credential for a whole domain, each envelope sender its own identity. Locks and the
//! abuse desk's trace header follow the identity, not the principal.

use std::time::Duration;

use peage_tests::{smtplib_send_with, SmtpOptions, TestCluster};

use super::submission::{submit_to, with_alice, PASSWORD};

/// The platform MTA's address: a client on another network than the tests' 127.0.0.1.
const PLATFORM_MTA: &str = "127.0.0.9";

/// A message as the platform MTA relays it: its own `Received` names who logged in there.
fn relayed(author: &str, subject: &str) -> Vec<u8> {
    format!(
        "Received: from pc.customer (pc.customer [198.51.100.7])\r\n\
         \t(Authenticated sender: {author})\r\n\
         \tby mta.platform.example (Postfix) with ESMTPSA id 4Xq;\r\n\
         \tSun, 06 Dec 2026 10:00:00 +0000\r\n\
         From: <{author}>\r\nTo: <bob@elsewhere.example>\r\nSubject: {subject}\r\n\
         Date: Sun, 06 Dec 2026 10:00:00 +0000\r\nMessage-ID: <{subject}@example.test>\r\n\r\n\
         Hello Bob, about {subject}.\r\n"
    )
    .into_bytes()
}

/// smtplib on Paris's 587 from `source`, without AUTH; the reply to each step.
fn relay_from(c: &TestCluster, source: &str, from: &str, body: &[u8]) -> peage_tests::SmtpResult {
    let (host, _) = c.nodes[0].smtp_addr();
    let options = SmtpOptions {
        source: Some(source.to_owned()),
        ..SmtpOptions::default()
    };
    smtplib_send_with(&host, 587, from, &["bob@elsewhere.example"], body, &options)
}

fn code(step: &Option<(u16, String)>) -> Option<u16> {
    step.as_ref().map(|s| s.0)
}

#[tokio::test]
async fn the_platform_mta_relays_from_its_network_each_message_counted_as_its_author() {
    let (c, sink) = with_alice(Default::default()).await;
    let out = c.peagectl(
        0,
        &[
            "user",
            "add",
            "platform",
            "--domain",
            "*",
            "--network",
            "127.0.0.9/32",
            "--identity",
            "header:Received",
            "--no-password",
        ],
    );
    assert!(out.status.success(), "{out:?}");
    let listed = c.peagectl(1, &["user", "ls"]);
    let listed = String::from_utf8_lossy(&listed.stdout).into_owned();
    assert!(
        listed.contains("127.0.0.9/32 (only)") && listed.contains("header:Received"),
        "{listed}"
    );

    // From its network: no AUTH, any hosted domain, the author traced.
    let r = relay_from(
        &c,
        PLATFORM_MTA,
        "bob@example.test",
        &relayed("bob@example.test", "first"),
    );
    assert_eq!(code(&r.data), Some(250), "{r:?}");
    sink.wait_for_messages(
        "bob@elsewhere.example",
        1,
        "the relayed message",
        Duration::from_secs(30),
    )
    .await;
    let delivered = &sink.messages("bob@elsewhere.example")[0];
    assert!(
        delivered.contains("X-Peage-Outbound-Identity: bob@example.test; principal=platform"),
        "{delivered}"
    );
    // From elsewhere, the same client must log in; a domain that is not hosted is refused.
    let r = relay_from(
        &c,
        "127.0.0.10",
        "bob@example.test",
        &relayed("bob@example.test", "x"),
    );
    assert_eq!(code(&r.mail), Some(530), "{r:?}");
    let r = relay_from(
        &c,
        PLATFORM_MTA,
        "eve@not-hosted.example",
        &relayed("eve@not-hosted.example", "x"),
    );
    assert_eq!(code(&r.mail), Some(553), "{r:?}");

    // Locking bob's identity stops bob, not the platform's other customers.
    let out = c.peagectl(0, &["outbound", "identity", "lock", "bob@example.test"]);
    assert!(out.status.success(), "{out:?}");
    let r = relay_from(
        &c,
        PLATFORM_MTA,
        "bob@example.test",
        &relayed("bob@example.test", "second"),
    );
    assert_eq!(code(&r.data), Some(550), "{r:?}");
    assert!(
        r.data
            .as_ref()
            .unwrap()
            .1
            .contains("bob@example.test is locked"),
        "{r:?}"
    );
    let r = relay_from(
        &c,
        PLATFORM_MTA,
        "carol@example.test",
        &relayed("carol@example.test", "third"),
    );
    assert_eq!(code(&r.data), Some(250), "{r:?}");
    sink.wait_for_messages(
        "bob@elsewhere.example",
        2,
        "carol's message",
        Duration::from_secs(30),
    )
    .await;
    assert_eq!(
        sink.messages("bob@elsewhere.example").len(),
        2,
        "bob's second stayed out"
    );
}

#[tokio::test]
async fn a_domain_credential_counts_each_sender_as_its_own_identity() {
    let (c, sink) = with_alice(Default::default()).await;
    let args = [
        "user",
        "add",
        "shop.example",
        "--domain",
        "shop.example",
        "--identity",
        "sender",
    ];
    let out = c.peagectl_with_input(0, &args, &format!("{PASSWORD}\n"));
    assert!(out.status.success(), "{out:?}");
    let out = c.peagectl(0, &["outbound", "identity", "lock", "dave@shop.example"]);
    assert!(out.status.success(), "{out:?}");
    let send = |from: &str| {
        let body = super::submission::message(from, &format!("from-{from}"));
        let credential = ("shop.example", PASSWORD);
        submit_to(
            &c,
            (1, false),
            credential,
            from,
            &["bob@elsewhere.example"],
            &body,
        )
    };
    let r = send("dave@shop.example");
    assert_eq!(code(&r.mail), Some(550), "{r:?}");
    let r = send("erin@shop.example");
    assert_eq!(code(&r.data), Some(250), "{r:?}");
    sink.wait_for_messages(
        "bob@elsewhere.example",
        1,
        "erin's message",
        Duration::from_secs(30),
    )
    .await;
    let delivered = &sink.messages("bob@elsewhere.example")[0];
    assert!(
        delivered.contains("X-Peage-Outbound-Identity: erin@shop.example; principal=shop.example"),
        "{delivered}"
    );
}
