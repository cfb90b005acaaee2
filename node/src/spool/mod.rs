//! The replicated spool: putting a message in it — body fsynced here and on enough peers
//! that a majority holds it (`bodies`), then the small record committed through Raft —
//! before `250` is answered. The SMTP front hands messages over through `acceptor`;
//! `delivery` takes them out; `dsn` writes the bounces; `janitor` removes the bodies nothing
//! needs any more; `room` refuses mail while the disk is nearly full.

pub mod acceptor;
pub mod bodies;
pub mod callout;
pub mod delivery;
pub mod dsn;
pub mod janitor;
pub mod room;
pub mod strikes;
pub mod submission;

use std::sync::Arc;
use std::time::{Duration, Instant};

use peage_proto::v1::{command, DigestSent, FilterSymbol, SpoolPut};

use crate::blobs::sha256_hex;
use crate::clock::now_ms;
use crate::cluster::error::WriteError;
use crate::cluster::Cluster;
use crate::config::SpoolSection;
use crate::metrics::{observe_stage, ACCEPT_STAGE_SECONDS};
use crate::types::Outcome;

/// Why a message could not be accepted; each maps to a `451` the sender retries.
#[derive(Debug, thiserror::Error)]
pub enum EnqueueError {
    #[error("cannot store the message body: {0}")]
    LocalBody(String),
    #[error("only {held} of the {needed} voters needed hold the message body")]
    NoPeerForBody { held: usize, needed: usize },
    #[error("{0}")]
    Commit(#[from] WriteError),
}

/// A message to put in the spool (an accepted one, or a DSN the node writes itself).
pub struct NewMessage {
    pub mail_from: String,
    pub rcpt_to: Vec<String>,
    pub client_ip: String,
    pub helo: String,
    pub body: Vec<u8>,
    pub verdict: &'static str,
    pub score_milli: i64,
    pub symbols: Vec<FilterSymbol>,
    /// The digest this message is, which the same commit records (a second one refused).
    pub digest: Option<DigestSent>,
}

/// Puts messages in the replicated spool: body first (a majority fsyncs it), record last.
#[derive(Clone)]
pub struct Spooler {
    cluster: Cluster,
    /// How long the accepting node owns a message's delivery before another may take over.
    lease: Duration,
    /// How long peers get to fsync a body.
    body_timeout: Duration,
    /// The config seeds the routing table of a fresh cluster (`spool.seed_domains`).
    seeds_routes: bool,
}

impl Spooler {
    pub fn new(cluster: Cluster, lease: Duration, body_timeout: Duration) -> Spooler {
        Spooler {
            cluster,
            lease,
            body_timeout,
            seeds_routes: false,
        }
    }

    /// A spooler with the node's lease and body timeout.
    pub fn configured(cluster: Cluster, spool: &SpoolSection) -> Spooler {
        Spooler {
            seeds_routes: !spool.seed_domains.is_empty(),
            ..Spooler::new(
                cluster,
                Duration::from_secs(spool.lease_secs),
                Duration::from_millis(spool.body_timeout_ms),
            )
        }
    }

    /// A fresh cluster whose routes the config seeds, before they are applied here: no
    /// domain can be called foreign yet (the local dev cluster just started).
    pub fn routes_unseeded(&self) -> bool {
        self.seeds_routes && self.cluster.state().indexes().domains().is_empty()
    }

    pub fn cluster(&self) -> &Cluster {
        &self.cluster
    }

    /// Stores the body on a majority of the voters (this node included), then commits the
    /// spool record; returns the queue id.
    pub async fn enqueue(&self, new: NewMessage) -> Result<String, EnqueueError> {
        let started = Instant::now();
        let hash = sha256_hex(&new.body);
        let size = new.body.len() as u64;
        // Named before the body is stored: each holder keeps the body for this message.
        let queue_id = format!("{:016X}", rand::random::<u64>());
        let body = Arc::new(new.body);
        let copies = bodies::replicate(&self.cluster, &hash, body, &queue_id, self.body_timeout)
            .await
            .map_err(|e| EnqueueError::LocalBody(e.to_string()))?;
        if copies.voters_holding < copies.needed {
            return Err(EnqueueError::NoPeerForBody {
                held: copies.voters_holding,
                needed: copies.needed,
            });
        }
        observe_stage(ACCEPT_STAGE_SECONDS, "body", started);
        let started = Instant::now();
        let accepted_at_ms = now_ms();
        let put = SpoolPut {
            queue_id: queue_id.clone(),
            mail_from: new.mail_from,
            rcpt_to: new.rcpt_to,
            client_ip: new.client_ip,
            helo: new.helo,
            body_sha256: hash,
            size,
            holders: copies.holders,
            owner: self.cluster.id(),
            accepted_at_ms,
            // Leases are judged by the leader's clock.
            lease_until_ms: self.cluster.leader_now_ms() + self.lease.as_millis() as i64,
            verdict: new.verdict.to_owned(),
            score_milli: new.score_milli,
            symbols: new.symbols,
            digest: new.digest,
        };
        let committed = self.cluster.propose(command::Kind::SpoolPut(put)).await;
        observe_stage(ACCEPT_STAGE_SECONDS, "commit", started);
        match committed? {
            (_, Outcome::Spooled) => Ok(queue_id),
            (_, other) => Err(WriteError::from(other).into()),
        }
    }
}
