//! Accepting mail: queued after commit with the body on a majority, bodies fetched from a
//! holder, relay attempts refused, `451` without a majority, STARTTLS.

use std::time::Duration;

use peage_node::config::SeedDomain;
use peage_tests::proxy::LinkProxy;
use peage_tests::v1::*;
use peage_tests::{add_req, http_get, wait_for, TestCluster, Tuning};

use super::{ham, queue, send_ham, with_local_domain, with_local_domain_tuned, HAM};

#[tokio::test]
async fn mail_to_each_site_is_queued_after_commit_with_its_body_on_a_majority() {
    // Nothing listens downstream: one failed attempt each, then a wait longer than the test,
    // so that each message is still with the node that accepted it (no hand-off).
    let c = with_local_domain_tuned(Tuning {
        retry_first_ms: 600_000,
        ..Tuning::default()
    })
    .await;
    let mut ids = Vec::new();
    for i in 0..3 {
        let r = c.smtp_send(i, "alice@client.example", &["bob@example.test"], HAM);
        let id = r.queue_id();
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
                let stored = stored_body(&c, *h, &m.body_sha256).await;
                let stored_text = String::from_utf8_lossy(&stored);
                assert!(stored_text.starts_with("Received: from "), "holder {h}");
                assert!(
                    stored_text.contains("\r\nX-Peage-Verdict: deliver\r\n"),
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
    // Quoted local parts that would add a parameter downstream or walk out of a directory.
    for rcpt in [
        r#""bob> NOTIFY=NEVER"@example.test"#,
        r#""../../../x"@example.test"#,
    ] {
        let r = c.smtp_send(1, "x@client.example", &[rcpt], HAM);
        let (code, text) = r.rcpt.first().cloned().unwrap_or_default();
        assert_eq!(code, 553, "{rcpt}: {r:?}");
        assert!(text.starts_with("5.1.3"), "{rcpt}: {text}");
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
    // Until the node notices it is alone it refuses at DATA (the body finds no peer), then
    // at MAIL FROM: a 451 either way, never a 250.
    let r = c.smtp_send(leader, "alice@client.example", &["bob@example.test"], HAM);
    let (code, text) = match (&r.mail, &r.data) {
        (Some((451, text)), _) => (451, text.clone()),
        (_, Some(data)) => data.clone(),
        _ => panic!("neither MAIL nor DATA answered 451: {r:?}"),
    };
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
        ..Default::default()
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
        &peage_tests::SmtpOptions {
            starttls: true,
            ..Default::default()
        },
    );
    assert_eq!(r.starttls.as_ref().map(|s| s.0), Some(220), "{r:?}");
    assert!(
        r.cipher.as_deref().is_some_and(|c| c.starts_with("TLS")),
        "{r:?}"
    );
    assert_eq!(r.data.as_ref().map(|d| d.0), Some(250), "{r:?}");
    // The trace field says how the message came: which TLS, which cipher.
    let q = queue(&c, 2, false).await;
    let m = q.first().expect("queued (nothing listens downstream)");
    let stored = String::from_utf8(stored_body(&c, m.owner, &m.body_sha256).await).unwrap();
    let received = &stored[..stored.find("X-Peage-Verdict").unwrap()];
    assert!(
        received.contains("with ESMTPS (TLSv1_3 TLS13_")
            || received.contains("with ESMTPS (TLSv1_2 "),
        "{received}"
    );
}

/// A body as stored in a node's blob directory: durable in the body journal at once, a
/// file from the journal's checkpoint on (seconds later) while its message is queued.
async fn stored_body(c: &TestCluster, node_id: u64, sha256: &str) -> Vec<u8> {
    let node = c.nodes.iter().find(|n| n.id == node_id).unwrap();
    let blob = node.data_dir.join("blobs").join(&sha256[..2]).join(sha256);
    wait_for("the body's file", Duration::from_secs(20), || async {
        std::fs::read(&blob).ok()
    })
    .await
    .unwrap()
}

/// A node that knows it cannot reach a majority refuses at MAIL FROM: the client does not
/// send a message it could not store.
#[tokio::test]
async fn a_node_that_knows_it_is_alone_answers_451_at_mail_from() {
    let mut c = with_local_domain().await;
    c.kill(0);
    c.kill(1);
    let alone = c.nodes[2].metrics_addr();
    wait_for("node 3 reports no quorum", Duration::from_secs(20), || {
        let alone = alone.clone();
        async move {
            let (status, _) = http_get(&alone, "/healthz").await.ok()?;
            (status == 503).then_some(())
        }
    })
    .await
    .unwrap();
    let r = c.smtp_send(2, "alice@client.example", &["bob@example.test"], HAM);
    let (code, text) = r.mail.clone().expect("MAIL was answered");
    assert_eq!(code, 451, "{r:?}");
    assert!(text.starts_with("4.4.1"), "{r:?}");
    assert!(r.data.is_none(), "no message was sent: {r:?}");
}

/// A node that has just started, and has yet to learn a domain the cluster routed while it
/// was down, answers 451 for it (try again), never 550: a permanent refusal would make the
/// sending MTA bounce real mail. Its links are slowed so that catching up takes seconds
/// during which it hears from the leader but lags behind. Once caught up it accepts the
/// domain, and still refuses domains nobody routed.
// The link proxies run on the test's runtime, beside blocking smtplib calls: more than one
// worker keeps them moving.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_node_that_has_just_started_answers_451_never_550_until_it_catches_up() {
    // WAN timing: a replication RPC gets the heartbeat interval, more than a round trip.
    let tuning = Tuning {
        proxied_peers: true,
        heartbeat_ms: 400,
        election_timeout_ms: 2000,
        quorum_lost_after_ms: 4000,
        commit_timeout_ms: 8000,
        ..Tuning::default()
    };
    let mut c = TestCluster::configure(tuning).unwrap();
    let mut links = Vec::new();
    for (from, to) in [(1, 2), (2, 1), (1, 3), (3, 1), (2, 3), (3, 2)] {
        let slow = if from == 3 || to == 3 { 150 } else { 0 };
        let target = c.nodes[to as usize - 1].peer_addr();
        let latency = Duration::from_millis(slow);
        links.push(
            LinkProxy::start(&c.link_addr(from, to), &target, latency)
                .await
                .unwrap(),
        );
    }
    for i in 0..3 {
        c.start_node(i).unwrap();
    }
    c.wait_for_leader_everywhere().await.unwrap();
    c.kill(2);
    c.wait_for_leader_everywhere().await.unwrap();
    // While Ariège is down: a backlog, then a new local domain at its end.
    let mut writers = tokio::task::JoinSet::new();
    for w in 0..16 {
        let mut a = c.client(w % 2).await.unwrap();
        writers.spawn(async move {
            for i in 0..150 {
                let sender = format!("s{w}-{i}@x.example");
                a.list_add(add_req(EntryKind::Sender, &sender, "load"))
                    .await
                    .unwrap();
            }
        });
    }
    while let Some(done) = writers.join_next().await {
        done.unwrap();
    }
    let mut a = c.client(0).await.unwrap();
    a.domain_set(DomainSetRequest {
        domain: "late.test".into(),
        route: format!("smtp://{}", c.sink_addr()),
        ..Default::default()
    })
    .await
    .unwrap();
    c.start_node(2).unwrap();
    let mut replies = Vec::new();
    let accepted = wait_for("Ariège accepts late.test", Duration::from_secs(90), || {
        let r = c.smtp_send(2, "alice@client.example", &["bob@late.test"], HAM);
        // RCPT counts only after MAIL was accepted (smtplib sends it anyway: 503).
        let mail = r.mail.as_ref().map_or(0, |(code, _)| *code);
        let rcpt = r.rcpt.first().map_or(0, |(code, _)| *code);
        replies.push((mail, rcpt, format!("{r:?}")));
        assert!(
            mail < 500 && !(mail == 250 && rcpt >= 500),
            "a permanent refusal: {replies:#?}"
        );
        async move { (rcpt == 250).then_some(()) }
    })
    .await;
    assert!(accepted.is_ok(), "{accepted:?}: {replies:#?}");
    let at_rcpt = replies
        .iter()
        .filter(|(m, r, _)| *m == 250 && *r == 451)
        .count();
    eprintln!(
        "{} attempts before 250; {at_rcpt} answered 451 at RCPT",
        replies.len() - 1
    );
    let r = c.smtp_send(2, "alice@client.example", &["x@nowhere.example"], HAM);
    assert_eq!(r.rcpt.first().map(|(code, _)| *code), Some(550), "{r:?}");
}

/// A fresh cluster whose config seeds its routes (`peage dev`) has an empty routing table
/// until the leader applies the seed: a node that waits for it answers 451 for any domain,
/// not 550, which would bounce the first mail sent as soon as the cluster is up. Here only
/// Ariège has the seed and Paris or Roubaix leads, so the seed is never applied and the
/// window stays open: Ariège answers 451 where Roubaix, with no seed, answers 550. Once the
/// table has a route, Ariège judges domains as any node does.
#[tokio::test]
async fn a_node_waiting_for_its_seed_routes_answers_451_never_550() {
    let mut c = TestCluster::configure(Tuning::default()).unwrap();
    let route = format!("smtp://{}", c.sink_addr());
    c.edit_node_config(2, |config| {
        config.spool.seed_domains = vec![SeedDomain {
            domain: "seeded.test".into(),
            route,
            portal: false,
        }];
    })
    .unwrap();
    c.start_node(0).unwrap();
    c.start_node(1).unwrap();
    c.wait_for_leader_everywhere().await.unwrap();
    c.start_node(2).unwrap();
    c.wait_for_leader_everywhere().await.unwrap();
    c.sync_all(0).await.unwrap();
    let rcpt = |node: usize, to: &str| {
        let r = c.smtp_send(node, "alice@client.example", &[to], HAM);
        assert_eq!(r.mail.as_ref().map(|(code, _)| *code), Some(250), "{r:?}");
        r.rcpt.first().cloned().expect("RCPT was answered")
    };
    assert_eq!(rcpt(1, "bob@seeded.test").0, 550, "no seed, no route");
    // Caught up (synced above): the seed alone makes it wait.
    let unseeded = "the cluster's seed routes are not applied yet";
    for to in ["bob@seeded.test", "x@nowhere.example"] {
        let (code, text) = rcpt(2, to);
        assert_eq!(code, 451, "{text}");
        assert!(
            text.starts_with("4.3.0") && text.contains(unseeded),
            "{text}"
        );
    }
    c.route_local_domain().await.unwrap();
    c.sync_all(0).await.unwrap();
    assert_eq!(rcpt(2, "bob@example.test").0, 250);
    assert_eq!(rcpt(2, "x@nowhere.example").0, 550);
}

/// A learner takes mail like any node, but only voters make the majority that holds a
/// body: the learner's own copy does not count.
#[tokio::test]
async fn mail_accepted_by_a_learner_has_its_body_on_a_majority_of_voters() {
    let mut c = with_local_domain().await;
    let i4 = c.add_learner(4, 0).await.unwrap();
    c.sync_all(0).await.unwrap();
    let r = c.smtp_send(i4, "alice@client.example", &["bob@example.test"], HAM);
    assert_eq!(r.data.as_ref().map(|d| d.0), Some(250), "{r:?}");
    // The message stays queued (nothing listens downstream): each copy becomes a file at
    // its holder's journal checkpoint.
    let held = wait_for(
        "a majority of voters holds the body",
        Duration::from_secs(20),
        || {
            let voters_holding = (0..3).filter(|&i| !c.blob_files(i).is_empty()).count();
            async move { (voters_holding >= 2).then_some(voters_holding) }
        },
    )
    .await;
    assert!(held.is_ok(), "{held:?}");
}

/// `250` comes only after the record is committed and the body is durable on a majority:
/// every node is SIGKILLed right after each `250`, and once they are back every message
/// they acknowledged is still queued.
#[tokio::test]
async fn every_acknowledged_message_survives_killing_every_node_right_after_its_250() {
    let mut c = with_local_domain().await;
    let mut acknowledged = Vec::new();
    for n in 0..5 {
        let id = send_ham(&c, n % 3, 40 + n);
        for i in 0..3 {
            c.kill(i);
        }
        acknowledged.push(id);
        for i in 0..3 {
            c.start_node(i).unwrap();
        }
        c.wait_for_leader_everywhere().await.unwrap();
        let queued: Vec<String> = wait_for("a node answers", Duration::from_secs(30), || async {
            let mut a = c.client(n % 3).await.ok()?;
            let r = a.queue_list(QueueListRequest::default()).await.ok()?;
            Some(
                r.into_inner()
                    .messages
                    .into_iter()
                    .map(|m| m.queue_id)
                    .collect(),
            )
        })
        .await
        .unwrap();
        for id in &acknowledged {
            assert!(
                queued.contains(id),
                "{id} was acknowledged and is gone: {queued:?}"
            );
        }
    }
}
