//! The mail path with a real SMTP client (Python's smtplib) against real nodes: relay
//! control, `250` only after the body is on a majority and the record is committed, and
//! `451` with nothing queued when the node cannot reach a majority.

use std::time::Duration;

use peage_tests::v1::*;
use peage_tests::{smtplib_send, wait_for, TestCluster, Tuning, ADMIN_TOKEN};

const HAM: &[u8] = b"From: alice@client.example\r\nTo: bob@example.test\r\nSubject: hello\r\nDate: Wed, 25 Nov 2026 10:00:00 +0000\r\nMessage-ID: <1@client.example>\r\n\r\nHello Bob.\r\n";

async fn with_local_domain() -> TestCluster {
    let c = TestCluster::start(Tuning::default()).await.unwrap();
    let mut a = c.client(0).await.unwrap();
    a.domain_set(DomainSetRequest {
        domain: "example.test".into(),
        route: "smtp://127.0.0.1:2626".into(),
    })
    .await
    .unwrap();
    // Every node must know the domain before it accepts mail for it.
    for i in 0..3 {
        let mut a = c.client(i).await.unwrap();
        let r = a
            .domain_list(DomainListRequest { stale: false })
            .await
            .unwrap()
            .into_inner();
        assert_eq!(r.domains.len(), 1);
    }
    let _ = ADMIN_TOKEN;
    c
}

async fn queue(c: &TestCluster, i: usize, stale: bool) -> Vec<QueuedMessage> {
    let mut a = c.client(i).await.unwrap();
    a.queue_list(QueueListRequest { stale })
        .await
        .unwrap()
        .into_inner()
        .messages
}

#[tokio::test]
async fn mail_to_each_site_is_queued_after_commit_with_its_body_on_a_majority() {
    let c = with_local_domain().await;
    let mut ids = Vec::new();
    for i in 0..3 {
        let (host, port) = c.nodes[i].smtp_addr();
        let r = smtplib_send(
            &host,
            port,
            "alice@client.example",
            &["bob@example.test"],
            HAM,
        );
        let (code, text) = r.data.clone().unwrap_or_default();
        assert_eq!(code, 250, "node {i}: {r:?}");
        let id = text.rsplit(' ').next().unwrap().to_owned();
        ids.push((id, c.nodes[i].id));
    }
    // The 250 came after the commit: a linearizable read on any node sees all three.
    for i in 0..3 {
        let q = queue(&c, i, false).await;
        assert_eq!(q.len(), 3, "node {i}: {q:?}");
        for (id, owner) in &ids {
            let m = q.iter().find(|m| &m.queue_id == id).expect("queued");
            assert_eq!(m.owner, *owner);
            assert_eq!(m.rcpt_to, ["bob@example.test"]);
            assert!(m.holders.len() >= 2, "a majority holds the body: {m:?}");
            assert!(m.holders.contains(owner));
            // Each holder really has the body on disk.
            for h in &m.holders {
                let node = c.nodes.iter().find(|n| n.id == *h).unwrap();
                let blob = node
                    .data_dir
                    .join("blobs")
                    .join(&m.body_sha256[..2])
                    .join(&m.body_sha256);
                assert_eq!(std::fs::read(&blob).unwrap(), HAM, "holder {h}");
            }
        }
    }
}

#[tokio::test]
async fn relay_attempts_are_refused_and_nothing_is_queued() {
    let c = with_local_domain().await;
    let (host, port) = c.nodes[1].smtp_addr();
    let tricks = [
        "someone@remote.example",
        "user%remote.example@example.test",
        "\"user@remote.example\"@example.test",
        "@example.test:user@remote.example",
        "user@remote.example@example.test",
        "user@[192.0.2.1]",
        "user@example.test.",
        "user@EXAMPLE.test.evil.example",
    ];
    for rcpt in tricks {
        let r = smtplib_send(&host, port, "x@client.example", &[rcpt], HAM);
        let code = r.rcpt.first().map(|r| r.0).unwrap_or(0);
        assert!((500..600).contains(&code), "{rcpt}: {r:?}");
        assert!(r.data.is_none(), "{rcpt}: {r:?}");
    }
    // Odd case of a local domain is still that local domain.
    let r = smtplib_send(&host, port, "x@client.example", &["Bob@Example.TEST"], HAM);
    assert_eq!(r.data.map(|d| d.0), Some(250));
    assert_eq!(
        queue(&c, 1, false).await.len(),
        1,
        "only the legitimate message is queued"
    );
}

#[tokio::test]
async fn a_node_cut_off_from_the_majority_answers_451_and_queues_nothing() {
    let mut c = with_local_domain().await;
    let leader = c.wait_for_leader_everywhere().await.unwrap();
    for i in 0..3 {
        if i != leader {
            c.kill(i);
        }
    }
    let (host, port) = c.nodes[leader].smtp_addr();
    let r = smtplib_send(
        &host,
        port,
        "alice@client.example",
        &["bob@example.test"],
        HAM,
    );
    let (code, text) = r.data.clone().expect("DATA was answered");
    assert_eq!(code, 451, "{r:?}");
    assert!(text.starts_with("4.4."), "{r:?}");
    let q = wait_for("a stale read answers", Duration::from_secs(10), || {
        let c = &c;
        async move {
            let mut a = c.client(leader).await.ok()?;
            Some(
                a.queue_list(QueueListRequest { stale: true })
                    .await
                    .ok()?
                    .into_inner(),
            )
        }
    })
    .await
    .unwrap();
    assert!(q.messages.is_empty(), "{:?}", q.messages);
}
