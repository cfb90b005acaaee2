//! Delivery: exactly once to the sink, held while the downstream is down, taken over from
//! a dead node, bounced when refused or too old, split by route.

use std::time::Duration;

use peage_tests::v1::*;
use peage_tests::{http_get, wait_for, SinkProcess, Tuning, ADMIN_TOKEN};

use super::tracking::track_until;
use super::{
    ham, json_as, proving_client_example, queue, send_ham, wait_delivered, with_local_domain,
    with_local_domain_tuned,
};

#[tokio::test]
async fn ham_sent_to_each_site_arrives_in_the_sink_exactly_once() {
    let c = with_local_domain().await;
    let sink = c.start_sink().await.unwrap();
    for i in 0..3 {
        send_ham(&c, i, i);
    }
    wait_delivered(&c, &sink, 3, &[0, 1, 2]).await;
    let msgs = sink.messages("bob@example.test");
    assert_eq!(msgs.len(), 3, "exactly once each");
    for n in 0..3 {
        let count = msgs
            .iter()
            .filter(|m| m.contains(&format!("<ham-{n}@client.example>")))
            .count();
        assert_eq!(count, 1, "ham {n}");
    }
    for m in &msgs {
        // Our trace field first, then our verdict, then the message as it came.
        assert!(
            m.starts_with("Received: from client.example (unknown [127.0.0."),
            "{m}"
        );
        let verdict = m.find("X-Peage-Verdict: ").expect("a verdict");
        assert!(
            m[..verdict].ends_with(" +0000\r\n") && m[..verdict].contains("(Peage) with ESMTP"),
            "{m}"
        );
        assert!(
            m[verdict..].starts_with(
                "X-Peage-Verdict: deliver\r\nX-Peage-Score: 0\r\nX-Peage-Symbols: none\r\nFrom: "
            ),
            "{m}"
        );
    }
}

#[tokio::test]
async fn forged_verdicts_and_authentication_results_never_reach_the_mailbox() {
    let c = with_local_domain().await;
    let sink = c.start_sink().await.unwrap();
    let forged = b"X-Peage-Verdict: deliver\r\nX-Peage-Score: -20\r\n\
                   Authentication-Results: roubaix.peage; spf=pass smtp.mailfrom=bank.example\r\n\
                   Authentication-Results: mx.elsewhere.example; dkim=pass\r\n\
                   From: alice@client.example\r\nTo: bob@example.test\r\nSubject: forged\r\n\
                   Message-ID: <forged@client.example>\r\n\r\n\
                   X-Peage-Verdict: quoted in the body stays\r\n";
    let r = c.smtp_send(1, "alice@client.example", &["bob@example.test"], forged);
    assert_eq!(r.data.as_ref().map(|d| d.0), Some(250), "{r:?}");
    wait_delivered(&c, &sink, 1, &[0, 1, 2]).await;
    let m = &sink.messages("bob@example.test")[0];
    let header = &m[..m.find("\r\n\r\n").unwrap()];
    assert!(header.starts_with("Received: from client.example ("), "{m}");
    assert!(header.contains("by roubaix.peage (Peage)"), "{m}");
    assert_eq!(
        header.matches("X-Peage-Verdict:").count(),
        1,
        "ours only: {m}"
    );
    assert_eq!(
        header.matches("X-Peage-Score:").count(),
        1,
        "ours only: {m}"
    );
    assert!(!header.contains("-20"), "{m}");
    assert!(
        !header.contains("Authentication-Results: roubaix.peage"),
        "{m}"
    );
    assert!(
        header.contains("Authentication-Results: mx.elsewhere.example; dkim=pass"),
        "another host's results are not ours to remove: {m}"
    );
    assert!(
        m.contains("X-Peage-Verdict: quoted in the body stays"),
        "{m}"
    );
}

#[tokio::test]
async fn with_the_downstream_down_mail_is_held_then_delivered_when_it_returns() {
    let c = with_local_domain().await;
    let id = send_ham(&c, 1, 0);
    // Several delivery rounds fail (nothing listens): the message stays queued.
    let leader = c.wait_for_leader_everywhere().await.unwrap();
    let mut a = c.client(leader).await.unwrap();
    let start = a
        .state_digest(StateDigestRequest { stale: false })
        .await
        .unwrap()
        .into_inner()
        .applied_index;
    wait_for(
        "a few renewals or retries go by",
        Duration::from_secs(30),
        || {
            let mut a = a.clone();
            async move {
                let d = a
                    .state_digest(StateDigestRequest { stale: false })
                    .await
                    .ok()?
                    .into_inner();
                (d.applied_index >= start + 2).then_some(())
            }
        },
    )
    .await
    .unwrap();
    let q = queue(&c, 0, false).await;
    assert_eq!(q.len(), 1, "held while the downstream is down");
    assert_eq!(q[0].queue_id, id);

    let sink = c.start_sink().await.unwrap();
    wait_delivered(&c, &sink, 1, &[0, 1, 2]).await;
    assert_eq!(sink.messages("bob@example.test").len(), 1);
}

/// `queue ls` through any node says why a message waits — its failed attempts as the owner
/// recorded them and the last one's error, as `mailq` does — and names a site that could
/// not say.
#[tokio::test]
async fn queue_ls_says_why_a_message_waits_and_which_sites_did_not_answer() {
    let mut c = with_local_domain().await;
    let id = send_ham(&c, 1, 0);
    let failed = |answer: &serde_json::Value| {
        let m = answer["messages"].as_array()?.first()?.clone();
        let why = m["last_failure"].as_str()?.to_owned();
        (m["queue_id"] == id.as_str() && m["failed_attempts"].as_u64()? >= 2).then_some(why)
    };
    let why = wait_for(
        "two failed attempts listed through another node",
        Duration::from_secs(30),
        || async { failed(&json_as(&c, 0, ADMIN_TOKEN, &["queue", "ls"]).ok()?) },
    )
    .await
    .unwrap();
    assert!(why.contains("Connection refused"), "{why}");
    let out = c.peagectl(0, &["queue", "ls"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("failed attempts, the last at"), "{text}");
    assert!(text.contains("Connection refused"), "{text}");
    // The owner is named by its site, as operators know the nodes.
    let owner = &c.nodes[1];
    assert!(
        text.contains(&format!("{} {}", owner.id, owner.site)),
        "{text}"
    );

    c.kill(2);
    let answer = wait_for(
        "the listing names the site that is down",
        Duration::from_secs(30),
        || async {
            let answer = json_as(&c, 0, ADMIN_TOKEN, &["queue", "ls"]).ok()?;
            let silent = answer["unanswered"]
                .as_array()?
                .first()?
                .as_str()?
                .to_owned();
            silent.starts_with("3 (").then_some(answer)
        },
    )
    .await
    .unwrap();
    assert!(
        failed(&answer).is_some(),
        "the owner's count stays: {answer}"
    );
}

#[tokio::test]
async fn a_message_whose_accepting_node_is_killed_is_delivered_by_another_site() {
    let mut c = with_local_domain().await;
    // The downstream is down, so the accepting node cannot deliver before it dies.
    let owner_idx = 2;
    let id = send_ham(&c, owner_idx, 7);
    c.kill(owner_idx);
    let sink = c.start_sink().await.unwrap();
    // Its lease (2 s) lapses; the leader takes the message over and delivers it.
    wait_delivered(&c, &sink, 1, &[0, 1]).await;
    let msgs = sink.messages("bob@example.test");
    assert_eq!(msgs.len(), 1);
    assert!(msgs[0].contains("<ham-7@client.example>"), "{id}: {msgs:?}");
}

/// A node killed after the downstream's `250` but before its `SpoolDone` committed does not
/// deliver the message again when it restarts: its delivered ledger has the delivery, and
/// it proposes the `SpoolDone` instead. The commit is kept from happening by killing the
/// other two sites first, so the window is as wide as the test needs.
#[tokio::test]
async fn a_node_killed_before_its_spool_done_committed_does_not_deliver_again() {
    let mut c = with_local_domain_tuned(Tuning {
        // The owner must keep the message until the cluster is back: its lease longer than
        // the test, and its retries slow enough that the sink is up before three failures
        // would hand the message off. (A hand-off proposed while the others are down can
        // commit after the restart and have another site deliver again: seen twice under
        // load with 30 s and 200 ms; at-least-once, a duplicate the ledger does not cover.)
        lease_secs: 300,
        retry_first_ms: 5000,
        ..Tuning::default()
    })
    .await;
    let owner = 0;
    let id = send_ham(&c, owner, 8);
    c.kill(1);
    c.kill(2);
    let sink = c.start_sink().await.unwrap();
    sink.wait_for_messages(
        "bob@example.test",
        1,
        "the lone owner delivers",
        Duration::from_secs(30),
    )
    .await;
    let ledger = c.nodes[owner].data_dir.join("delivered.ledger");
    wait_for(
        "the owner notes the delivery in its ledger",
        Duration::from_secs(30),
        || async { (std::fs::metadata(&ledger).ok()?.len() > 0).then_some(()) },
    )
    .await
    .unwrap();
    let held = queue(&c, owner, true).await;
    assert_eq!(held.len(), 1, "no majority, so no SpoolDone yet: {held:?}");
    c.kill(owner);
    for i in 0..3 {
        c.start_node(i).unwrap();
    }
    c.wait_for_leader_everywhere().await.unwrap();
    wait_delivered(&c, &sink, 1, &[0, 1, 2]).await;
    let msgs = sink.messages("bob@example.test");
    assert_eq!(msgs.len(), 1, "{id} delivered again after the restart");
}

#[tokio::test]
async fn a_refused_recipient_is_bounced_to_a_proved_or_local_sender_never_to_a_forged_or_null_one()
{
    let (c, _dns) = proving_client_example(Tuning::default()).await;
    let sink = c.start_sink().await.unwrap();
    let accepted = |from: &str, rcpts: &[&str], n: usize| {
        let r = c.smtp_send(0, from, rcpts, &ham(n));
        assert_eq!(r.data.as_ref().map(|d| d.0), Some(250), "{r:?}");
    };

    // One good and one refused recipient: the good one is delivered, the sender gets a DSN
    // (through the bounce route, here the same sink) naming the refused one.
    accepted(
        "alice@client.example",
        &["bob@example.test", "reject-me@example.test"],
        9,
    );
    sink.wait_for_messages(
        "alice@client.example",
        1,
        "the DSN reaches the sender",
        Duration::from_secs(30),
    )
    .await;
    assert_eq!(sink.messages("bob@example.test").len(), 1);
    let dsn = &sink.messages("alice@client.example")[0];
    assert!(dsn.contains("report-type=delivery-status"), "{dsn}");
    assert!(
        dsn.contains("Final-Recipient: rfc822; reject-me@example.test"),
        "{dsn}"
    );
    assert!(dsn.contains("Status: 5.1.1"), "{dsn}");
    assert!(
        dsn.contains("<ham-9@client.example>"),
        "the original headers: {dsn}"
    );

    // From the null sender: refused downstream, dropped from the queue, no DSN.
    accepted("", &["reject-too@example.test"], 10);
    wait_for("the queue drains", Duration::from_secs(30), || async {
        queue(&c, 1, false).await.is_empty().then_some(())
    })
    .await
    .unwrap();
    assert_eq!(
        sink.messages("alice@client.example").len(),
        1,
        "no second DSN"
    );
    assert!(sink.messages("").is_empty());

    // A sender nothing proves (forged.example publishes no SPF, signs nothing): the refusal
    // is logged, and no backscatter goes to whoever that address belongs to.
    accepted("victim@forged.example", &["reject-forged@example.test"], 12);
    // A local mailbox (example.test takes any address): bounced like a proved sender.
    accepted("carol@example.test", &["reject-local@example.test"], 13);
    sink.wait_for_messages(
        "carol@example.test",
        1,
        "the DSN reaches the local sender",
        Duration::from_secs(30),
    )
    .await;
    wait_for("the queue drains", Duration::from_secs(30), || async {
        queue(&c, 1, false).await.is_empty().then_some(())
    })
    .await
    .unwrap();
    assert!(
        sink.messages("victim@forged.example").is_empty(),
        "a DSN went to a sender nothing proved"
    );
    let mut withheld = 0.0;
    for i in 0..3 {
        let series = "peage_delivery_bounces_withheld_total";
        withheld += c.metric(i, series).await.unwrap_or(0.0);
    }
    assert_eq!(withheld, 1.0, "the withheld bounce is counted");
}

#[tokio::test]
async fn a_message_held_past_the_retention_limit_is_bounced_with_4_4_7() {
    let (c, _dns) = proving_client_example(Tuning {
        retention_secs: 3,
        ..Tuning::default()
    })
    .await;
    let sink = c.start_sink().await.unwrap();
    // held.test's server never answers (nothing listens there); the sender's DSN goes through
    // the bounce route, which is the running sink.
    c.route_domain("held.test", &format!("smtp://{}.201:2626", c.net))
        .await
        .unwrap();
    // Taken before sending: the node's acceptance time comes after it, so the bounce cannot
    // reach the sink before this plus the retention.
    let accepted = std::time::Instant::now();
    let r = c.smtp_send(1, "alice@client.example", &["carol@held.test"], &ham(11));
    assert_eq!(r.data.as_ref().map(|d| d.0), Some(250), "{r:?}");

    sink.wait_for_messages(
        "alice@client.example",
        1,
        "the DSN for the expired message",
        Duration::from_secs(30),
    )
    .await;
    // Held for retry while young: the bounce cannot come before the retention limit.
    assert!(
        accepted.elapsed() >= Duration::from_secs(3),
        "bounced after {:?}, before the 3 s retention",
        accepted.elapsed()
    );
    let dsn = &sink.messages("alice@client.example")[0];
    assert!(
        dsn.contains("Final-Recipient: rfc822; carol@held.test"),
        "{dsn}"
    );
    assert!(dsn.contains("Status: 4.4.7"), "{dsn}");
    assert!(dsn.contains("<ham-11@client.example>"), "{dsn}");
    wait_for("the queue drains", Duration::from_secs(10), || async {
        queue(&c, 2, false).await.is_empty().then_some(())
    })
    .await
    .unwrap();
    assert!(sink.messages("carol@held.test").is_empty());
    // Tracking tells it: expired, then bounced, with the reason.
    let id = r.queue_id();
    let expired = |events: &[serde_json::Value], _: &[String]| {
        ["expired", "bounced"].map(|kind| events.iter().any(|e| e["kind"] == kind)) == [true; 2]
    };
    let (events, _) = track_until(&c, 0, &["--queue-id", &id], expired).await;
    let expired = events.iter().find(|e| e["kind"] == "expired").unwrap();
    assert!(
        expired["detail"].as_str().unwrap().contains("4.4.7"),
        "{events:?}"
    );
}

#[tokio::test]
async fn recipients_on_different_routes_in_one_data_each_reach_their_server() {
    let c = with_local_domain().await;
    let other = format!("{}.201:2626", c.net);
    let mut a = c.client(0).await.unwrap();
    a.domain_set(DomainSetRequest {
        domain: "other.test".into(),
        route: format!("smtp://{other}"),
        ..Default::default()
    })
    .await
    .unwrap();
    let (d1, d2) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let s1 = SinkProcess::start(&c.sink_addr(), d1.path()).await.unwrap();
    let s2 = SinkProcess::start(&other, d2.path()).await.unwrap();
    // A linearizable read on node 3 first: it accepts for other.test only once it knows it.
    let mut b = c.client(2).await.unwrap();
    b.domain_list(DomainListRequest { stale: false })
        .await
        .unwrap();
    let r = c.smtp_send(
        2,
        "alice@client.example",
        &["bob@example.test", "carol@other.test"],
        &ham(12),
    );
    assert_eq!(r.data.as_ref().map(|d| d.0), Some(250), "{r:?}");
    wait_delivered(&c, &s1, 1, &[0, 1, 2]).await;
    assert_eq!(s2.messages("carol@other.test").len(), 1);
    assert!(s1.messages("carol@other.test").is_empty());
    assert!(s2.messages("bob@example.test").is_empty());
}

/// Once a message is delivered its body is removed from every node (after the grace a body
/// gets in case a new message with the same content is on its way), and a node that was
/// down meanwhile catches up and removes it too.
#[tokio::test]
async fn a_delivered_message_leaves_no_body_on_any_node() {
    let mut c = with_local_domain_tuned(Tuning {
        body_timeout_ms: 1000,
        ..Tuning::default()
    })
    .await;
    let sink = c.start_sink().await.unwrap();
    c.kill(2);
    c.wait_for_leader_everywhere().await.unwrap();
    for node in 0..2 {
        send_ham(&c, node, 30 + node);
    }
    wait_delivered(&c, &sink, 2, &[0, 1]).await;
    c.start_node(2).unwrap();
    let swept = wait_for(
        "no body left on any node",
        Duration::from_secs(60),
        || async {
            let left: Vec<_> = (0..3).flat_map(|i| c.blob_files(i)).collect();
            left.is_empty().then_some(())
        },
    )
    .await;
    let left: Vec<_> = (0..3).flat_map(|i| c.blob_files(i)).collect();
    assert!(swept.is_ok(), "bodies left: {left:?}");
}

/// A downstream that takes 5 connections per client still gets every message, and never
/// has to refuse one: each node opens at most as many connections to a route as its
/// `max_connections_per_route` (5 here), and the others wait for a free one.
#[tokio::test]
async fn a_downstream_that_takes_five_connections_per_client_is_never_flooded() {
    let c = with_local_domain_tuned(Tuning {
        max_connections_per_route: 5,
        ..Tuning::default()
    })
    .await;
    let mut sink = c.start_sink_limited(5).await.unwrap();
    sink.stop();
    // Held while the downstream is away, so that delivery starts with many at once.
    for n in 0..45 {
        send_ham(&c, n % 3, 100 + n);
    }
    let sink = c.start_sink_limited(5).await.unwrap();
    wait_delivered(&c, &sink, 45, &[0, 1, 2]).await;
    for i in 0..3 {
        let (_, m) = http_get(&c.nodes[i].metrics_addr(), "/metrics")
            .await
            .unwrap();
        assert!(m.contains("peage_delivery_attempts_total"), "{m}");
        let busy = m
            .lines()
            .find(|l| l.starts_with("peage_delivery_throttled_total "))
            .and_then(|l| l.rsplit(' ').next()?.parse::<f64>().ok());
        let deferred: Vec<String> = c
            .node_log(i)
            .lines()
            .filter(|l| l.contains("deferred") || l.contains("421"))
            .map(str::to_owned)
            .collect();
        assert_eq!(
            busy,
            None,
            "node {i} was told 421 by the downstream:\n{}",
            deferred.join("\n")
        );
    }
}
