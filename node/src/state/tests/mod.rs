//! Properties of the state machine: determinism (same log, same state) and the snapshot
//! round trip (a node built from a snapshot equals the node that made it).

use std::sync::Arc;

use openraft::storage::{RaftSnapshotBuilder, RaftStateMachine};
use openraft::{CommittedLeaderId, Entry, EntryPayload, LogId};

use peage_proto::v1::command;

use peage_mail::filter::Knowledge;
use peage_mail::lists::EntryKind;

mod access;
mod digests;
mod shared;
mod workload;

use super::digest::StateDigest;
use super::*;
use crate::types::{LearnChange, LogPayload, Outcome, TypeConfig};
use workload::{entry, workload};

async fn apply_all(store: &mut StateStore, entries: &[Entry<TypeConfig>], chunk: usize) {
    for part in entries.chunks(chunk) {
        store.apply(part.to_vec()).await.unwrap();
    }
}

#[tokio::test]
async fn same_log_same_state_whatever_the_batching() {
    let log = workload(7, 300);
    let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let mut sa = StateStore::open(a.path()).unwrap();
    let mut sb = StateStore::open(b.path()).unwrap();
    apply_all(&mut sa, &log, 1).await;
    apply_all(&mut sb, &log, 17).await;
    let StateDigest {
        sha256: da,
        applied_index: ia,
        list_entries: na,
    } = sa.digest().await.unwrap();
    let StateDigest {
        sha256: db,
        applied_index: ib,
        list_entries: nb,
    } = sb.digest().await.unwrap();
    assert_eq!((ia, ib), (300, 300));
    assert!(na > 0, "the workload should leave some entries");
    let spooled = spool::query_all(&sa.lock_db()).unwrap();
    for store in [&sa, &sb] {
        let in_memory: Vec<_> = store
            .spool()
            .all()
            .into_iter()
            .map(Arc::unwrap_or_clone)
            .collect();
        assert_eq!(in_memory, spooled, "the spool index follows every apply");
    }
    assert!(
        !spooled.is_empty(),
        "the workload should leave messages in the spool"
    );
    assert!(spooled.iter().any(|m| m.owner != 1), "and take some over");
    let (spam, ham, ..) = sa.indexes().bayes_counts();
    assert!(spam + ham > 0, "and learn");
    assert_eq!((da, na), (db, nb));

    // A different log gives a different digest: the comparison can fail.
    let other = tempfile::tempdir().unwrap();
    let mut sc = StateStore::open(other.path()).unwrap();
    apply_all(&mut sc, &workload(8, 300), 10).await;
    assert_ne!(
        sc.digest().await.unwrap().sha256,
        sa.digest().await.unwrap().sha256
    );
}

#[tokio::test]
async fn snapshot_round_trip_and_restart() {
    let log = workload(11, 200);
    let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let mut src = StateStore::open(a.path()).unwrap();
    apply_all(&mut src, &log[..120], 25).await;
    let snap = src
        .get_snapshot_builder()
        .await
        .build_snapshot()
        .await
        .unwrap();
    assert_eq!(snap.meta.last_log_id.map(|l| l.index), Some(120));

    // Stream the snapshot into a fresh store, as openraft does chunk by chunk.
    let mut dst = StateStore::open(b.path()).unwrap();
    let mut sink = dst.begin_receiving_snapshot().await.unwrap();
    let mut source = snap.snapshot;
    tokio::io::copy(&mut source, &mut *sink).await.unwrap();
    dst.install_snapshot(&snap.meta, sink).await.unwrap();
    assert_eq!(dst.digest().await.unwrap(), src.digest().await.unwrap());

    // Both go on with the rest of the log and stay equal, index lookups included.
    apply_all(&mut src, &log[120..], 9).await;
    apply_all(&mut dst, &log[120..], 30).await;
    assert_eq!(dst.digest().await.unwrap(), src.digest().await.unwrap());
    assert!(
        !src.indexes().domains().is_empty(),
        "the workload should leave local domains"
    );
    assert_eq!(dst.indexes().domains(), src.indexes().domains());
    assert!(src.indexes().recipient_count() > 0, "and listed mailboxes");
    assert_eq!(
        dst.indexes().recipient_count(),
        src.indexes().recipient_count()
    );
    for v in ["d3.example", "sub.d5.example"] {
        assert_eq!(
            dst.indexes().check(EntryKind::Domain, v, 0),
            src.indexes().check(EntryKind::Domain, v, 0)
        );
    }

    // Reopening from disk gives the same state and the same index.
    let before = dst.digest().await.unwrap();
    let routes = dst.indexes().domains();
    let probe = dst.indexes().check(EntryKind::Ip, "10.3.1.1", 0);
    let mailboxes = listed(&dst);
    assert!(mailboxes.iter().any(|listed| *listed));
    drop(dst);
    let reopened = StateStore::open(b.path()).unwrap();
    assert_eq!(reopened.digest().await.unwrap(), before);
    assert_eq!(
        reopened.indexes().check(EntryKind::Ip, "10.3.1.1", 0),
        probe
    );
    assert_eq!(reopened.indexes().domains(), routes);
    assert_eq!(
        listed(&reopened),
        mailboxes,
        "the recipient index is rebuilt"
    );
}

/// Which of the workload's mailboxes the recipient index holds.
fn listed(store: &StateStore) -> Vec<bool> {
    (0..30)
        .map(|i| format!("u{}@local{}.test", i / 5, i % 5))
        .map(|a| store.indexes().is_listed_recipient(&a))
        .collect()
}

#[tokio::test]
async fn undecodable_payload_is_refused_not_fatal() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = StateStore::open(dir.path()).unwrap();
    let bad = Entry {
        log_id: LogId::new(CommittedLeaderId::new(1, 1), 1),
        payload: EntryPayload::Normal(LogPayload(vec![0xff, 0xff, 0xff])),
    };
    let out = s.apply(vec![bad]).await.unwrap();
    assert!(matches!(out[0].0[0], Outcome::Refused(_)), "{out:?}");
    assert_eq!(s.applied_index(), 1);
}

/// Evidence decays the same way in SQLite and in memory, and what falls below a tenth of a
/// message is forgotten; learning is idempotent per fingerprint and survives a reopen.
#[tokio::test]
async fn evidence_decays_and_learning_moves_identically_in_memory_and_on_disk() {
    use peage_proto::v1::{BayesLearn, EvidenceAdd, EvidenceCount, EvidenceDecay};
    let dir = tempfile::tempdir().unwrap();
    let mut store = StateStore::open(dir.path()).unwrap();
    let count = |key: &str, spam: i64| EvidenceCount {
        key: key.into(),
        ham_milli: 0,
        spam_milli: spam,
        reject_milli: 0,
    };
    let learn = |fp: &str, class: &str| {
        command::Kind::BayesLearn(BayesLearn {
            fingerprint: fp.into(),
            class: class.into(),
            tokens: vec![1, 2, 3],
            author: "t".into(),
            features: vec![0, 7, 9],
        })
    };
    let entries = vec![
        entry(
            1,
            vec![command::Kind::EvidenceAdd(EvidenceAdd {
                counts: vec![count("sender:a.example", 10_000), count("net:x", 150)],
            })],
        ),
        entry(
            2,
            vec![learn("f1", "spam"), learn("f1", "spam"), learn("f2", "ham")],
        ),
        entry(
            3,
            vec![command::Kind::EvidenceDecay(EvidenceDecay {
                keep_per_mille: 500,
                drop_below_milli: 100,
                now_ms: 1,
            })],
        ),
        entry(4, vec![learn("f1", "ham")]),
    ];
    let outcomes = store.apply(entries).await.unwrap();
    assert_eq!(
        outcomes[1].0,
        vec![
            Outcome::Learned {
                change: LearnChange::New
            },
            Outcome::Learned {
                change: LearnChange::Unchanged
            },
            Outcome::Learned {
                change: LearnChange::New
            },
        ]
    );
    assert_eq!(
        outcomes[3].0,
        vec![Outcome::Learned {
            change: LearnChange::Moved
        }]
    );
    // 10 messages halved; 0.15 halved is 0.075, under a tenth: forgotten.
    let e = store.indexes().evidence("sender:a.example").unwrap();
    assert_eq!((e.spam, e.total()), (5.0, 5.0));
    assert!(store.indexes().evidence("net:x").is_none());
    assert_eq!(store.indexes().bayes_counts().0, 0, "f1 moved to ham");
    assert_eq!(store.indexes().bayes_counts().1, 2);
    let before = store.digest().await.unwrap();
    drop(store);
    // Reopened from disk: the same tables, the same digest.
    let store = StateStore::open(dir.path()).unwrap();
    assert_eq!(
        store.indexes().evidence("sender:a.example").unwrap().spam,
        5.0
    );
    assert!(store.indexes().evidence("net:x").is_none());
    assert_eq!(store.indexes().bayes_counts().1, 2);
    assert_eq!(store.digest().await.unwrap(), before);
}

/// The logistic classifier trained at apply, through the database (lessons rehearsed from
/// `bayes_learned`, cursors in `logistic_cursor`), is the very model the offline evaluation
/// trains in memory from the same lessons in the same order: the same probability to the
/// last bit, before and after a reopen.
#[tokio::test]
async fn the_logistic_model_trained_at_apply_is_the_one_trained_in_memory() {
    use peage_mail::features::Features;
    use peage_mail::logistic::{self, KeptLessons, Model};
    use peage_proto::v1::BayesLearn;
    let dir = tempfile::tempdir().unwrap();
    let mut store = StateStore::open(dir.path()).unwrap();
    // All the spam, then all the ham, as `peagectl learn spam DIR; learn ham DIR` teaches;
    // the two classes share buckets 1-3, as real mail shares headers.
    let lessons: Vec<(String, bool, Vec<u32>)> = (0..60u32)
        .map(|i| {
            (
                format!("s{:02x}", i.wrapping_mul(37) % 256),
                true,
                vec![0, 1, 2, 3, 100 + i % 7],
            )
        })
        .chain((0..60u32).map(|i| {
            (
                format!("h{:02x}", i.wrapping_mul(91) % 256),
                false,
                vec![0, 1, 2, 3, 200 + i % 11],
            )
        }))
        .collect();
    let commands: Vec<command::Kind> = lessons
        .iter()
        .map(|(fp, spam, features)| {
            command::Kind::BayesLearn(BayesLearn {
                fingerprint: fp.clone(),
                class: if *spam { "spam" } else { "ham" }.into(),
                tokens: vec![u64::from(features[4])],
                author: "t".into(),
                features: features.clone(),
            })
        })
        .collect();
    let entries: Vec<_> = commands
        .chunks(7)
        .enumerate()
        .map(|(i, c)| entry(i as u64 + 1, c.to_vec()))
        .collect();
    store.apply(entries).await.unwrap();

    let (mut model, mut kept) = (Model::default(), KeptLessons::default());
    for (fp, spam, features) in &lessons {
        let f = Features(features.clone());
        kept.keep(fp.clone(), *spam, f.clone());
        logistic::teach(&mut model, &mut kept, &f, *spam);
    }
    let probes = [
        Features(vec![0, 1, 2, 3, 103]),
        Features(vec![0, 1, 2, 3, 205]),
    ];
    let expected: Vec<f64> = probes
        .iter()
        .map(|p| logistic::probability(logistic::margin(&model, p)))
        .collect();
    let at_apply: Vec<Option<f64>> = probes
        .iter()
        .map(|p| store.indexes().logistic_probability(p))
        .collect();
    assert_eq!(
        at_apply,
        expected.iter().map(|p| Some(*p)).collect::<Vec<_>>()
    );
    assert!(
        expected[0] > 0.6 && expected[1] < 0.2,
        "spam stays spam after the ham run: {expected:?}"
    );
    drop(store);
    let store = StateStore::open(dir.path()).unwrap();
    let reopened: Vec<Option<f64>> = probes
        .iter()
        .map(|p| store.indexes().logistic_probability(p))
        .collect();
    assert_eq!(reopened, at_apply);
}

#[tokio::test]
async fn spam_strikes_lock_an_account_for_a_while_then_for_good() {
    use peage_proto::v1::{IdentityUnlock, OutboundStrike};
    let dir = tempfile::tempdir().unwrap();
    let mut store = StateStore::open(dir.path()).unwrap();
    let strike = |at_ms: i64| {
        command::Kind::OutboundStrike(OutboundStrike {
            login: "alice@shop.example".into(),
            at_ms,
            queue_id: format!("Q{at_ms}"),
            why: "GTUBE".into(),
            threshold: 3,
            window_ms: 600_000,
            lock_ms: 3_600_000,
            max_auto_unlocks: 1,
            ..OutboundStrike::default()
        })
    };
    let mut index = 0;
    let mut apply = |cmds: Vec<command::Kind>| {
        index += 1;
        entry(index, cmds)
    };
    // Two strikes, then one out of the window: no lock.
    let e = [
        apply(vec![strike(0), strike(1_000)]),
        apply(vec![strike(700_000)]),
    ];
    apply_all(&mut store, &e, 1).await;
    assert_eq!(store.indexes().lock_of("alice@shop.example", 700_000), None);
    // Three within ten minutes: locked for an hour.
    let e = [apply(vec![strike(701_000), strike(702_000)])];
    apply_all(&mut store, &e, 1).await;
    let lock = store
        .indexes()
        .lock_of("alice@shop.example", 702_000)
        .unwrap();
    assert_eq!(lock.until_ms, 702_000 + 3_600_000);
    assert!(lock.reason.contains("3 spam verdicts"), "{}", lock.reason);
    // Past the hour, a second run: locked until an operator says otherwise.
    let later = 702_000 + 3_600_000;
    let e = [apply((1..=3).map(|i| strike(later + i)).collect())];
    apply_all(&mut store, &e, 1).await;
    let lock = store
        .indexes()
        .lock_of("alice@shop.example", i64::MAX - 1)
        .unwrap();
    assert_eq!(lock.until_ms, locks::UNTIL_UNLOCKED);
    let e = [apply(vec![command::Kind::IdentityUnlock(IdentityUnlock {
        login: "alice@shop.example".into(),
    })])];
    apply_all(&mut store, &e, 1).await;
    assert_eq!(
        store.indexes().lock_of("alice@shop.example", later + 10),
        None
    );
}

#[tokio::test]
async fn each_kind_of_strike_counts_against_its_own_threshold() {
    use peage_proto::v1::OutboundStrike;
    let dir = tempfile::tempdir().unwrap();
    let mut store = StateStore::open(dir.path()).unwrap();
    let strike = |kind: &str, count: u32, at_ms: i64| {
        command::Kind::OutboundStrike(OutboundStrike {
            login: "bob@shop.example".into(),
            at_ms,
            queue_id: format!("Q{at_ms}"),
            threshold: 3,
            window_ms: 600_000,
            lock_ms: 3_600_000,
            max_auto_unlocks: 3,
            kind: kind.into(),
            count,
            ..OutboundStrike::default()
        })
    };
    // Two spam verdicts and two hard bounces: neither kind has reached three.
    let e = [entry(
        1,
        vec![
            strike("spam", 1, 1),
            strike("", 1, 2),
            strike("hard_bounce", 2, 3),
        ],
    )];
    apply_all(&mut store, &e, 1).await;
    assert_eq!(store.indexes().lock_of("bob@shop.example", 10), None);
    // One message refused for three unknown recipients locks at once.
    let e = [entry(2, vec![strike("invalid_recipient", 3, 4)])];
    apply_all(&mut store, &e, 1).await;
    let lock = store.indexes().lock_of("bob@shop.example", 10).unwrap();
    assert!(
        lock.reason.starts_with("3 recipients refused as unknown"),
        "{}",
        lock.reason
    );
}
