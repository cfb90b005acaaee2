//! Why a cluster operation did not happen, or may not have: the cluster could not confirm
//! it (`Unavailable`: retry, perhaps on another node), the request itself cannot be carried
//! out (`WriteError::Refused`), or this node is broken (`WriteError::NodeBroken`).

use serde::{Deserialize, Serialize};

use crate::types::NodeId;

/// The cluster could not confirm an operation: no majority, not the leader any more, no
/// reply in time. A write may or may not have been applied; a read was not answered.
#[derive(Debug, Clone, thiserror::Error, Serialize, Deserialize)]
pub enum Unavailable {
    #[error("no quorum: {0}")]
    NoQuorum(String),
    #[error("node {node} is not the leader (leader: {leader:?}); retry")]
    NotLeader {
        node: NodeId,
        leader: Option<NodeId>,
    },
    #[error("not confirmed within {0} ms; a write may or may not have been applied")]
    Timeout(u64),
    #[error("the leader (node {leader} at {addr}) is unreachable: {reason}")]
    LeaderUnreachable {
        leader: NodeId,
        addr: String,
        reason: String,
    },
    /// No connection to the leader could be made (its process or machine is gone): the
    /// operation was never sent, so it may go to the next leader. Last, so that the variants
    /// before keep their encoding between versions.
    #[error("the leader (node {leader} at {addr}) cannot be connected to: {reason}")]
    LeaderNotConnected {
        leader: NodeId,
        addr: String,
        reason: String,
    },
}

/// Why a write did not happen, or may not have.
#[derive(Debug, Clone, thiserror::Error, Serialize, Deserialize)]
pub enum WriteError {
    #[error(transparent)]
    Unavailable(#[from] Unavailable),
    /// This request cannot be carried out, the same way on every node (an invalid
    /// membership change, a command apply refused): retrying it unchanged will not help.
    #[error("{0}")]
    Refused(String),
    /// This node cannot write at all (Raft stopped on a fatal error, its proposer is
    /// gone): an operator must look at it.
    #[error("this node is broken: {0}")]
    NodeBroken(String),
}

/// An outcome its proposer did not expect: the refusal apply gave (the same on every node),
/// or, should apply ever answer a command with another command's outcome, that outcome.
impl From<crate::types::Outcome> for WriteError {
    fn from(outcome: crate::types::Outcome) -> WriteError {
        match outcome {
            crate::types::Outcome::Refused(why) => WriteError::Refused(why),
            other => WriteError::Refused(format!("unexpected outcome {other:?}")),
        }
    }
}
