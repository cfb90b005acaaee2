//! Digests as applied: the second `SpoolPut` with a digest's key is refused and leaves no
//! row, each mailbox's newest digest says up to when its mail was listed, and the rows go
//! with the quarantine they listed.

use openraft::storage::RaftStateMachine;
use peage_proto::v1::{command, DigestSent, QuarantineExpire, SpoolPut};

use super::super::digests_sent;
use super::super::StateStore;
use super::workload::entry;
use crate::types::Outcome;

fn digest(queue_id: &str, key: &str, up_to_ms: i64) -> command::Kind {
    command::Kind::SpoolPut(SpoolPut {
        queue_id: queue_id.into(),
        rcpt_to: vec!["bob@example.test".into()],
        body_sha256: "00".repeat(32),
        accepted_at_ms: up_to_ms + 5,
        verdict: "deliver".into(),
        digest: Some(DigestSent {
            key: key.into(),
            recipient: "bob@example.test".into(),
            up_to_ms,
        }),
        ..SpoolPut::default()
    })
}

#[tokio::test]
async fn a_digest_key_is_spooled_once_and_forgotten_with_the_quarantine_it_listed() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = StateStore::open(dir.path()).unwrap();
    let day = "daily:bob@example.test:2026-12-06";
    let cmds = vec![
        digest("Q1", day, 1_000),
        // The same digest from a second leader: refused, not spooled.
        digest("Q2", day, 1_000),
        digest("Q3", "now:bob@example.test:2000", 2_000),
    ];
    let outcomes = store.apply(vec![entry(1, cmds)]).await.unwrap();
    let outcomes = &outcomes[0].0;
    assert_eq!(outcomes[0], Outcome::Spooled);
    assert!(
        matches!(&outcomes[1], Outcome::Refused(why) if why.contains(day)),
        "{outcomes:?}"
    );
    assert_eq!(outcomes[2], Outcome::Spooled);
    assert!(store.spool().get("Q2").is_none());
    let reader = store.clone();
    let read = |key: &str| {
        let key = key.to_owned();
        let store = reader.clone();
        async move {
            store
                .digest_sent("bob@example.test".into(), key)
                .await
                .unwrap()
        }
    };
    assert_eq!(read(day).await, (2_000, true));
    assert_eq!(
        read("daily:bob@example.test:2026-12-07").await,
        (2_000, false)
    );

    // The quarantine's retention cut past the first digest only: the second stays.
    let expire = command::Kind::QuarantineExpire(QuarantineExpire {
        accepted_before_ms: 1_500,
    });
    store.apply(vec![entry(2, vec![expire])]).await.unwrap();
    assert_eq!(read(day).await, (2_000, false));
    let db = rusqlite::Connection::open(dir.path().join("state.sqlite")).unwrap();
    assert_eq!(
        digests_sent::listed_up_to(&db, "bob@example.test").unwrap(),
        2_000
    );
    assert_eq!(
        digests_sent::listed_up_to(&db, "carol@example.test").unwrap(),
        0
    );
}
