//! The write path, one verb per depth: `propose` hands a command to the group-commit
//! proposer; the proposer `write`s each batch here on the leader or forwards it there (where
//! `write_forwarded` feeds its commands to the leader's own proposer); the leader's
//! `write_here` checks it still leads with a live quorum and bounds the wait; `raft_write`
//! is the openraft call.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use openraft::error::{ClientWriteError, RaftError};
use openraft::{ChangeMembers, RaftMetrics};

use prost::Message;

use peage_proto::v1::{command, CommandBatch};

use super::error::{Unavailable, WriteError};
use super::proposer::Writer;
use super::protocol::{Committed, WriteOp};
use super::Cluster;
use crate::types::{BatchOutcome, LogPayload, NodeId, Outcome, PeageNode, COMMAND_VERSION};

impl Cluster {
    /// Proposes one command through the group-commit proposer; returns its log index and
    /// outcome once committed and applied.
    pub async fn propose(&self, command: command::Kind) -> Result<(u64, Outcome), WriteError> {
        self.inner.proposer.propose(command).await
    }

    /// Proposes a command that can wait a moment (up to the proposer's linger) to ride in
    /// another write's entry instead of taking a Raft round of its own.
    pub async fn propose_when_convenient(
        &self,
        command: command::Kind,
    ) -> Result<(u64, Outcome), WriteError> {
        self.inner.proposer.propose_when_convenient(command).await
    }

    /// Carries out `op` on the leader: here when this node leads, else forwarded to it.
    /// A leader that cannot be connected to (killed a moment ago, while this node still
    /// takes it for the leader) never got the operation: it goes to the next leader instead,
    /// if one is elected within the commit timeout.
    pub async fn write(&self, op: WriteOp) -> Result<Committed, WriteError> {
        let gives_up = Instant::now() + self.inner.commit_timeout;
        loop {
            let m = self.wait_for_leader().await?;
            let Some(leader) = m.current_leader else {
                return Err(Unavailable::NoQuorum("no leader is known".into()).into());
            };
            if leader == self.inner.id {
                return self.write_here(op).await;
            }
            let addr = leader_peer_addr(&m, leader)?;
            let timeout = self.inner.commit_timeout;
            // In the leader's clock, which judges it: ours may be off by any amount.
            let deadline_ms = self.leader_now_ms() + timeout.as_millis() as i64;
            let peers = &self.inner.peers;
            match peers
                .forward(leader, &addr, &op, deadline_ms, timeout)
                .await
            {
                Err(WriteError::Unavailable(Unavailable::LeaderNotConnected { .. }))
                    if self.wait_for_another_leader(leader, gives_up).await => {}
                done => return done,
            }
        }
    }

    /// Carries out `op` on this node if it leads with a live quorum; never forwards, so a
    /// forwarded operation cannot bounce between nodes.
    pub(crate) async fn write_here(&self, op: WriteOp) -> Result<Committed, WriteError> {
        self.check_leads_with_quorum().await?;
        let timeout = self.inner.commit_timeout;
        match tokio::time::timeout(timeout, self.raft_write(op)).await {
            Ok(r) => r,
            // A commit that did not come is most often a lost majority: say so when it is.
            Err(_) => {
                self.check_leader_quorum(&self.metrics())?;
                Err(Unavailable::Timeout(timeout.as_millis() as u64).into())
            }
        }
    }

    /// A batch a follower forwarded: its commands join this leader's own group commit, so
    /// that more MX make bigger entries rather than more of them. The reply carries each
    /// command's outcome in order; a command that fails fails the batch (its sender tells
    /// its callers the write may or may not have happened, as for any unconfirmed write).
    pub(crate) async fn write_forwarded(&self, payload: Vec<u8>) -> Result<Committed, WriteError> {
        self.check_leads_with_quorum().await?;
        let batch = match CommandBatch::decode(payload.as_slice()) {
            Ok(b) if b.version <= COMMAND_VERSION => b,
            // What this node cannot read goes to the log as it came: apply refuses it the
            // same way on every node.
            _ => return self.write_here(WriteOp::Commands(payload)).await,
        };
        let proposals = batch.commands.into_iter().map(|c| async move {
            match c.kind {
                Some(kind) => self.propose(kind).await,
                None => Ok((0, Outcome::Refused("empty command".into()))),
            }
        });
        let mut committed = Committed {
            log_index: 0,
            outcome: BatchOutcome(Vec::new()),
        };
        for proposed in futures::future::join_all(proposals).await {
            let (index, outcome) = proposed?;
            committed.log_index = committed.log_index.max(index);
            committed.outcome.0.push(outcome);
        }
        Ok(committed)
    }

    async fn raft_write(&self, op: WriteOp) -> Result<Committed, WriteError> {
        let raft = &self.inner.raft;
        let res = match op {
            WriteOp::Commands(batch) => raft.client_write(LogPayload(batch)).await,
            WriteOp::AddLearner { id, node } => raft.add_learner(id, node, false).await,
            WriteOp::Promote { id } => {
                check_promotion(&self.metrics(), id)?;
                let voters = ChangeMembers::AddVoterIds(BTreeSet::from([id]));
                raft.change_membership(voters, true).await
            }
            WriteOp::Remove { id } => {
                let change = removal(&self.metrics(), id)?;
                raft.change_membership(change, false).await
            }
        };
        match res {
            Ok(resp) => Ok(Committed {
                log_index: resp.log_id.index,
                outcome: resp.data,
            }),
            Err(RaftError::APIError(ClientWriteError::ForwardToLeader(f))) => {
                Err(Unavailable::NotLeader {
                    node: self.inner.id,
                    leader: f.leader_id,
                }
                .into())
            }
            Err(RaftError::APIError(ClientWriteError::ChangeMembershipError(c))) => {
                Err(WriteError::Refused(c.to_string()))
            }
            Err(RaftError::Fatal(f)) => Err(WriteError::NodeBroken(f.to_string())),
        }
    }

    /// Refuses unless this node leads and has heard from a majority lately.
    async fn check_leads_with_quorum(&self) -> Result<(), Unavailable> {
        let m = self.leader_metrics_once_acknowledged().await;
        if m.current_leader != Some(self.inner.id) {
            return Err(Unavailable::NotLeader {
                node: self.inner.id,
                leader: m.current_leader,
            });
        }
        self.check_leader_quorum(&m)
    }

    /// The metrics, after waiting (at most `quorum_lost_after`) for a leader elected a
    /// moment ago to hear its first acknowledgements: the majority that just voted for it
    /// answers within a heartbeat, and refusing mail in that gap would be a needless 451.
    pub(super) async fn leader_metrics_once_acknowledged(&self) -> RaftMetrics<NodeId, PeageNode> {
        let m = self.metrics();
        let id = self.inner.id;
        if m.current_leader != Some(id) || m.millis_since_quorum_ack.is_some() {
            return m;
        }
        let waited = self
            .inner
            .raft
            .wait(Some(self.inner.quorum_lost_after))
            .metrics(
                move |m| m.current_leader != Some(id) || m.millis_since_quorum_ack.is_some(),
                "a new leader's first acknowledgement from a majority",
            )
            .await;
        waited.unwrap_or_else(|_| self.metrics())
    }

    /// Refuses at once when this node, as leader, has not heard from a majority lately.
    pub(super) fn check_leader_quorum(
        &self,
        m: &RaftMetrics<NodeId, PeageNode>,
    ) -> Result<(), Unavailable> {
        let voters = m.membership_config.membership().voter_ids().count();
        if voters <= 1 {
            return Ok(());
        }
        match m.millis_since_quorum_ack {
            Some(ms) if Duration::from_millis(ms) <= self.inner.quorum_lost_after => Ok(()),
            Some(ms) => Err(Unavailable::NoQuorum(format!(
                "this node leads but has not heard from a majority for {ms} ms"
            ))),
            None => Err(Unavailable::NoQuorum(
                "this node leads but no majority has acknowledged it yet".into(),
            )),
        }
    }

    /// The current metrics once a leader is known, or NoQuorum after an election's time.
    pub(super) async fn wait_for_leader(
        &self,
    ) -> Result<RaftMetrics<NodeId, PeageNode>, Unavailable> {
        let m = self.metrics();
        if m.current_leader.is_some() {
            return Ok(m);
        }
        let wait = self
            .inner
            .raft
            .wait(Some(self.inner.commit_timeout.min(Duration::from_secs(2))))
            .metrics(|m| m.current_leader.is_some(), "a leader is known")
            .await;
        wait.map_err(|_| {
            Unavailable::NoQuorum("no leader is elected (no majority reachable?)".into())
        })
    }
}

/// The group-commit proposer writes its batches through the cluster's write path.
impl Writer for Cluster {
    async fn write(&self, op: WriteOp) -> Result<Committed, WriteError> {
        Cluster::write(self, op).await
    }
}

/// A learner may become a voter; anything else is refused before openraft is asked.
fn check_promotion(m: &RaftMetrics<NodeId, PeageNode>, id: NodeId) -> Result<(), WriteError> {
    let membership = m.membership_config.membership();
    if membership.get_node(&id).is_none() {
        return Err(WriteError::Refused(format!(
            "node {id} is not a member; add it as a learner first"
        )));
    }
    if membership.voter_ids().any(|v| v == id) {
        return Err(WriteError::Refused(format!("node {id} is already a voter")));
    }
    Ok(())
}

/// The membership change that removes `id`: a voter (never the last one) or a learner.
fn removal(
    m: &RaftMetrics<NodeId, PeageNode>,
    id: NodeId,
) -> Result<ChangeMembers<NodeId, PeageNode>, WriteError> {
    let membership = m.membership_config.membership();
    if membership.get_node(&id).is_none() {
        return Err(WriteError::Refused(format!("node {id} is not a member")));
    }
    let voters: BTreeSet<NodeId> = membership.voter_ids().collect();
    if !voters.contains(&id) {
        return Ok(ChangeMembers::RemoveNodes(BTreeSet::from([id])));
    }
    if voters.len() == 1 {
        return Err(WriteError::Refused("cannot remove the last voter".into()));
    }
    Ok(ChangeMembers::RemoveVoters(BTreeSet::from([id])))
}

/// The peer address of `leader`, from the membership this node knows.
pub(super) fn leader_peer_addr(
    m: &RaftMetrics<NodeId, PeageNode>,
    leader: NodeId,
) -> Result<String, Unavailable> {
    m.membership_config
        .membership()
        .get_node(&leader)
        .map(|n| n.peer_addr.clone())
        .ok_or_else(|| Unavailable::NoQuorum(format!("leader {leader} is not a member")))
}
