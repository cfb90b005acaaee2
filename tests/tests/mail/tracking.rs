//! Message tracking across the sites, with real processes: a message accepted at Paris and
//! delivered by another site after Paris is killed is found through Ariège as one timeline
//! of the sites that are up, the reply naming Paris as not answering; a rejected message is
//! found with its reason; a site whose events are past the retention has none left.

use std::time::Duration;

use peage_tests::{wait_for, TestCluster, Tuning};

use super::{send_ham, wait_delivered, with_local_domain, with_local_domain_tuned};

/// `peagectl --json track ARGS` through node `node`: the events and the nodes not answering.
fn track(c: &TestCluster, node: usize, args: &[&str]) -> (Vec<serde_json::Value>, Vec<String>) {
    let mut all = vec!["--json", "track"];
    all.extend_from_slice(args);
    let out = c.peagectl(node, &all);
    assert!(out.status.success(), "{out:?}");
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let events = v["events"].as_array().unwrap().clone();
    let unreachable = v["unreachable"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n.as_str().unwrap().to_owned())
        .collect();
    (events, unreachable)
}

/// `track` until `ready` holds of its answer (events are written by each node's writer
/// thread, a moment after they happen).
pub async fn track_until(
    c: &TestCluster,
    node: usize,
    args: &[&str],
    ready: impl Fn(&[serde_json::Value], &[String]) -> bool,
) -> (Vec<serde_json::Value>, Vec<String>) {
    wait_for("the tracked events", Duration::from_secs(20), || {
        let found = track(c, node, args);
        let ready = ready(&found.0, &found.1);
        async move { ready.then_some(found) }
    })
    .await
    .unwrap()
}

fn kinds_at(events: &[serde_json::Value]) -> Vec<(String, String)> {
    events
        .iter()
        .map(|e| {
            (
                e["kind"].as_str().unwrap().to_owned(),
                e["site"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

#[tokio::test]
async fn a_message_is_followed_across_sites_even_with_the_accepting_one_down() {
    // Retries 30 s apart: Paris fails once, too few to hand the message off, so it still
    // owns it when killed and a surviving site takes it over.
    let mut c = with_local_domain_tuned(Tuning {
        retry_first_ms: 30_000,
        ..Tuning::default()
    })
    .await;
    // The downstream is down: Paris accepts and cannot deliver.
    let id = send_ham(&c, 0, 41);
    let gtube = format!(
        "From: s@spam.example\r\nTo: bob@example.test\r\nSubject: x\r\nMessage-ID: <gtube-41@spam.example>\r\n\r\n{}\r\n",
        peage_mail::filter::GTUBE
    );
    let r = c.smtp_send(2, "s@spam.example", &["bob@example.test"], gtube.as_bytes());
    assert_eq!(r.data.as_ref().map(|d| d.0), Some(550), "{r:?}");
    // Seen from Paris while it lives: accepted there.
    let accepted =
        |events: &[serde_json::Value], _: &[String]| events.iter().any(|e| e["kind"] == "accepted");
    let (events, unreachable) = track_until(&c, 0, &["--queue-id", &id], accepted).await;
    assert!(unreachable.is_empty(), "{unreachable:?}");
    assert!(
        kinds_at(&events).contains(&("accepted".into(), "paris".into())),
        "{events:?}"
    );
    assert_eq!(
        events.iter().find(|e| e["kind"] == "accepted").unwrap()["message_id"],
        "ham-41@client.example"
    );

    c.kill(0);
    let sink = c.start_sink().await.unwrap();
    wait_delivered(&c, &sink, 1, &[1, 2]).await;
    // Through Ariège: the delivery by a surviving site, Paris named as not answering.
    let delivered = |events: &[serde_json::Value], _: &[String]| {
        events.iter().any(|e| e["kind"] == "delivered")
    };
    let (events, unreachable) =
        track_until(&c, 2, &["--recipient", "bob@example.test"], delivered).await;
    assert_eq!(unreachable, ["1 (paris)"], "{events:?}");
    let delivered: Vec<_> = events.iter().filter(|e| e["kind"] == "delivered").collect();
    assert_eq!(delivered.len(), 1, "{events:?}");
    // How delivery left Paris is on record too: taken over by the site that delivered.
    let moved = track(&c, 2, &["--queue-id", &id]).0;
    let taken_over: Vec<_> = moved.iter().filter(|e| e["kind"] == "taken_over").collect();
    assert_eq!(taken_over.len(), 1, "{moved:?}");
    assert_eq!(taken_over[0]["site"], delivered[0]["site"], "{moved:?}");
    assert_eq!(delivered[0]["queue_id"], id.as_str());
    assert_ne!(delivered[0]["site"], "paris");
    assert_eq!(
        delivered[0]["message_id"], "ham-41@client.example",
        "found by its Message-ID too"
    );
    let times: Vec<i64> = events
        .iter()
        .map(|e| e["at_ms"].as_i64().unwrap())
        .collect();
    assert!(
        times.windows(2).all(|w| w[0] >= w[1]),
        "newest first: {times:?}"
    );
    // The rejection, with its reason, and no queue id.
    let (rejected, _) = track_until(&c, 1, &["--verdict", "reject", "--since", "1h"], |e, _| {
        !e.is_empty()
    })
    .await;
    assert_eq!(rejected.len(), 1, "{rejected:?}");
    assert_eq!(rejected[0]["kind"], "rejected");
    assert_eq!(rejected[0]["site"], "ariege");
    assert!(
        rejected[0]["detail"].as_str().unwrap().contains("GTUBE"),
        "{rejected:?}"
    );
    assert_eq!(rejected[0]["queue_id"], "");
    // A recipient refused at RCPT is on record too.
    let r = c.smtp_send(
        1,
        "a@client.example",
        &["x@not-ours.example"],
        b"Subject: x\r\n\r\nx\r\n",
    );
    assert_eq!(r.rcpt[0].0, 550, "{r:?}");
    let refused =
        |events: &[serde_json::Value], _: &[String]| events.iter().any(|e| e["kind"] == "refused");
    let (events, _) = track_until(&c, 2, &["--domain", "not-ours.example"], refused).await;
    assert!(
        events[0]["detail"]
            .as_str()
            .unwrap()
            .contains("Relaying denied"),
        "{events:?}"
    );
    let (by_id, _) = track(&c, 1, &["--message-id", "<ham-41@client.example>"]);
    assert!(by_id.iter().any(|e| e["kind"] == "delivered"), "{by_id:?}");
}

#[tokio::test]
async fn events_past_the_retention_are_removed() {
    let mut c = with_local_domain().await;
    let sink = c.start_sink().await.unwrap();
    let id = send_ham(&c, 1, 43);
    wait_delivered(&c, &sink, 1, &[0, 1, 2]).await;
    let roubaix = |e: &serde_json::Value| e["site"] == "roubaix";
    let args = ["--queue-id", id.as_str()];
    track_until(&c, 0, &args, |events, _| events.iter().any(roubaix)).await;
    // Roubaix comes back 33 days later by its clock (libfaketime): past the 32-day
    // retention, its pruning (at start, then hourly) removes what it recorded.
    c.stop(1, Duration::from_secs(10));
    c.nodes[1].clock_offset = Some("+33d".into());
    c.start_node(1).unwrap();
    let answered_without = |events: &[serde_json::Value], unreachable: &[String]| {
        unreachable.is_empty() && !events.iter().any(roubaix)
    };
    let (events, _) = track_until(&c, 0, &args, answered_without).await;
    assert!(events.iter().all(|e| e["site"] != "roubaix"), "{events:?}");
}
