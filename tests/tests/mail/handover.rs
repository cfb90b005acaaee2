//! Who delivers: a dead node's whole queue taken over in a few entries, and a message
//! handed from a site that cannot reach the downstream to one that can.

use std::time::Duration;

use peage_tests::proxy::LinkProxy;
use peage_tests::{wait_for, TestCluster, Tuning};

use super::{ham, queue, send_ham, wait_delivered};

/// Routes example.test through a gate to the sink that turns node `refused` away (as if
/// that site's path to the downstream were broken) and lets the other sites through.
async fn route_refusing(c: &TestCluster, refused: usize) -> LinkProxy {
    let gate_addr = format!("{}.201:2627", c.net);
    let ip = format!("{}.{}", c.net, refused + 1).parse().unwrap();
    let gate = LinkProxy::start_refusing(&gate_addr, &c.sink_addr(), ip)
        .await
        .unwrap();
    c.route_domain("example.test", &format!("smtp://{gate_addr}"))
        .await
        .unwrap();
    gate
}

/// A node accepts 1,000 messages while the way to the downstream is cut (its attempts hang,
/// none fails) and is killed; the leader takes them over in one or a few commands (not one
/// per message) and, once the way is open again, delivers every one.
#[tokio::test]
async fn a_dead_nodes_thousand_messages_are_taken_over_in_a_few_entries() {
    // A loaded test machine may take seconds to commit: no 451 for a slow commit here.
    let mut c = TestCluster::start(Tuning {
        commit_timeout_ms: 15_000,
        ..Tuning::default()
    })
    .await
    .unwrap();
    let sink = c.start_sink().await.unwrap();
    let gate_addr = format!("{}.201:2627", c.net);
    let gate = LinkProxy::start(&gate_addr, &c.sink_addr(), Duration::ZERO)
        .await
        .unwrap();
    gate.set_cut(true);
    c.route_domain("example.test", &format!("smtp://{gate_addr}"))
        .await
        .unwrap();
    let leader = c.wait_for_leader_everywhere().await.unwrap();
    let doomed = (leader + 1) % 3;
    let bodies = (0..1000).map(|n| ham(1000 + n)).collect();
    c.send_all(
        doomed,
        "alice@client.example",
        "bob@example.test",
        bodies,
        8,
    )
    .await
    .unwrap();
    c.kill(doomed);
    let moved = wait_for(
        "the leader takes the dead node's queue over",
        Duration::from_secs(60),
        || {
            let c = &c;
            async move {
                c.metric(leader, "peage_delivery_moved_total{how=\"takeover\"}")
                    .await
                    .filter(|n| *n >= 1000.0)
            }
        },
    )
    .await;
    assert_eq!(moved.ok(), Some(1000.0), "every message, once");
    let commands = c
        .metric(
            leader,
            "peage_delivery_move_commands_total{how=\"takeover\"}",
        )
        .await
        .unwrap_or(0.0);
    eprintln!("taken over: 1000 messages in {commands} takeover command(s)");
    assert!(
        commands <= 5.0,
        "1,000 messages took {commands} takeover commands"
    );
    gate.set_cut(false);
    let survivors: Vec<usize> = (0..3).filter(|i| *i != doomed).collect();
    wait_delivered(&c, &sink, 1000, &survivors).await;
    assert_eq!(sink.messages("bob@example.test").len(), 1000, "each once");
}

/// The downstream turns Paris away (as if Paris's path to it were broken) but takes the
/// other sites: a message accepted at Paris is handed over after a few failed attempts
/// and delivered from another site.
#[tokio::test]
async fn an_owner_whose_route_fails_hands_its_message_to_a_site_that_delivers_it() {
    let c = TestCluster::start(Tuning::default()).await.unwrap();
    let sink = c.start_sink().await.unwrap();
    let _gate = route_refusing(&c, 0).await;
    let id = send_ham(&c, 0, 41);
    wait_delivered(&c, &sink, 1, &[0, 1, 2]).await;
    let handed = wait_for("Paris counts its hand-off", Duration::from_secs(10), || {
        let c = &c;
        async move {
            c.metric(0, "peage_delivery_moved_total{how=\"hand_off\"}")
                .await
                .filter(|n| *n >= 1.0)
        }
    })
    .await;
    let log = c.node_log(0);
    assert_eq!(handed.ok(), Some(1.0), "{id}: Paris's log:\n{log}");
    assert!(log.contains("handed over after repeated failures"), "{log}");
    assert_eq!(sink.messages("bob@example.test").len(), 1);
}

/// The downstream turns the leader away and the site that comes after it is down: the
/// leader hands its message to the follower that is up, which delivers it (handed to the
/// dead site, it would wait a lease, come back and go there again, and then stay with the
/// leader, never delivered while that site is down).
#[tokio::test]
async fn a_leader_whose_route_fails_hands_its_message_to_the_site_that_is_up() {
    let mut c = TestCluster::start(Tuning::default()).await.unwrap();
    let sink = c.start_sink().await.unwrap();
    let leader = c.wait_for_leader_everywhere().await.unwrap();
    // Node ids are index + 1: the voter after the leader's id, in turn, is index leader + 1.
    let (down, up) = ((leader + 1) % 3, (leader + 2) % 3);
    let _gate = route_refusing(&c, leader).await;
    c.kill(down);
    let id = send_ham(&c, leader, 43);
    wait_delivered(&c, &sink, 1, &[leader, up]).await;
    let handed = c
        .metric(leader, "peage_delivery_moved_total{how=\"hand_off\"}")
        .await;
    let log = c.node_log(leader);
    assert_eq!(handed, Some(1.0), "{id}: the leader's log:\n{log}");
    let to = format!("to={}", c.nodes[up].id);
    assert!(
        log.contains(&to),
        "{id} not handed to the site that is up ({to}):\n{log}"
    );
    assert_eq!(sink.messages("bob@example.test").len(), 1);
}

/// A follower restarts with its wall clock 20 s behind the others' (libfaketime). Its offset
/// from the leader is measured and exported; its forwarded writes are not refused as late,
/// and the messages it accepts stay its own while the downstream is away, for several lease
/// periods (leases are judged on the leader's clock: judged on the site's own, every
/// renewal would look 18 s expired and the leader would take them over); once the
/// downstream is back each is delivered exactly once.
#[tokio::test]
async fn a_site_whose_clock_is_twenty_seconds_behind_keeps_its_leases_and_delivers_once() {
    let mut c = TestCluster::start(Tuning::default()).await.unwrap();
    c.route_local_domain().await.unwrap();
    // The skewed site is a follower (a leader's clock is the reference itself): restarted
    // until it rejoins as one, which a restarted node all but always does.
    let skewed = (c.wait_for_leader_everywhere().await.unwrap() + 1) % 3;
    c.nodes[skewed].clock_offset = Some("-20s".into());
    for _ in 0..3 {
        c.stop(skewed, Duration::from_secs(10));
        c.start_node(skewed).unwrap();
        if c.wait_for_leader_everywhere().await.unwrap() != skewed {
            break;
        }
    }
    let leader = c.wait_for_leader_everywhere().await.unwrap();
    if leader == skewed {
        for i in 0..3 {
            eprintln!("=== node {i}\n{}", c.node_log(i));
        }
    }
    assert_ne!(leader, skewed);
    let offset = wait_for(
        "a node measures the 20 s between the skewed clock and the leader's",
        Duration::from_secs(30),
        || {
            let c = &c;
            async move {
                for i in 0..3 {
                    let ms = c.metric(i, "peage_clock_offset_ms").await.unwrap_or(0.0);
                    if ms.abs() >= 15_000.0 {
                        return Some(ms);
                    }
                }
                None
            }
        },
    )
    .await
    .unwrap();
    assert!(
        (offset.abs() - 20_000.0).abs() < 2_000.0,
        "offset {offset} ms"
    );

    let ids: Vec<String> = (0..5).map(|n| send_ham(&c, skewed, 60 + n)).collect();
    let owner = c.nodes[skewed].id;
    let first = queue(&c, 0, false).await;
    assert_eq!(first.len(), 5, "{first:?}");
    let renewed_past = first.iter().map(|m| m.lease_until_ms).max().unwrap() + 4_000;
    let held = wait_for(
        "the skewed site renews its leases for two lease periods",
        Duration::from_secs(30),
        || {
            let c = &c;
            async move {
                let q = queue(c, 0, false).await;
                q.iter()
                    .all(|m| m.lease_until_ms >= renewed_past)
                    .then_some(q)
            }
        },
    )
    .await
    .unwrap();
    for m in &held {
        assert_eq!(m.owner, owner, "{ids:?}: {m:?}");
    }
    let sink = c.start_sink().await.unwrap();
    wait_delivered(&c, &sink, 5, &[0, 1, 2]).await;
    assert_eq!(sink.messages("bob@example.test").len(), 5, "each once");
    for i in 0..3 {
        let taken = c
            .metric(i, "peage_delivery_moved_total{how=\"takeover\"}")
            .await;
        assert_eq!(taken.unwrap_or(0.0), 0.0, "node {i} took messages over");
    }
}
