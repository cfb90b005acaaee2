//! Every node's HTTP endpoint: Prometheus metrics that move with the traffic, and a
//! `/healthz` that tells whether the node is in a working majority.

use std::time::Duration;

use peage_tests::v1::*;
use peage_tests::{http_get, wait_for, TestCluster, Tuning};

use peage_tests::metric_value as value;

#[tokio::test]
async fn metrics_count_the_mail_path_and_healthz_follows_the_quorum() {
    // With STARTTLS's certificate, whose expiry an alert reads.
    let tls = Tuning {
        tls: true,
        ..Tuning::default()
    };
    let mut c = TestCluster::start(tls).await.unwrap();
    for i in 0..3 {
        let (status, body) = http_get(&c.nodes[i].metrics_addr(), "/healthz")
            .await
            .unwrap();
        assert_eq!(status, 200, "{body}");
        assert!(body.starts_with("ok: in quorum"), "{body}");
    }
    c.route_local_domain().await.unwrap();
    let index = c.sync_all(0).await.unwrap();

    // One GTUBE (rejected) and one ham (queued; nothing listens downstream, so it stays).
    let gtube = b"From: a@client.example\r\nSubject: t\r\n\r\nXJS*C4JDBQADN1.NSBN3*2IDNEN*GTUBE-STANDARD-ANTI-UBE-TEST-EMAIL*C.34X\r\n";
    let r = c.smtp_send(1, "a@client.example", &["bob@example.test"], gtube);
    assert_eq!(r.data.as_ref().map(|d| d.0), Some(550), "{r:?}");
    let ham = b"From: a@client.example\r\nTo: bob@example.test\r\nSubject: hi\r\nDate: Wed, 25 Nov 2026 10:00:00 +0000\r\nMessage-ID: <m1@client.example>\r\n\r\nHello.\r\n";
    let r = c.smtp_send(1, "a@client.example", &["bob@example.test"], ham);
    assert_eq!(r.data.as_ref().map(|d| d.0), Some(250), "{r:?}");

    let (status, m) = http_get(&c.nodes[1].metrics_addr(), "/metrics")
        .await
        .unwrap();
    assert_eq!(status, 200);
    assert_eq!(value(&m, "peage_smtp_sessions_total"), Some(2.0), "{m}");
    assert_eq!(
        value(&m, "peage_smtp_replies_total{code=\"550\"}"),
        Some(1.0),
        "{m}"
    );
    assert_eq!(
        value(&m, "peage_filter_verdicts_total{verdict=\"reject\"}"),
        Some(1.0),
        "{m}"
    );
    assert_eq!(
        value(&m, "peage_filter_verdicts_total{verdict=\"deliver\"}"),
        Some(1.0),
        "{m}"
    );
    assert_eq!(
        value(&m, "peage_spool_messages{state=\"queued\"}"),
        Some(1.0),
        "{m}"
    );
    // Its body is held in memory until its journal checkpoint, then a file: either way
    // the gauge is there.
    assert!(
        value(&m, "peage_body_journal_pending_bytes").is_some(),
        "{m}"
    );
    assert!(
        value(&m, "peage_raft_term").is_some_and(|t| t >= 1.0),
        "{m}"
    );
    assert!(
        value(&m, "peage_raft_applied_index").is_some_and(|i| i >= index as f64),
        "{m}"
    );
    assert!(
        value(&m, "peage_raft_commit_seconds_count").is_some_and(|n| n >= 1.0),
        "{m}"
    );
    assert!(
        m.contains("peage_raft_commit_seconds_bucket{le=\"0.005\"}"),
        "{m}"
    );
    // Every node measures its offset from the leader's clock (here, all one clock): within
    // the measurement's uncertainty of zero; the leader reports zero.
    for i in 0..3 {
        let offset = c.metric(i, "peage_clock_offset_ms").await;
        let uncertainty = c.metric(i, "peage_clock_offset_uncertainty_ms").await;
        let (Some(offset), Some(uncertainty)) = (offset, uncertainty) else {
            panic!("node {i} exports no clock offset");
        };
        assert!(
            offset.abs() <= uncertainty + 1.0,
            "node {i}: offset {offset} ms ± {uncertainty} ms from the same clock"
        );
    }
    // The delivery loop has tried, and deferred, the queued message.
    wait_for(
        "a deferred delivery is counted",
        Duration::from_secs(20),
        || async {
            let (_, m) = http_get(&c.nodes[1].metrics_addr(), "/metrics")
                .await
                .ok()?;
            value(&m, "peage_delivery_attempts_total{result=\"deferred\"}").filter(|n| *n >= 1.0)
        },
    )
    .await
    .unwrap();

    every_series_ops_uses_is_exported(&c).await;

    alone_a_node_says_it_is_out_of_the_quorum(&mut c).await;
}

async fn alone_a_node_says_it_is_out_of_the_quorum(c: &mut TestCluster) {
    c.kill(0);
    c.kill(2);
    let c = &*c;
    wait_for(
        "node 2 reports no quorum",
        Duration::from_secs(20),
        || async {
            let (status, body) = http_get(&c.nodes[1].metrics_addr(), "/healthz")
                .await
                .ok()?;
            (status == 503 && body.starts_with("no quorum")).then_some(())
        },
    )
    .await
    .unwrap();
    let (_, m) = http_get(&c.nodes[1].metrics_addr(), "/metrics")
        .await
        .unwrap();
    assert_eq!(value(&m, "peage_raft_in_quorum"), Some(0.0), "{m}");
}

/// Every series the shipped dashboard and alerts use exists (a snapshot first, for the
/// snapshot series).
async fn every_series_ops_uses_is_exported(c: &TestCluster) {
    c.client(1)
        .await
        .unwrap()
        .trigger_snapshot(TriggerSnapshotRequest {})
        .await
        .unwrap();
    let (_, m) = http_get(&c.nodes[1].metrics_addr(), "/metrics")
        .await
        .unwrap();
    let ops = concat!(env!("CARGO_MANIFEST_DIR"), "/../ops");
    let mut used = std::collections::BTreeSet::new();
    for file in ["grafana/peage-dashboard.json", "prometheus/alerts.yml"] {
        let text = std::fs::read_to_string(format!("{ops}/{file}")).unwrap();
        for (i, _) in text.match_indices("peage_") {
            let name: String = text[i..]
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect();
            used.insert(name);
        }
    }
    assert!(used.len() >= 12, "{used:?}");
    for name in &used {
        let exported = m
            .lines()
            .any(|l| l.starts_with(name.as_str()) && l[name.len()..].starts_with([' ', '{']));
        assert!(exported, "{name} is used by ops/ but not exported:\n{m}");
    }
}
