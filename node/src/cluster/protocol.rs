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
/// (`Op` is the operation or, as sent, a reference to it: both encode the same.)
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Forwarded<Op = WriteOp> {
    pub op: Op,
    pub deadline_ms: i64,
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A follower sends a reference to its operation (it keeps the operation to send again
    /// to the next leader); the leader decodes an owned one: the bytes must be the same.
    #[test]
    fn a_forwarded_reference_encodes_as_the_operation_itself() {
        let op = WriteOp::Commands(vec![1, 2, 3, 250]);
        let sent = bincode::serialize(&Forwarded {
            op: &op,
            deadline_ms: 1_796_667_000_000,
        })
        .unwrap();
        let owned = Forwarded {
            op: op.clone(),
            deadline_ms: 1_796_667_000_000,
        };
        assert_eq!(sent, bincode::serialize(&owned).unwrap());
        let decoded: Forwarded = bincode::deserialize(&sent).unwrap();
        assert!(matches!(decoded.op, WriteOp::Commands(b) if b == [1, 2, 3, 250]));
    }
}
