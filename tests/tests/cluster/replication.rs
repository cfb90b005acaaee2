//! Replication: an entry written anywhere is seen everywhere, through leader loss, in
//! any start order, and a random workload leaves identical states.

use std::time::Duration;

use rand::{Rng, SeedableRng};
use tonic::Code;

use peage_tests::v1::*;
use peage_tests::{add_req, wait_for, TestCluster, Tuning};

use super::{check, digest};

#[tokio::test]
async fn an_entry_written_through_any_node_is_visible_on_all_three() {
    let c = TestCluster::start(Tuning::default()).await.unwrap();
    let leader = c.wait_for_leader_everywhere().await.unwrap();
    let follower = (leader + 1) % 3;

    // Phase 1: writes through a follower (forwarded) and through the leader.
    let mut a = c.client(follower).await.unwrap();
    a.list_add(add_req(EntryKind::Ip, "203.0.113.0/24", "botnet"))
        .await
        .unwrap();
    let mut a = c.client(leader).await.unwrap();
    let added = a
        .list_add(add_req(EntryKind::Domain, "Bad.Example.", "phishing"))
        .await
        .unwrap()
        .into_inner();
    let entry = added.entry.unwrap();
    assert_eq!(entry.value, "bad.example");
    assert_eq!(entry.author, "test-admin");

    // Phase 2: linearizable reads on every node see both.
    for i in 0..3 {
        let r = check(&c, i, EntryKind::Ip, "203.0.113.7", false).await;
        assert_eq!(r.matches.len(), 1, "node {i}: {r:?}");
        assert_eq!(r.matches[0].value, "203.0.113.0/24");
        assert!(!r.read.unwrap().stale);
        let r = check(&c, i, EntryKind::Domain, "mail.bad.example", false).await;
        assert_eq!(r.matches.len(), 1, "node {i}: {r:?}");
        let r = check(&c, i, EntryKind::Ip, "198.51.100.1", false).await;
        assert!(r.matches.is_empty());
    }

    // Phase 3: removal propagates too.
    let mut a = c.client((leader + 2) % 3).await.unwrap();
    a.list_remove(ListRemoveRequest {
        list: ListName::Block as i32,
        kind: EntryKind::Ip as i32,
        value: "203.0.113.0/24".into(),
        ..Default::default()
    })
    .await
    .unwrap();
    for i in 0..3 {
        let r = check(&c, i, EntryKind::Ip, "203.0.113.7", false).await;
        assert!(r.matches.is_empty(), "node {i}: {r:?}");
    }
}

#[tokio::test]
async fn leader_killed_new_leader_elected_and_the_old_one_catches_up() {
    let mut c = TestCluster::start(Tuning::default()).await.unwrap();
    let old = c.wait_for_leader_everywhere().await.unwrap();
    let mut a = c.client(old).await.unwrap();
    a.list_add(add_req(EntryKind::Sender, "a@spam.example", "before"))
        .await
        .unwrap();

    // Phase 1: SIGKILL the leader; the two others elect a new one and take writes. A write
    // and a linearizable read sent at once through a follower, which still takes the dead
    // node for its leader, wait out the election instead of failing.
    let writer = (0..3).find(|i| *i != old).unwrap();
    let mut reader = c.client(writer).await.unwrap();
    let read = ListCheckRequest {
        kind: EntryKind::Sender as i32,
        value: "a@spam.example".into(),
        stale: false,
    };
    reader.list_check(read.clone()).await.unwrap();
    let mut early_writer = reader.clone();
    c.kill(old);
    let (during_election, written) = tokio::join!(
        reader.list_check(read),
        early_writer.list_add(add_req(EntryKind::Sender, "c@spam.example", "at once"))
    );
    let found = during_election.map(|r| r.into_inner().matches.len());
    assert!(
        matches!(found, Ok(1)),
        "a read during the election: {found:?}"
    );
    let index = match written {
        Ok(w) => w.into_inner().log_index,
        Err(e) => panic!("a write during the election: {e:?}"),
    };
    let new = c.wait_for_leader_everywhere().await.unwrap();
    assert_ne!(new, old);

    // An operator asking any node that is up is told which site the leader cannot reach.
    let killed = c.nodes[old].id;
    let silent_member = |status: &serde_json::Value| {
        let members = status["members"].as_array()?;
        let m = members.iter().find(|m| m["node_id"] == killed)?;
        m["silent_ms"].as_u64()
    };
    let status = wait_for(
        "status says the killed node does not answer",
        Duration::from_secs(10),
        || std::future::ready(status_json(&c, writer).filter(|s| silent_member(s).is_some())),
    )
    .await
    .unwrap();
    let warnings = status["warnings"].to_string();
    assert!(
        warnings.contains(&format!("node {killed} (")) && warnings.contains("one more voter down"),
        "{status:#}"
    );

    // Phase 2: the killed node restarts from its data directory and catches up.
    c.start_node(old).unwrap();
    c.wait_applied(old, index).await.unwrap();
    wait_for(
        "status no longer warns once the node answers",
        Duration::from_secs(10),
        || {
            let quiet = status_json(&c, writer).filter(|s| {
                silent_member(s).is_none() && s["warnings"].as_array().is_some_and(|w| w.is_empty())
            });
            std::future::ready(quiet)
        },
    )
    .await
    .unwrap();
    for v in ["a@spam.example", "c@spam.example"] {
        let r = check(&c, old, EntryKind::Sender, v, true).await;
        assert_eq!(r.matches.len(), 1, "{v} on the restarted node: {r:?}");
    }
    let log = c.node_log(old);
    assert_eq!(
        log.matches("initialising the cluster").count(),
        1,
        "a restarted node must not bootstrap again:\n{log}"
    );

    // The new leader said once that the old one was down and once that it was back, instead
    // of openraft's three lines for every retry (every heartbeat while it was down).
    let peer = format!("peer={}", c.nodes[old].id);
    let leader_log = wait_for(
        "the new leader logs that the restarted node answers again",
        Duration::from_secs(10),
        || {
            let log = c.node_log(new);
            let back = log
                .lines()
                .any(|l| l.contains("peer answers again") && l.contains(&peer));
            std::future::ready(back.then_some(log))
        },
    )
    .await
    .unwrap();
    let down = leader_log
        .lines()
        .filter(|l| l.contains("peer not answering") && l.contains(&peer))
        .count();
    assert!((1..=2).contains(&down), "{down} lines:\n{leader_log}");
    assert!(
        !leader_log.contains("error replication to target"),
        "openraft's retries are logged:\n{leader_log}"
    );
}

fn status_json(c: &TestCluster, node: usize) -> Option<serde_json::Value> {
    let o = c.peagectl(node, &["status", "--json"]);
    serde_json::from_slice(&o.stdout).ok()
}

/// A follower stopped with SIGTERM and started again, three times, leaves the leader
/// alone: it exits by itself within seconds, calls no election on its way out (Raft stops
/// before its peer listener closes) nor on its way back (the leader tries an unreachable
/// peer again every heartbeat, not every 500 ms, which outlasted the election timeout).
#[tokio::test]
async fn a_follower_restarted_gracefully_never_deposes_the_leader() {
    let mut c = TestCluster::start(Tuning::default()).await.unwrap();
    // With a route, every node's mail path runs (delivery, janitor) as in production.
    c.route_local_domain().await.unwrap();
    let leader = c.wait_for_leader_everywhere().await.unwrap();
    let term = c.status(leader).await.unwrap().term;
    let follower = (leader + 1) % 3;
    for round in 0..3 {
        let exited = c.stop(follower, Duration::from_secs(10));
        assert!(exited, "round {round}: still running 10 s after SIGTERM");
        c.start_node(follower).unwrap();
        let now = c.wait_for_leader_everywhere().await.unwrap();
        assert_eq!(now, leader, "round {round}: the leadership moved");
        c.sync_all(leader).await.unwrap();
    }
    for i in 0..3 {
        assert_eq!(
            c.status(i).await.unwrap().term,
            term,
            "node {i}: an election"
        );
    }
}

#[tokio::test]
async fn nodes_started_one_by_one_in_any_order_form_one_cluster() {
    let mut c = TestCluster::configure(Tuning::default()).unwrap();
    // Ariège alone cannot elect itself: no leader until a second node comes.
    c.start_node(2).unwrap();
    let s = wait_for("ariege answers status", Duration::from_secs(20), || {
        let c = &c;
        async move { c.status(2).await.ok() }
    })
    .await
    .unwrap();
    assert_eq!(s.leader_id, None, "{s:?}");
    let mut a = c.client(2).await.unwrap();
    let mut req = tonic::Request::new(add_req(EntryKind::Domain, "early.example", "x"));
    req.set_timeout(Duration::from_secs(20));
    let e = a.list_add(req).await.unwrap_err();
    assert_eq!(e.code(), Code::Unavailable, "{e:?}");

    // Then Roubaix, then Paris: one leader for all three, and writes go through.
    c.start_node(1).unwrap();
    c.start_node(0).unwrap();
    c.wait_for_leader_everywhere().await.unwrap();
    wait_for(
        "a write succeeds once a majority is up",
        Duration::from_secs(20),
        || {
            let mut a = a.clone();
            async move {
                a.list_add(add_req(EntryKind::Domain, "later.example", "x"))
                    .await
                    .ok()
            }
        },
    )
    .await
    .unwrap();
    let s = c.status(0).await.unwrap();
    assert_eq!(s.members.iter().filter(|m| m.voter).count(), 3, "{s:?}");
}

#[tokio::test]
async fn random_workload_with_a_snapshot_in_the_middle_leaves_identical_states() {
    let mut c = TestCluster::start(Tuning {
        snapshot_after_entries: 5000,
        sweep_interval_ms: 100,
        ..Tuning::default()
    })
    .await
    .unwrap();
    let mut rng = rand::rngs::StdRng::seed_from_u64(42);
    let mut clients = Vec::new();
    for i in 0..3 {
        clients.push(c.client(i).await.unwrap());
    }
    for step in 0..150 {
        let node = rng.random_range(0..3);
        let kind = [
            EntryKind::Ip,
            EntryKind::Domain,
            EntryKind::Sender,
            EntryKind::Url,
        ][rng.random_range(0..4)];
        let value = match kind {
            EntryKind::Ip => format!("10.{}.0.0/16", rng.random_range(0..30)),
            EntryKind::Domain => format!("d{}.example", rng.random_range(0..30)),
            EntryKind::Sender => format!("u{}@x.example", rng.random_range(0..30)),
            _ => format!("https://h{}.example/x", rng.random_range(0..30)),
        };
        let a = &mut clients[node];
        if rng.random_bool(0.7) {
            let mut req = add_req(kind, &value, &format!("step {step}"));
            // Some entries expire during the run, so leader sweeps are part of the log.
            req.ttl_secs = rng.random_bool(0.3).then_some(1);
            a.list_add(req).await.unwrap();
        } else {
            let r = a
                .list_remove(ListRemoveRequest {
                    list: ListName::Block as i32,
                    kind: kind as i32,
                    value,
                    ..Default::default()
                })
                .await;
            if let Err(e) = r {
                assert_eq!(e.code(), Code::NotFound, "{e:?}");
            }
        }
        if step == 75 {
            // A snapshot in the middle, on a follower, and a restart from it.
            let leader = c.wait_for_leader_everywhere().await.unwrap();
            let f = (leader + 1) % 3;
            let mut fa = c.client(f).await.unwrap();
            let snap = fa
                .trigger_snapshot(TriggerSnapshotRequest {})
                .await
                .unwrap()
                .into_inner();
            assert!(snap.snapshot_index > 0);
            c.kill(f);
            c.start_node(f).unwrap();
            clients[f] = wait_for(
                "the restarted node answers",
                Duration::from_secs(20),
                || {
                    let c = &c;
                    async move { c.client(f).await.ok() }
                },
            )
            .await
            .unwrap();
        }
    }

    // Every 1 s entry has expired by now; wait for the sweeps, then for equal applied indexes.
    let leader = c.wait_for_leader_everywhere().await.unwrap();
    wait_for("expired entries are swept", Duration::from_secs(20), || {
        let c = &c;
        async move {
            let mut a = c.client(leader).await.ok()?;
            let page = a
                .list_query(ListQueryRequest {
                    page_size: 1000,
                    ..Default::default()
                })
                .await
                .ok()?
                .into_inner();
            page.entries
                .iter()
                .all(|e| e.expires_at_ms.is_none())
                .then_some(())
        }
    })
    .await
    .unwrap();
    let target = c.status(leader).await.unwrap().last_applied;
    let mut digests = Vec::new();
    for i in 0..3 {
        c.wait_applied(i, target).await.unwrap();
        let d = digest(&c, i).await;
        digests.push((d.applied_index, d.sha256, d.list_entries));
    }
    assert!(
        digests[0].2 > 0,
        "the workload should leave entries: {digests:?}"
    );
    assert!(
        digests.iter().all(|d| d == &digests[0]),
        "states differ: {digests:?}"
    );
}
