//! Copies of a body before its `250`: a majority of the voters holds each, the peers asked
//! one after the other, so a peer cut off without a word costs a moment, not the body
//! timeout.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use peage_tests::proxy::LinkProxy;
use peage_tests::{TestCluster, Tuning};

use super::{queue, HAM};

/// The two followers' link is cut both ways (silent: nothing is refused), so a follower's
/// first choice for a copy, the other follower, never answers: the leader is asked a
/// moment later and holds the body with it.
// The link proxies run on the test's runtime, beside a blocking smtplib call: more than one
// worker keeps them moving.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_peer_cut_off_without_a_word_does_not_hold_a_body_for_its_timeout() {
    let body_timeout = Duration::from_secs(30);
    let tuning = Tuning {
        proxied_peers: true,
        body_timeout_ms: body_timeout.as_millis() as u64,
        // Nothing listens downstream: the message stays queued with its holders.
        retry_first_ms: 600_000,
        ..Tuning::default()
    };
    let mut c = TestCluster::configure(tuning).unwrap();
    let mut links = BTreeMap::new();
    for (from, to) in [(1, 2), (2, 1), (1, 3), (3, 1), (2, 3), (3, 2)] {
        let target = c.nodes[to as usize - 1].peer_addr();
        let link = LinkProxy::start(&c.link_addr(from, to), &target, Duration::ZERO)
            .await
            .unwrap();
        links.insert((from, to), link);
    }
    for i in 0..3 {
        c.start_node(i).unwrap();
    }
    let leader = c.wait_for_leader_everywhere().await.unwrap();
    c.route_local_domain().await.unwrap();
    let followers: Vec<usize> = (0..3).filter(|&i| i != leader).collect();
    let (sender, other) = (c.nodes[followers[0]].id, c.nodes[followers[1]].id);
    links[&(sender, other)].set_cut(true);
    links[&(other, sender)].set_cut(true);

    let started = Instant::now();
    let r = c.smtp_send(
        followers[0],
        "alice@client.example",
        &["bob@example.test"],
        HAM,
    );
    let took = started.elapsed();
    let id = r.queue_id();
    assert!(took < body_timeout, "the 250 waited {took:?}: {r:?}");
    let q = queue(&c, leader, false).await;
    let m = q.iter().find(|m| m.queue_id == id).expect("queued");
    let mut expected = vec![sender, c.nodes[leader].id];
    expected.sort_unstable();
    assert_eq!(m.holders, expected, "{m:?}");
}
