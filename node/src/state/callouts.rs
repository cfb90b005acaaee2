//! The callout cache of domains verified by callout: what a downstream answered to `RCPT`
//! for a mailbox, valid or not, until its expiry; applied from `CalloutResults` (which also
//! drops a bounded number of expired results, judged by the command's own clock), read
//! back whole to rebuild the in-memory index, and covered by the state digest.

use rusqlite::{params, Connection, Transaction};

use peage_proto::v1::CalloutResults;

use super::knowledge::{recipient_key, CalloutAnswer, IndexChange};
use crate::types::Outcome;

/// Most results one command carries, and most expired ones it drops: entries stay small.
pub const MAX_PER_COMMAND: usize = 1_000;

pub fn apply_results(
    tx: &Transaction<'_>,
    results: CalloutResults,
    changes: &mut Vec<IndexChange>,
) -> rusqlite::Result<Outcome> {
    let expired: Vec<String> = {
        let mut stmt = tx.prepare_cached(
            "SELECT address FROM callouts WHERE expires_at_ms <= ?1
             ORDER BY expires_at_ms, address LIMIT ?2",
        )?;
        let rows = stmt.query_map(params![results.now_ms, MAX_PER_COMMAND as i64], |r| {
            r.get(0)
        })?;
        rows.collect::<rusqlite::Result<_>>()?
    };
    let mut delete = tx.prepare_cached("DELETE FROM callouts WHERE address = ?1")?;
    for address in &expired {
        delete.execute([address])?;
    }
    let mut upsert = tx.prepare_cached(
        "INSERT INTO callouts (address, valid, expires_at_ms) VALUES (?1, ?2, ?3)
         ON CONFLICT (address) DO UPDATE SET valid = ?2, expires_at_ms = ?3",
    )?;
    let mut set = Vec::new();
    for r in results.results.iter().take(MAX_PER_COMMAND) {
        upsert.execute(params![r.address, r.valid, r.expires_at_ms])?;
        set.push((recipient_key(&r.address), (r.valid, r.expires_at_ms)));
    }
    let changed = set.len() as u64;
    changes.push(IndexChange::Callouts {
        set,
        removed: expired.iter().map(|a| recipient_key(a)).collect(),
    });
    Ok(Outcome::RecipientsChanged { changed })
}

/// Every cached answer by mailbox key, to rebuild the in-memory index.
pub fn load(conn: &Connection) -> rusqlite::Result<std::collections::HashMap<u64, CalloutAnswer>> {
    let mut stmt = conn.prepare("SELECT address, valid, expires_at_ms FROM callouts")?;
    let rows = stmt.query_map([], |r| {
        let address: String = r.get(0)?;
        Ok((recipient_key(&address), (r.get(1)?, r.get(2)?)))
    })?;
    rows.collect()
}

/// Every cached answer in address order, for the state digest.
pub fn digest_rows(conn: &Connection, out: &mut dyn FnMut(&[u8])) -> rusqlite::Result<()> {
    let mut stmt =
        conn.prepare_cached("SELECT address, valid, expires_at_ms FROM callouts ORDER BY address")?;
    let mut rows = stmt.query([])?;
    while let Some(r) = rows.next()? {
        let (address, valid, until): (String, bool, i64) = (r.get(0)?, r.get(1)?, r.get(2)?);
        out(format!("callout:{address}:{valid}:{until}").as_bytes());
    }
    Ok(())
}
