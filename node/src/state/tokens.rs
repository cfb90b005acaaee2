//! Admin API tokens made through the API: the roles a hosting provider delegates, each
//! token's domains and expiry, and only the SHA-256 of its secret (the proposer made the
//! secret and showed it once). Applied from `TokenSet` and `TokenRemove`, loaded whole into
//! the index the admin service authenticates against, listed without hashes, digested.

use std::collections::HashMap;

use rusqlite::{params, Connection, OptionalExtension, Transaction};

use peage_proto::v1::{TokenRemove, TokenSet};

pub use super::addressing::{Grant, Role};
use super::knowledge::IndexChange;
use super::schema::{from_json, to_json};
use crate::types::Outcome;

/// A token as operators see it (no hash).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenRow {
    pub grant: Grant,
    pub author: String,
    pub created_at_ms: i64,
}

pub fn apply_set(
    tx: &Transaction<'_>,
    t: TokenSet,
    changes: &mut Vec<IndexChange>,
) -> rusqlite::Result<Outcome> {
    let Some(role) = Role::parse(&t.role) else {
        return Ok(Outcome::Refused(format!("unknown role `{}`", t.role)));
    };
    let previous = hash_of(tx, &t.name)?;
    let clash = tx
        .query_row(
            "SELECT name FROM admin_tokens WHERE secret_sha256 = ?1 AND name <> ?2",
            params![t.secret_sha256, t.name],
            |r| r.get::<_, String>(0),
        )
        .optional()?;
    if let Some(other) = clash {
        return Ok(Outcome::Refused(format!(
            "token `{other}` has the same secret"
        )));
    }
    tx.execute(
        "INSERT INTO admin_tokens (name, role, domains, secret_sha256, author, created_at_ms,
           expires_at_ms)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)
         ON CONFLICT (name) DO UPDATE SET role = excluded.role, domains = excluded.domains,
           secret_sha256 = excluded.secret_sha256, author = excluded.author,
           created_at_ms = excluded.created_at_ms, expires_at_ms = excluded.expires_at_ms",
        params![
            t.name,
            role.as_str(),
            to_json(&t.domains),
            t.secret_sha256,
            t.author,
            t.created_at_ms,
            t.expires_at_ms
        ],
    )?;
    if let Some(old) = &previous {
        changes.push(IndexChange::TokenRemove {
            secret_sha256: old.clone(),
        });
    }
    changes.push(IndexChange::TokenSet {
        secret_sha256: t.secret_sha256,
        grant: Grant {
            name: t.name,
            role,
            domains: t.domains,
            expires_at_ms: t.expires_at_ms,
        },
    });
    Ok(Outcome::Set {
        created: previous.is_none(),
    })
}

pub fn apply_remove(
    tx: &Transaction<'_>,
    t: TokenRemove,
    changes: &mut Vec<IndexChange>,
) -> rusqlite::Result<Outcome> {
    let Some(hash) = hash_of(tx, &t.name)? else {
        return Ok(Outcome::Removed { removed: false });
    };
    tx.execute("DELETE FROM admin_tokens WHERE name = ?1", [&t.name])?;
    changes.push(IndexChange::TokenRemove {
        secret_sha256: hash,
    });
    Ok(Outcome::Removed { removed: true })
}

fn hash_of(conn: &Connection, name: &str) -> rusqlite::Result<Option<String>> {
    conn.query_row(
        "SELECT secret_sha256 FROM admin_tokens WHERE name = ?1",
        [name],
        |r| r.get(0),
    )
    .optional()
}

const COLUMNS: &str = "name, role, domains, expires_at_ms, author, created_at_ms, secret_sha256";

fn row(r: &rusqlite::Row<'_>) -> rusqlite::Result<(TokenRow, String)> {
    let role: String = r.get(1)?;
    let domains: String = r.get(2)?;
    Ok((
        TokenRow {
            grant: Grant {
                name: r.get(0)?,
                // Apply stored only roles it knew; a later release's unknown one grants the
                // least.
                role: Role::parse(&role).unwrap_or(Role::Auditor),
                domains: from_json(&domains)?,
                expires_at_ms: r.get(3)?,
            },
            author: r.get(4)?,
            created_at_ms: r.get(5)?,
        },
        r.get(6)?,
    ))
}

/// Every token's grant, by the SHA-256 of its secret.
pub fn load(conn: &Connection) -> rusqlite::Result<HashMap<String, Grant>> {
    let mut stmt = conn.prepare(&format!("SELECT {COLUMNS} FROM admin_tokens"))?;
    let rows = stmt.query_map([], row)?;
    rows.map(|r| r.map(|(t, hash)| (hash, t.grant))).collect()
}

pub fn list(conn: &Connection) -> rusqlite::Result<Vec<TokenRow>> {
    let mut stmt =
        conn.prepare_cached(&format!("SELECT {COLUMNS} FROM admin_tokens ORDER BY name"))?;
    let rows = stmt.query_map([], row)?;
    rows.map(|r| r.map(|(t, _)| t)).collect()
}

/// Every token in name order, for the state digest.
pub fn digest_rows(conn: &Connection, out: &mut dyn FnMut(&[u8])) -> rusqlite::Result<()> {
    let mut stmt =
        conn.prepare_cached(&format!("SELECT {COLUMNS} FROM admin_tokens ORDER BY name"))?;
    for r in stmt.query_map([], row)? {
        let (t, hash) = r?;
        let g = &t.grant;
        out(format!(
            "token:{}:{}:{}:{}:{}:{}:{hash}",
            g.name,
            g.role.as_str(),
            g.domains.join(","),
            g.expires_at_ms,
            t.author,
            t.created_at_ms
        )
        .as_bytes());
    }
    Ok(())
}
