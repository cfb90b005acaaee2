//! Evidence counted at one site is used at the others: a sender domain whose mail Paris
//! rejected has a bad reputation at Ariège, and a campaign first seen at Paris scores as
//! bulk at Roubaix.

use std::time::Duration;

use peage_tests::v1::*;
use peage_tests::{wait_for, TestCluster, Tuning};

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
        })
        .await
        .unwrap()
        .into_inner()
        .symbols
        .into_iter()
        .map(|s| s.name)
        .collect()
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
    let c = TestCluster::start(Tuning::default()).await.unwrap();
    c.route_domain("example.test", &format!("smtp://{}", c.sink_addr()))
        .await
        .unwrap();

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
