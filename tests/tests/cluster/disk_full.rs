//! A node whose disk fills up: under its floor it refuses new mail at MAIL FROM with `452`
//! (the sender tries another MX), when its Raft log can no longer be written it stops with
//! a failure exit instead of serving a replica that applies nothing, and once restarted
//! with room it catches up and takes mail again.

use std::time::{Duration, Instant};

use peage_tests::tmpfs::Tmpfs;
use peage_tests::v1::*;
use peage_tests::{add_req, TestCluster, Tuning};

use super::check;

const HAM: &[u8] = b"Subject: hello\r\nFrom: alice@client.example\r\n\r\nSee you at lunch.\r\n";

#[tokio::test]
async fn a_node_whose_disk_fills_refuses_mail_then_stops_and_rejoins_once_freed() {
    let mut c = TestCluster::configure(Tuning::default()).unwrap();
    let Some(disk) = Tmpfs::mount(&c.nodes[0].data_dir, 64) else {
        eprintln!("skipped: this machine does not let the test mount a small disk");
        return;
    };
    c.edit_node_config(0, |config| config.spool.min_free_mb = Some(16))
        .unwrap();
    for i in 0..3 {
        c.start_node(i).unwrap();
    }
    c.wait_for_leader_everywhere().await.unwrap();
    c.route_local_domain().await.unwrap();
    let before = c.smtp_send(0, "alice@client.example", &["bob@example.test"], HAM);
    before.queue_id();

    // Under the floor: refused before the message is sent, with the code for a full disk.
    disk.fill_leaving(8 << 20);
    let short = c.smtp_send(0, "alice@client.example", &["bob@example.test"], HAM);
    let (code, text) = short.mail.clone().expect("a reply to MAIL FROM");
    assert_eq!(code, 452, "{short:?}");
    assert!(text.contains("4.3.1"), "{text}");
    assert!(short.data.is_none(), "{short:?}");
    c.smtp_send(1, "alice@client.example", &["bob@example.test"], HAM)
        .queue_id();
    // What an alert reads (ops/prometheus/alerts.yml: PeageDiskFull).
    let floor = c.metric(0, "peage_data_min_free_bytes").await;
    assert_eq!(floor, Some((16 << 20) as f64));
    let free = c.metric(0, "peage_data_free_bytes").await.unwrap();
    assert!(free < (16 << 20) as f64, "{free}");

    // Full: the next entries cannot be logged here. The node stops, and says why.
    disk.fill_leaving(0);
    let mut admin = c.client(1).await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut last_index = 0;
    let mut n = 0;
    let status = loop {
        if let Some(status) = c.exit_status(0) {
            break status;
        }
        assert!(
            Instant::now() < deadline,
            "node 1 still runs on a full disk"
        );
        n += 1;
        let value = format!("198.51.100.{}", n % 250);
        let reason = "x".repeat(200);
        let added = admin
            .list_add(add_req(EntryKind::Ip, &value, &reason))
            .await
            .expect("the majority with room still commits")
            .into_inner();
        last_index = added.log_index;
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert!(
        !status.success(),
        "a failure exit for its supervisor: {status}"
    );
    let log = c.node_log(0);
    assert!(log.contains("the Raft core stopped"), "{log}");
    // The Raft log (RocksDB) or the state (SQLite), whichever wrote first.
    assert!(
        log.contains("No space left on device") || log.contains("disk is full"),
        "{log}"
    );

    // Room again: restarted, it catches up and takes mail.
    disk.empty();
    c.start_node(0).unwrap();
    c.wait_applied(0, last_index).await.unwrap();
    let value = format!("198.51.100.{}", n % 250);
    assert!(!check(&c, 0, EntryKind::Ip, &value, true)
        .await
        .matches
        .is_empty());
    c.smtp_send(0, "alice@client.example", &["bob@example.test"], HAM)
        .queue_id();
}
