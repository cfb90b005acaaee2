//! Applying one log entry's commands inside the apply transaction: decoding, then one line
//! per command to the table family that owns it. Reads nothing but the command and the
//! database (and the logistic weights as last committed, which the in-memory model holds
//! exactly): no clock, no randomness, no node-local configuration.

use prost::Message;
use rusqlite::Transaction;

use peage_proto::v1::{command, CommandBatch};

use super::knowledge::IndexChange;
use super::logistic::BatchWeights;
use super::{
    audit, bayes, callouts, dkim_keys, evidence, list_entries, locks, policy, portal_key,
    recipients, routing, spool, tokens, users,
};
use crate::types::{BatchOutcome, Outcome, COMMAND_VERSION};

/// Applies one encoded `CommandBatch`. A payload that does not decode, or from a newer
/// format, is refused as a whole: deterministic, and never a panic.
pub fn apply_payload(
    tx: &Transaction<'_>,
    payload: &[u8],
    weights: &mut BatchWeights<'_>,
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
        out.push(apply_command(tx, cmd.kind, weights, changes)?);
    }
    Ok(BatchOutcome(out))
}

fn apply_command(
    tx: &Transaction<'_>,
    cmd: Option<command::Kind>,
    weights: &mut BatchWeights<'_>,
    changes: &mut Vec<IndexChange>,
) -> rusqlite::Result<Outcome> {
    use command::Kind;
    let Some(cmd) = cmd else {
        return Ok(Outcome::Refused("empty command".into()));
    };
    match cmd {
        Kind::ListAdd(add) => list_entries::apply_add(tx, add, changes),
        Kind::ListRemove(rm) => list_entries::apply_remove(tx, rm, changes),
        Kind::ListSweep(sweep) => list_entries::apply_sweep(tx, sweep, changes),
        Kind::DomainSet(d) => routing::apply_set(tx, d, changes),
        Kind::DomainRemove(d) => routing::apply_remove(tx, d, changes),
        Kind::RecipientsAdd(a) => recipients::apply_add(tx, a, changes),
        Kind::RecipientsRemove(r) => recipients::apply_remove(tx, r, changes),
        Kind::CalloutResults(r) => callouts::apply_results(tx, r, changes),
        Kind::UserSet(u) => users::apply_set(tx, u, changes),
        Kind::UserRemove(u) => users::apply_remove(tx, u, changes),
        Kind::OutboundStrike(s) => locks::apply_strike(tx, s, changes),
        Kind::IdentityLock(l) => locks::apply_lock(tx, l, changes),
        Kind::IdentityUnlock(u) => locks::apply_unlock(tx, u, changes),
        Kind::DkimKeySet(k) => dkim_keys::apply_set(tx, k, changes),
        Kind::DkimKeyRemove(k) => dkim_keys::apply_remove(tx, k, changes),
        Kind::TokenSet(t) => tokens::apply_set(tx, t, changes),
        Kind::TokenRemove(t) => tokens::apply_remove(tx, t, changes),
        Kind::AuditRecord(a) => audit::apply_record(tx, a),
        Kind::PortalKeySet(k) => portal_key::apply_set(tx, k, changes),
        Kind::PolicySet(p) => policy::apply_set(tx, p, changes),
        Kind::SpoolPut(put) => spool::apply_put(tx, put, changes),
        Kind::SpoolDone(done) => spool::apply_done(tx, done, changes),
        Kind::SpoolRenew(r) => spool::apply_renew(tx, r, changes),
        Kind::SpoolTakeover(t) => spool::apply_takeover(tx, t, changes),
        Kind::SpoolRelease(r) => spool::apply_release(tx, r, changes),
        Kind::SpoolDrop(d) => spool::apply_drop(tx, d, changes),
        Kind::SpoolRetry(r) => spool::apply_retry(tx, r, changes),
        Kind::SpoolHandOff(h) => spool::apply_hand_off(tx, h, changes),
        Kind::QuarantineExpire(e) => spool::apply_expire_quarantine(tx, e, changes),
        Kind::BayesLearn(l) => bayes::apply_learn(tx, l, weights, changes),
        Kind::EvidenceAdd(a) => evidence::apply_add(tx, a, changes),
        Kind::EvidenceDecay(d) => evidence::apply_decay(tx, d, changes),
    }
}
