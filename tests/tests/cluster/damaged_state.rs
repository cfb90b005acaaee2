//! A node whose state database is damaged while it is down starts again: the file is set
//! aside and the state rebuilt from its snapshot and its Raft log, equal to the others'; from
//! the log alone when the snapshot is damaged too.

use std::time::Duration;

use peage_tests::v1::*;
use peage_tests::{add_req, TestCluster, Tuning};

use super::check;

#[tokio::test]
async fn a_damaged_state_database_is_set_aside_and_rebuilt_from_the_log() {
    rebuilt_after_damage(false).await;
}

#[tokio::test]
async fn with_its_snapshot_damaged_too_the_state_is_rebuilt_from_the_log_alone() {
    rebuilt_after_damage(true).await;
}

/// Overwrites the first 4 KiB of `file`, if it exists: the SQLite header and first page.
fn damage(file: &std::path::Path) {
    if let Ok(mut bytes) = std::fs::read(file) {
        let end = bytes.len().min(4096);
        bytes[..end].fill(0x5a);
        std::fs::write(file, bytes).unwrap();
    }
}

/// Whether a file in `dir` has `part` in its name.
fn named_in(dir: &std::path::Path, part: &str) -> bool {
    std::fs::read_dir(dir)
        .unwrap()
        .flatten()
        .any(|f| f.file_name().to_string_lossy().contains(part))
}

async fn rebuilt_after_damage(snapshot_too: bool) {
    let mut c = TestCluster::start(Tuning::default()).await.unwrap();
    c.wait_for_leader_everywhere().await.unwrap();
    let mut admin = c.client(0).await.unwrap();
    let add = |n: u32| add_req(EntryKind::Ip, &format!("198.51.100.{n}"), "botnet");
    for n in 0..20 {
        admin.list_add(add(n)).await.unwrap();
    }
    // Part of the state in a snapshot, the rest only in the log.
    let built = c.peagectl(2, &["snapshot"]);
    assert!(built.status.success(), "{built:?}");
    let mut last_index = 0;
    for n in 20..40 {
        last_index = admin.list_add(add(n)).await.unwrap().into_inner().log_index;
    }
    c.wait_applied(2, last_index).await.unwrap();

    assert!(c.stop(2, Duration::from_secs(10)), "a clean stop");
    let db = c.nodes[2].data_dir.join("state.sqlite");
    damage(&db);
    damage(&db.with_file_name("state.sqlite-wal"));
    let snapshots = c.nodes[2].data_dir.join("snapshots");
    if snapshot_too {
        for file in std::fs::read_dir(&snapshots).unwrap().flatten() {
            if file.path().extension().is_some_and(|e| e == "db") {
                damage(&file.path());
            }
        }
    }

    c.start_node(2).unwrap();
    c.wait_applied(2, last_index).await.unwrap();
    for n in [0, 39] {
        let seen = check(&c, 2, EntryKind::Ip, &format!("198.51.100.{n}"), true).await;
        assert_eq!(seen.matches.len(), 1, "entry {n}: {seen:?}");
    }
    let digests = c.digests(0).await.unwrap();
    assert!(digests.windows(2).all(|w| w[0] == w[1]), "{digests:?}");
    let kept = named_in(&c.nodes[2].data_dir, "state.sqlite.unreadable-");
    assert!(kept, "the damaged file is kept for a look");
    let log = c.node_log(2);
    assert!(log.contains("the state database cannot be read"), "{log}");
    assert_eq!(
        log.contains("the latest snapshot cannot be read"),
        snapshot_too,
        "{log}"
    );
    assert_eq!(named_in(&snapshots, ".db.unreadable-"), snapshot_too);
}
