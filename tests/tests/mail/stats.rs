//! Statistics across the sites, with real processes and `peagectl stats`: what three sites
//! received, rejected, refused and delivered is summed into one answer through any node,
//! equal to the nodes' Prometheus counters; a domain admin counts only its domain and is
//! refused another's; a site down is named and its counts are missing.

use std::time::Duration;

use peage_tests::{wait_for, TestCluster};

use super::{ham, json_as, send_ham, token_add, wait_delivered, with_local_domain};

fn stats_as(c: &TestCluster, node: usize, token: &str, args: &[&str]) -> serde_json::Value {
    let mut all = vec!["stats"];
    all.extend_from_slice(args);
    json_as(c, node, token, &all).unwrap()
}

fn total(stats: &serde_json::Value, counter: &str) -> i64 {
    stats["totals"][counter].as_i64().unwrap_or(0)
}

fn top_keys(stats: &serde_json::Value, kind: &str) -> Vec<(String, i64)> {
    let top = stats["top"].as_array().unwrap();
    top.iter()
        .filter(|t| t["kind"] == kind)
        .map(|t| {
            (
                t["key"].as_str().unwrap().to_owned(),
                t["count"].as_i64().unwrap(),
            )
        })
        .collect()
}

/// The sum of one Prometheus series over the nodes in `nodes`.
async fn metric_sum(c: &TestCluster, nodes: &[usize], series: &str) -> f64 {
    let mut sum = 0.0;
    for i in nodes {
        sum += c.metric(*i, series).await.unwrap_or(0.0);
    }
    sum
}

#[tokio::test]
async fn counts_are_merged_across_sites_scoped_to_a_token_and_in_the_metrics() {
    let mut c = with_local_domain().await;
    let sink = c.start_sink().await.unwrap();
    let route = format!("smtp://{}", c.sink_addr());
    c.route_domain("b.example", &route).await.unwrap();
    let operator = peage_tests::ADMIN_TOKEN;
    let local = token_add(
        &c,
        "local",
        &["--role", "domain-admin", "--domain", "example.test"],
    );
    // Paris takes two for example.test, Roubaix one for b.example, Ariège rejects GTUBE for
    // example.test and refuses a recipient it does not relay for.
    send_ham(&c, 0, 1);
    send_ham(&c, 0, 2);
    let r = c.smtp_send(1, "alice@client.example", &["carol@b.example"], &ham(3));
    assert_eq!(r.data.as_ref().map(|d| d.0), Some(250), "{r:?}");
    let gtube = format!(
        "From: s@spam.example\r\nSubject: x\r\n\r\n{}\r\n",
        peage_mail::filter::GTUBE
    );
    let r = c.smtp_send(2, "s@spam.example", &["bob@example.test"], gtube.as_bytes());
    assert_eq!(r.data.as_ref().map(|d| d.0), Some(550), "{r:?}");
    let r = c.smtp_send(2, "s@spam.example", &["x@not-ours.example"], b"x\r\n");
    assert_eq!(r.rcpt[0].0, 550, "{r:?}");
    wait_delivered(&c, &sink, 2, &[0, 1, 2]).await;

    // Through Ariège, once every node's writer has rolled up its events.
    let all = wait_for(
        "the counts of all three sites",
        Duration::from_secs(20),
        || {
            let s = stats_as(&c, 2, operator, &["--since", "2h", "--by", "day"]);
            async move { (total(&s, "delivered") == 3 && total(&s, "refused") == 1).then_some(s) }
        },
    )
    .await
    .unwrap();
    let expected = [
        ("received", 4),
        ("ham", 3),
        ("spam", 1),
        ("rejected", 1),
        ("rejected:GTUBE", 1),
        ("refused:5.7.1", 1),
        ("delivered", 3),
        ("quarantined", 0),
    ];
    for (counter, n) in expected {
        assert_eq!(total(&all, counter), n, "{counter}: {all}");
    }
    assert!(total(&all, "bytes") > 0, "{all}");
    assert!(all["unreachable"].as_array().unwrap().is_empty(), "{all}");
    let buckets = all["buckets"].as_array().unwrap();
    let received: i64 = buckets
        .iter()
        .map(|b| b["counters"]["received"].as_i64().unwrap_or(0))
        .sum();
    assert_eq!(received, 4, "the days add up to the total: {all}");
    let senders = top_keys(&all, "sender");
    assert_eq!(senders[0], ("alice@client.example".to_owned(), 3), "{all}");
    // The same numbers in the nodes' metrics.
    let nodes = [0, 1, 2];
    for (counter, n) in [("received", 4.0), ("delivered", 3.0), ("refused", 1.0)] {
        let series = format!("peage_mail_counted_total{{counter=\"{counter}\"}}");
        assert_eq!(metric_sum(&c, &nodes, &series).await, n, "{series}");
    }
    let series = "peage_mail_reasons_total{counter=\"rejected\",reason=\"GTUBE\"}";
    assert_eq!(metric_sum(&c, &nodes, series).await, 1.0);

    // The domain admin of example.test: its two hams and the GTUBE, nothing of b.example.
    let own = stats_as(&c, 1, &local, &["--since", "2h"]);
    assert_eq!(
        (total(&own, "received"), total(&own, "delivered")),
        (3, 2),
        "{own}"
    );
    let recipients = top_keys(&own, "recipient");
    assert!(
        recipients.iter().all(|(r, _)| r.ends_with("@example.test")),
        "{own}"
    );
    let err = json_as(&c, 1, &local, &["stats", "--domain", "b.example"]).unwrap_err();
    assert!(err.contains("permission denied"), "{err}");
    let b = stats_as(&c, 1, operator, &["--domain", "b.example"]);
    assert_eq!(
        (total(&b, "received"), total(&b, "delivered")),
        (1, 1),
        "{b}"
    );

    // Bad requests are refused with what was wrong.
    for (args, needle) in [
        (vec!["stats", "--top", "1000"], "top: at most 100"),
        (
            vec!["stats", "--since", "1h", "--until", "2h"],
            "since is after until",
        ),
        (vec!["stats", "--since", "5x"], "5x"),
    ] {
        let err = json_as(&c, 0, operator, &args).unwrap_err();
        assert!(err.contains(needle), "{args:?}: {err}");
    }

    // Paris down: named, and its two messages are missing from what the others counted.
    c.kill(0);
    let without = stats_as(&c, 1, operator, &["--since", "2h"]);
    assert_eq!(without["unreachable"], serde_json::json!(["1 (paris)"]));
    assert_eq!(total(&without, "received"), 2, "{without}");
}
