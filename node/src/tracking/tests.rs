//! The store on its own: recorded events come back by every filter, newest first, a page at
//! a time; LIKE wildcards in a filter are literal; pruning removes what is past retention; a
//! file that is not a database is kept aside and a new history starts.

use std::time::Duration;

use peage_proto::v1::{TrackEvent, TrackQuery};

use super::{store, Tracking};

fn event(kind: &str, queue_id: &str, sender: &str, rcpt: &str) -> TrackEvent {
    TrackEvent {
        kind: kind.into(),
        queue_id: queue_id.into(),
        message_id: format!("{queue_id}@client.example"),
        sender: sender.into(),
        recipients: vec![rcpt.into()],
        client_ip: "192.0.2.7".into(),
        ..TrackEvent::default()
    }
}

async fn search(t: &Tracking, q: TrackQuery) -> Vec<TrackEvent> {
    t.search(q).await.unwrap()
}

#[tokio::test]
async fn events_come_back_by_every_filter_newest_first() {
    let dir = tempfile::tempdir().unwrap();
    let t = Tracking::open(dir.path(), 2, "Roubaix", Duration::from_secs(3600)).unwrap();
    t.record(event(
        "accepted",
        "Q1",
        "Alice@Client.example",
        "bob@example.test",
    ));
    t.record(event(
        "delivered",
        "Q1",
        "alice@client.example",
        "bob@example.test",
    ));
    t.record(event(
        "rejected",
        "",
        "spam_er@bad.example",
        "carol@other.test",
    ));
    // The writer is a thread of its own: wait for it, with a deadline.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let all = loop {
        let found = search(&t, TrackQuery::default()).await;
        if found.len() == 3 {
            break found;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "only {found:?} written"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert_eq!(all[0].kind, "rejected", "newest first");
    assert_eq!((all[2].node_id, all[2].site.as_str()), (2, "Roubaix"));
    let by = |q: TrackQuery| search(&t, q);
    let q1 = by(TrackQuery {
        queue_id: "Q1".into(),
        ..Default::default()
    })
    .await;
    assert_eq!(q1.len(), 2);
    let alice = by(TrackQuery {
        sender: "ALICE@".into(),
        ..Default::default()
    })
    .await;
    assert_eq!(alice.len(), 2, "case-insensitive");
    let domain = by(TrackQuery {
        domain: "example.test".into(),
        ..Default::default()
    })
    .await;
    assert_eq!(domain.len(), 2, "the recipients' domain, exactly");
    let other = by(TrackQuery {
        domain: "test".into(),
        ..Default::default()
    })
    .await;
    assert!(other.is_empty(), "a domain is not a suffix: {other:?}");
    let wildcard = by(TrackQuery {
        sender: "spam%".into(),
        ..Default::default()
    })
    .await;
    assert!(wildcard.is_empty(), "% is literal");
    let underscore = by(TrackQuery {
        sender: "spam_er".into(),
        ..Default::default()
    })
    .await;
    assert_eq!(underscore.len(), 1);
    let by_id = by(TrackQuery {
        message_id: "<Q1@client.example>".into(),
        ..Default::default()
    })
    .await;
    assert_eq!(by_id.len(), 2, "angle brackets are not part of the id");
    let page = by(TrackQuery {
        limit: 1,
        before_ms: all[1].at_ms + 1,
        ..Default::default()
    })
    .await;
    assert_eq!(page.len(), 1);
    let scoped = by(TrackQuery {
        scope: vec!["other.test".into(), "nowhere.example".into()],
        ..Default::default()
    })
    .await;
    assert_eq!(
        scoped.len(),
        1,
        "only mail for the token's domains: {scoped:?}"
    );
    assert_eq!(scoped[0].recipients, ["carol@other.test"]);
    let forged_sender = by(TrackQuery {
        scope: vec!["client.example".into()],
        ..Default::default()
    })
    .await;
    assert!(
        forged_sender.is_empty(),
        "a sender's domain is not a scope: {forged_sender:?}"
    );
}

#[test]
fn pruning_removes_only_what_is_older() {
    let dir = tempfile::tempdir().unwrap();
    let conn = store::open(&dir.path().join("t.sqlite")).unwrap();
    let (tx, rx) = std::sync::mpsc::sync_channel(4);
    for at_ms in [1_000, 2_000, 3_000] {
        tx.send(TrackEvent {
            at_ms,
            kind: "accepted".into(),
            ..Default::default()
        })
        .unwrap();
    }
    drop(tx);
    let writer = store::open(&dir.path().join("t.sqlite")).unwrap();
    store::write_batches(writer, rx);
    assert_eq!(store::prune(&conn, 2_500).unwrap(), 2);
    let left = store::search(&conn, &TrackQuery::default()).unwrap();
    assert_eq!(left.len(), 1);
    assert_eq!(left[0].at_ms, 3_000);
}

#[test]
fn deferrals_count_the_failed_attempts_of_the_asked_messages_and_keep_the_last_why() {
    let dir = tempfile::tempdir().unwrap();
    let conn = store::open(&dir.path().join("t.sqlite")).unwrap();
    let (tx, rx) = std::sync::mpsc::sync_channel(8);
    for (at_ms, kind, queue_id, detail) in [
        (1_000, "accepted", "Q1", ""),
        (2_000, "deferred", "Q1", "connection refused"),
        (4_000, "deferred", "Q1", "421 too many connections"),
        (3_000, "deferred", "Q1", "timed out"),
        (2_500, "deferred", "Q2", "452 mailbox full"),
        (5_000, "deferred", "Q3", "not asked"),
        (6_000, "delivered", "Q4", ""),
    ] {
        let e = TrackEvent {
            at_ms,
            kind: kind.into(),
            queue_id: queue_id.into(),
            detail: detail.into(),
            ..Default::default()
        };
        tx.send(e).unwrap();
    }
    drop(tx);
    store::write_batches(store::open(&dir.path().join("t.sqlite")).unwrap(), rx);
    let asked = ["Q1", "Q2", "Q4", "Q9"].map(String::from);
    let mut found = store::deferrals(&conn, &asked).unwrap();
    found.sort_by(|a, b| a.queue_id.cmp(&b.queue_id));
    let seen: Vec<_> = found
        .iter()
        .map(|d| {
            (
                d.queue_id.as_str(),
                d.count,
                d.last_at_ms,
                d.last_detail.as_str(),
            )
        })
        .collect();
    assert_eq!(
        seen,
        [
            ("Q1", 3, 4_000, "421 too many connections"),
            ("Q2", 1, 2_500, "452 mailbox full"),
        ]
    );
    assert!(store::deferrals(&conn, &[]).unwrap().is_empty());
}

#[test]
fn a_file_from_before_the_connection_columns_gets_them_and_keeps_its_events() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("t.sqlite");
    let old = rusqlite::Connection::open(&path).unwrap();
    old.execute_batch(
        "CREATE TABLE events (id INTEGER PRIMARY KEY, at_ms INTEGER NOT NULL,
           node_id INTEGER NOT NULL, site TEXT NOT NULL, kind TEXT NOT NULL,
           queue_id TEXT NOT NULL, message_id TEXT NOT NULL, sender TEXT NOT NULL,
           recipients TEXT NOT NULL, client_ip TEXT NOT NULL, helo TEXT NOT NULL,
           verdict TEXT NOT NULL, score_milli INTEGER NOT NULL, detail TEXT NOT NULL);
         INSERT INTO events VALUES (1, 5, 1, 'paris', 'accepted', 'Q0', '', 'a@x', ',b@y,',
           '192.0.2.1', 'h', 'deliver', 0, 'old');",
    )
    .unwrap();
    drop(old);
    let conn = store::open(&path).unwrap();
    let (tx, rx) = std::sync::mpsc::sync_channel(1);
    tx.send(TrackEvent {
        at_ms: 6,
        kind: "accepted".into(),
        tls: "TLSv1.3 TLS_AES_256_GCM_SHA384".into(),
        login: "alice@shop.example".into(),
        rdns: "mta.shop.example".into(),
        ..Default::default()
    })
    .unwrap();
    drop(tx);
    store::write_batches(store::open(&path).unwrap(), rx);
    let found = store::search(&conn, &TrackQuery::default()).unwrap();
    assert_eq!(found.len(), 2, "{found:?}");
    assert_eq!(found[0].tls, "TLSv1.3 TLS_AES_256_GCM_SHA384");
    assert_eq!(found[0].login, "alice@shop.example");
    assert_eq!(found[0].rdns, "mta.shop.example");
    assert_eq!(
        (found[1].detail.as_str(), found[1].tls.as_str()),
        ("old", "")
    );
}

#[tokio::test]
async fn an_unreadable_history_is_kept_aside_and_a_new_one_starts() {
    let dir = tempfile::tempdir().unwrap();
    let garbage: Vec<u8> = (0..100_000u32)
        .map(|i| (i.wrapping_mul(2654435761) >> 13) as u8)
        .collect();
    std::fs::write(dir.path().join("tracking.sqlite"), &garbage).unwrap();
    let t = Tracking::open(dir.path(), 1, "Paris", Duration::from_secs(3600)).unwrap();
    let kept: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("tracking.sqlite.unreadable-"))
        .collect();
    assert_eq!(kept.len(), 1, "{kept:?}");
    assert_eq!(std::fs::read(dir.path().join(&kept[0])).unwrap(), garbage);
    t.record(event(
        "accepted",
        "Q9",
        "a@client.example",
        "bob@example.test",
    ));
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while search(&t, TrackQuery::default()).await.is_empty() {
        assert!(
            std::time::Instant::now() < deadline,
            "nothing written to the new history"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
