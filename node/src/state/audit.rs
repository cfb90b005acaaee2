//! The audit log: one replicated record per admin write (who, with which role, from where,
//! what, and how it ended), applied from `AuditRecord` with the proposer's retention,
//! searched newest first for `peagectl audit ls`, covered by the state digest.

use rusqlite::types::Value;
use rusqlite::{params, Connection, Transaction};

use peage_proto::v1::{AuditEntry, AuditListRequest, AuditRecord};

use crate::types::Outcome;

/// The largest page a listing returns.
pub const MAX_LIMIT: u32 = 1000;

pub fn apply_record(tx: &Transaction<'_>, a: AuditRecord) -> rusqlite::Result<Outcome> {
    tx.execute(
        "INSERT INTO audit_log (at_ms, token, role, client, node_id, action, target, outcome)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
        params![
            a.at_ms,
            a.token,
            a.role,
            a.client,
            a.node_id as i64,
            a.action,
            a.target,
            a.outcome
        ],
    )?;
    tx.execute("DELETE FROM audit_log WHERE at_ms < ?1", [a.keep_since_ms])?;
    Ok(Outcome::Set { created: true })
}

/// The records matching `q`, newest first.
pub fn list(conn: &Connection, q: &AuditListRequest) -> rusqlite::Result<Vec<AuditEntry>> {
    let mut clauses: Vec<&str> = Vec::new();
    let mut values: Vec<Value> = Vec::new();
    for (clause, text) in [
        ("token = ?", &q.token),
        ("lower(action) = lower(?)", &q.action),
    ] {
        if !text.is_empty() {
            clauses.push(clause);
            values.push(Value::Text(text.trim().to_owned()));
        }
    }
    if q.failed_only {
        clauses.push("outcome <> 'ok'");
    }
    for (clause, ms) in [("at_ms >= ?", q.since_ms), ("at_ms <= ?", q.until_ms)] {
        if ms != 0 {
            clauses.push(clause);
            values.push(Value::Integer(ms));
        }
    }
    let filter = match clauses.is_empty() {
        true => String::new(),
        false => format!("WHERE {}", clauses.join(" AND ")),
    };
    let limit = match q.limit {
        0 => 100,
        n => n.min(MAX_LIMIT),
    };
    values.push(Value::Integer(limit as i64));
    let mut stmt = conn.prepare(&format!(
        "SELECT id, at_ms, token, role, client, node_id, action, target, outcome
         FROM audit_log {filter} ORDER BY id DESC LIMIT ?"
    ))?;
    let rows = stmt.query_map(rusqlite::params_from_iter(values), entry)?;
    rows.collect()
}

fn entry(r: &rusqlite::Row<'_>) -> rusqlite::Result<AuditEntry> {
    Ok(AuditEntry {
        id: r.get::<_, i64>(0)? as u64,
        at_ms: r.get(1)?,
        token: r.get(2)?,
        role: r.get(3)?,
        client: r.get(4)?,
        node_id: r.get::<_, i64>(5)? as u64,
        action: r.get(6)?,
        target: r.get(7)?,
        outcome: r.get(8)?,
    })
}

/// Every record in order, for the state digest.
pub fn digest_rows(conn: &Connection, out: &mut dyn FnMut(&[u8])) -> rusqlite::Result<()> {
    let mut stmt = conn.prepare_cached(
        "SELECT id, at_ms, token, role, client, node_id, action, target, outcome
         FROM audit_log ORDER BY id",
    )?;
    for e in stmt.query_map([], entry)? {
        let e = e?;
        out(format!(
            "audit:{}:{}:{}:{}:{}:{}:{}:{}:{}",
            e.id, e.at_ms, e.token, e.role, e.client, e.node_id, e.action, e.target, e.outcome
        )
        .as_bytes());
    }
    Ok(())
}
