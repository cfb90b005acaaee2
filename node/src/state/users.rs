//! Submission accounts: each login's Argon2id hash (made by the proposer: no password is
//! ever in the log) and the domains it may send as; applied from `UserSet` and
//! `UserRemove`, loaded whole into the in-memory index that SMTP AUTH reads, listed for
//! operators without their hashes, and covered by the state digest.

use std::collections::HashMap;

use rusqlite::{params, Connection, OptionalExtension, Transaction};

use peage_proto::v1::{UserRemove, UserSet};

use super::knowledge::{Account, IndexChange};
use crate::types::Outcome;

/// An account as operators see it (no hash).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserRow {
    pub login: String,
    pub domains: Vec<String>,
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
    tx.execute(
        "INSERT INTO users (login, password_hash, domains, author, created_at_ms)
         VALUES (?1, ?2, ?3, ?4, ?5)
         ON CONFLICT (login) DO UPDATE SET password_hash = excluded.password_hash,
           domains = excluded.domains, author = excluded.author,
           created_at_ms = excluded.created_at_ms",
        params![u.login, u.password_hash, domains, u.author, u.created_at_ms],
    )?;
    changes.push(IndexChange::UserSet {
        login: u.login,
        account: Account {
            password_hash: u.password_hash,
            domains: u.domains,
        },
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

fn domains_of(json: &str) -> Vec<String> {
    serde_json::from_str(json).unwrap_or_default()
}

/// Every account, to rebuild the in-memory index.
pub fn load(conn: &Connection) -> rusqlite::Result<HashMap<String, Account>> {
    let mut stmt = conn.prepare("SELECT login, password_hash, domains FROM users")?;
    let rows = stmt.query_map([], |r| {
        let domains: String = r.get(2)?;
        Ok((
            r.get(0)?,
            Account {
                password_hash: r.get(1)?,
                domains: domains_of(&domains),
            },
        ))
    })?;
    rows.collect()
}

/// Every account in login order, without hashes.
pub fn list(conn: &Connection) -> rusqlite::Result<Vec<UserRow>> {
    let mut stmt = conn
        .prepare_cached("SELECT login, domains, author, created_at_ms FROM users ORDER BY login")?;
    let rows = stmt.query_map([], |r| {
        let domains: String = r.get(1)?;
        Ok(UserRow {
            login: r.get(0)?,
            domains: domains_of(&domains),
            author: r.get(2)?,
            created_at_ms: r.get(3)?,
        })
    })?;
    rows.collect()
}

/// Every account in login order, for the state digest.
pub fn digest_rows(conn: &Connection, out: &mut dyn FnMut(&[u8])) -> rusqlite::Result<()> {
    let mut stmt = conn.prepare_cached(
        "SELECT login, password_hash, domains, author, created_at_ms FROM users ORDER BY login",
    )?;
    let mut rows = stmt.query([])?;
    while let Some(r) = rows.next()? {
        let (login, hash, domains, author, at): (String, String, String, String, i64) =
            (r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?);
        out(format!("user:{login}:{hash}:{domains}:{author}:{at}").as_bytes());
    }
    Ok(())
}
