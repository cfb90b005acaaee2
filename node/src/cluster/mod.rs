//! openraft glue: the type config, the RocksDB log store, the peer network over tonic, the
//! group-commit proposer, and the `Cluster` handle through which the rest of the node
//! writes (forwarded to the leader), reads (linearizable or stale) and changes membership.

pub mod log_store;
pub mod network;
pub mod peer_service;
pub mod proposer;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use openraft::{ChangeMembers, Raft, ServerState};
use serde::{Deserialize, Serialize};

use crate::config::Config;
use crate::state::{BatchOutcome, StateStore};

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

openraft::declare_raft_types!(
    pub TypeConfig:
        D = LogPayload,
        R = BatchOutcome,
        NodeId = NodeId,
        Node = PeageNode,
        SnapshotData = crate::state::SnapshotFile,
);

pub type PeageRaft = Raft<TypeConfig>;

/// Why a write did not happen (or may not have). Every variant but `Refused` means "try
/// again, maybe elsewhere": the cluster could not confirm a commit.
#[derive(Debug, Clone, thiserror::Error, Serialize, Deserialize)]
pub enum WriteError {
    #[error("no quorum: {0}")]
    NoQuorum(String),
    #[error("commit not confirmed within {0} ms; the write may or may not have been applied")]
    Timeout(u64),
    #[error("the leader (node {leader} at {addr}) is unreachable: {reason}")]
    LeaderUnreachable {
        leader: NodeId,
        addr: String,
        reason: String,
    },
    #[error("{0}")]
    Refused(String),
    #[error("internal error: {0}")]
    Internal(String),
}

/// Why a read could not be confirmed as up to date.
pub type ReadError = WriteError;

/// A forwarded operation and the wall-clock time (ms) after which the follower that sent
/// it has given up: the leader then refuses it, so a request delayed in the network (a
/// partition that heals) is not committed after its client was told it failed.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Forwarded {
    pub op: LeaderOp,
    pub deadline_ms: i64,
}

/// An operation only the leader can carry out; followers forward it over the peer service.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum LeaderOp {
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

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LeaderOpDone {
    pub log_index: u64,
    pub outcome: BatchOutcome,
}

/// How fresh a read is.
#[derive(Debug, Clone, Default)]
pub struct Freshness {
    pub stale: bool,
    pub applied_index: u64,
    pub known_commit_index: u64,
    pub millis_since_leader_contact: Option<u64>,
}

/// The last time a leader's AppendEntries reached this node, and the commit index it carried.
#[derive(Default)]
pub(crate) struct LeaderContact {
    at: Option<Instant>,
    commit_index: u64,
}

/// A cheap-to-clone handle on this node's membership of the cluster.
#[derive(Clone)]
pub struct Cluster {
    inner: Arc<ClusterInner>,
}

struct ClusterInner {
    id: NodeId,
    site: String,
    raft: PeageRaft,
    state: StateStore,
    /// Message bodies held by this node; served to peers over the peer service.
    blobs: crate::state::blobs::BlobStore,
    /// Peer connections, shared with openraft's network factory.
    peers: network::PeerClients,
    proposer: proposer::Proposer,
    /// Tells stale reads how far behind the leader this node may be.
    leader_contact: Mutex<LeaderContact>,
    commit_timeout: Duration,
    quorum_lost_after: Duration,
}

impl Cluster {
    /// Opens storage, starts Raft and, on an empty node listed as an initial member with
    /// `bootstrap = true`, initialises the cluster.
    pub async fn start(config: &Config, data_dir: &std::path::Path) -> anyhow::Result<Cluster> {
        use anyhow::Context;
        std::fs::create_dir_all(data_dir)
            .with_context(|| format!("cannot create data dir {}", data_dir.display()))?;
        let log = log_store::LogStore::open(&data_dir.join("raft-log")).with_context(|| {
            format!(
                "cannot open the Raft log in {} (is another node using this data dir?)",
                data_dir.display()
            )
        })?;
        let state = StateStore::open(data_dir)
            .map_err(|e| anyhow::anyhow!("cannot open the state database: {e}"))?;
        let blobs = crate::state::blobs::BlobStore::open(&data_dir.join("blobs"))
            .context("cannot open the blob store")?;
        let r = &config.raft;
        let raft_config = openraft::Config {
            cluster_name: "peage".into(),
            heartbeat_interval: r.heartbeat_interval_ms,
            election_timeout_min: r.election_timeout_min_ms,
            election_timeout_max: r.election_timeout_max_ms,
            install_snapshot_timeout: r.install_snapshot_timeout_ms,
            snapshot_policy: openraft::SnapshotPolicy::LogsSinceLast(r.snapshot_after_entries),
            max_in_snapshot_log_to_keep: r.keep_entries_after_snapshot,
            snapshot_max_chunk_size: r.snapshot_chunk_bytes,
            max_payload_entries: 256,
            ..Default::default()
        }
        .validate()
        .context("invalid Raft settings")?;
        let peers = network::PeerClients::new(
            config.cluster.secret.clone(),
            config.cluster.peer_via.clone(),
        );
        let raft = Raft::new(
            config.node.id,
            Arc::new(raft_config),
            network::NetworkFactory::new(peers.clone()),
            log,
            state.clone(),
        )
        .await
        .context("cannot start Raft")?;

        let cluster = Cluster {
            inner: Arc::new(ClusterInner {
                id: config.node.id,
                site: config.node.site.clone(),
                raft: raft.clone(),
                state,
                blobs,
                peers,
                proposer: proposer::Proposer::default(),
                leader_contact: Mutex::new(LeaderContact::default()),
                commit_timeout: Duration::from_millis(r.commit_timeout_ms),
                quorum_lost_after: Duration::from_millis(r.quorum_lost_after_ms),
            }),
        };
        cluster.inner.proposer.start(cluster.clone());

        if config.cluster.bootstrap && !raft.is_initialized().await? {
            // Every initial member may initialise: they all write the same first entry
            // (the same membership at log index 0), so the election that follows is safe.
            let members = config.initial_members();
            tracing::info!(members = ?members.keys().collect::<Vec<_>>(), "initialising the cluster");
            if let Err(e) = raft.initialize(members).await {
                tracing::info!(error = %e, "cluster already initialised");
            }
        }
        Ok(cluster)
    }

    pub fn id(&self) -> NodeId {
        self.inner.id
    }

    pub fn site(&self) -> &str {
        &self.inner.site
    }

    pub fn raft(&self) -> &PeageRaft {
        &self.inner.raft
    }

    pub fn state(&self) -> &StateStore {
        &self.inner.state
    }

    pub fn blobs(&self) -> &crate::state::blobs::BlobStore {
        &self.inner.blobs
    }

    pub fn peers(&self) -> &network::PeerClients {
        &self.inner.peers
    }

    pub fn metrics(&self) -> openraft::RaftMetrics<NodeId, PeageNode> {
        self.inner.raft.metrics().borrow().clone()
    }

    pub async fn shutdown(&self) {
        if let Err(e) = self.inner.raft.shutdown().await {
            tracing::warn!(error = %e, "raft shutdown");
        }
    }

    /// Waits (up to the commit timeout) until this replica has applied `index`.
    pub async fn wait_applied(&self, index: u64) -> bool {
        self.inner
            .raft
            .wait(Some(self.inner.commit_timeout))
            .applied_index_at_least(Some(index), "local apply")
            .await
            .is_ok()
    }

    pub(crate) fn record_leader_contact(&self, commit_index: Option<u64>) {
        let mut c = self
            .inner
            .leader_contact
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        c.at = Some(Instant::now());
        if let Some(i) = commit_index {
            c.commit_index = c.commit_index.max(i);
        }
    }

    /// Proposes one command through the group-commit proposer; returns its log index and
    /// outcome once committed and applied.
    pub async fn propose(
        &self,
        command: peage_proto::v1::command::Kind,
    ) -> Result<(u64, crate::state::Outcome), WriteError> {
        self.inner.proposer.propose(command).await
    }

    /// Refuses at once when this node, as leader, has not heard from a majority lately.
    fn check_leader_quorum(
        &self,
        m: &openraft::RaftMetrics<NodeId, PeageNode>,
    ) -> Result<(), WriteError> {
        let voters = m.membership_config.membership().voter_ids().count();
        if voters <= 1 {
            return Ok(());
        }
        match m.millis_since_quorum_ack {
            Some(ms) if Duration::from_millis(ms) <= self.inner.quorum_lost_after => Ok(()),
            Some(ms) => Err(WriteError::NoQuorum(format!(
                "this node leads but has not heard from a majority for {ms} ms"
            ))),
            None => Err(WriteError::NoQuorum(
                "this node leads but no majority has acknowledged it yet".into(),
            )),
        }
    }

    /// Runs `op` on the leader: here when this node leads, else forwarded to it.
    pub async fn submit(&self, op: LeaderOp) -> Result<LeaderOpDone, WriteError> {
        let timeout = self.inner.commit_timeout;
        let m = self.wait_for_leader().await?;
        let leader = m
            .current_leader
            .expect("wait_for_leader returns a known leader");
        if leader == self.inner.id {
            return self.lead(op).await;
        }
        let addr = leader_peer_addr(&m, leader)?;
        self.inner.peers.forward(leader, &addr, op, timeout).await
    }

    /// The current metrics once a leader is known, or NoQuorum after an election's time.
    async fn wait_for_leader(
        &self,
    ) -> Result<openraft::RaftMetrics<NodeId, PeageNode>, WriteError> {
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
            WriteError::NoQuorum("no leader is elected (no majority reachable?)".into())
        })
    }

    /// Carries out `op` on this node if it leads with a live quorum; never forwards, so a
    /// forwarded operation cannot bounce between nodes.
    pub(crate) async fn lead(&self, op: LeaderOp) -> Result<LeaderOpDone, WriteError> {
        let m = self.metrics();
        if m.current_leader != Some(self.inner.id) {
            return Err(WriteError::NoQuorum(format!(
                "node {} is not the leader (leader: {:?}); retry",
                self.inner.id, m.current_leader
            )));
        }
        self.check_leader_quorum(&m)?;
        let timeout = self.inner.commit_timeout;
        match tokio::time::timeout(timeout, self.execute_as_leader(op)).await {
            Ok(r) => r,
            // A commit that did not come is most often a lost majority: say so when it is.
            Err(_) => {
                self.check_leader_quorum(&self.metrics())?;
                Err(WriteError::Timeout(timeout.as_millis() as u64))
            }
        }
    }

    async fn execute_as_leader(&self, op: LeaderOp) -> Result<LeaderOpDone, WriteError> {
        let raft = &self.inner.raft;
        let res = match op {
            LeaderOp::Commands(batch) => raft.client_write(LogPayload(batch)).await,
            LeaderOp::AddLearner { id, node } => raft.add_learner(id, node, false).await,
            LeaderOp::Promote { id } => {
                let m = self.metrics();
                let membership = m.membership_config.membership();
                if membership.get_node(&id).is_none() {
                    return Err(WriteError::Refused(format!(
                        "node {id} is not a member; add it as a learner first"
                    )));
                }
                if membership.voter_ids().any(|v| v == id) {
                    return Err(WriteError::Refused(format!("node {id} is already a voter")));
                }
                raft.change_membership(ChangeMembers::AddVoterIds(BTreeSet::from([id])), true)
                    .await
            }
            LeaderOp::Remove { id } => {
                let m = self.metrics();
                let membership = m.membership_config.membership();
                if membership.get_node(&id).is_none() {
                    return Err(WriteError::Refused(format!("node {id} is not a member")));
                }
                let voters: BTreeSet<NodeId> = membership.voter_ids().collect();
                if voters.contains(&id) {
                    if voters.len() == 1 {
                        return Err(WriteError::Refused("cannot remove the last voter".into()));
                    }
                    raft.change_membership(ChangeMembers::RemoveVoters(BTreeSet::from([id])), false)
                        .await
                } else {
                    raft.change_membership(ChangeMembers::RemoveNodes(BTreeSet::from([id])), false)
                        .await
                }
            }
        };
        match res {
            Ok(resp) => Ok(LeaderOpDone {
                log_index: resp.log_id.index,
                outcome: resp.data,
            }),
            Err(openraft::error::RaftError::APIError(e)) => Err(match e {
                openraft::error::ClientWriteError::ForwardToLeader(f) => {
                    WriteError::NoQuorum(format!("leadership moved (now {:?}); retry", f.leader_id))
                }
                openraft::error::ClientWriteError::ChangeMembershipError(c) => {
                    WriteError::Refused(c.to_string())
                }
            }),
            Err(openraft::error::RaftError::Fatal(f)) => Err(WriteError::Internal(f.to_string())),
        }
    }

    /// The index a linearizable read must see, confirmed by a quorum (leader only).
    pub(crate) async fn leader_read_index(&self) -> Result<u64, ReadError> {
        let m = self.metrics();
        self.check_leader_quorum(&m)?;
        let timeout = self.inner.commit_timeout;
        match tokio::time::timeout(timeout, self.inner.raft.get_read_log_id()).await {
            Err(_) => Err(WriteError::Timeout(timeout.as_millis() as u64)),
            Ok(Err(e)) => Err(WriteError::NoQuorum(e.to_string())),
            Ok(Ok((read, applied))) => Ok(read.max(applied).map_or(0, |l| l.index)),
        }
    }

    /// Waits until this node's replica reflects everything committed before the call
    /// (linearizable), or answers at once from the local replica (`stale`).
    pub async fn read_barrier(&self, stale: bool) -> Result<Freshness, ReadError> {
        if !stale {
            let m = self.wait_for_leader().await?;
            let leader = m
                .current_leader
                .expect("wait_for_leader returns a known leader");
            let index = if leader == self.inner.id {
                self.leader_read_index().await?
            } else {
                let addr = leader_peer_addr(&m, leader)?;
                self.inner
                    .peers
                    .read_index(leader, &addr, self.inner.commit_timeout)
                    .await?
                    .0
            };
            if !self.wait_applied(index).await {
                return Err(WriteError::Timeout(
                    self.inner.commit_timeout.as_millis() as u64
                ));
            }
        }
        Ok(self.freshness(stale))
    }

    /// How far this replica may be behind, from what the leader last told it.
    pub fn freshness(&self, stale: bool) -> Freshness {
        let applied_index = self.inner.state.applied_index();
        let m = self.metrics();
        let contact = self
            .inner
            .leader_contact
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        let leads = m.current_leader == Some(self.inner.id) && m.state == ServerState::Leader;
        Freshness {
            stale,
            applied_index,
            known_commit_index: if leads {
                applied_index
            } else {
                contact.commit_index.max(applied_index)
            },
            // On the leader, "contact" is the last acknowledgement from a majority: an
            // isolated leader's replica grows stale from then on.
            millis_since_leader_contact: if leads {
                m.millis_since_quorum_ack
            } else {
                contact.at.map(|t| t.elapsed().as_millis() as u64)
            },
        }
    }

    /// Whether this node is part of a working majority: it knows a leader, and that leader's
    /// contact (a majority's acknowledgement, on the leader itself) is recent enough.
    pub fn in_quorum(&self) -> bool {
        let f = self.freshness(true);
        self.metrics().current_leader.is_some()
            && f.millis_since_leader_contact
                .is_some_and(|ms| Duration::from_millis(ms) <= self.inner.quorum_lost_after)
    }

    /// Matched log index per member, from the leader (here, or asked over the peer service).
    pub async fn matched_indexes(&self) -> BTreeMap<NodeId, u64> {
        let m = self.metrics();
        if let Some(repl) = &m.replication {
            return repl
                .iter()
                .map(|(id, l)| (*id, l.map_or(0, |l| l.index)))
                .collect();
        }
        let Some(leader) = m.current_leader else {
            return BTreeMap::new();
        };
        let Ok(addr) = leader_peer_addr(&m, leader) else {
            return BTreeMap::new();
        };
        match self
            .inner
            .peers
            .read_index(leader, &addr, Duration::from_secs(1))
            .await
        {
            Ok((_, matched)) => matched,
            Err(_) => BTreeMap::new(),
        }
    }
}

/// The peer address of `leader`, from the membership this node knows.
fn leader_peer_addr(
    m: &openraft::RaftMetrics<NodeId, PeageNode>,
    leader: NodeId,
) -> Result<String, WriteError> {
    m.membership_config
        .membership()
        .get_node(&leader)
        .map(|n| n.peer_addr.clone())
        .ok_or_else(|| WriteError::NoQuorum(format!("leader {leader} is not a member")))
}

/// A role name for status output.
pub fn role_name(state: ServerState) -> &'static str {
    match state {
        ServerState::Leader => "leader",
        ServerState::Follower => "follower",
        ServerState::Learner => "learner",
        ServerState::Candidate => "candidate",
        ServerState::Shutdown => "shutdown",
    }
}

/// Warnings about where the voters are: a site holding a majority of them takes the quorum
/// down with it.
pub fn placement_warnings(voters: &[(NodeId, String)]) -> Vec<String> {
    let mut by_site: BTreeMap<&str, usize> = BTreeMap::new();
    for (_, site) in voters {
        *by_site.entry(site.as_str()).or_default() += 1;
    }
    let total = voters.len();
    let mut warnings = Vec::new();
    if total > 1 {
        for (site, n) in by_site {
            if n * 2 > total {
                warnings.push(format!(
                    "site {site} holds {n} of {total} voters: losing that site loses the quorum"
                ));
            }
        }
    }
    if total == 2 {
        warnings.push("2 voters: losing either one loses the quorum; use 3 or more".into());
    }
    warnings
}

#[cfg(test)]
mod tests {
    use super::placement_warnings;

    #[test]
    fn warns_when_one_site_holds_a_majority() {
        let spread = vec![
            (1, "paris".into()),
            (2, "roubaix".into()),
            (3, "ariege".into()),
        ];
        assert!(placement_warnings(&spread).is_empty());
        let lopsided = vec![
            (1, "paris".into()),
            (2, "paris".into()),
            (3, "ariege".into()),
        ];
        let w = placement_warnings(&lopsided);
        assert_eq!(w.len(), 1);
        assert!(w[0].contains("paris"), "{w:?}");
    }
}
