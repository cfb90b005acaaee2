//! Conversions between domain types and peage.v1 wire types, and the one mapping of
//! cluster errors to gRPC status codes.

use tonic::Status;

use peage_proto::v1::{ListEntry as WireEntry, ReadInfo};

use crate::cluster::{Freshness, WriteError};
use crate::state::lists::ListEntry;

pub fn entry_to_proto(e: &ListEntry) -> WireEntry {
    WireEntry {
        id: e.id,
        list: e.list as i32,
        kind: e.kind as i32,
        value: e.value.clone(),
        reason: e.reason.clone(),
        author: e.author.clone(),
        created_at_ms: e.created_at_ms,
        expires_at_ms: e.expires_at_ms,
    }
}

pub fn queued_to_proto(m: crate::state::spool::SpooledMessage) -> peage_proto::v1::QueuedMessage {
    peage_proto::v1::QueuedMessage {
        queue_id: m.queue_id,
        mail_from: m.mail_from,
        rcpt_to: m.rcpt_to,
        size: m.size,
        body_sha256: m.body_sha256,
        holders: m.holders,
        owner: m.owner,
        accepted_at_ms: m.accepted_at_ms,
        lease_until_ms: m.lease_until_ms,
        verdict: m.verdict,
        score_milli: m.score_milli,
        symbols: m
            .symbols
            .into_iter()
            .map(
                |(name, score_milli, reason)| peage_proto::v1::FilterSymbol {
                    name,
                    score_milli,
                    reason,
                },
            )
            .collect(),
    }
}

pub fn read_info(node_id: u64, f: &Freshness) -> ReadInfo {
    ReadInfo {
        stale: f.stale,
        node_id,
        applied_index: f.applied_index,
        known_commit_index: f.known_commit_index,
        lag_entries: f.known_commit_index.saturating_sub(f.applied_index),
        millis_since_leader_contact: f.millis_since_leader_contact,
    }
}

/// "Could not confirm" is UNAVAILABLE (retry, perhaps elsewhere); a refused change is
/// FAILED_PRECONDITION; anything else is INTERNAL.
pub fn write_status(e: WriteError) -> Status {
    match e {
        WriteError::NoQuorum(_) | WriteError::LeaderUnreachable { .. } | WriteError::Timeout(_) => {
            Status::unavailable(e.to_string())
        }
        WriteError::Refused(_) => Status::failed_precondition(e.to_string()),
        WriteError::Internal(_) => Status::internal(e.to_string()),
    }
}
