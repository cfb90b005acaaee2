//! openraft glue: the `Cluster` handle through which the rest of the node writes
//! (`write`: group-commit proposals, forwarded to the leader), reads (`read`: linearizable
//! or stale) and changes membership; the RocksDB log store, the peer network over tonic
//! (client `network`, server `peer_service`, messages `protocol`) and the proposer.

mod clock_offset;
pub mod error;
pub mod leader_clock;
pub mod log_store;
pub mod network;
mod peer_error;
mod peer_search;
pub mod peer_service;
pub mod placement;
mod proposer;
pub mod protocol;
mod read;
pub mod shared_counts;
mod silence;
mod write;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context;
use openraft::Raft;

use crate::blobs::BlobStore;
use crate::config::Config;
use crate::grpc_tls::GrpcTls;
use crate::state::StateStore;
use crate::types::{NodeId, PeageNode, TypeConfig};
use clock_offset::LeaderClock;
use network::{NetworkFactory, PeerClients};
use proposer::Proposer;
use shared_counts::SharedCounts;
pub use silence::MemberReplication;
use silence::PeerSilence;

use crate::tracking::Tracking;

pub type PeageRaft = Raft<TypeConfig>;

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
struct LeaderContact {
    at: Option<Instant>,
    commit_index: u64,
    /// The commit index the first contact since this node started carried: until the
    /// replica has applied it, it may not know what the cluster knew when it started.
    first_commit_index: Option<u64>,
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
    blobs: BlobStore,
    /// Peer connections, shared with openraft's network factory.
    peers: PeerClients,
    /// Which peers stopped answering this node's Raft calls (a leader's replication).
    silence: PeerSilence,
    proposer: Proposer,
    /// Tells stale reads how far behind the leader this node may be.
    leader_contact: Mutex<LeaderContact>,
    /// This node's offset from the leader's clock, which leases are judged by.
    leader_clock: LeaderClock,
    commit_timeout: Duration,
    quorum_lost_after: Duration,
    /// Rate-limit counts, this node's and what its peers last reported.
    counts: SharedCounts,
    /// What this node saw happen to messages (searched by peers over the peer service).
    tracking: Tracking,
}

impl Cluster {
    /// Opens storage, starts Raft and, on an empty node listed as an initial member with
    /// `bootstrap = true`, initialises the cluster. Peers are called over `tls` when given.
    pub async fn start(
        config: &Config,
        data_dir: &std::path::Path,
        tls: Option<GrpcTls>,
    ) -> anyhow::Result<Cluster> {
        std::fs::create_dir_all(data_dir)
            .with_context(|| format!("cannot create data dir {}", data_dir.display()))?;
        let log = log_store::LogStore::open(&data_dir.join("raft-log"))
            .map_err(|e| log_store::open_error(data_dir, e))?;
        let state = StateStore::open(data_dir)
            .map_err(|e| anyhow::anyhow!("cannot open the state database: {e}"))?;
        let blobs =
            BlobStore::open(&data_dir.join("blobs")).context("cannot open the blob store")?;
        let records = blobs.clone();
        state
            .spool()
            .on_record(move |queue_id, hash, present| records.record(queue_id, hash, present));
        let retention = Duration::from_secs(config.tracking.retention_days.saturating_mul(86_400));
        let tracking = Tracking::open(data_dir, config.node.id, &config.node.site, retention)
            .context("cannot open the tracking store")?;
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
        let peers = PeerClients::new(
            config.cluster.secret.clone(),
            config.cluster.peer_via.clone(),
            tls,
        );
        let silence = PeerSilence::default();
        let raft = Raft::new(
            config.node.id,
            Arc::new(raft_config),
            NetworkFactory::new(
                config.node.id,
                peers.clone(),
                Duration::from_millis(config.raft.heartbeat_interval_ms),
                silence.clone(),
            ),
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
                silence,
                proposer: Proposer::default(),
                leader_contact: Mutex::new(LeaderContact::default()),
                leader_clock: LeaderClock::default(),
                counts: SharedCounts::default(),
                tracking,
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

    pub fn blobs(&self) -> &BlobStore {
        &self.inner.blobs
    }

    pub fn peers(&self) -> &PeerClients {
        &self.inner.peers
    }

    pub fn shared_counts(&self) -> &SharedCounts {
        &self.inner.counts
    }

    pub fn tracking(&self) -> &Tracking {
        &self.inner.tracking
    }

    pub fn metrics(&self) -> openraft::RaftMetrics<NodeId, PeageNode> {
        self.inner.raft.metrics().borrow().clone()
    }

    /// Whether this node is the leader as far as it knows.
    pub fn leads(&self) -> bool {
        self.metrics().current_leader == Some(self.inner.id)
    }

    /// Returns once the Raft core has stopped by itself — a storage error (the disk full or
    /// failing) or a panic — with the cause. Such a replica applies nothing more: what it
    /// reads goes stale and what it filters by ages, so the node must not go on serving.
    pub async fn raft_stopped(&self) -> String {
        let mut metrics = self.inner.raft.metrics();
        loop {
            if let Err(fatal) = &metrics.borrow_and_update().running_state {
                return fatal.to_string();
            }
            if metrics.changed().await.is_err() {
                return "the Raft core is gone".to_owned();
            }
        }
    }

    pub async fn shutdown(&self) {
        if self.metrics().running_state.is_err() {
            return;
        }
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
}
