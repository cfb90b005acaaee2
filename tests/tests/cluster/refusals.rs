//! What a cluster refuses: writes without a majority, bad admin requests, peer calls
//! without the secret; and what it offers standard tools (gRPC reflection).

use std::time::{Duration, Instant};

use tonic::Code;

use peage_tests::v1::*;
use peage_tests::{add_req, wait_for, TestCluster, Tuning, READ_TOKEN};

use super::{check, digest};

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

/// List additions each refused as invalid, with what the error must name.
fn invalid_list_adds() -> Vec<(&'static str, ListAddRequest, &'static str)> {
    vec![
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
    ]
}

#[tokio::test]
async fn bad_requests_get_clear_errors_and_write_nothing_but_their_audit_record() {
    let c = TestCluster::start(Tuning::default()).await.unwrap();
    let mut a = c.client(0).await.unwrap();

    let cases = invalid_list_adds();
    // Each refused by an authenticated caller is audited; the two reader and one bad
    // add_learner attempts below too.
    let audited = cases.len() + 3;
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
    // The auditor token may read.
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

    // Nothing was written but the audit log's record of each refused attempt (the
    // unauthenticated ones leave none: anyone could fill the log otherwise).
    let after = digest(&c, 0).await;
    assert_eq!(after.list_entries, 0);
    let records = a
        .audit_list(AuditListRequest::default())
        .await
        .unwrap()
        .into_inner()
        .entries;
    assert_eq!(records.len(), audited, "{records:?}");
    assert!(records.iter().all(|r| r.outcome != "ok"), "{records:?}");
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
