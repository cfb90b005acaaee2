//! Reputation and bulk evidence in the replicated state: counts added by every node's
//! flushes and scaled down by the leader's decay steps, in integers (thousandths of a
//! message) so that every replica computes the same numbers. The in-memory copy the filter
//! reads follows them in `knowledge`.

use peage_mail::evidence::MAX_KEY_BYTES;
use peage_proto::v1::{EvidenceAdd, EvidenceDecay};
use rusqlite::{params, Connection, Transaction};

use super::knowledge::{EvidenceTable, IndexChange};
use crate::types::Outcome;

fn key_count(tx: &Transaction<'_>) -> rusqlite::Result<u64> {
    tx.query_row("SELECT COUNT(*) FROM evidence", [], |r| r.get::<_, i64>(0))
        .map(|n| n as u64)
}

pub fn apply_add(
    tx: &Transaction<'_>,
    add: EvidenceAdd,
    changes: &mut Vec<IndexChange>,
) -> rusqlite::Result<Outcome> {
    let mut upsert = tx.prepare_cached(
        "INSERT INTO evidence (key, ham, spam, reject) VALUES (?1, ?2, ?3, ?4)
         ON CONFLICT (key) DO UPDATE SET ham = ham + excluded.ham,
           spam = spam + excluded.spam, reject = reject + excluded.reject",
    )?;
    let mut added = Vec::new();
    for c in add.counts {
        let counts = [c.ham_milli, c.spam_milli, c.reject_milli];
        if c.key.is_empty() || c.key.len() > MAX_KEY_BYTES || counts.iter().any(|n| *n < 0) {
            continue;
        }
        upsert.execute(params![c.key, counts[0], counts[1], counts[2]])?;
        added.push((c.key, counts));
    }
    changes.push(IndexChange::EvidenceAdd(added));
    Ok(Outcome::Evidence {
        keys: key_count(tx)?,
    })
}

pub fn apply_decay(
    tx: &Transaction<'_>,
    d: EvidenceDecay,
    changes: &mut Vec<IndexChange>,
) -> rusqlite::Result<Outcome> {
    let keep = i64::from(d.keep_per_mille.min(1000));
    tx.execute(
        "UPDATE evidence SET ham = ham * ?1 / 1000, spam = spam * ?1 / 1000,
           reject = reject * ?1 / 1000",
        [keep],
    )?;
    tx.execute(
        "DELETE FROM evidence WHERE ham + spam + reject < ?1",
        [d.drop_below_milli],
    )?;
    changes.push(IndexChange::EvidenceDecay {
        keep_per_mille: keep,
        drop_below: d.drop_below_milli,
    });
    Ok(Outcome::Evidence {
        keys: key_count(tx)?,
    })
}

pub fn load_table(conn: &Connection) -> rusqlite::Result<EvidenceTable> {
    let mut stmt = conn.prepare("SELECT key, ham, spam, reject FROM evidence")?;
    let rows = stmt.query_map([], |r| {
        Ok((r.get::<_, String>(0)?, [r.get(1)?, r.get(2)?, r.get(3)?]))
    })?;
    rows.collect()
}

/// Every row in key order, for the state digest.
pub fn digest_rows(conn: &Connection, out: &mut dyn FnMut(&[u8])) -> rusqlite::Result<()> {
    let mut stmt = conn.prepare("SELECT key, ham, spam, reject FROM evidence ORDER BY key")?;
    let mut rows = stmt.query([])?;
    while let Some(r) = rows.next()? {
        out(format!(
            "ev:{}:{}:{}:{}",
            r.get::<_, String>(0)?,
            r.get::<_, i64>(1)?,
            r.get::<_, i64>(2)?,
            r.get::<_, i64>(3)?
        )
        .as_bytes());
    }
    Ok(())
}
