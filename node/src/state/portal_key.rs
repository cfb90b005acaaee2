//! The portal's signing key: 32 random bytes the first proposer made, the same on every
//! node, so that a link one node signed opens the portal at any other. Applied from
//! `PortalKeySet` (the first key stays: a racing second proposal changes nothing), loaded
//! into the index the portal signs with, and digested.

use rusqlite::{params, Connection, OptionalExtension, Transaction};

use peage_proto::v1::PortalKeySet;

use super::knowledge::IndexChange;
use crate::types::Outcome;

/// The key's length in bytes.
pub const KEY_BYTES: usize = 32;

pub fn apply_set(
    tx: &Transaction<'_>,
    k: PortalKeySet,
    changes: &mut Vec<IndexChange>,
) -> rusqlite::Result<Outcome> {
    if k.key.len() != KEY_BYTES {
        return Ok(Outcome::Refused(format!(
            "a portal key is {KEY_BYTES} bytes, not {}",
            k.key.len()
        )));
    }
    let created = tx.execute(
        "INSERT OR IGNORE INTO portal_key (id, key) VALUES (1, ?1)",
        params![k.key],
    )? == 1;
    if let Some(key) = load(tx)? {
        changes.push(IndexChange::PortalKey(key));
    }
    Ok(Outcome::Set { created })
}

/// The key, once one was set.
pub fn load(conn: &Connection) -> rusqlite::Result<Option<Vec<u8>>> {
    conn.query_row("SELECT key FROM portal_key WHERE id = 1", [], |r| r.get(0))
        .optional()
}

pub fn digest_rows(conn: &Connection, out: &mut dyn FnMut(&[u8])) -> rusqlite::Result<()> {
    if let Some(key) = load(conn)? {
        out(format!("portal_key:{}", hex::encode(key)).as_bytes());
    }
    Ok(())
}
