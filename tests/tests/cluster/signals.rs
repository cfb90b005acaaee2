//! The signals an operator, a script or a closing terminal sends a node: SIGHUP is logged
//! and ignored (it would otherwise end the node, and systemd counts that as a clean exit
//! it does not restart), SIGTERM stops it with a success status.

use std::time::Duration;

use peage_tests::v1::*;
use peage_tests::{add_req, wait_for, TestCluster, Tuning};

use super::check;

#[tokio::test]
async fn sighup_is_ignored_and_sigterm_stops_the_node_cleanly() {
    let mut c = TestCluster::start(Tuning::default()).await.unwrap();
    c.wait_for_leader_everywhere().await.unwrap();
    c.signal(1, libc::SIGHUP);
    wait_for("the SIGHUP logged", Duration::from_secs(10), || async {
        c.node_log(1).contains("SIGHUP ignored").then_some(())
    })
    .await
    .unwrap();
    assert!(c.exit_status(1).is_none(), "node 2 ended on SIGHUP");
    // Still a working member: it applies and answers.
    let mut admin = c.client(0).await.unwrap();
    let added = admin
        .list_add(add_req(EntryKind::Ip, "198.51.100.9", "after the hangup"))
        .await
        .unwrap()
        .into_inner();
    c.wait_applied(1, added.log_index).await.unwrap();
    let seen = check(&c, 1, EntryKind::Ip, "198.51.100.9", true).await;
    assert_eq!(seen.matches.len(), 1, "{seen:?}");

    c.signal(1, libc::SIGTERM);
    let status = wait_for("node 2 stops on SIGTERM", Duration::from_secs(45), || {
        std::future::ready(c.exit_status(1))
    })
    .await
    .unwrap();
    assert!(status.success(), "{status}");
}
