//! DKIM keys of hosted domains, replicated so that every site signs alike: added (the key
//! made by the proposer), activated (one selector per domain signs; the others wait, for
//! rotation), removed; the active ones loaded for signing, all listed without their private
//! halves, all covered by the state digest.

use std::collections::HashMap;

use rusqlite::{params, Connection, OptionalExtension, Transaction};

use peage_proto::v1::{DkimKeyRemove, DkimKeySet};

use super::knowledge::{DkimKey, IndexChange};
use crate::types::Outcome;

/// A key as operators see it (no private half).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DkimRow {
    pub domain: String,
    pub selector: String,
    pub algorithm: String,
    pub public_key: String,
    pub active: bool,
    pub author: String,
    pub created_at_ms: i64,
}

pub fn apply_set(
    tx: &Transaction<'_>,
    k: DkimKeySet,
    changes: &mut Vec<IndexChange>,
) -> rusqlite::Result<Outcome> {
    let stored: Option<(Vec<u8>, String, String)> = tx
        .query_row(
            "SELECT private_key, public_key, algorithm FROM dkim_keys
             WHERE domain = ?1 AND selector = ?2",
            params![k.domain, k.selector],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )
        .optional()?;
    let created = stored.is_none();
    let (private_key, public_key, algorithm) = match (k.private_key.is_empty(), stored) {
        (false, _) => (k.private_key, k.public_key, k.algorithm),
        (true, Some(stored)) => stored,
        (true, None) => {
            return Ok(Outcome::Refused(format!(
                "no DKIM key {} for {}",
                k.selector, k.domain
            )))
        }
    };
    if k.active {
        tx.execute(
            "UPDATE dkim_keys SET active = 0 WHERE domain = ?1",
            [&k.domain],
        )?;
    }
    tx.execute(
        "INSERT INTO dkim_keys
           (domain, selector, algorithm, private_key, public_key, active, author, created_at_ms)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)
         ON CONFLICT (domain, selector) DO UPDATE SET active = excluded.active,
           author = excluded.author",
        params![
            k.domain,
            k.selector,
            algorithm,
            private_key,
            public_key,
            k.active,
            k.author,
            k.created_at_ms
        ],
    )?;
    changes.push(IndexChange::Dkim {
        domain: k.domain.clone(),
        key: active_key(tx, &k.domain)?,
    });
    Ok(Outcome::Set { created })
}

pub fn apply_remove(
    tx: &Transaction<'_>,
    k: DkimKeyRemove,
    changes: &mut Vec<IndexChange>,
) -> rusqlite::Result<Outcome> {
    let removed = tx.execute(
        "DELETE FROM dkim_keys WHERE domain = ?1 AND selector = ?2",
        params![k.domain, k.selector],
    )? > 0;
    changes.push(IndexChange::Dkim {
        domain: k.domain.clone(),
        key: active_key(tx, &k.domain)?,
    });
    Ok(Outcome::Removed { removed })
}

fn active_key(conn: &Connection, domain: &str) -> rusqlite::Result<Option<DkimKey>> {
    conn.query_row(
        "SELECT selector, algorithm, private_key FROM dkim_keys WHERE domain = ?1 AND active = 1",
        [domain],
        |r| {
            Ok(DkimKey {
                selector: r.get(0)?,
                algorithm: r.get(1)?,
                private_key: r.get(2)?,
            })
        },
    )
    .optional()
}

/// The signing key of each domain that has one.
pub fn load(conn: &Connection) -> rusqlite::Result<HashMap<String, DkimKey>> {
    let mut stmt = conn.prepare(
        "SELECT domain, selector, algorithm, private_key FROM dkim_keys WHERE active = 1",
    )?;
    let rows = stmt.query_map([], |r| {
        Ok((
            r.get(0)?,
            DkimKey {
                selector: r.get(1)?,
                algorithm: r.get(2)?,
                private_key: r.get(3)?,
            },
        ))
    })?;
    rows.collect()
}

pub fn list(conn: &Connection) -> rusqlite::Result<Vec<DkimRow>> {
    let mut stmt = conn.prepare_cached(
        "SELECT domain, selector, algorithm, public_key, active, author, created_at_ms
         FROM dkim_keys ORDER BY domain, selector",
    )?;
    let rows = stmt.query_map([], |r| {
        Ok(DkimRow {
            domain: r.get(0)?,
            selector: r.get(1)?,
            algorithm: r.get(2)?,
            public_key: r.get(3)?,
            active: r.get(4)?,
            author: r.get(5)?,
            created_at_ms: r.get(6)?,
        })
    })?;
    rows.collect()
}

/// Every key in order (its private half as a hash), for the state digest.
pub fn digest_rows(conn: &Connection, out: &mut dyn FnMut(&[u8])) -> rusqlite::Result<()> {
    let mut stmt = conn.prepare_cached(
        "SELECT domain, selector, algorithm, private_key, public_key, active, author,
           created_at_ms FROM dkim_keys ORDER BY domain, selector",
    )?;
    let mut rows = stmt.query([])?;
    while let Some(r) = rows.next()? {
        let private: Vec<u8> = r.get(3)?;
        let (domain, selector, algorithm): (String, String, String) =
            (r.get(0)?, r.get(1)?, r.get(2)?);
        let (public, active, author, at): (String, bool, String, i64) =
            (r.get(4)?, r.get(5)?, r.get(6)?, r.get(7)?);
        let private = xxhash_rust::xxh3::xxh3_64(&private);
        out(format!(
            "dkim:{domain}:{selector}:{algorithm}:{private:x}:{public}:{active}:{author}:{at}"
        )
        .as_bytes());
    }
    Ok(())
}
