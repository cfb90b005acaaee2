//! DNS blocklists against real nodes and the test's own DNS server (offline): the client's
//! address against a DNSBL zone with a per-answer symbol, URL hosts against a URI zone, an
//! error-code answer reported and not scored; through `check` and through SMTP.

use std::time::Duration;

use peage_node::blocklists::Blocklist;
use peage_tests::v1::CheckMessageRequest;
use peage_tests::{DnsServer, TestCluster, Tuning};

/// The zones as an operator writes them in the node's TOML (`[[dns.blocklists]]`).
fn zones() -> Vec<Blocklist> {
    #[derive(serde::Deserialize)]
    struct Dns {
        blocklists: Vec<Blocklist>,
    }
    let text = r#"
        [[blocklists]]
        zone = "zen.test"
        checks = "ip"
        symbol = "ZEN"
        score = 3.5
        codes = { "127.0.0.4" = { symbol = "ZEN_XBL", score = 6.0 } }

        [[blocklists]]
        zone = "dbl.test"
        checks = "uri"
        symbol = "DBL"
        score = 4.0
    "#;
    toml::from_str::<Dns>(text).unwrap().blocklists
}

fn message(link: &str) -> Vec<u8> {
    format!(
        "From: <news@client.example>\r\nTo: <bob@example.test>\r\nSubject: offer {link}\r\n\
         Date: Sat, 05 Dec 2026 10:00:00 +0000\r\nMessage-ID: <{link}@client.example>\r\n\r\n\
         Hello Bob, see https://{link}/page for the details.\r\n"
    )
    .into_bytes()
}

/// `check`'s symbols for a message with `link` from `client_ip`, with their points.
async fn checked(c: &TestCluster, client_ip: &str, link: &str) -> Vec<(String, i64)> {
    let reply = c
        .client(1)
        .await
        .unwrap()
        .check_message(CheckMessageRequest {
            message: message(link),
            client_ip: client_ip.into(),
            helo: "mail.client.example".into(),
            mail_from: "news@client.example".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    reply
        .symbols
        .into_iter()
        .map(|s| (s.name, s.score_milli))
        .collect()
}

fn has(symbols: &[(String, i64)], name: &str, points_milli: i64) -> bool {
    symbols.iter().any(|(n, p)| n == name && *p == points_milli)
}

#[tokio::test]
async fn listed_addresses_and_link_hosts_are_scored_and_error_codes_only_reported() {
    let dns = DnsServer::start_with_addresses(
        "127.0.0.1",
        &[],
        &[
            ("7.113.0.203.zen.test", "127.0.0.4"),
            ("9.113.0.203.zen.test", "127.0.0.2"),
            ("8.113.0.203.zen.test", "127.255.255.254"),
            ("evil.example.dbl.test", "127.0.1.2"),
        ],
    )
    .unwrap();
    let c = TestCluster::start(Tuning {
        dns_server: Some(dns.addr),
        blocklists: zones(),
        ..Tuning::default()
    })
    .await
    .unwrap();
    c.route_local_domain().await.unwrap();

    // An answer named in the zone's codes takes its own symbol and points; another answer
    // the zone's.
    let s = checked(&c, "203.0.113.7", "good.example").await;
    assert!(has(&s, "ZEN_XBL", 6000), "{s:?}");
    let s = checked(&c, "203.0.113.9", "good.example").await;
    assert!(
        has(&s, "ZEN", 3500) && !s.iter().any(|(n, _)| n == "DBL"),
        "{s:?}"
    );
    // A refusal code is reported with no points, and nothing is scored from it.
    let s = checked(&c, "203.0.113.8", "good.example").await;
    assert!(has(&s, "DNS_BLOCKLIST_ERROR", 0), "{s:?}");
    assert!(!s.iter().any(|(n, _)| n.starts_with("ZEN")), "{s:?}");
    // Not listed: nothing.
    let s = checked(&c, "198.51.100.1", "good.example").await;
    assert!(
        !s.iter()
            .any(|(n, _)| n.starts_with("ZEN") || n.starts_with("DNS_")),
        "{s:?}"
    );
    // A link's host is asked with its parent domain: click.evil.example hits evil.example.
    let s = checked(&c, "198.51.100.1", "click.evil.example").await;
    assert!(has(&s, "DBL", 4000), "{s:?}");

    // The same through SMTP: the delivered copy carries the listing.
    let sink = c.start_sink().await.unwrap();
    let r = c.smtp_send(
        0,
        "news@client.example",
        &["bob@example.test"],
        &message("www.evil.example"),
    );
    assert_eq!(r.data.as_ref().map(|d| d.0), Some(250), "{r:?}");
    sink.wait_for_messages(
        "bob@example.test",
        1,
        "the message is delivered",
        Duration::from_secs(30),
    )
    .await;
    let m = &sink.messages("bob@example.test")[0];
    assert!(m.contains("DBL"), "{m}");
    // Roubaix answered the checks above: it counted the refusal code.
    let series = "peage_dns_blocklist_errors_total{zone=\"zen.test\"}";
    peage_tests::wait_for(
        "the error answer counted",
        // A scrape of a node on a loaded test machine can take seconds: the deadline of
        // the other waits here.
        Duration::from_secs(30),
        || async {
            let counted = c.metric(1, series).await.unwrap_or(0.0);
            (counted >= 1.0).then_some(())
        },
    )
    .await
    .unwrap();
}
