//! The recipient lists of local domains verified by list: the valid mailboxes, validated
//! and normalised before they are proposed, applied (`RecipientsAdd`, `RecipientsRemove`,
//! and a domain's removal), read back a page at a time, and kept in memory as hashes so
//! that a million mailboxes cost 16 MB, not a copy of every address.

use rusqlite::{params, Connection, Transaction};

use peage_mail::smtp::address::parse_recipient;
use peage_proto::v1::{RecipientsAdd, RecipientsRemove};

use super::knowledge::{recipient_key, IndexChange};
use crate::types::Outcome;

/// Most addresses in one command: entries stay small whatever an import holds.
pub const MAX_PER_COMMAND: usize = 10_000;

/// An address as stored: the SMTP edge's syntax rules (no quoting, no relay tricks), the
/// whole address lower-cased (mailbox names are compared without case, as hosting
/// platforms treat them); its domain returned apart.
pub fn normalize_address(address: &str) -> Result<(String, String), String> {
    let r = parse_recipient(address).map_err(|e| format!("`{address}`: {e}"))?;
    let address = r.address().to_lowercase();
    Ok((address, r.domain))
}

pub fn apply_add(
    tx: &Transaction<'_>,
    add: RecipientsAdd,
    changes: &mut Vec<IndexChange>,
) -> rusqlite::Result<Outcome> {
    let mut stmt = tx.prepare_cached(
        "INSERT INTO recipients (address, domain, author, created_at_ms)
         VALUES (?1, ?2, ?3, ?4) ON CONFLICT (address) DO NOTHING",
    )?;
    let mut added = Vec::new();
    for address in add.addresses {
        let domain = address.rsplit_once('@').map_or("", |(_, d)| d);
        if stmt.execute(params![address, domain, add.author, add.created_at_ms])? > 0 {
            added.push(recipient_key(&address));
        }
    }
    let changed = added.len() as u64;
    changes.push(IndexChange::Recipients {
        added,
        removed: Vec::new(),
    });
    Ok(Outcome::RecipientsChanged { changed })
}

pub fn apply_remove(
    tx: &Transaction<'_>,
    rm: RecipientsRemove,
    changes: &mut Vec<IndexChange>,
) -> rusqlite::Result<Outcome> {
    let mut stmt = tx.prepare_cached("DELETE FROM recipients WHERE address = ?1")?;
    let mut removed = Vec::new();
    for address in rm.addresses {
        if stmt.execute([&address])? > 0 {
            removed.push(recipient_key(&address));
        }
    }
    let changed = removed.len() as u64;
    changes.push(IndexChange::Recipients {
        added: Vec::new(),
        removed,
    });
    Ok(Outcome::RecipientsChanged { changed })
}

/// A removed domain takes its mailboxes with it.
pub fn remove_domain(
    tx: &Transaction<'_>,
    domain: &str,
    changes: &mut Vec<IndexChange>,
) -> rusqlite::Result<()> {
    let removed = page(tx, domain, "", usize::MAX)?
        .iter()
        .map(|a| recipient_key(a))
        .collect();
    tx.execute("DELETE FROM recipients WHERE domain = ?1", [domain])?;
    changes.push(IndexChange::Recipients {
        added: Vec::new(),
        removed,
    });
    Ok(())
}

/// A domain's addresses after `after`, in order, at most `limit`.
pub fn page(
    conn: &Connection,
    domain: &str,
    after: &str,
    limit: usize,
) -> rusqlite::Result<Vec<String>> {
    let mut stmt = conn.prepare_cached(
        "SELECT address FROM recipients WHERE domain = ?1 AND address > ?2
         ORDER BY address LIMIT ?3",
    )?;
    let limit = i64::try_from(limit).unwrap_or(i64::MAX);
    let rows = stmt.query_map(params![domain, after, limit], |r| r.get(0))?;
    rows.collect()
}

/// Every address's key, to rebuild the in-memory index.
pub fn load_keys(conn: &Connection) -> rusqlite::Result<std::collections::HashSet<u64>> {
    let mut stmt = conn.prepare("SELECT address FROM recipients")?;
    let rows = stmt.query_map([], |r| r.get::<_, String>(0))?;
    rows.map(|a| a.map(|a| recipient_key(&a))).collect()
}

/// Every mailbox in address order, for the state digest.
pub fn digest_rows(conn: &Connection, out: &mut dyn FnMut(&[u8])) -> rusqlite::Result<()> {
    let mut stmt = conn
        .prepare_cached("SELECT address, author, created_at_ms FROM recipients ORDER BY address")?;
    let mut rows = stmt.query([])?;
    while let Some(r) = rows.next()? {
        let (address, author, at): (String, String, i64) = (r.get(0)?, r.get(1)?, r.get(2)?);
        out(format!("recipient:{address}:{author}:{at}").as_bytes());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_are_lower_cased_and_checked_like_rcpt() {
        assert_eq!(
            normalize_address("Bob.Smith@Example.TEST").unwrap(),
            ("bob.smith@example.test".into(), "example.test".into())
        );
        for bad in [
            "bob",
            "a b@example.test",
            "x%y@example.test",
            "@example.test",
        ] {
            assert!(normalize_address(bad).is_err(), "{bad}");
        }
    }
}
