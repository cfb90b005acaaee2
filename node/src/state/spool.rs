//! The replicated spool's rows: applying `SpoolPut`, `SpoolDone` and the lease and
//! operator commands, and reading the queue.
use rusqlite::{params, Connection, OptionalExtension, ToSql, Transaction};

use peage_proto::v1::{
    QuarantineExpire, SpoolDone, SpoolDrop, SpoolHandOff, SpoolPut, SpoolRelease, SpoolRenew,
    SpoolRetry, SpoolTakeover,
};

use super::digests_sent;
use super::knowledge::IndexChange;
use super::schema::{execute_cached, from_json, to_json};
use crate::types::Outcome;

/// How a second digest with the same key is refused.
pub const DIGEST_SENT_ALREADY: &str = "this digest was sent already";

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
    /// Times an owner whose attempts kept failing handed it to another node.
    pub handoffs: u32,
}

impl SpooledMessage {
    pub fn is_quarantined(&self) -> bool {
        self.verdict == "quarantine"
    }

    /// A message to `b@example.test` owned by `owner`, for unit tests to adjust.
    #[cfg(test)]
    pub fn example(queue_id: &str, owner: u64) -> SpooledMessage {
        SpooledMessage {
            queue_id: queue_id.into(),
            mail_from: "a@x.test".into(),
            rcpt_to: vec!["b@example.test".into()],
            client_ip: "192.0.2.1".into(),
            helo: "x".into(),
            body_sha256: String::new(),
            size: 1,
            holders: vec![owner],
            owner,
            accepted_at_ms: 0,
            lease_until_ms: 0,
            verdict: "deliver".into(),
            score_milli: 0,
            symbols: Vec::new(),
            retry_gen: 0,
            handoffs: 0,
        }
    }
}

pub fn apply_put(
    tx: &Transaction<'_>,
    put: SpoolPut,
    changes: &mut Vec<IndexChange>,
) -> rusqlite::Result<Outcome> {
    if put.rcpt_to.is_empty() {
        return Ok(Outcome::Refused("spool record without recipients".into()));
    }
    if let Some(sent) = &put.digest {
        if digests_sent::was_sent(tx, &sent.key)? {
            return Ok(Outcome::Refused(format!(
                "{DIGEST_SENT_ALREADY}: {}",
                sent.key
            )));
        }
    }
    let inserted = execute_cached(
        tx,
        "INSERT INTO spool (queue_id, mail_from, rcpt_to, client_ip, helo, body_sha256, size,
                            holders, owner, accepted_at_ms, lease_until_ms, verdict,
                            score_milli, symbols)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14)
         ON CONFLICT (queue_id) DO NOTHING",
        params![
            &put.queue_id,
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
    if let Some(sent) = &put.digest {
        digests_sent::record(tx, sent, &put.queue_id, put.accepted_at_ms)?;
    }
    changes.push(IndexChange::SpoolRow(put.queue_id));
    Ok(Outcome::Spooled)
}

pub fn apply_done(
    tx: &Transaction<'_>,
    done: SpoolDone,
    changes: &mut Vec<IndexChange>,
) -> rusqlite::Result<Outcome> {
    let Some((remaining, _)) = remove_recipients(tx, &done.queue_id, &done.rcpt_to)? else {
        return Ok(Outcome::SpoolDone { remaining: 0 });
    };
    changes.push(IndexChange::SpoolRow(done.queue_id));
    Ok(Outcome::SpoolDone {
        remaining: remaining as u32,
    })
}

/// Takes `gone` off the recipients of message `queue_id` (deleting it when none remain),
/// if it is there: how many recipients remain, and how many were taken off.
fn remove_recipients(
    tx: &Transaction<'_>,
    queue_id: &str,
    gone: &[String],
) -> rusqlite::Result<Option<(usize, usize)>> {
    let rcpts: Option<String> = tx
        .prepare_cached("SELECT rcpt_to FROM spool WHERE queue_id = ?1")?
        .query_row([queue_id], |r| r.get(0))
        .optional()?;
    let Some(rcpts) = rcpts else {
        return Ok(None);
    };
    let mut rcpts: Vec<String> = from_json(&rcpts)?;
    let before = rcpts.len();
    rcpts.retain(|r| !gone.contains(r));
    if rcpts.is_empty() {
        execute_cached(tx, "DELETE FROM spool WHERE queue_id = ?1", [queue_id])?;
    } else {
        execute_cached(
            tx,
            "UPDATE spool SET rcpt_to = ?2 WHERE queue_id = ?1",
            params![queue_id, to_json(&rcpts)],
        )?;
    }
    Ok(Some((rcpts.len(), before - rcpts.len())))
}

pub fn apply_renew(
    tx: &Transaction<'_>,
    r: SpoolRenew,
    changes: &mut Vec<IndexChange>,
) -> rusqlite::Result<Outcome> {
    let sql = "UPDATE spool SET lease_until_ms = ?3 WHERE queue_id = ?1 AND owner = ?2";
    let rest = params![r.owner as i64, r.lease_until_ms];
    update_each(tx, sql, r.queue_ids, rest, changes)
}

pub fn apply_takeover(
    tx: &Transaction<'_>,
    t: SpoolTakeover,
    changes: &mut Vec<IndexChange>,
) -> rusqlite::Result<Outcome> {
    // Only if the message is still the old owner's and its lease had lapsed when the leader
    // proposed this: an owner whose renewal was committed first keeps it, so two nodes never
    // both hold a valid lease. (Entries written before `now_ms` existed carry 0.)
    let sql = "UPDATE spool SET owner = ?3, lease_until_ms = ?4
               WHERE queue_id = ?1 AND owner = ?2 AND (?5 = 0 OR lease_until_ms <= ?5)";
    let (from, to) = (t.from_owner as i64, t.to_owner as i64);
    let rest = params![from, to, t.lease_until_ms, t.now_ms];
    let ids = (!t.queue_id.is_empty()).then_some(t.queue_id);
    update_each(tx, sql, ids.into_iter().chain(t.queue_ids), rest, changes)
}

/// Moves the messages `from_owner` still owns (and that are not held in quarantine) to
/// `to_owner`, counting the hand-off on each.
pub fn apply_hand_off(
    tx: &Transaction<'_>,
    h: SpoolHandOff,
    changes: &mut Vec<IndexChange>,
) -> rusqlite::Result<Outcome> {
    let sql = "UPDATE spool SET owner = ?3, lease_until_ms = ?4, handoffs = handoffs + 1
               WHERE queue_id = ?1 AND owner = ?2 AND verdict != 'quarantine'";
    let (from, to) = (h.from_owner as i64, h.to_owner as i64);
    let rest = params![from, to, h.lease_until_ms];
    update_each(tx, sql, h.queue_ids, rest, changes)
}

/// Runs `sql` once per queue id (bound as `?1`, `rest` after it), noting each row it
/// changed for the index; the outcome counts them.
fn update_each(
    tx: &Transaction<'_>,
    sql: &str,
    ids: impl IntoIterator<Item = String>,
    rest: &[&dyn ToSql],
    changes: &mut Vec<IndexChange>,
) -> rusqlite::Result<Outcome> {
    let mut stmt = tx.prepare_cached(sql)?;
    let mut changed = 0u32;
    for id in ids {
        let bound: Vec<&dyn ToSql> = std::iter::once(&id as &dyn ToSql)
            .chain(rest.iter().copied())
            .collect();
        if stmt.execute(bound.as_slice())? > 0 {
            changed += 1;
            changes.push(IndexChange::SpoolRow(id));
        }
    }
    Ok(Outcome::SpoolOwned { changed })
}

pub fn apply_release(
    tx: &Transaction<'_>,
    r: SpoolRelease,
    changes: &mut Vec<IndexChange>,
) -> rusqlite::Result<Outcome> {
    if !r.rcpt_to.is_empty() {
        return release_part(tx, r, changes);
    }
    let changed = execute_cached(
        tx,
        "UPDATE spool SET verdict = 'released', owner = ?2, lease_until_ms = ?3
         WHERE queue_id = ?1 AND verdict = 'quarantine'",
        params![r.queue_id, r.owner as i64, r.lease_until_ms],
    )?;
    Ok(changed_row(changed, r.queue_id, changes))
}

/// Releases the part of a held message addressed to `r.rcpt_to`: a copy of it for them
/// (the same body), released as `r.split_queue_id`; the others' part stays held.
fn release_part(
    tx: &Transaction<'_>,
    r: SpoolRelease,
    changes: &mut Vec<IndexChange>,
) -> rusqlite::Result<Outcome> {
    let Some(held) = query_one(tx, &r.queue_id)?.filter(|m| m.verdict == "quarantine") else {
        return Ok(Outcome::SpoolChanged { found: false });
    };
    let part: Vec<String> = held
        .rcpt_to
        .iter()
        .filter(|rcpt| r.rcpt_to.contains(rcpt))
        .cloned()
        .collect();
    if part.is_empty() {
        return Ok(Outcome::SpoolChanged { found: false });
    }
    let copied = execute_cached(
        tx,
        &format!(
            "INSERT INTO spool ({COLUMNS})
             SELECT ?2, mail_from, ?3, client_ip, helo, body_sha256, size, holders, ?4,
                    accepted_at_ms, ?5, 'released', score_milli, symbols, 0, 0
             FROM spool WHERE queue_id = ?1
             ON CONFLICT (queue_id) DO NOTHING"
        ),
        params![
            r.queue_id,
            r.split_queue_id,
            to_json(&part),
            r.owner as i64,
            r.lease_until_ms
        ],
    )?;
    if copied == 0 {
        return Ok(Outcome::Refused(format!(
            "queue id {} exists",
            r.split_queue_id
        )));
    }
    remove_recipients(tx, &r.queue_id, &part)?;
    changes.push(IndexChange::SpoolRow(r.split_queue_id));
    changes.push(IndexChange::SpoolRow(r.queue_id));
    Ok(Outcome::SpoolChanged { found: true })
}

pub fn apply_drop(
    tx: &Transaction<'_>,
    d: SpoolDrop,
    changes: &mut Vec<IndexChange>,
) -> rusqlite::Result<Outcome> {
    let changed = match d.rcpt_to.is_empty() {
        true => execute_cached(tx, "DELETE FROM spool WHERE queue_id = ?1", [&d.queue_id])?,
        false => remove_recipients(tx, &d.queue_id, &d.rcpt_to)?.map_or(0, |(_, gone)| gone),
    };
    Ok(changed_row(changed, d.queue_id, changes))
}

pub fn apply_retry(
    tx: &Transaction<'_>,
    r: SpoolRetry,
    changes: &mut Vec<IndexChange>,
) -> rusqlite::Result<Outcome> {
    let changed = execute_cached(
        tx,
        "UPDATE spool SET retry_gen = retry_gen + 1 WHERE queue_id = ?1",
        [&r.queue_id],
    )?;
    Ok(changed_row(changed, r.queue_id, changes))
}

/// The outcome of an operator's command on one message, noting the row for the index.
fn changed_row(changed: usize, queue_id: String, changes: &mut Vec<IndexChange>) -> Outcome {
    if changed > 0 {
        changes.push(IndexChange::SpoolRow(queue_id));
    }
    Outcome::SpoolChanged { found: changed > 0 }
}

/// Removes the quarantined messages accepted before the leader's cut-off.
pub fn apply_expire_quarantine(
    tx: &Transaction<'_>,
    e: QuarantineExpire,
    changes: &mut Vec<IndexChange>,
) -> rusqlite::Result<Outcome> {
    let expired: Vec<String> = tx
        .prepare_cached(
            "DELETE FROM spool WHERE verdict = 'quarantine' AND accepted_at_ms < ?1
             RETURNING queue_id",
        )?
        .query_map([e.accepted_before_ms], |r| r.get(0))?
        .collect::<rusqlite::Result<_>>()?;
    let removed = expired.len() as u32;
    changes.extend(expired.into_iter().map(IndexChange::SpoolRow));
    digests_sent::forget_before(tx, e.accepted_before_ms)?;
    Ok(Outcome::Swept { removed })
}

const COLUMNS: &str = "queue_id, mail_from, rcpt_to, client_ip, helo, body_sha256, size, holders,
    owner, accepted_at_ms, lease_until_ms, verdict, score_milli, symbols, retry_gen, handoffs";

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
        handoffs: r.get(15)?,
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

/// The symbol that carries an outgoing message's identity and principal in the spool, for
/// the strikes its delivery may bring (hard bounces); 0 points.
pub const OUTBOUND_IDENTITY: &str = "OUTBOUND_IDENTITY";

/// The (principal, identity) of a spooled message's symbols, if it is outgoing mail.
pub fn identity_in(symbols: &[(String, i64, String)]) -> Option<(&str, &str)> {
    let (_, _, reason) = symbols
        .iter()
        .find(|(name, _, _)| name == OUTBOUND_IDENTITY)?;
    let (identity, login) = reason.rsplit_once(" via ")?;
    Some((login, identity))
}
