//! Applying commands to the SQLite state inside the apply transaction. Reads nothing but the
//! command and the database: no clock, no randomness, no node-local configuration.

use prost::Message;
use rusqlite::{params, OptionalExtension, Transaction};
use serde::{Deserialize, Serialize};

use peage_proto::v1::{command, CommandBatch};

use super::lists::{EntryKind, ListEntry, ListName};

/// The format of `CommandBatch` this release writes and understands.
pub const COMMAND_VERSION: u32 = 1;

/// What applying one command did; returned to the proposer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Outcome {
    ListAdded {
        entry_id: u64,
        created: bool,
    },
    ListRemoved {
        removed: u32,
    },
    Swept {
        removed: u32,
    },
    DomainSet {
        created: bool,
    },
    DomainRemoved {
        removed: bool,
    },
    Spooled,
    SpoolDone {
        remaining: u32,
    },
    PolicySet,
    /// An operator's change to one message; `found` is false when no such message was.
    SpoolChanged {
        found: bool,
    },
    /// Leases renewed or messages taken over.
    SpoolOwned {
        changed: u32,
    },
    /// A message taught to the classifier: new, already known that way, or moved from
    /// the other class.
    Learned {
        change: LearnChange,
    },
    /// Evidence counted, or decayed: how many keys remain.
    Evidence {
        keys: u64,
    },
    /// The command was refused, the same way on every node (e.g. an undecodable payload).
    Refused(String),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum LearnChange {
    New,
    Unchanged,
    Moved,
}

/// The outcome of every command of one log entry, in order.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct BatchOutcome(pub Vec<Outcome>);

/// A change the in-memory indexes must follow once the transaction is committed.
#[derive(Debug)]
pub enum IndexChange {
    Upsert(ListEntry),
    Remove(u64),
    RouteSet {
        domain: String,
        route: super::DomainRoute,
    },
    RouteRemove {
        domain: String,
    },
    Policy(crate::filter::Policy),
    /// Evidence counts added, per key: [ham, spam, reject] in thousandths.
    EvidenceAdd(Vec<(String, [i64; 3])>),
    /// Every count scaled by `keep_per_mille` / 1000, and keys below `drop_below` removed.
    EvidenceDecay {
        keep_per_mille: i64,
        drop_below: i64,
    },
    /// One message's tokens added to (+1) or taken from (-1) a class.
    Bayes {
        tokens: Vec<u64>,
        class: peage_mail::bayes::Class,
        delta: i32,
    },
}

/// Applies one encoded `CommandBatch`. A payload that does not decode, or from a newer
/// format, is refused as a whole: deterministic, and never a panic.
pub fn apply_payload(
    tx: &Transaction<'_>,
    payload: &[u8],
    changes: &mut Vec<IndexChange>,
) -> rusqlite::Result<BatchOutcome> {
    let batch = match CommandBatch::decode(payload) {
        Ok(b) => b,
        Err(e) => {
            return Ok(BatchOutcome(vec![Outcome::Refused(format!(
                "undecodable command batch: {e}"
            ))]))
        }
    };
    if batch.version > COMMAND_VERSION {
        return Ok(BatchOutcome(vec![Outcome::Refused(format!(
            "command batch version {} is newer than this node's {}",
            batch.version, COMMAND_VERSION
        ))]));
    }
    let mut out = Vec::with_capacity(batch.commands.len());
    for cmd in batch.commands {
        out.push(apply_command(tx, cmd.kind, changes)?);
    }
    Ok(BatchOutcome(out))
}

fn apply_command(
    tx: &Transaction<'_>,
    cmd: Option<command::Kind>,
    changes: &mut Vec<IndexChange>,
) -> rusqlite::Result<Outcome> {
    match cmd {
        None => Ok(Outcome::Refused("empty command".into())),
        Some(command::Kind::ListAdd(add)) => {
            let (Some(list), Some(kind)) =
                (ListName::from_i32(add.list), EntryKind::from_i32(add.kind))
            else {
                return Ok(Outcome::Refused("unknown list or kind".into()));
            };
            let existing: Option<i64> = tx
                .query_row(
                    "SELECT id FROM list_entries WHERE list = ?1 AND kind = ?2 AND value = ?3",
                    params![list as i32, kind as i32, add.value],
                    |r| r.get(0),
                )
                .optional()?;
            let id: i64 = tx.query_row(
                "INSERT INTO list_entries (list, kind, value, reason, author, created_at_ms, expires_at_ms)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)
                 ON CONFLICT (list, kind, value) DO UPDATE SET
                   reason = excluded.reason, author = excluded.author,
                   created_at_ms = excluded.created_at_ms, expires_at_ms = excluded.expires_at_ms
                 RETURNING id",
                params![
                    list as i32,
                    kind as i32,
                    add.value,
                    add.reason,
                    add.author,
                    add.created_at_ms,
                    add.expires_at_ms
                ],
                |r| r.get(0),
            )?;
            let id = id as u64;
            changes.push(IndexChange::Upsert(ListEntry {
                id,
                list,
                kind,
                value: add.value,
                reason: add.reason,
                author: add.author,
                created_at_ms: add.created_at_ms,
                expires_at_ms: add.expires_at_ms,
            }));
            Ok(Outcome::ListAdded {
                entry_id: id,
                created: existing.is_none(),
            })
        }
        Some(command::Kind::ListRemove(rm)) => {
            let mut stmt = tx.prepare_cached(
                "DELETE FROM list_entries WHERE list = ?1 AND kind = ?2 AND value = ?3 RETURNING id",
            )?;
            let ids: Vec<u64> = stmt
                .query_map(params![rm.list, rm.kind, rm.value], |r| r.get::<_, i64>(0))?
                .map(|id| id.map(|id| id as u64))
                .collect::<Result<_, _>>()?;
            changes.extend(ids.iter().map(|id| IndexChange::Remove(*id)));
            Ok(Outcome::ListRemoved {
                removed: ids.len() as u32,
            })
        }
        Some(command::Kind::ListSweep(sweep)) => {
            // `now_ms` was written by the leader that proposed the sweep.
            let mut stmt = tx.prepare_cached(
                "DELETE FROM list_entries WHERE expires_at_ms IS NOT NULL AND expires_at_ms <= ?1 RETURNING id",
            )?;
            let ids: Vec<u64> = stmt
                .query_map(params![sweep.now_ms], |r| r.get::<_, i64>(0))?
                .map(|id| id.map(|id| id as u64))
                .collect::<Result<_, _>>()?;
            changes.extend(ids.iter().map(|id| IndexChange::Remove(*id)));
            Ok(Outcome::Swept {
                removed: ids.len() as u32,
            })
        }
        Some(command::Kind::DomainSet(d)) => {
            let existed = tx
                .query_row(
                    "SELECT 1 FROM domains WHERE domain = ?1",
                    [&d.domain],
                    |_| Ok(()),
                )
                .optional()?
                .is_some();
            tx.execute(
                "INSERT INTO domains (domain, route, author, created_at_ms) VALUES (?1, ?2, ?3, ?4)
                 ON CONFLICT (domain) DO UPDATE SET route = excluded.route,
                   author = excluded.author, created_at_ms = excluded.created_at_ms",
                params![d.domain, d.route, d.author, d.created_at_ms],
            )?;
            changes.push(IndexChange::RouteSet {
                domain: d.domain,
                route: super::DomainRoute {
                    route: d.route,
                    author: d.author,
                    created_at_ms: d.created_at_ms,
                },
            });
            Ok(Outcome::DomainSet { created: !existed })
        }
        Some(command::Kind::SpoolPut(put)) => super::spool::apply_put(tx, put),
        Some(command::Kind::SpoolDone(done)) => super::spool::apply_done(tx, done),
        Some(command::Kind::SpoolRenew(r)) => super::spool::apply_renew(tx, r),
        Some(command::Kind::SpoolTakeover(t)) => super::spool::apply_takeover(tx, t),
        Some(command::Kind::SpoolRelease(r)) => super::spool::apply_release(tx, r),
        Some(command::Kind::SpoolDrop(d)) => super::spool::apply_drop(tx, d),
        Some(command::Kind::SpoolRetry(r)) => super::spool::apply_retry(tx, r),
        Some(command::Kind::PolicySet(p)) => {
            if p.quarantine_at_milli >= p.reject_at_milli {
                return Ok(Outcome::Refused(
                    "the quarantine threshold must be below the reject threshold".into(),
                ));
            }
            tx.execute(
                "INSERT INTO policy (key, value) VALUES ('quarantine_at_milli', ?1), ('reject_at_milli', ?2)
                 ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                params![p.quarantine_at_milli, p.reject_at_milli],
            )?;
            changes.push(IndexChange::Policy(crate::filter::Policy {
                quarantine_at_milli: p.quarantine_at_milli,
                reject_at_milli: p.reject_at_milli,
            }));
            Ok(Outcome::PolicySet)
        }
        Some(command::Kind::BayesLearn(l)) => super::bayes::apply_learn(tx, l, changes),
        Some(command::Kind::EvidenceAdd(a)) => super::evidence::apply_add(tx, a, changes),
        Some(command::Kind::EvidenceDecay(d)) => super::evidence::apply_decay(tx, d, changes),
        Some(command::Kind::DomainRemove(d)) => {
            let removed = tx.execute("DELETE FROM domains WHERE domain = ?1", [&d.domain])? > 0;
            changes.push(IndexChange::RouteRemove { domain: d.domain });
            Ok(Outcome::DomainRemoved { removed })
        }
    }
}
