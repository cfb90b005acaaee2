//! Conversions between domain types and peage.v1 wire types, one per message, and the one
//! mapping of cluster and storage failures to gRPC status codes.

use openraft::StorageError;
use tonic::Status;

use peage_mail::lists::ListEntry;
use peage_proto::v1::{FilterSymbol, ListEntry as WireEntry, QueuedMessage, ReadInfo};

use crate::cluster::error::{Unavailable, WriteError};
use crate::cluster::Freshness;
use crate::state::spool::SpooledMessage;
use crate::types::{NodeId, Outcome};

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
        scope: e.scope.clone(),
    }
}

pub fn queued_to_proto(m: SpooledMessage) -> QueuedMessage {
    QueuedMessage {
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
            .map(|(name, score_milli, reason)| FilterSymbol {
                name,
                score_milli,
                reason,
            })
            .collect(),
        // The nodes' tracking knows these, not the spool (`messages::with_failed_attempts`).
        ..QueuedMessage::default()
    }
}

pub fn read_info(node_id: NodeId, f: &Freshness) -> ReadInfo {
    ReadInfo {
        stale: f.stale,
        node_id,
        applied_index: f.applied_index,
        known_commit_index: f.known_commit_index,
        lag_entries: f.known_commit_index.saturating_sub(f.applied_index),
        millis_since_leader_contact: f.millis_since_leader_contact,
    }
}

/// "Could not confirm" is UNAVAILABLE: retry, perhaps elsewhere.
pub fn unavailable_status(e: Unavailable) -> Status {
    Status::unavailable(e.to_string())
}

/// A refused change is FAILED_PRECONDITION; a broken node INTERNAL.
pub fn write_status(e: WriteError) -> Status {
    match e {
        WriteError::Unavailable(u) => unavailable_status(u),
        WriteError::Refused(_) => Status::failed_precondition(e.to_string()),
        WriteError::NodeBroken(_) => Status::internal(e.to_string()),
    }
}

/// An outcome the request did not expect: the refusal apply gave, most likely.
pub fn outcome_status(outcome: Outcome) -> Status {
    write_status(WriteError::from(outcome))
}

/// The local database failed under a read.
pub fn storage_status(e: StorageError<NodeId>) -> Status {
    Status::internal(e.to_string())
}

#[cfg(test)]
mod tests {
    use peage_mail::lists::{EntryKind, ListName};
    use peage_proto::v1;

    /// The mail front's list enums carry the peage.v1 numbers and words: each one is the
    /// proto's value of the same number, named the same (`ENTRY_KIND_IP` is `ip`).
    #[test]
    fn list_enums_match_the_proto() {
        for kind in EntryKind::ALL {
            let wire = v1::EntryKind::try_from(kind as i32).expect("a peage.v1 entry kind");
            let word = format!("ENTRY_KIND_{}", kind.as_str().to_ascii_uppercase());
            assert_eq!(wire.as_str_name(), word);
        }
        for list in ListName::ALL {
            let wire = v1::ListName::try_from(list as i32).expect("a peage.v1 list name");
            let word = format!("LIST_NAME_{}", list.as_str().to_ascii_uppercase());
            assert_eq!(wire.as_str_name(), word);
        }
        let known = (1..)
            .take_while(|i| v1::EntryKind::try_from(*i).is_ok())
            .count();
        assert_eq!(
            known,
            EntryKind::ALL.len(),
            "every proto entry kind is known here"
        );
        let known = (1..)
            .take_while(|i| v1::ListName::try_from(*i).is_ok())
            .count();
        assert_eq!(known, ListName::ALL.len(), "every proto list is known here");
    }
}
