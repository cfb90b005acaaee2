//! The replicated spool's rows: applying `SpoolPut`, `SpoolDone` and the lease and
//! operator commands, and reading the queue.

use std::collections::HashSet;

use rusqlite::{params, Connection, OptionalExtension, Transaction};

use peage_proto::v1::{
    QuarantineExpire, SpoolDone, SpoolDrop, SpoolPut, SpoolRelease, SpoolRenew, SpoolRetry,
    SpoolTakeover,
};

use super::schema::{from_json, to_json};
use crate::types::Outcome;

/// One queued message, as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpooledMessage {
    pub queue_id: String,
    pub mail_from: String,
    pub rcpt_to: Vec<String>,
    pub client_ip: String,
    pub helo: String,
    pub body_sha256: String,
    pub size: u64,
    pub holders: Vec<u64>,
    pub owner: u64,
    pub accepted_at_ms: i64,
    pub lease_until_ms: i64,
    /// "deliver" or "quarantine".
    pub verdict: String,
    pub score_milli: i64,
    /// (name, score in milli-points, reason).
    pub symbols: Vec<(String, i64, String)>,
    /// Bumped by `queue retry`.
    pub retry_gen: i64,
}

impl SpooledMessage {
    pub fn is_quarantined(&self) -> bool {
        self.verdict == "quarantine"
    }
}

pub fn apply_put(tx: &Transaction<'_>, put: SpoolPut) -> rusqlite::Result<Outcome> {
    if put.rcpt_to.is_empty() {
        return Ok(Outcome::Refused("spool record without recipients".into()));
    }
    let inserted = tx.execute(
        "INSERT INTO spool (queue_id, mail_from, rcpt_to, client_ip, helo, body_sha256, size,
                            holders, owner, accepted_at_ms, lease_until_ms, verdict,
                            score_milli, symbols)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14)
         ON CONFLICT (queue_id) DO NOTHING",
        params![
            put.queue_id,
            put.mail_from,
            to_json(&put.rcpt_to),
            put.client_ip,
            put.helo,
            put.body_sha256,
            put.size as i64,
            to_json(&put.holders),
            put.owner as i64,
            put.accepted_at_ms,
            put.lease_until_ms,
            if put.verdict.is_empty() {
                "deliver"
            } else {
                put.verdict.as_str()
            },
            put.score_milli,
            to_json(
                &put.symbols
                    .iter()
                    .map(|s| (s.name.as_str(), s.score_milli, s.reason.as_str()))
                    .collect::<Vec<_>>()
            ),
        ],
    )?;
    if inserted == 0 {
        return Ok(Outcome::Refused(format!(
            "queue id {} exists",
            put.queue_id
        )));
    }
    Ok(Outcome::Spooled)
}

pub fn apply_done(tx: &Transaction<'_>, done: SpoolDone) -> rusqlite::Result<Outcome> {
    let rcpts: Option<String> = tx
        .query_row(
            "SELECT rcpt_to FROM spool WHERE queue_id = ?1",
            [&done.queue_id],
            |r| r.get(0),
        )
        .optional()?;
    let Some(rcpts) = rcpts else {
        return Ok(Outcome::SpoolDone { remaining: 0 });
    };
    let mut rcpts: Vec<String> = from_json(&rcpts)?;
    rcpts.retain(|r| !done.rcpt_to.contains(r));
    if rcpts.is_empty() {
        tx.execute("DELETE FROM spool WHERE queue_id = ?1", [&done.queue_id])?;
    } else {
        tx.execute(
            "UPDATE spool SET rcpt_to = ?2 WHERE queue_id = ?1",
            params![done.queue_id, to_json(&rcpts)],
        )?;
    }
    Ok(Outcome::SpoolDone {
        remaining: rcpts.len() as u32,
    })
}

pub fn apply_renew(tx: &Transaction<'_>, renew: SpoolRenew) -> rusqlite::Result<Outcome> {
    let mut stmt = tx.prepare_cached(
        "UPDATE spool SET lease_until_ms = ?3 WHERE queue_id = ?1 AND owner = ?2",
    )?;
    let mut renewed = 0u32;
    for id in &renew.queue_ids {
        renewed += stmt.execute(params![id, renew.owner as i64, renew.lease_until_ms])? as u32;
    }
    Ok(Outcome::SpoolOwned { changed: renewed })
}

pub fn apply_takeover(tx: &Transaction<'_>, t: SpoolTakeover) -> rusqlite::Result<Outcome> {
    // Only if the message is still the old owner's and its lease had lapsed when the leader
    // proposed this: an owner whose renewal was committed first keeps it, so two nodes never
    // both hold a valid lease. (Entries written before `now_ms` existed carry 0.)
    let changed = tx.execute(
        "UPDATE spool SET owner = ?3, lease_until_ms = ?4
         WHERE queue_id = ?1 AND owner = ?2 AND (?5 = 0 OR lease_until_ms <= ?5)",
        params![
            t.queue_id,
            t.from_owner as i64,
            t.to_owner as i64,
            t.lease_until_ms,
            t.now_ms
        ],
    )?;
    Ok(Outcome::SpoolOwned {
        changed: changed as u32,
    })
}

pub fn apply_release(tx: &Transaction<'_>, r: SpoolRelease) -> rusqlite::Result<Outcome> {
    let changed = tx.execute(
        "UPDATE spool SET verdict = 'released', owner = ?2, lease_until_ms = ?3
         WHERE queue_id = ?1 AND verdict = 'quarantine'",
        params![r.queue_id, r.owner as i64, r.lease_until_ms],
    )?;
    Ok(Outcome::SpoolChanged { found: changed > 0 })
}

pub fn apply_drop(tx: &Transaction<'_>, d: SpoolDrop) -> rusqlite::Result<Outcome> {
    let changed = tx.execute("DELETE FROM spool WHERE queue_id = ?1", [&d.queue_id])?;
    Ok(Outcome::SpoolChanged { found: changed > 0 })
}

pub fn apply_retry(tx: &Transaction<'_>, r: SpoolRetry) -> rusqlite::Result<Outcome> {
    let changed = tx.execute(
        "UPDATE spool SET retry_gen = retry_gen + 1 WHERE queue_id = ?1",
        [&r.queue_id],
    )?;
    Ok(Outcome::SpoolChanged { found: changed > 0 })
}

/// Removes the quarantined messages accepted before the leader's cut-off.
pub fn apply_expire_quarantine(
    tx: &Transaction<'_>,
    e: QuarantineExpire,
) -> rusqlite::Result<Outcome> {
    let removed = tx.execute(
        "DELETE FROM spool WHERE verdict = 'quarantine' AND accepted_at_ms < ?1",
        [e.accepted_before_ms],
    )?;
    Ok(Outcome::Swept {
        removed: removed as u32,
    })
}

const COLUMNS: &str = "queue_id, mail_from, rcpt_to, client_ip, helo, body_sha256, size, holders,
    owner, accepted_at_ms, lease_until_ms, verdict, score_milli, symbols, retry_gen";

fn spooled_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<SpooledMessage> {
    Ok(SpooledMessage {
        queue_id: r.get(0)?,
        mail_from: r.get(1)?,
        rcpt_to: from_json(&r.get::<_, String>(2)?)?,
        client_ip: r.get(3)?,
        helo: r.get(4)?,
        body_sha256: r.get(5)?,
        size: r.get::<_, i64>(6)? as u64,
        holders: from_json(&r.get::<_, String>(7)?)?,
        owner: r.get::<_, i64>(8)? as u64,
        accepted_at_ms: r.get(9)?,
        lease_until_ms: r.get(10)?,
        verdict: r.get(11)?,
        score_milli: r.get(12)?,
        symbols: from_json(&r.get::<_, String>(13)?)?,
        retry_gen: r.get(14)?,
    })
}

/// Every queued message, oldest first.
pub fn query_all(conn: &Connection) -> rusqlite::Result<Vec<SpooledMessage>> {
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT {COLUMNS} FROM spool ORDER BY accepted_at_ms, queue_id"
    ))?;
    let rows = stmt.query_map([], spooled_row)?;
    rows.collect()
}

/// Whether a quarantined message was accepted before `before_ms`.
pub fn quarantined_before(conn: &Connection, before_ms: i64) -> rusqlite::Result<bool> {
    conn.prepare_cached(
        "SELECT 1 FROM spool WHERE verdict = 'quarantine' AND accepted_at_ms < ?1 LIMIT 1",
    )?
    .query_row([before_ms], |_| Ok(()))
    .optional()
    .map(|found| found.is_some())
}

/// Every body hash the spool references.
pub fn query_body_hashes(conn: &Connection) -> rusqlite::Result<HashSet<String>> {
    let mut stmt = conn.prepare_cached("SELECT DISTINCT body_sha256 FROM spool")?;
    let rows = stmt.query_map([], |r| r.get(0))?;
    rows.collect()
}

/// One message, if it is still in the spool.
pub fn query_one(conn: &Connection, queue_id: &str) -> rusqlite::Result<Option<SpooledMessage>> {
    conn.prepare_cached(&format!("SELECT {COLUMNS} FROM spool WHERE queue_id = ?1"))?
        .query_row([queue_id], spooled_row)
        .optional()
}

/// Every message, oldest first, for the state digest.
pub fn digest_rows(conn: &Connection, out: &mut dyn FnMut(&[u8])) -> rusqlite::Result<()> {
    for m in query_all(conn)? {
        out(format!("{m:?}").as_bytes());
    }
    Ok(())
}
