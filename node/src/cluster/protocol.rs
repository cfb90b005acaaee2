//! What nodes ask each other beyond Raft's own RPCs: a write only the leader can carry out,
//! forwarded with the time after which its sender has given up, and the reply.

use serde::{Deserialize, Serialize};

use crate::types::{BatchOutcome, NodeId, PeageNode};

/// A write only the leader can carry out; followers forward it over the peer service.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum WriteOp {
    /// An encoded `CommandBatch`.
    Commands(Vec<u8>),
    AddLearner {
        id: NodeId,
        node: PeageNode,
    },
    Promote {
        id: NodeId,
    },
    Remove {
        id: NodeId,
    },
}

/// A write the leader committed: where in the log, and what applying it did.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Committed {
    pub log_index: u64,
    pub outcome: BatchOutcome,
}

/// A forwarded write and the wall-clock time (ms) after which the follower that sent it has
/// given up: the leader then refuses it, so a request delayed in the network (a partition
/// that heals) is not committed after its client was told it failed.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Forwarded {
    pub op: WriteOp,
    pub deadline_ms: i64,
}
