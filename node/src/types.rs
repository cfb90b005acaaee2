//! The vocabulary every layer of the node shares: node ids and what the membership records
//! of a node, the log entry's payload and its format version, what applying a command did,
//! and openraft's type config that binds them together.

use openraft::{SnapshotMeta, StoredMembership};
use serde::{Deserialize, Serialize};

pub type NodeId = u64;

/// What the cluster knows of a node; replicated in the membership.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PeageNode {
    pub site: String,
    pub peer_addr: String,
    pub admin_addr: String,
}

/// A log entry's application data: an encoded protobuf `peage.v1.CommandBatch`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LogPayload(pub Vec<u8>);

/// The format of `CommandBatch` this release writes and understands (2: takeovers of many
/// messages in one command, hand-offs).
pub const COMMAND_VERSION: u32 = 2;

/// What applying one command did; returned to the proposer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Outcome {
    ListAdded {
        entry_id: u64,
        created: bool,
    },
    ListRemoved {
        removed: u32,
    },
    Swept {
        removed: u32,
    },
    DomainSet {
        created: bool,
    },
    DomainRemoved {
        removed: bool,
    },
    /// A keyed row (a submission account, a DKIM key) created or changed, or removed; an
    /// account unlocked.
    Set {
        created: bool,
    },
    Removed {
        removed: bool,
    },
    /// An outbound spam verdict counted (or an operator's lock); whether the account is
    /// locked by it.
    Strike {
        locked: bool,
    },
    /// Mailboxes added or removed (those already there, or not, left out).
    RecipientsChanged {
        changed: u64,
    },
    Spooled,
    SpoolDone {
        remaining: u32,
    },
    PolicySet,
    /// An operator's change to one message; `found` is false when no such message was.
    SpoolChanged {
        found: bool,
    },
    /// Leases renewed or messages taken over.
    SpoolOwned {
        changed: u32,
    },
    /// A message taught to the classifier: new, already known that way, or moved from
    /// the other class.
    Learned {
        change: LearnChange,
    },
    /// Evidence counted, or decayed: how many keys remain.
    Evidence {
        keys: u64,
    },
    /// The command was refused, the same way on every node (e.g. an undecodable payload).
    Refused(String),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum LearnChange {
    New,
    Unchanged,
    Moved,
}

impl LearnChange {
    pub fn as_str(self) -> &'static str {
        match self {
            LearnChange::New => "new",
            LearnChange::Unchanged => "unchanged",
            LearnChange::Moved => "moved",
        }
    }
}

/// The outcome of every command of one log entry, in order.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct BatchOutcome(pub Vec<Outcome>);

openraft::declare_raft_types!(
    pub TypeConfig:
        D = LogPayload,
        R = BatchOutcome,
        NodeId = NodeId,
        Node = PeageNode,
        SnapshotData = crate::snapshot_file::SnapshotFile,
);

/// The last membership a log entry or snapshot carried.
pub type Membership = StoredMembership<NodeId, PeageNode>;
/// What a snapshot covers: its last log id, membership and id.
pub type SnapshotInfo = SnapshotMeta<NodeId, PeageNode>;
