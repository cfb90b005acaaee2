//! Evidence counted at one site is used at the others: a sender domain whose mail Paris
//! rejected has a bad reputation at Ariège, and a campaign first seen at Paris scores as
//! bulk at Roubaix. Names count only when SPF proves them: forged rejections do not poison a
//! victim's domain.

use std::time::Duration;

use peage_tests::v1::*;
use peage_tests::{smtplib_send_with, wait_for, DnsServer, SmtpOptions, TestCluster, Tuning};

const GTUBE: &str = "XJS*C4JDBQADN1.NSBN3*2IDNEN*GTUBE-STANDARD-ANTI-UBE-TEST-EMAIL*C.34X";

fn mail(from: &str, n: usize, body: &str) -> Vec<u8> {
    format!(
        "From: {from}\r\nTo: bob@example.test\r\nSubject: note {n}\r\nDate: Wed, 25 Nov 2026 10:00:00 +0000\r\nMessage-ID: <e{n}@sender.example>\r\n\r\n{body}\r\n"
    )
    .into_bytes()
}

fn campaign(name: &str, n: usize) -> String {
    format!(
        "Dear {name}, our spring collection is here. Order before Friday and save {n} percent on every item in the catalogue, with free delivery to your door and a gift for the first hundred orders."
    )
}

async fn symbols(
    c: &TestCluster,
    node: usize,
    from: &str,
    client_ip: &str,
    message: Vec<u8>,
) -> Vec<String> {
    c.client(node)
        .await
        .unwrap()
        .check_message(CheckMessageRequest {
            message,
            client_ip: client_ip.into(),
            helo: "mail.sender.example".into(),
            mail_from: from.into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .symbols
        .into_iter()
        .map(|s| s.name)
        .collect()
}

/// A cluster authenticating senders against a DNS server publishing `spf`.
async fn cluster_with_spf(spf: &[(&str, &str)]) -> (TestCluster, DnsServer) {
    TestCluster::start_authenticating(Tuning::default(), spf)
        .await
        .unwrap()
}

/// The symbols `check` gives, once they include `wanted` (within 20 s: evidence is
/// flushed through Raft every 200 ms in tests).
async fn symbols_once_they_include<F, Fut>(reason: &str, wanted: &str, check: F) -> Vec<String>
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = Vec<String>>,
{
    wait_for(reason, Duration::from_secs(20), || async {
        let s = check().await;
        s.iter().any(|n| n == wanted).then_some(s)
    })
    .await
    .unwrap()
}

#[tokio::test]
async fn reputation_and_bulk_counted_at_one_site_score_at_the_others() {
    // spammy.example's SPF passes both the test's own sessions and `check`'s client.
    let spf = "v=spf1 ip4:127.0.0.0/8 ip4:198.51.100.0/24 -all";
    let (c, _dns) = cluster_with_spf(&[("spammy.example", spf)]).await;

    // Before: nothing known about spammy.example, nor about the campaign.
    let clean = mail("y@spammy.example", 0, "Hello, a plain note.");
    let s = symbols(&c, 2, "y@spammy.example", "198.51.100.9", clean.clone()).await;
    assert!(!s.iter().any(|n| n.starts_with("REPUTATION")), "{s:?}");
    let probe = mail("shop@sender.example", 99, &campaign("Zoe", 99));
    let s = symbols(&c, 1, "shop@sender.example", "198.51.100.9", probe.clone()).await;
    assert!(!s.iter().any(|n| n.starts_with("BULK")), "{s:?}");

    // Paris rejects eleven messages from spammy.example …
    for n in 0..11 {
        let r = c.smtp_send(
            0,
            "x@spammy.example",
            &["bob@example.test"],
            &mail("x@spammy.example", n, GTUBE),
        );
        assert_eq!(r.data.as_ref().map(|d| d.0), Some(550), "{r:?}");
        // … and as many forged in the name of victim.example, which publishes no SPF.
        let forged = mail("x@victim.example", n + 40, GTUBE);
        let r = c.smtp_send(0, "x@victim.example", &["bob@example.test"], &forged);
        assert_eq!(r.data.as_ref().map(|d| d.0), Some(550), "{r:?}");
    }
    // … and accepts six copies of a campaign.
    for (n, name) in ["Alice", "Bob", "Carol", "Dave", "Erin", "Frank"]
        .iter()
        .enumerate()
    {
        let body = mail("shop@sender.example", n + 20, &campaign(name, n + 20));
        let r = c.smtp_send(0, "shop@sender.example", &["bob@example.test"], &body);
        assert_eq!(r.data.as_ref().map(|d| d.0), Some(250), "{r:?}");
    }

    // Ariège now distrusts the sender domain, whatever the client network.
    let s = symbols_once_they_include("Ariège knows spammy.example", "REPUTATION_BAD", || {
        symbols(&c, 2, "y@spammy.example", "198.51.100.9", clean.clone())
    })
    .await;
    assert!(s.contains(&"REPUTATION_BAD".to_owned()), "{s:?}");
    let other = symbols(
        &c,
        2,
        "y@other.example",
        "198.51.100.9",
        mail("y@other.example", 1, "Hello, a plain note."),
    )
    .await;
    assert!(
        !other.iter().any(|n| n.starts_with("REPUTATION")),
        "{other:?}"
    );
    let victim = mail("y@victim.example", 2, "Hello, a plain note.");
    let s = symbols(&c, 2, "y@victim.example", "198.51.100.9", victim).await;
    assert!(
        !s.iter().any(|n| n.starts_with("REPUTATION")),
        "forged rejections poisoned victim.example: {s:?}"
    );

    // Roubaix sees a seventh copy of the campaign as bulk.
    let s = symbols_once_they_include("Roubaix knows the campaign", "BULK_SOME", || {
        symbols(&c, 1, "shop@sender.example", "198.51.100.9", probe.clone())
    })
    .await;
    assert!(s.contains(&"BULK_SOME".to_owned()), "{s:?}");
    let unrelated = mail("shop@sender.example", 98, "Hi team, the minutes of yesterday's planning meeting are attached; please send corrections before Thursday so that we can publish them on the wiki.");
    let s = symbols(&c, 1, "shop@sender.example", "198.51.100.9", unrelated).await;
    assert!(!s.iter().any(|n| n.starts_with("BULK")), "{s:?}");

    // Every node holds the same counts.
    let digests = c.digests(0).await.unwrap();
    assert!(digests.windows(2).all(|w| w[0] == w[1]), "{digests:?}");
}

/// The evidence keys node `i` has applied, read from its state database.
fn evidence_keys(c: &TestCluster, i: usize) -> Vec<String> {
    let path = c.nodes[i].data_dir.join("state.sqlite");
    let db =
        rusqlite::Connection::open_with_flags(&path, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
            .unwrap();
    let mut q = db.prepare("SELECT key FROM evidence").unwrap();
    q.query_map([], |r| r.get(0))
        .unwrap()
        .map(Result::unwrap)
        .collect()
}

/// A client names itself in EHLO and its domain in MAIL FROM: names with characters no host
/// name has, or longer than any host name, are never counted as evidence, so no client
/// decides what goes into an `EvidenceAdd` entry or how large its keys are. The same session
/// with host names is counted (the test would see nothing otherwise).
#[tokio::test]
async fn hostile_ehlo_names_never_reach_the_evidence_entries() {
    let junk = format!("{}.example", "%".repeat(240));
    // The longest host name DNS can hold (252 bytes) is counted once SPF proves it, its key
    // within the bound.
    let label = "b".repeat(63);
    let longest_host = format!("{label}.{label}.{label}.{}.example", "b".repeat(52));
    let pass = "v=spf1 ip4:127.0.0.0/8 -all";
    let (c, _dns) = cluster_with_spf(&[
        ("spammy.example", pass),
        ("mx1.sane.example", pass),
        (longest_host.as_str(), pass),
    ])
    .await;
    let sessions = [
        (junk.as_str(), "x0@spammy.example".to_owned()),
        ("x%y!z{}.example", "x1@spammy.example".to_owned()),
        ("mail.example/../../etc", "x2@spammy.example".to_owned()),
        (longest_host.as_str(), "x3@spammy.example".to_owned()),
        ("MX1.Sane.Example.", "x4@Spammy.Example".to_owned()),
    ];
    let (host, port) = c.nodes[0].smtp_addr();
    for (n, (helo, from)) in sessions.iter().enumerate() {
        let options = SmtpOptions {
            helo: Some(helo.to_string()),
            ..Default::default()
        };
        let body = mail(from, n, GTUBE);
        let r = smtplib_send_with(&host, port, from, &["bob@example.test"], &body, &options);
        assert_eq!(r.ehlo.as_ref().map(|e| e.0), Some(250), "{helo:.40}: {r:?}");
        assert_eq!(r.data.as_ref().map(|d| d.0), Some(550), "{helo:.40}: {r:?}");
    }
    for i in 0..3 {
        let keys = wait_for(
            "the sane names counted on every node",
            Duration::from_secs(20),
            || async {
                let keys = evidence_keys(&c, i);
                keys.iter()
                    .any(|k| k == "helo:mx1.sane.example")
                    .then_some(keys)
            },
        )
        .await
        .unwrap();
        let mut named: Vec<&str> = keys
            .iter()
            .map(String::as_str)
            .filter(|k| k.starts_with("helo:") || k.starts_with("sender:"))
            .collect();
        named.sort();
        let longest_key = format!("helo:{longest_host}");
        let mut expected = [
            longest_key.as_str(),
            "helo:mx1.sane.example",
            "sender:spammy.example",
        ];
        expected.sort();
        assert_eq!(named, expected, "node {i}");
        let longest = keys.iter().map(String::len).max().unwrap_or(0);
        assert!(longest <= 300, "node {i}: a key of {longest} bytes");
    }
}
