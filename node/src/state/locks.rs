//! Outbound abuse, decided the same way on every node: strikes counted per identity and
//! kind (`OutboundStrike`: spam verdicts, malware, invalid recipients, hard bounces), the
//! lock that a run of one kind sets for a while (or, past the number of automatic unlocks,
//! until an operator lifts it), operators' own locks and unlocks, and the locks listed and
//! covered by the state digest.

use std::collections::HashMap;

use rusqlite::{params, Connection, OptionalExtension, Transaction};

use peage_proto::v1::{IdentityLock, IdentityUnlock, OutboundStrike};

use super::knowledge::{IndexChange, Lock};
use crate::types::Outcome;

/// A lock that only an operator lifts.
pub const UNTIL_UNLOCKED: i64 = i64::MAX;

/// A locked account as operators see it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LockRow {
    pub login: String,
    pub lock: Lock,
    pub locked_at_ms: i64,
    /// How many times the account has been locked.
    pub locks: u32,
    pub author: String,
}

/// The most strikes one entry adds (a delivery refused for every recipient).
const MAX_STRIKES_AT_ONCE: u32 = 1000;

/// What a run of strikes of `kind` is called in a lock's reason.
fn counted_as(kind: &str) -> &'static str {
    match kind {
        "malware" => "messages with malware or dangerous attachments",
        "invalid_recipient" => "recipients refused as unknown",
        "hard_bounce" => "hard bounces",
        _ => "spam verdicts",
    }
}

pub fn apply_strike(
    tx: &Transaction<'_>,
    mut s: OutboundStrike,
    changes: &mut Vec<IndexChange>,
) -> rusqlite::Result<Outcome> {
    if s.kind.is_empty() {
        s.kind = "spam".into();
    }
    for _ in 0..s.count.clamp(1, MAX_STRIKES_AT_ONCE) {
        tx.execute(
            "INSERT INTO outbound_strikes (login, at_ms, queue_id, why, kind)
             VALUES (?1, ?2, ?3, ?4, ?5)",
            params![s.login, s.at_ms, s.queue_id, s.why, s.kind],
        )?;
    }
    tx.execute(
        "DELETE FROM outbound_strikes WHERE login = ?1 AND at_ms <= ?2",
        params![s.login, s.at_ms - s.window_ms],
    )?;
    let strikes: i64 = tx.query_row(
        "SELECT COUNT(*) FROM outbound_strikes WHERE login = ?1 AND kind = ?2",
        params![s.login, s.kind],
        |r| r.get(0),
    )?;
    let current: Option<(i64, i64)> = tx
        .query_row(
            "SELECT until_ms, locks FROM identity_locks WHERE login = ?1",
            [&s.login],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .optional()?;
    let locked_now = current.is_some_and(|(until, _)| until > s.at_ms);
    if locked_now || strikes < i64::from(s.threshold.max(1)) {
        return Ok(Outcome::Strike { locked: false });
    }
    let locks = current.map_or(0, |(_, n)| n) + 1;
    let until = if locks > i64::from(s.max_auto_unlocks) {
        UNTIL_UNLOCKED
    } else {
        s.at_ms + s.lock_ms
    };
    let reason = format!(
        "{strikes} {} within {} minutes (the last: {})",
        counted_as(&s.kind),
        s.window_ms / 60_000,
        s.queue_id
    );
    lock(
        tx,
        &s.login,
        (reason, s.at_ms, until, locks, "automatic"),
        changes,
    )?;
    tx.execute("DELETE FROM outbound_strikes WHERE login = ?1", [&s.login])?;
    Ok(Outcome::Strike { locked: true })
}

fn lock(
    tx: &Transaction<'_>,
    login: &str,
    (reason, at, until, locks, author): (String, i64, i64, i64, &str),
    changes: &mut Vec<IndexChange>,
) -> rusqlite::Result<()> {
    tx.execute(
        "INSERT INTO identity_locks (login, reason, locked_at_ms, until_ms, locks, author)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)
         ON CONFLICT (login) DO UPDATE SET reason = excluded.reason,
           locked_at_ms = excluded.locked_at_ms, until_ms = excluded.until_ms,
           locks = excluded.locks, author = excluded.author",
        params![login, reason, at, until, locks, author],
    )?;
    changes.push(IndexChange::Lock {
        login: login.to_owned(),
        lock: Some(Lock {
            until_ms: until,
            reason,
        }),
    });
    Ok(())
}

pub fn apply_lock(
    tx: &Transaction<'_>,
    l: IdentityLock,
    changes: &mut Vec<IndexChange>,
) -> rusqlite::Result<Outcome> {
    let locks: i64 = tx
        .query_row(
            "SELECT locks FROM identity_locks WHERE login = ?1",
            [&l.login],
            |r| r.get(0),
        )
        .optional()?
        .unwrap_or(0);
    let entry = (
        l.reason,
        l.at_ms,
        UNTIL_UNLOCKED,
        locks + 1,
        l.author.as_str(),
    );
    lock(tx, &l.login, entry, changes)?;
    Ok(Outcome::Strike { locked: true })
}

pub fn apply_unlock(
    tx: &Transaction<'_>,
    u: IdentityUnlock,
    changes: &mut Vec<IndexChange>,
) -> rusqlite::Result<Outcome> {
    let removed = tx.execute("DELETE FROM identity_locks WHERE login = ?1", [&u.login])? > 0;
    tx.execute("DELETE FROM outbound_strikes WHERE login = ?1", [&u.login])?;
    changes.push(IndexChange::Lock {
        login: u.login,
        lock: None,
    });
    Ok(Outcome::Removed { removed })
}

/// Every lock, expired ones included (they count towards the automatic unlocks).
pub fn load(conn: &Connection) -> rusqlite::Result<HashMap<String, Lock>> {
    Ok(list(conn)?.into_iter().map(|r| (r.login, r.lock)).collect())
}

pub fn list(conn: &Connection) -> rusqlite::Result<Vec<LockRow>> {
    let mut stmt = conn.prepare_cached(
        "SELECT login, reason, locked_at_ms, until_ms, locks, author FROM identity_locks
         ORDER BY login",
    )?;
    let rows = stmt.query_map([], |r| {
        Ok(LockRow {
            login: r.get(0)?,
            lock: Lock {
                reason: r.get(1)?,
                until_ms: r.get(3)?,
            },
            locked_at_ms: r.get(2)?,
            locks: r.get(4)?,
            author: r.get(5)?,
        })
    })?;
    rows.collect()
}

/// Locks and strikes in order, for the state digest.
pub fn digest_rows(conn: &Connection, out: &mut dyn FnMut(&[u8])) -> rusqlite::Result<()> {
    for r in list(conn)? {
        out(format!(
            "lock:{}:{}:{}:{}:{}:{}",
            r.login, r.lock.reason, r.locked_at_ms, r.lock.until_ms, r.locks, r.author
        )
        .as_bytes());
    }
    let mut stmt = conn.prepare_cached(
        "SELECT login, at_ms, queue_id, why, kind FROM outbound_strikes
         ORDER BY login, at_ms, queue_id, kind, why",
    )?;
    let mut rows = stmt.query([])?;
    while let Some(r) = rows.next()? {
        let (login, at, id, why, kind): (String, i64, String, String, String) =
            (r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?);
        out(format!("strike:{login}:{at}:{id}:{why}:{kind}").as_bytes());
    }
    Ok(())
}
