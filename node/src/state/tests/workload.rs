//! A random workload of every command kind, the same for a seed: the log the determinism
//! and snapshot tests apply.

use openraft::{CommittedLeaderId, Entry, EntryPayload, LogId};
use prost::Message;
use rand::{Rng, SeedableRng};

use peage_proto::v1::{
    command, CalloutResult, CalloutResults, Command, CommandBatch, DomainRemove, DomainSet,
    ListAdd, ListRemove, ListSweep, RecipientsAdd, RecipientsRemove,
};

use crate::types::{LogPayload, TypeConfig, COMMAND_VERSION};

pub(super) fn entry(index: u64, commands: Vec<command::Kind>) -> Entry<TypeConfig> {
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

/// One of the workload's recipients, or none (the whole message).
fn one_recipient_or_all(rng: &mut rand::rngs::StdRng) -> Vec<String> {
    match rng.random_range(0..3) {
        0 => vec!["a@local1.test".into()],
        1 => vec!["b@local2.test".into()],
        _ => Vec::new(),
    }
}

/// Any command other than the list and routing ones, on a small set of queue ids, keys and
/// fingerprints so that commands meet the rows earlier ones wrote.
fn other_command(rng: &mut rand::rngs::StdRng, i: u64) -> command::Kind {
    use peage_proto::v1::{
        BayesLearn, DigestSent, EvidenceAdd, EvidenceCount, EvidenceDecay, FilterSymbol, PolicySet,
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
            // Some are digests, from a few keys, so that the second of a key is refused.
            digest: rng.random_bool(0.3).then(|| DigestSent {
                key: format!("daily:a@local1.test:{}", rng.random_range(0..4)),
                recipient: "a@local1.test".into(),
                up_to_ms: now,
            }),
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
        // The whole message, or one recipient's part (split off, or taken off).
        6 => command::Kind::SpoolRelease(SpoolRelease {
            queue_id,
            owner,
            lease_until_ms: now + 5000,
            rcpt_to: one_recipient_or_all(rng),
            split_queue_id: format!("q{}", rng.random_range(0..30)),
        }),
        7 => command::Kind::SpoolDrop(SpoolDrop {
            queue_id,
            rcpt_to: one_recipient_or_all(rng),
        }),
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
                outbound_hold_at_milli: rng.random_range(0..3) * 1_000,
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
pub(super) fn workload(seed: u64, n: u64) -> Vec<Entry<TypeConfig>> {
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
                // The same value on the cluster's list and on a domain's or mailbox's own.
                let scope: String = ["", "a.example", "u@a.example"][rng.random_range(0..3)].into();
                let domain = format!("local{}.test", rng.random_range(0..5));
                if rng.random_bool(0.5) {
                    cmds.push(other_command(&mut rng, i));
                    continue;
                }
                let mailboxes: Vec<String> = (0..rng.random_range(1..4))
                    .map(|_| format!("u{}@{domain}", rng.random_range(0..6)))
                    .collect();
                cmds.push(match rng.random_range(0..14) {
                    10 => command::Kind::DomainSet(DomainSet {
                        domain,
                        route: format!("smtp://127.0.0.1:{}", rng.random_range(1..100)),
                        author: "test".into(),
                        created_at_ms: i as i64,
                        verify: ["", "none", "list", "callout"][rng.random_range(0..4)].into(),
                        dmarc: ["", "score", "quarantine", "reject"][rng.random_range(0..4)].into(),
                        portal: rng.random_bool(0.5),
                        digest_at: ["", "07:30", "25:00"][rng.random_range(0..3)].into(),
                        digest_lang: ["", "fr", "xx"][rng.random_range(0..3)].into(),
                    }),
                    12 => command::Kind::RecipientsAdd(RecipientsAdd {
                        addresses: mailboxes,
                        author: "test".into(),
                        created_at_ms: i as i64,
                    }),
                    13 => command::Kind::RecipientsRemove(RecipientsRemove {
                        addresses: mailboxes,
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
                        scope,
                    }),
                    6..=8 => command::Kind::ListRemove(ListRemove {
                        list,
                        kind,
                        value,
                        scope,
                    }),
                    9 => command::Kind::CalloutResults(CalloutResults {
                        results: mailboxes
                            .into_iter()
                            .map(|address| CalloutResult {
                                address,
                                valid: rng.random_bool(0.5),
                                expires_at_ms: i as i64 * 1000 + rng.random_range(0..5000),
                            })
                            .collect(),
                        now_ms: i as i64 * 1000,
                    }),
                    _ => command::Kind::ListSweep(ListSweep {
                        now_ms: i as i64 * 1000,
                    }),
                });
            }
            entry(i, cmds)
        })
        .collect()
}
