//! The replicated policy — the filter's thresholds, inbound and outbound, the quarantine's
//! retention: applying
//! `PolicySet` and reading the policy back.

use rusqlite::{params, Connection, Transaction};

use peage_mail::filter::Policy;
use peage_proto::v1::PolicySet;

use super::knowledge::{ClusterPolicy, IndexChange};
use crate::types::Outcome;

pub fn apply_set(
    tx: &Transaction<'_>,
    p: PolicySet,
    changes: &mut Vec<IndexChange>,
) -> rusqlite::Result<Outcome> {
    if p.quarantine_at_milli >= p.reject_at_milli {
        return Ok(Outcome::Refused(
            "the quarantine threshold must be below the reject threshold".into(),
        ));
    }
    if p.quarantine_retention_ms < 0 {
        return Ok(Outcome::Refused(
            "the quarantine retention cannot be negative".into(),
        ));
    }
    if p.outbound_hold_at_milli < 0 {
        return Ok(Outcome::Refused(
            "the outbound hold threshold cannot be negative".into(),
        ));
    }
    let current = query(tx)?;
    let retention = match p.quarantine_retention_ms {
        0 => current.quarantine_retention_ms,
        ms => ms,
    };
    let outbound_hold = match p.outbound_hold_at_milli {
        0 => current.outbound_hold_at_milli,
        milli => milli,
    };
    tx.execute(
        "INSERT INTO policy (key, value) VALUES ('quarantine_at_milli', ?1), ('reject_at_milli', ?2),
           ('quarantine_retention_ms', ?3), ('outbound_hold_at_milli', ?4)
         ON CONFLICT (key) DO UPDATE SET value = excluded.value",
        params![p.quarantine_at_milli, p.reject_at_milli, retention, outbound_hold],
    )?;
    changes.push(IndexChange::Policy(ClusterPolicy {
        filter: Policy {
            quarantine_at_milli: p.quarantine_at_milli,
            reject_at_milli: p.reject_at_milli,
        },
        quarantine_retention_ms: retention,
        outbound_hold_at_milli: outbound_hold,
    }));
    Ok(Outcome::PolicySet)
}

/// The policy as stored; the defaults for keys never set.
pub fn query(conn: &Connection) -> rusqlite::Result<ClusterPolicy> {
    let mut p = ClusterPolicy::default();
    let mut stmt = conn.prepare_cached("SELECT key, value FROM policy")?;
    let rows = stmt.query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?)))?;
    for row in rows {
        match row? {
            (k, v) if k == "quarantine_at_milli" => p.filter.quarantine_at_milli = v,
            (k, v) if k == "reject_at_milli" => p.filter.reject_at_milli = v,
            (k, v) if k == "quarantine_retention_ms" => p.quarantine_retention_ms = v,
            (k, v) if k == "outbound_hold_at_milli" => p.outbound_hold_at_milli = v,
            _ => {}
        }
    }
    Ok(p)
}
