//! Accepting mail: queued after commit with the body on a majority, bodies fetched from a
//! holder, relay attempts refused, `451` without a majority, STARTTLS.
use std::time::Duration;

use peage_tests::v1::*;
use peage_tests::{wait_for, TestCluster, Tuning};

use super::{ham, queue, send_ham, with_local_domain, HAM};

#[tokio::test]
async fn mail_to_each_site_is_queued_after_commit_with_its_body_on_a_majority() {
    let c = with_local_domain().await;
    let mut ids = Vec::new();
    for i in 0..3 {
        let r = c.smtp_send(i, "alice@client.example", &["bob@example.test"], HAM);
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
                let stored = std::fs::read(&blob).unwrap();
                assert!(
                    stored.starts_with(b"X-Peage-Verdict: deliver\r\n"),
                    "holder {h}"
                );
                assert!(stored.ends_with(HAM), "holder {h}");
            }
        }
    }
}

#[tokio::test]
async fn a_node_without_the_body_fetches_it_from_a_holder() {
    let c = with_local_domain().await;
    send_ham(&c, 0, 5);
    let m = queue(&c, 0, false).await.remove(0);
    wait_for("every node holds the body", Duration::from_secs(30), || {
        let (c, m) = (&c, &m);
        async move {
            c.nodes
                .iter()
                .all(|n| {
                    n.data_dir
                        .join("blobs")
                        .join(&m.body_sha256[..2])
                        .join(&m.body_sha256)
                        .exists()
                })
                .then_some(())
        }
    })
    .await
    .unwrap();
    // A copy lost on one node (a replaced disk) comes back from the others.
    let lost = c.nodes[2]
        .data_dir
        .join("blobs")
        .join(&m.body_sha256[..2])
        .join(&m.body_sha256);
    std::fs::remove_file(&lost).unwrap();
    wait_for(
        "the lost copy is fetched again",
        Duration::from_secs(30),
        || async { lost.exists().then_some(()) },
    )
    .await
    .unwrap();
    assert!(std::fs::read(&lost).unwrap().ends_with(&ham(5)));
}

#[tokio::test]
async fn relay_attempts_are_refused_and_nothing_is_queued() {
    let c = with_local_domain().await;
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
        let r = c.smtp_send(1, "x@client.example", &[rcpt], HAM);
        let code = r.rcpt.first().map(|r| r.0).unwrap_or(0);
        assert!((500..600).contains(&code), "{rcpt}: {r:?}");
        assert!(r.data.is_none(), "{rcpt}: {r:?}");
    }
    // Odd case of a local domain is still that local domain.
    let r = c.smtp_send(1, "x@client.example", &["Bob@Example.TEST"], HAM);
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
    let r = c.smtp_send(leader, "alice@client.example", &["bob@example.test"], HAM);
    let (code, text) = r.data.clone().expect("DATA was answered");
    assert_eq!(code, 451, "{r:?}");
    assert!(text.starts_with("4.4."), "{r:?}");
    let q = wait_for("a stale read answers", Duration::from_secs(10), || {
        let c = &c;
        async move {
            let mut a = c.client(leader).await.ok()?;
            Some(
                a.queue_list(QueueListRequest {
                    stale: true,
                    ..Default::default()
                })
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

#[tokio::test]
async fn starttls_is_offered_when_a_certificate_is_configured_and_mail_flows_inside_it() {
    let c = TestCluster::start(Tuning {
        tls: true,
        ..Tuning::default()
    })
    .await
    .unwrap();
    let mut a = c.client(0).await.unwrap();
    a.domain_set(DomainSetRequest {
        domain: "example.test".into(),
        route: format!("smtp://{}", c.sink_addr()),
    })
    .await
    .unwrap();
    let (host, port) = c.nodes[2].smtp_addr();
    wait_for(
        "node 3 knows the domain",
        Duration::from_secs(10),
        || async {
            let mut a = c.client(2).await.ok()?;
            let r = a
                .domain_list(DomainListRequest { stale: true })
                .await
                .ok()?
                .into_inner();
            (!r.domains.is_empty()).then_some(())
        },
    )
    .await
    .unwrap();
    let r = peage_tests::smtplib_send_with(
        &host,
        port,
        "alice@client.example",
        &["bob@example.test"],
        &ham(11),
        true,
    );
    assert_eq!(r.starttls.as_ref().map(|s| s.0), Some(220), "{r:?}");
    assert!(
        r.cipher.as_deref().is_some_and(|c| c.starts_with("TLS")),
        "{r:?}"
    );
    assert_eq!(r.data.as_ref().map(|d| d.0), Some(250), "{r:?}");
}
