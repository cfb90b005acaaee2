//! Properties of the state machine: determinism (same log, same state) and the snapshot
//! round trip (a node built from a snapshot equals the node that made it).

use std::sync::Arc;

use openraft::storage::{RaftSnapshotBuilder, RaftStateMachine};
use openraft::{CommittedLeaderId, Entry, EntryPayload, LogId};
use prost::Message;
use rand::{Rng, SeedableRng};

use peage_proto::v1::{
    command, Command, CommandBatch, DomainRemove, DomainSet, ListAdd, ListRemove, ListSweep,
};

use peage_mail::filter::Knowledge;
use peage_mail::lists::EntryKind;

use super::digest::StateDigest;
use super::*;
use crate::types::{LearnChange, LogPayload, Outcome, TypeConfig, COMMAND_VERSION};

fn entry(index: u64, commands: Vec<command::Kind>) -> Entry<TypeConfig> {
    let batch = CommandBatch {
        version: COMMAND_VERSION,
        commands: commands
            .into_iter()
            .map(|k| Command { kind: Some(k) })
            .collect(),
    };
    Entry {
        log_id: LogId::new(CommittedLeaderId::new(1, 1), index),
        payload: EntryPayload::Normal(LogPayload(batch.encode_to_vec())),
    }
}

/// Any command other than the list and routing ones, on a small set of queue ids, keys and
/// fingerprints so that commands meet the rows earlier ones wrote.
fn other_command(rng: &mut rand::rngs::StdRng, i: u64) -> command::Kind {
    use peage_proto::v1::{
        BayesLearn, EvidenceAdd, EvidenceCount, EvidenceDecay, FilterSymbol, PolicySet,
        QuarantineExpire, SpoolDone, SpoolDrop, SpoolHandOff, SpoolPut, SpoolRelease, SpoolRenew,
        SpoolRetry, SpoolTakeover,
    };
    let now = i as i64 * 1000;
    let queue_id = format!("q{}", rng.random_range(0..30));
    let owner = rng.random_range(1..=3u64);
    match rng.random_range(0..13) {
        0..=2 => command::Kind::SpoolPut(SpoolPut {
            queue_id,
            mail_from: format!("s{}@x.example", rng.random_range(0..5)),
            rcpt_to: vec!["a@local1.test".into(), "b@local2.test".into()],
            client_ip: "192.0.2.1".into(),
            helo: "mx.x.example".into(),
            body_sha256: format!("{:064x}", rng.random_range(0..10u64)),
            size: rng.random_range(1..10_000),
            holders: vec![1, owner],
            owner,
            accepted_at_ms: now,
            lease_until_ms: now + 5000,
            verdict: ["deliver", "quarantine"][rng.random_range(0..2)].into(),
            score_milli: rng.random_range(0..20_000),
            symbols: vec![FilterSymbol {
                name: "BAYES_90".into(),
                score_milli: 4500,
                reason: format!("r{i}"),
            }],
        }),
        3 => command::Kind::SpoolDone(SpoolDone {
            queue_id,
            rcpt_to: vec![["a@local1.test", "b@local2.test"][rng.random_range(0..2)].into()],
        }),
        4 => command::Kind::SpoolRenew(SpoolRenew {
            owner,
            queue_ids: vec![queue_id, format!("q{}", rng.random_range(0..30))],
            lease_until_ms: now + 5000,
        }),
        5 if rng.random_bool(0.5) => command::Kind::SpoolTakeover(SpoolTakeover {
            queue_id,
            queue_ids: (0..rng.random_range(0..4))
                .map(|_| format!("q{}", rng.random_range(0..30)))
                .collect(),
            from_owner: owner,
            to_owner: owner % 3 + 1,
            lease_until_ms: now + 5000,
            now_ms: now,
        }),
        5 => command::Kind::SpoolHandOff(SpoolHandOff {
            queue_ids: vec![queue_id, format!("q{}", rng.random_range(0..30))],
            from_owner: owner,
            to_owner: owner % 3 + 1,
            lease_until_ms: now + 5000,
        }),
        6 => command::Kind::SpoolRelease(SpoolRelease {
            queue_id,
            owner,
            lease_until_ms: now + 5000,
        }),
        7 => command::Kind::SpoolDrop(SpoolDrop { queue_id }),
        8 => command::Kind::SpoolRetry(SpoolRetry { queue_id }),
        9 => command::Kind::QuarantineExpire(QuarantineExpire {
            accepted_before_ms: now - 20_000,
        }),
        10 => {
            let quarantine_at_milli = rng.random_range(1_000..10_000);
            command::Kind::PolicySet(PolicySet {
                quarantine_at_milli,
                reject_at_milli: quarantine_at_milli + rng.random_range(1..10_000),
                quarantine_retention_ms: rng.random_range(0..3) * 60_000,
            })
        }
        11 => {
            let counts = (0..rng.random_range(1..4))
                .map(|_| EvidenceCount {
                    key: format!("sender:d{}.example", rng.random_range(0..8)),
                    ham_milli: rng.random_range(0..3) * 1000,
                    spam_milli: rng.random_range(0..3) * 1000,
                    reject_milli: rng.random_range(0..2) * 1000,
                })
                .collect();
            if rng.random_bool(0.8) {
                command::Kind::EvidenceAdd(EvidenceAdd { counts })
            } else {
                command::Kind::EvidenceDecay(EvidenceDecay {
                    keep_per_mille: rng.random_range(500..=1000),
                    drop_below_milli: 100,
                    now_ms: now,
                })
            }
        }
        _ => command::Kind::BayesLearn(BayesLearn {
            fingerprint: format!("f{}", rng.random_range(0..10)),
            class: ["spam", "ham"][rng.random_range(0..2)].into(),
            tokens: (0..rng.random_range(1..6))
                .map(|_| rng.random_range(0..50))
                .collect(),
            author: "test".into(),
            // Buckets in any order, repeated, some out of range: apply sorts and filters.
            features: (0..rng.random_range(0..8))
                .map(|_| rng.random_range(0..40) * (1 << 15))
                .collect(),
        }),
    }
}

/// A random workload of every command kind: list adds (some expiring), removes and leader
/// sweeps, routes, and half the time one of the others (spool, leases, policy, evidence,
/// learning).
fn workload(seed: u64, n: u64) -> Vec<Entry<TypeConfig>> {
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    (1..=n)
        .map(|i| {
            let mut cmds = Vec::new();
            for _ in 0..rng.random_range(1..4) {
                let kind = rng.random_range(1..=4);
                let value = match kind {
                    1 => format!("10.{}.0.0/16", rng.random_range(0..20)),
                    2 => format!("d{}.example", rng.random_range(0..20)),
                    3 => format!("u{}@x.example", rng.random_range(0..20)),
                    _ => format!("h{}.example", rng.random_range(0..20)),
                };
                let list = rng.random_range(1..=2);
                let domain = format!("local{}.test", rng.random_range(0..5));
                if rng.random_bool(0.5) {
                    cmds.push(other_command(&mut rng, i));
                    continue;
                }
                cmds.push(match rng.random_range(0..12) {
                    10 => command::Kind::DomainSet(DomainSet {
                        domain,
                        route: format!("smtp://127.0.0.1:{}", rng.random_range(1..100)),
                        author: "test".into(),
                        created_at_ms: i as i64,
                    }),
                    11 => command::Kind::DomainRemove(DomainRemove { domain }),
                    0..=5 => command::Kind::ListAdd(ListAdd {
                        list,
                        kind,
                        value,
                        reason: format!("r{i}"),
                        author: "test".into(),
                        created_at_ms: i as i64 * 1000,
                        expires_at_ms: rng
                            .random_bool(0.3)
                            .then(|| i as i64 * 1000 + rng.random_range(0..5000)),
                    }),
                    6..=8 => command::Kind::ListRemove(ListRemove { list, kind, value }),
                    _ => command::Kind::ListSweep(ListSweep {
                        now_ms: i as i64 * 1000,
                    }),
                });
            }
            entry(i, cmds)
        })
        .collect()
}

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
    drop(dst);
    let reopened = StateStore::open(b.path()).unwrap();
    assert_eq!(reopened.digest().await.unwrap(), before);
    assert_eq!(
        reopened.indexes().check(EntryKind::Ip, "10.3.1.1", 0),
        probe
    );
    assert_eq!(reopened.indexes().domains(), routes);
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
