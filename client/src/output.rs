//! How `peagectl` shows what it read: tables for people, JSON (`--json`) for scripts, and
//! the note a stale read carries. Every renderer of a wire type lives here, once.

use serde_json::{json, Value};

use peage_client::v1::{FilterSymbol, ListEntry, QueuedMessage, ReadInfo};

use crate::wire::{kind_word, list_word};

/// Milli-points as points.
pub fn points(milli: i64) -> f64 {
    milli as f64 / 1000.0
}

/// The null sender shown as `<>`.
pub fn sender(mail_from: &str) -> &str {
    if mail_from.is_empty() {
        "<>"
    } else {
        mail_from
    }
}

/// Prints one JSON document on a line.
pub fn print_json(value: Value) {
    println!("{value}");
}

pub fn entry_json(e: &ListEntry) -> Value {
    json!({
        "id": e.id,
        "list": list_word(e.list),
        "kind": kind_word(e.kind),
        "value": e.value,
        "reason": e.reason,
        "author": e.author,
        "created_at_ms": e.created_at_ms,
        "expires_at_ms": e.expires_at_ms,
        "scope": e.scope,
    })
}

pub fn entries_json(entries: &[ListEntry]) -> Vec<Value> {
    entries.iter().map(entry_json).collect()
}

pub fn read_json(r: &Option<ReadInfo>) -> Value {
    match r {
        None => Value::Null,
        Some(r) => json!({
            "stale": r.stale,
            "node_id": r.node_id,
            "applied_index": r.applied_index,
            "known_commit_index": r.known_commit_index,
            "lag_entries": r.lag_entries,
            "millis_since_leader_contact": r.millis_since_leader_contact,
        }),
    }
}

/// On standard error, how far behind a stale read may be.
pub fn print_read_note(r: &Option<ReadInfo>) {
    if let Some(r) = r {
        if r.stale {
            let contact = r
                .millis_since_leader_contact
                .map_or("never heard from a leader".to_owned(), |ms| {
                    format!("last heard from the leader {ms} ms ago")
                });
            eprintln!(
                "(stale read from node {}: applied index {}, {} entries behind what it knows; {contact})",
                r.node_id, r.applied_index, r.lag_entries
            );
        }
    }
}

pub fn print_entries(entries: &[ListEntry]) {
    println!(
        "{:>6}  {:<5}  {:<6}  {:<32}  {:<16}  {:<12}  {:<13}  REASON",
        "ID", "LIST", "KIND", "VALUE", "SCOPE", "AUTHOR", "EXPIRES(ms)"
    );
    for e in entries {
        println!(
            "{:>6}  {:<5}  {:<6}  {:<32}  {:<16}  {:<12}  {:<13}  {}",
            e.id,
            list_word(e.list),
            kind_word(e.kind),
            e.value,
            if e.scope.is_empty() {
                "cluster"
            } else {
                &e.scope
            },
            e.author,
            e.expires_at_ms.map_or("never".into(), |t| t.to_string()),
            e.reason
        );
    }
}

pub fn symbols_json(symbols: &[FilterSymbol]) -> Vec<Value> {
    symbols
        .iter()
        .map(|s| json!({"name": s.name, "score": points(s.score_milli), "reason": s.reason}))
        .collect()
}

/// One line per symbol: name, points, reason.
pub fn print_symbols(symbols: &[FilterSymbol]) {
    for s in symbols {
        println!(
            "  {:<26} {:>8}  {}",
            s.name,
            points(s.score_milli),
            s.reason
        );
    }
}

pub fn message_json(m: &QueuedMessage) -> Value {
    json!({
        "queue_id": m.queue_id, "mail_from": m.mail_from, "rcpt_to": m.rcpt_to,
        "size": m.size, "body_sha256": m.body_sha256, "holders": m.holders,
        "owner": m.owner, "owner_site": m.owner_site, "accepted_at_ms": m.accepted_at_ms,
        "lease_until_ms": m.lease_until_ms, "verdict": m.verdict,
        "score": points(m.score_milli), "symbols": symbols_json(&m.symbols),
        "failed_attempts": m.failed_attempts, "last_failed_ms": m.last_failed_ms,
        "last_failure": m.last_failure,
    })
}

/// UNIX milliseconds as `YYYY-MM-DD HH:MM:SS.mmm` in UTC.
pub fn utc(ms: i64) -> String {
    match chrono::DateTime::from_timestamp_millis(ms) {
        Some(t) => t.format("%Y-%m-%d %H:%M:%S%.3f").to_string(),
        None => format!("{ms} ms"),
    }
}

#[cfg(test)]
mod tests {
    use super::utc;

    #[test]
    fn utc_reads_as_a_calendar_date() {
        assert_eq!(utc(0), "1970-01-01 00:00:00.000");
        assert_eq!(utc(1_796_533_923_456), "2026-12-06 05:12:03.456");
        assert_eq!(utc(951_782_400_000), "2000-02-29 00:00:00.000");
    }
}
