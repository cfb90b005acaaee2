//! Downstreams that misbehave: one that accepts the connection and never greets costs a
//! failed attempt at the connect timeout, retried later, rather than holding the delivery
//! (and a connection slot of its route) for ever; a route that leads back into the cluster
//! ends at the hop limit instead of relaying the message round for ever (each pass inside
//! the STARTTLS our MX offer).

use std::time::Duration;

use peage_tests::{wait_for, TestCluster, Tuning, ADMIN_TOKEN};

use super::{json_as, HAM};

/// Three nodes, each with the same change to its configuration, a leader elected.
async fn started_with(
    tuning: Tuning,
    edit: impl Fn(&mut peage_node::config::Config),
) -> TestCluster {
    let mut c = TestCluster::configure(tuning).unwrap();
    for i in 0..3 {
        c.edit_node_config(i, &edit).unwrap();
        c.start_node(i).unwrap();
    }
    c.wait_for_leader_everywhere().await.unwrap();
    c
}

#[tokio::test]
async fn a_downstream_that_never_greets_costs_an_attempt_not_the_delivery() {
    let c = started_with(Tuning::default(), |config| {
        config.spool.connect_timeout_secs = 1
    })
    .await;
    // Accepts every connection and keeps it open without a word.
    let silent = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = silent.local_addr().unwrap();
    let held = tokio::spawn(async move {
        let mut sockets = Vec::new();
        while let Ok((socket, _)) = silent.accept().await {
            sockets.push(socket);
        }
    });
    c.route_domain("silent.test", &format!("smtp://{addr}"))
        .await
        .unwrap();
    let id = c
        .smtp_send(0, "alice@client.example", &["bob@silent.test"], HAM)
        .queue_id();
    let why = wait_for(
        "two attempts that timed out",
        Duration::from_secs(30),
        || async {
            let answer = json_as(&c, 0, ADMIN_TOKEN, &["queue", "ls"]).ok()?;
            let m = answer["messages"].as_array()?.first()?.clone();
            let tried = m["queue_id"] == id.as_str() && m["failed_attempts"].as_u64()? >= 2;
            tried.then(|| m["last_failure"].as_str().unwrap_or_default().to_owned())
        },
    )
    .await
    .unwrap();
    assert!(why.to_lowercase().contains("timeout"), "{why}");
    held.abort();
}

#[tokio::test]
async fn a_domain_routed_back_into_the_cluster_stops_at_the_hop_limit() {
    // The MX offer STARTTLS (a self-signed certificate each): the passes take it.
    let tls = Tuning {
        tls: true,
        ..Tuning::default()
    };
    let c = started_with(tls, |config| config.smtp.max_hops = 5).await;
    // A routing mistake: the domain's downstream is Roubaix's own MX.
    let (host, port) = c.nodes[1].smtp_addr();
    c.route_domain("loop.test", &format!("smtp://{host}:{port}"))
        .await
        .unwrap();
    c.smtp_send(0, "alice@client.example", &["bob@loop.test"], HAM)
        .queue_id();
    // Each pass adds a `Received`: passes with 0 to 5 of them are accepted, the seventh is
    // refused with 554 5.4.6 and ends the loop as a failed delivery.
    let totals = wait_for(
        "the loop refused at its hop limit, the queue empty",
        Duration::from_secs(60),
        || async {
            let stats = json_as(&c, 0, ADMIN_TOKEN, &["stats", "--since", "1h"]).ok()?;
            let totals = stats["totals"].clone();
            let queue = json_as(&c, 0, ADMIN_TOKEN, &["queue", "ls"]).ok()?;
            let done = totals["bounced"].as_i64()? >= 1
                && totals["received"].as_i64()? >= 6
                && queue["messages"].as_array()?.is_empty();
            done.then_some(totals)
        },
    )
    .await
    .unwrap();
    assert_eq!(totals["received"].as_i64(), Some(6), "{totals}");
    assert_eq!(totals["delivered"].as_i64(), Some(5), "{totals}");
    let mut inside_tls = 0.0;
    for i in 0..3 {
        let series = r#"peage_delivery_connections_total{tls="starttls"}"#;
        inside_tls += c.metric(i, series).await.unwrap_or(0.0);
        let fallback = r#"peage_delivery_connections_total{tls="fallback"}"#;
        assert_eq!(c.metric(i, fallback).await, None, "node {i}");
    }
    assert!(inside_tls >= 1.0, "{inside_tls} connections inside TLS");
}
