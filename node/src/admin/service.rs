//! The admin service's handle and what every request shares: the cluster, the tokens, the
//! limits of what may be written, and the two ways of reaching the cluster (a proposal, a
//! read barrier) with their failures already worded as gRPC statuses.

use std::sync::Arc;
use std::time::Duration;

use tonic::Status;

use peage_proto::v1::{command, ReadInfo};

use super::auth::Tokens;
use super::convert::{read_info, unavailable_status, write_status};
use crate::auth::Authenticator;
use crate::cluster::Cluster;
use crate::config::Config;
use crate::ratelimit::RateLimits;
use crate::spool::Spooler;
use crate::types::Outcome;

/// How far apart the nodes' clocks may be, for the digests' grace.
const CLOCK_MARGIN_MS: u64 = 5_000;

pub struct AdminService {
    pub(super) cluster: Cluster,
    pub(super) tokens: Tokens,
    /// Longest `reason` a list entry may carry.
    pub(super) max_reason_bytes: usize,
    /// The delivery lease a released message starts with.
    pub(super) lease: Duration,
    /// Sender authentication for `check`, as the SMTP edge does it (none when turned off).
    pub(super) auth: Option<Arc<Authenticator>>,
    /// The outbound rate limits, to show each count's.
    pub(super) limits: RateLimits,
    /// How long the audit log keeps a record.
    pub(super) audit_retention: Duration,
    /// Where users reach the portal (links start with it), when the node serves one.
    pub(super) portal_url: Option<String>,
    /// How long a portal link stays good.
    pub(super) link_validity: Duration,
    /// Puts the digests this service writes in the spool.
    pub(super) spooler: Spooler,
    /// The node's name in SMTP, which the digests' Message-IDs carry.
    pub(super) hostname: String,
    /// How long after a domain's digest time its digests wait: a message accepted just
    /// before that time may take a commit timeout to commit, on a clock a little off.
    pub(super) digest_grace: Duration,
    /// The pause after each digest a daily round sends.
    pub(super) digest_pause: Duration,
}

impl AdminService {
    pub fn new(
        cluster: Cluster,
        config: &Config,
        auth: Option<Arc<Authenticator>>,
    ) -> AdminService {
        let state = cluster.state().clone();
        let replicated = Arc::new(move |hash: &str| state.indexes().token(hash));
        let tokens = Tokens::new(&config.admin.tokens, replicated);
        AdminService {
            tokens,
            max_reason_bytes: config.lists.max_reason_bytes,
            lease: Duration::from_secs(config.spool.lease_secs),
            auth,
            limits: RateLimits::from_config(&config.outbound),
            audit_retention: Duration::from_secs(config.admin.audit_retention_days * 86_400),
            portal_url: config
                .portal
                .public_url
                .clone()
                .or_else(|| config.listen.portal.map(|addr| format!("https://{addr}"))),
            link_validity: Duration::from_secs(config.portal.link_days * 86_400),
            spooler: Spooler::configured(cluster.clone(), &config.spool),
            hostname: config.hostname(),
            digest_grace: Duration::from_millis(config.raft.commit_timeout_ms + CLOCK_MARGIN_MS),
            digest_pause: Duration::from_millis(config.portal.digest_pause_ms),
            cluster,
        }
    }

    /// Proposes `command`; its log index and outcome once committed.
    pub(super) async fn propose(&self, command: command::Kind) -> Result<(u64, Outcome), Status> {
        self.cluster.propose(command).await.map_err(write_status)
    }

    /// Waits for a linearizable read (or none, when `stale`); what the reply says of it.
    pub(super) async fn read_barrier(&self, stale: bool) -> Result<ReadInfo, Status> {
        let fresh = self
            .cluster
            .read_barrier(stale)
            .await
            .map_err(unavailable_status)?;
        Ok(read_info(self.cluster.id(), &fresh))
    }
}
