//! Submission principals: each login's Argon2id hash (made by the proposer: no password is
//! ever in the log; none for a platform MTA trusted by network), the domains it may send
//! as, its trusted networks and identity method; applied from `UserSet` and `UserRemove`,
//! loaded whole into the in-memory index that SMTP AUTH reads, listed for operators
//! without their hashes, and covered by the state digest.

use std::collections::HashMap;

use rusqlite::{params, Connection, OptionalExtension, Transaction};

use peage_proto::v1::{UserRemove, UserSet};

use super::knowledge::{Account, IdentityFrom, IndexChange};
use crate::types::Outcome;

/// An account as operators see it (no hash).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserRow {
    pub login: String,
    pub domains: Vec<String>,
    pub networks: Vec<String>,
    pub identity: String,
    pub can_log_in: bool,
    pub author: String,
    pub created_at_ms: i64,
}

pub fn apply_set(
    tx: &Transaction<'_>,
    u: UserSet,
    changes: &mut Vec<IndexChange>,
) -> rusqlite::Result<Outcome> {
    let existed = tx
        .query_row("SELECT 1 FROM users WHERE login = ?1", [&u.login], |_| {
            Ok(())
        })
        .optional()?
        .is_some();
    let domains = serde_json::to_string(&u.domains).unwrap_or_else(|_| "[]".into());
    let networks = serde_json::to_string(&u.networks).unwrap_or_else(|_| "[]".into());
    tx.execute(
        "INSERT INTO users (login, password_hash, domains, author, created_at_ms, networks,
           identity)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)
         ON CONFLICT (login) DO UPDATE SET password_hash = excluded.password_hash,
           domains = excluded.domains, author = excluded.author,
           created_at_ms = excluded.created_at_ms, networks = excluded.networks,
           identity = excluded.identity",
        params![
            u.login,
            u.password_hash,
            domains,
            u.author,
            u.created_at_ms,
            networks,
            u.identity
        ],
    )?;
    changes.push(IndexChange::UserSet {
        login: u.login,
        account: account_of(u.password_hash, &domains, &networks, &u.identity),
    });
    Ok(Outcome::Set { created: !existed })
}

pub fn apply_remove(
    tx: &Transaction<'_>,
    u: UserRemove,
    changes: &mut Vec<IndexChange>,
) -> rusqlite::Result<Outcome> {
    let removed = tx.execute("DELETE FROM users WHERE login = ?1", [&u.login])? > 0;
    changes.push(IndexChange::UserRemove { login: u.login });
    Ok(Outcome::Removed { removed })
}

fn strings_of(json: &str) -> Vec<String> {
    serde_json::from_str(json).unwrap_or_default()
}

/// The index's view of a stored row (networks and identity were checked by the proposer;
/// one that does not parse is left out rather than trusted).
fn account_of(password_hash: String, domains: &str, networks: &str, identity: &str) -> Account {
    Account {
        password_hash,
        domains: strings_of(domains),
        networks: strings_of(networks)
            .iter()
            .filter_map(|n| n.parse().ok())
            .collect(),
        identity: IdentityFrom::parse(identity).unwrap_or_default(),
    }
}

/// Every account, to rebuild the in-memory index.
pub fn load(conn: &Connection) -> rusqlite::Result<HashMap<String, Account>> {
    let mut stmt =
        conn.prepare("SELECT login, password_hash, domains, networks, identity FROM users")?;
    let rows = stmt.query_map([], |r| {
        let (domains, networks, identity): (String, String, String) =
            (r.get(2)?, r.get(3)?, r.get(4)?);
        Ok((
            r.get(0)?,
            account_of(r.get(1)?, &domains, &networks, &identity),
        ))
    })?;
    rows.collect()
}

/// Every account in login order, without hashes.
pub fn list(conn: &Connection) -> rusqlite::Result<Vec<UserRow>> {
    let mut stmt = conn.prepare_cached(
        "SELECT login, domains, author, created_at_ms, networks, identity, password_hash != ''
         FROM users ORDER BY login",
    )?;
    let rows = stmt.query_map([], |r| {
        let (domains, networks): (String, String) = (r.get(1)?, r.get(4)?);
        Ok(UserRow {
            login: r.get(0)?,
            domains: strings_of(&domains),
            networks: strings_of(&networks),
            identity: r.get(5)?,
            can_log_in: r.get(6)?,
            author: r.get(2)?,
            created_at_ms: r.get(3)?,
        })
    })?;
    rows.collect()
}

/// Every account in login order, for the state digest.
pub fn digest_rows(conn: &Connection, out: &mut dyn FnMut(&[u8])) -> rusqlite::Result<()> {
    let mut stmt = conn.prepare_cached(
        "SELECT login, password_hash, domains, author, created_at_ms, networks, identity
         FROM users ORDER BY login",
    )?;
    let mut rows = stmt.query([])?;
    while let Some(r) = rows.next()? {
        let (login, hash, domains, author, at): (String, String, String, String, i64) =
            (r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?);
        let (networks, identity): (String, String) = (r.get(5)?, r.get(6)?);
        out(
            format!("user:{login}:{hash}:{domains}:{author}:{at}:{networks}:{identity}").as_bytes(),
        );
    }
    Ok(())
}
