//! The roll-ups on their own: what each kind of event counts, for the node and for which
//! domains (recipients' for incoming mail, the sender's for outgoing), by time, with the top
//! keys; pruning drops whole hours past the retention.

use std::collections::HashMap;

use peage_proto::v1::{StatsQuery, TrackEvent};

use super::super::store;
use super::{search, HOUR_MS};

/// Midnight, 2026-12-01 UTC.
const H: i64 = 1_796_083_200_000;

fn event(at_ms: i64, kind: &str, sender: &str, rcpts: &[&str]) -> TrackEvent {
    TrackEvent {
        at_ms,
        kind: kind.into(),
        sender: sender.into(),
        recipients: rcpts.iter().map(|r| r.to_string()).collect(),
        client_ip: "192.0.2.7".into(),
        ..TrackEvent::default()
    }
}

fn written(events: Vec<TrackEvent>) -> (tempfile::TempDir, rusqlite::Connection) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("t.sqlite");
    let (tx, rx) = std::sync::mpsc::sync_channel(events.len());
    for e in events {
        tx.send(e).unwrap();
    }
    drop(tx);
    store::write_batches(store::open(&path).unwrap(), rx);
    (dir, store::open(&path).unwrap())
}

fn sums(conn: &rusqlite::Connection, q: &StatsQuery) -> HashMap<String, i64> {
    let mut sums = HashMap::new();
    for row in search(conn, q).unwrap().rows {
        *sums.entry(row.counter).or_default() += row.value;
    }
    sums
}

fn of(domains: &[&str]) -> StatsQuery {
    StatsQuery {
        domains: domains.iter().map(|d| d.to_string()).collect(),
        ..StatsQuery::default()
    }
}

fn sample() -> Vec<TrackEvent> {
    let both = ["Bob@A.example", "carol@b.example"];
    vec![
        TrackEvent {
            size: 100,
            class: "ham".into(),
            ..event(H + 10, "accepted", "x@far.test", &both)
        },
        TrackEvent {
            size: 50,
            class: "spam".into(),
            reason: "BAYES_SPAM".into(),
            ..event(H + 20, "rejected", "spam@bad.test", &["bob@a.example"])
        },
        TrackEvent {
            reason: "5.1.1".into(),
            ..event(
                H + 30,
                "refused",
                "spam@bad.test",
                &["nobody@sub.a.example"],
            )
        },
        event(
            H + HOUR_MS + 5,
            "delivered",
            "x@far.test",
            &["bob@a.example", "dave@a.example"],
        ),
        TrackEvent {
            size: 7,
            class: "ham".into(),
            outbound: true,
            ..event(
                H + HOUR_MS + 9,
                "accepted",
                "alice@a.example",
                &["ext@gmail.test"],
            )
        },
    ]
}

#[test]
fn each_event_counts_for_the_node_and_its_domains() {
    let (_dir, conn) = written(sample());
    let node = sums(&conn, &StatsQuery::default());
    let expected = [
        ("received", 3),
        ("bytes", 157),
        ("ham", 2),
        ("spam", 1),
        ("outbound", 1),
        ("rejected", 1),
        ("rejected:BAYES_SPAM", 1),
        ("refused", 1),
        ("refused:5.1.1", 1),
        ("delivered", 2),
    ];
    assert_eq!(node, expected.map(|(k, v)| (k.to_owned(), v)).into());

    // a.example: its incoming mail, its subdomain's refusal, and what alice sent.
    let a = sums(&conn, &of(&["a.example"]));
    assert_eq!(a["received"], 3, "{a:?}");
    assert_eq!((a["refused"], a["delivered"], a["outbound"]), (1, 2, 1));
    let b = sums(&conn, &of(&["b.example"]));
    assert_eq!(b["received"], 1, "{b:?}");
    assert!(
        !b.contains_key("delivered") && !b.contains_key("spam"),
        "{b:?}"
    );
    // Outgoing mail counts for the sender's domain, never the recipient's.
    assert!(sums(&conn, &of(&["gmail.test"])).is_empty());
    // A scope stands in for the domains when none are asked for.
    let scoped = StatsQuery {
        scope: vec!["b.example".into()],
        ..StatsQuery::default()
    };
    assert_eq!(sums(&conn, &scoped), b);

    let later = StatsQuery {
        since_ms: H + HOUR_MS + 1,
        ..StatsQuery::default()
    };
    let later = sums(&conn, &later);
    assert_eq!((later["received"], later["delivered"]), (1, 2), "{later:?}");
    assert!(!later.contains_key("rejected"), "{later:?}");
}

#[test]
fn top_keys_are_ranked_per_domain_and_pruning_drops_whole_hours() {
    let (_dir, conn) = written(sample());
    let top = search(&conn, &of(&["a.example"])).unwrap().top;
    let count = |kind: &str, key: &str| {
        top.iter()
            .find(|t| t.kind == kind && t.key == key)
            .map_or(0, |t| t.count)
    };
    assert_eq!(count("recipient", "bob@a.example"), 2, "{top:?}");
    assert_eq!(count("sender", "spam@bad.test"), 2, "{top:?}");
    assert_eq!(count("network", "192.0.2.0/24"), 4, "{top:?}");
    assert_eq!(count("recipient", "carol@b.example"), 0, "{top:?}");

    // The first hour ended by H + 1h: it goes, the second stays whole.
    assert!(store::prune(&conn, H + HOUR_MS + 1).is_ok());
    let left = search(&conn, &StatsQuery::default()).unwrap();
    assert!(
        left.rows.iter().all(|r| r.hour_ms == H + HOUR_MS),
        "{left:?}"
    );
    assert!(!left.rows.is_empty());
    assert!(
        left.top.iter().all(|t| t.key != "spam@bad.test"),
        "{left:?}"
    );
}
