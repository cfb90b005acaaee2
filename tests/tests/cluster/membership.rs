//! Membership and recovery: a learner added after compaction gets a snapshot; a cluster
//! lost everywhere is restored from a snapshot file.

use std::time::Duration;

use peage_tests::v1::*;
use peage_tests::{add_req, wait_for, TestCluster, Tuning};

use super::{check, digest};

#[tokio::test]
async fn a_learner_added_after_compaction_gets_a_snapshot_and_becomes_a_voter() {
    let mut c = TestCluster::start(Tuning {
        snapshot_after_entries: 20,
        keep_entries_after_snapshot: 0,
        ..Tuning::default()
    })
    .await
    .unwrap();
    let leader = c.wait_for_leader_everywhere().await.unwrap();
    let mut a = c.client(leader).await.unwrap();

    // Phase 1: enough writes that the log is snapshotted and purged.
    for i in 0..60 {
        a.list_add(add_req(EntryKind::Domain, &format!("d{i}.example"), "bulk"))
            .await
            .unwrap();
    }
    wait_for("the leader purges its log", Duration::from_secs(30), || {
        let c = &c;
        async move {
            let s = c.status(leader).await.ok()?;
            (s.purged_index > 0).then_some(())
        }
    })
    .await
    .unwrap();

    // Phase 2: a fourth node joins as a learner; it can only catch up from a snapshot.
    let i4 = c.add_learner(4, leader).await.unwrap();
    let target = c.status(leader).await.unwrap().last_applied;
    c.wait_applied(i4, target).await.unwrap();
    let s4 = c.status(i4).await.unwrap();
    assert!(
        s4.snapshot_index > 0,
        "the learner should hold a snapshot: {s4:?}"
    );
    assert_eq!(s4.role, "learner");
    let (d_leader, d4) = wait_for(
        "the learner's state equals the leader's",
        Duration::from_secs(20),
        || {
            let c = &c;
            async move {
                let (l, n) = (digest(c, leader).await, digest(c, i4).await);
                (l.applied_index == n.applied_index).then_some((l, n))
            }
        },
    )
    .await
    .unwrap();
    assert_eq!(d4.list_entries, 60);
    assert_eq!(
        d_leader.sha256, d4.sha256,
        "same applied index, different state"
    );
    let r = check(&c, i4, EntryKind::Domain, "www.d42.example", true).await;
    assert_eq!(r.matches.len(), 1);

    // Phase 3: promoted to voter; it then serves linearizable reads like the others.
    a.promote_voter(PromoteVoterRequest { node_id: 4 })
        .await
        .unwrap();
    let s = c.status(leader).await.unwrap();
    let m4 = s.members.iter().find(|m| m.node_id == 4).unwrap();
    assert!(m4.voter, "{s:?}");
    let r = check(&c, i4, EntryKind::Domain, "d7.example", false).await;
    assert_eq!(r.matches.len(), 1);
}

/// Disaster recovery: every site lost its data; the three nodes are refounded from one
/// snapshot file with `peage restore`, elect a leader, hold the same state and take writes.
#[tokio::test]
async fn a_cluster_lost_everywhere_is_restored_from_a_snapshot_file() {
    let mut c = TestCluster::start(Tuning::default()).await.unwrap();
    let mut a = c.client(0).await.unwrap();
    for i in 0..20 {
        a.list_add(add_req(
            EntryKind::Ip,
            &format!("198.51.100.{i}"),
            "restore test",
        ))
        .await
        .unwrap();
    }
    c.sync_all(0).await.unwrap();
    let snap = c
        .client(1)
        .await
        .unwrap()
        .trigger_snapshot(TriggerSnapshotRequest {})
        .await
        .unwrap()
        .into_inner();
    // Asking for the snapshot is audited: one record after it.
    c.sync_all(0).await.unwrap();
    let before = digest(&c, 1).await;
    assert_eq!(before.applied_index, snap.snapshot_index + 1);
    let backup = std::fs::read_dir(c.nodes[1].data_dir.join("snapshots"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.extension().is_some_and(|e| e == "db"))
        .expect("a snapshot database");
    let saved = c.data_dir().join("backup.db");
    std::fs::copy(&backup, &saved).unwrap();

    // Every site is lost.
    for i in 0..3 {
        c.kill(i);
        std::fs::remove_dir_all(&c.nodes[i].data_dir).unwrap();
    }
    let restore = |i: usize, file: &std::path::Path| {
        std::process::Command::new(peage_tests::bin("peage"))
            .arg("restore")
            .arg("--config")
            .arg(&c.nodes[i].config)
            .arg("--data-dir")
            .arg(&c.nodes[i].data_dir)
            .arg("--snapshot")
            .arg(file)
            .output()
            .unwrap()
    };
    // A file that is not a snapshot is refused and founds nothing.
    let junk = c.data_dir().join("junk.db");
    std::fs::write(&junk, b"not a database at all").unwrap();
    let o = restore(0, &junk);
    assert!(!o.status.success());
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("junk.db"),
        "{o:?}"
    );
    assert!(!c.nodes[0].data_dir.join("raft-log").exists());

    for i in 0..3 {
        let o = restore(i, &saved);
        assert!(o.status.success(), "{o:?}");
        let out = String::from_utf8_lossy(&o.stdout);
        assert!(
            out.contains(&format!("at log index {}", snap.snapshot_index)),
            "{out}"
        );
    }
    // Restoring over a node is refused.
    let o = restore(0, &saved);
    assert!(!o.status.success());
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("empty data directory"),
        "{o:?}"
    );

    for i in 0..3 {
        c.start_node(i).unwrap();
    }
    let leader = c.wait_for_leader_everywhere().await.unwrap();
    let reply = check(&c, leader, EntryKind::Ip, "198.51.100.7", false).await;
    assert!(!reply.matches.is_empty(), "the restored entries match");
    let mut a = c.client(leader).await.unwrap();
    a.list_add(add_req(EntryKind::Ip, "203.0.113.99", "after the restore"))
        .await
        .unwrap();
    let index = c.sync_all(leader).await.unwrap();
    assert!(index > snap.snapshot_index);
    let digests = c.digests(leader).await.unwrap();
    assert!(digests.windows(2).all(|w| w[0] == w[1]), "{digests:?}");
    assert_ne!(digests[0], before.sha256, "the new write is in the state");
}
