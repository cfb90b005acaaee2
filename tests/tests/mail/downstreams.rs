//! Downstreams that misbehave: one that accepts the connection and never greets costs a
//! failed attempt at the connect timeout, retried later, rather than holding the delivery
//! (and a connection slot of its route) for ever.

use std::time::Duration;

use peage_tests::{wait_for, TestCluster, Tuning, ADMIN_TOKEN};

use super::{json_as, HAM};

#[tokio::test]
async fn a_downstream_that_never_greets_costs_an_attempt_not_the_delivery() {
    let mut c = TestCluster::configure(Tuning::default()).unwrap();
    for i in 0..3 {
        c.edit_node_config(i, |config| config.spool.connect_timeout_secs = 1)
            .unwrap();
        c.start_node(i).unwrap();
    }
    c.wait_for_leader_everywhere().await.unwrap();
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
