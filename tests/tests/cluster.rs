//! Cluster core, tested on real `peage` processes on loopback: replication, leader loss,
//! restart, snapshot to a late learner, minority behaviour, determinism and bad input.

use std::time::{Duration, Instant};

use rand::{Rng, SeedableRng};
use tonic::Code;

use peage_tests::v1::*;
use peage_tests::{add_req, wait_for, TestCluster, Tuning, ADMIN_TOKEN, READ_TOKEN};

async fn check(
    c: &TestCluster,
    i: usize,
    kind: EntryKind,
    value: &str,
    stale: bool,
) -> ListCheckReply {
    let mut a = c.client(i).await.unwrap();
    a.list_check(ListCheckRequest {
        kind: kind as i32,
        value: value.into(),
        stale,
    })
    .await
    .unwrap()
    .into_inner()
}

async fn digest(c: &TestCluster, i: usize) -> StateDigestReply {
    let mut a = c.client(i).await.unwrap();
    a.state_digest(StateDigestRequest { stale: true })
        .await
        .unwrap()
        .into_inner()
}

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

    // Phase 1: SIGKILL the leader; the two others elect a new one and take writes.
    c.kill(old);
    let new = c.wait_for_leader_everywhere().await.unwrap();
    assert_ne!(new, old);
    let writer = (0..3).find(|i| *i != old).unwrap();
    let a = c.client(writer).await.unwrap();
    let r = wait_for(
        "a write succeeds after the leader's death",
        Duration::from_secs(20),
        || {
            let mut a = a.clone();
            async move {
                a.list_add(add_req(EntryKind::Sender, "b@spam.example", "after"))
                    .await
                    .ok()
            }
        },
    )
    .await
    .unwrap();
    let index = r.into_inner().log_index;

    // Phase 2: the killed node restarts from its data directory and catches up.
    c.start_node(old).unwrap();
    c.wait_applied(old, index).await.unwrap();
    for v in ["a@spam.example", "b@spam.example"] {
        let r = check(&c, old, EntryKind::Sender, v, true).await;
        assert_eq!(r.matches.len(), 1, "{v} on the restarted node: {r:?}");
    }
    let log = c.node_log(old);
    assert_eq!(
        log.matches("initialising the cluster").count(),
        1,
        "a restarted node must not bootstrap again:\n{log}"
    );
}

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
    let i4 = c.add_node_config(4, false).unwrap();
    c.start_node(i4).unwrap();
    let (peer, admin) = (c.nodes[i4].peer_addr(), c.nodes[i4].admin_addr());
    a.add_learner(AddLearnerRequest {
        node_id: 4,
        peer_addr: peer,
        admin_addr: admin,
        site: "lyon".into(),
    })
    .await
    .unwrap();
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

#[tokio::test]
async fn a_node_cut_off_from_the_majority_cannot_commit_and_says_its_reads_are_stale() {
    let mut c = TestCluster::start(Tuning::default()).await.unwrap();
    let leader = c.wait_for_leader_everywhere().await.unwrap();
    let mut a = c.client(leader).await.unwrap();
    a.list_add(add_req(EntryKind::Ip, "192.0.2.0/24", "before the cut"))
        .await
        .unwrap();

    // Phase 1: the two other nodes die; the old leader is alone and still thinks it leads.
    for i in 0..3 {
        if i != leader {
            c.kill(i);
        }
    }

    // Phase 2: a write fails with UNAVAILABLE, well inside the client's own deadline.
    let started = Instant::now();
    let mut req = tonic::Request::new(add_req(EntryKind::Ip, "198.51.100.0/24", "during"));
    req.set_timeout(Duration::from_secs(20));
    let err = a.list_add(req).await.unwrap_err();
    assert_eq!(err.code(), Code::Unavailable, "{err:?}");
    assert!(
        err.message().contains("quorum") || err.message().contains("majority"),
        "{err:?}"
    );
    eprintln!(
        "write refused after {:?}: {}",
        started.elapsed(),
        err.message()
    );

    // Phase 3: a linearizable read is refused too; a stale read answers and says how stale.
    let mut req = tonic::Request::new(ListCheckRequest {
        kind: EntryKind::Ip as i32,
        value: "192.0.2.1".into(),
        stale: false,
    });
    req.set_timeout(Duration::from_secs(20));
    let err = a.list_check(req).await.unwrap_err();
    assert_eq!(err.code(), Code::Unavailable, "{err:?}");
    let r = wait_for(
        "the stale read reports over a second without a majority",
        Duration::from_secs(20),
        || {
            let c = &c;
            async move {
                let r = check(c, leader, EntryKind::Ip, "192.0.2.1", true).await;
                let info = r.read?;
                (info.millis_since_leader_contact? > 1000).then_some(r)
            }
        },
    )
    .await
    .unwrap();
    assert_eq!(
        r.matches.len(),
        1,
        "stale reads still answer from the replica"
    );
    assert!(r.read.unwrap().stale);

    // Nothing was written by the refused request.
    let r = check(&c, leader, EntryKind::Ip, "198.51.100.1", true).await;
    assert!(r.matches.is_empty());
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

#[tokio::test]
async fn bad_requests_get_clear_errors_and_write_nothing() {
    let c = TestCluster::start(Tuning::default()).await.unwrap();
    let mut a = c.client(0).await.unwrap();
    let before = digest(&c, 0).await;

    let cases: Vec<(&str, ListAddRequest, &str)> = vec![
        (
            "invalid CIDR",
            add_req(EntryKind::Ip, "203.0.113.0/33", "x"),
            "203.0.113.0/33",
        ),
        (
            "host bits",
            add_req(EntryKind::Ip, "203.0.113.7/24", "x"),
            "did you mean",
        ),
        (
            "not an IP",
            add_req(EntryKind::Ip, "not-an-ip", "x"),
            "not-an-ip",
        ),
        (
            "unknown kind",
            ListAddRequest {
                kind: 99,
                ..add_req(EntryKind::Ip, "1.2.3.4", "x")
            },
            "unknown entry kind",
        ),
        (
            "unknown list",
            ListAddRequest {
                list: 7,
                ..add_req(EntryKind::Ip, "1.2.3.4", "x")
            },
            "unknown list",
        ),
        (
            "empty value",
            add_req(EntryKind::Domain, "   ", "x"),
            "empty",
        ),
        (
            "bad domain",
            add_req(EntryKind::Domain, "bad..example", "x"),
            "invalid domain",
        ),
        (
            "oversized reason",
            add_req(EntryKind::Domain, "ok.example", &"r".repeat(10_000)),
            "reason is 10000 bytes",
        ),
    ];
    for (what, req, needle) in cases {
        let e = a.list_add(req).await.unwrap_err();
        assert_eq!(e.code(), Code::InvalidArgument, "{what}: {e:?}");
        assert!(e.message().contains(needle), "{what}: {e:?}");
    }

    let good = || add_req(EntryKind::Domain, "ok.example", "x");
    let mut none = c.client_with(0, None).await.unwrap();
    let e = none.list_add(good()).await.unwrap_err();
    assert_eq!(e.code(), Code::Unauthenticated, "{e:?}");
    let e = none.status(StatusRequest {}).await.unwrap_err();
    assert_eq!(e.code(), Code::Unauthenticated, "{e:?}");
    let mut wrong = c
        .client_with(0, Some("not-the-token-at-all"))
        .await
        .unwrap();
    let e = wrong.list_add(good()).await.unwrap_err();
    assert_eq!(e.code(), Code::Unauthenticated, "{e:?}");
    let mut reader = c.client_with(0, Some(READ_TOKEN)).await.unwrap();
    let e = reader.list_add(good()).await.unwrap_err();
    assert_eq!(e.code(), Code::PermissionDenied, "{e:?}");
    let e = reader
        .add_learner(AddLearnerRequest {
            node_id: 9,
            peer_addr: "127.0.0.1:1".into(),
            admin_addr: "127.0.0.1:2".into(),
            site: "x".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::PermissionDenied, "{e:?}");
    // The read-only token may read.
    reader.status(StatusRequest {}).await.unwrap();
    let e = a
        .add_learner(AddLearnerRequest {
            node_id: 9,
            peer_addr: "nowhere".into(),
            admin_addr: "127.0.0.1:2".into(),
            site: "x".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::InvalidArgument, "{e:?}");
    let e = a
        .list_query(ListQueryRequest {
            page_size: 5000,
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::InvalidArgument, "{e:?}");

    // Nothing was written: no list entry, same state.
    let after = digest(&c, 0).await;
    assert_eq!(after.list_entries, 0);
    assert_eq!(after.sha256, before.sha256);
    let _ = ADMIN_TOKEN;
}

#[tokio::test]
async fn peer_calls_without_the_cluster_secret_are_refused() {
    use peage_tests::v1::raft_peer_client::RaftPeerClient;
    let c = TestCluster::start(Tuning::default()).await.unwrap();
    let url = format!("http://{}", c.nodes[0].peer_addr());
    let mut peer = RaftPeerClient::connect(url.clone()).await.unwrap();
    let e = peer.read_index(ReadIndexRequest {}).await.unwrap_err();
    assert_eq!(e.code(), Code::Unauthenticated, "{e:?}");
    let e = peer
        .vote(RaftPayload {
            data: vec![1, 2, 3],
        })
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::Unauthenticated, "{e:?}");

    // With the secret but garbage inside: a clear error, and the node carries on.
    let channel = tonic::transport::Endpoint::from_shared(url)
        .unwrap()
        .connect()
        .await
        .unwrap();
    let secret: tonic::metadata::MetadataValue<_> = peage_tests::SECRET.parse().unwrap();
    let mut peer = RaftPeerClient::with_interceptor(channel, move |mut r: tonic::Request<()>| {
        r.metadata_mut()
            .insert("x-peage-cluster-secret", secret.clone());
        Ok(r)
    });
    let e = peer
        .append_entries(RaftPayload {
            data: vec![0xff; 64],
        })
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::InvalidArgument, "{e:?}");
    c.status(0).await.unwrap();
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
async fn the_admin_port_serves_grpc_reflection() {
    use tonic_reflection::pb::v1::server_reflection_client::ServerReflectionClient;
    use tonic_reflection::pb::v1::server_reflection_request::MessageRequest;
    use tonic_reflection::pb::v1::server_reflection_response::MessageResponse;
    use tonic_reflection::pb::v1::ServerReflectionRequest;

    let c = TestCluster::start(Tuning::default()).await.unwrap();
    let channel = tonic::transport::Endpoint::from_shared(c.nodes[0].admin_url())
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut client = ServerReflectionClient::new(channel);
    let req = ServerReflectionRequest {
        host: String::new(),
        message_request: Some(MessageRequest::ListServices(String::new())),
    };
    let mut replies = client
        .server_reflection_info(tokio_stream::iter([req]))
        .await
        .unwrap()
        .into_inner();
    let reply = replies.message().await.unwrap().unwrap();
    let Some(MessageResponse::ListServicesResponse(list)) = reply.message_response else {
        panic!("unexpected reflection reply: {reply:?}");
    };
    let names: Vec<String> = list.service.into_iter().map(|s| s.name).collect();
    assert!(names.contains(&"peage.v1.Admin".to_owned()), "{names:?}");
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
    let before = digest(&c, 1).await;
    assert_eq!(before.applied_index, snap.snapshot_index);
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
