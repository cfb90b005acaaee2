//! The replicated spool, as seen from the SMTP front: relay control against the routing
//! table, and accepting a message — body fsynced here and on enough peers that a majority
//! holds it, then the small record committed through Raft — before `250` is answered.

pub mod delivery;
pub mod dsn;

use std::sync::Arc;
use std::time::Duration;

use futures::stream::{FuturesUnordered, StreamExt};
use tracing::Instrument;

use peage_proto::v1::{command, FilterSymbol, SpoolPut};

use crate::admin::now_ms;
use crate::cluster::{Cluster, WriteError};
use crate::filter::{self, FilterInput, Judgement, Verdict};
use crate::smtp::address::Recipient;
use crate::smtp::{Acceptor, Envelope, Reply};
use crate::state::blobs::sha256_hex;
use crate::state::Outcome;

/// Why a message could not be accepted; each maps to a `451` the sender retries.
#[derive(Debug, thiserror::Error)]
pub enum EnqueueError {
    #[error("cannot store the message body: {0}")]
    LocalBody(String),
    #[error("only {held} of the {needed} nodes needed hold the message body")]
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
}

/// Puts messages in the replicated spool: body first (a majority fsyncs it), record last.
#[derive(Clone)]
pub struct Spooler {
    cluster: Cluster,
    /// How long the accepting node owns a message's delivery before another may take over.
    lease: Duration,
    /// How long peers get to fsync a body.
    body_timeout: Duration,
}

impl Spooler {
    pub fn new(cluster: Cluster, lease: Duration, body_timeout: Duration) -> Spooler {
        Spooler {
            cluster,
            lease,
            body_timeout,
        }
    }

    /// Stores the body on a majority of the voters (this node included), then commits the
    /// spool record; returns the queue id.
    pub async fn enqueue(&self, new: NewMessage) -> Result<String, EnqueueError> {
        let NewMessage {
            mail_from,
            rcpt_to,
            client_ip,
            helo,
            body,
            verdict,
            score_milli,
            symbols,
        } = new;
        let me = self.cluster.id();
        let hash = sha256_hex(&body);
        let size = body.len() as u64;
        let body = Arc::new(body);
        self.cluster
            .blobs()
            .put(hash.clone(), body.clone())
            .await
            .map_err(|e| EnqueueError::LocalBody(e.to_string()))?;

        let m = self.cluster.metrics();
        let membership = m.membership_config.membership();
        let voters: Vec<u64> = membership.voter_ids().collect();
        let needed = voters.len() / 2 + 1;
        let mut holders = vec![me];
        let mut pending = FuturesUnordered::new();
        for id in voters.iter().copied().filter(|id| *id != me) {
            let Some(node) = membership.get_node(&id) else {
                continue;
            };
            let (peers, addr, hash, body, timeout) = (
                self.cluster.peers().clone(),
                node.peer_addr.clone(),
                hash.clone(),
                body.clone(),
                self.body_timeout,
            );
            pending.push(async move {
                let r = peers.put_blob(&addr, &hash, body.to_vec(), timeout).await;
                (id, r)
            });
        }
        // Enough copies is a majority; the rest repair themselves later by fetching.
        while holders.len() < needed {
            match pending.next().await {
                Some((id, Ok(()))) => holders.push(id),
                Some((id, Err(e))) => {
                    tracing::warn!(peer = id, error = %e, "peer did not take a body")
                }
                None => break,
            }
        }
        if holders.len() < needed {
            return Err(EnqueueError::NoPeerForBody {
                held: holders.len(),
                needed,
            });
        }
        holders.sort_unstable();

        let queue_id = format!("{:016X}", rand::random::<u64>());
        let accepted_at_ms = now_ms();
        let put = SpoolPut {
            queue_id: queue_id.clone(),
            mail_from,
            rcpt_to,
            client_ip,
            helo,
            body_sha256: hash,
            size,
            holders,
            owner: me,
            accepted_at_ms,
            lease_until_ms: accepted_at_ms + self.lease.as_millis() as i64,
            verdict: verdict.to_owned(),
            score_milli,
            symbols,
        };
        match self.cluster.propose(command::Kind::SpoolPut(put)).await? {
            (_, Outcome::Spooled) => Ok(queue_id),
            (_, other) => Err(WriteError::Refused(format!("{other:?}")).into()),
        }
    }
}

/// The node's acceptor: the SMTP session hands it recipients and messages.
pub struct NodeAcceptor {
    cluster: Cluster,
    spooler: Spooler,
    evidence: crate::evidence::Recorder,
}

impl NodeAcceptor {
    pub fn new(spooler: Spooler, evidence: crate::evidence::Recorder) -> NodeAcceptor {
        NodeAcceptor {
            cluster: spooler.cluster.clone(),
            spooler,
            evidence,
        }
    }

    /// Scores a message on the blocking pool (parsing is CPU work) against the local replica.
    async fn judge(&self, envelope: &Envelope, message: Vec<u8>) -> (Judgement, Vec<u8>) {
        let state = self.cluster.state().clone();
        let (ip, helo, from) = (
            envelope.client_ip,
            envelope.helo.clone(),
            envelope.mail_from.clone(),
        );
        let fallback = message.len();
        let r = tokio::task::spawn_blocking(move || {
            let input = FilterInput {
                client_ip: ip,
                helo: &helo,
                mail_from: &from,
                message: &message,
            };
            let j = filter::judge(&input, &state, &state.policy());
            (j, message)
        })
        .await;
        match r {
            Ok(r) => r,
            // The filter panicked (it must not): hold the message rather than lose or pass it.
            Err(e) => {
                tracing::error!(error = %e, "filter failed");
                let symbols = vec![filter::Symbol {
                    name: "FILTER_ERROR".into(),
                    score_milli: 0,
                    reason: "the filter failed on this message".into(),
                }];
                (
                    Judgement {
                        symbols,
                        verdict: Verdict::Quarantine,
                        total_milli: 0,
                        evidence_keys: Vec::new(),
                    },
                    Vec::with_capacity(fallback),
                )
            }
        }
    }
}

impl Acceptor for NodeAcceptor {
    fn check_recipient(&self, rcpt: &Recipient) -> Result<(), Reply> {
        match self.cluster.state().route_for(&rcpt.domain) {
            Some(_) => Ok(()),
            None => Err(Reply::new(
                550,
                format!(
                    "5.7.1 Relaying denied: {} is not a local domain",
                    rcpt.domain
                ),
            )),
        }
    }

    async fn accept(&self, envelope: Envelope, message: Vec<u8>) -> Reply {
        let span = tracing::info_span!("accept", client = %envelope.client_ip);
        let (judgement, message) = self.judge(&envelope, message).await;
        metrics::counter!(crate::metrics::VERDICTS, "verdict" => judgement.verdict.as_str())
            .increment(1);
        if judgement.verdict == Verdict::Reject {
            self.evidence
                .count(&judgement.evidence_keys, judgement.verdict);
            tracing::info!(score = judgement.total_milli, symbols = ?judgement.symbols, "message rejected");
            return Reply::new(550, format!("5.7.1 Rejected: {}", judgement.main_reason()));
        }
        // Delivered and quarantined copies both carry the verdict.
        let mut body =
            filter::headers(judgement.verdict, judgement.total_milli, &judgement.symbols)
                .into_bytes();
        body.extend_from_slice(&message);
        drop(message);
        let new = NewMessage {
            mail_from: envelope.mail_from,
            rcpt_to: envelope.rcpt_to.iter().map(Recipient::address).collect(),
            client_ip: envelope.client_ip.to_string(),
            helo: envelope.helo,
            body,
            verdict: judgement.verdict.as_str(),
            score_milli: judgement.total_milli,
            symbols: judgement
                .symbols
                .iter()
                .map(|s| FilterSymbol {
                    name: s.name.clone(),
                    score_milli: s.score_milli,
                    reason: s.reason.clone(),
                })
                .collect(),
        };
        match self.spooler.enqueue(new).instrument(span).await {
            Ok(queue_id) => {
                // Counted once final: a 451 would bring the same message back.
                self.evidence
                    .count(&judgement.evidence_keys, judgement.verdict);
                tracing::info!(queue_id = %queue_id, verdict = judgement.verdict.as_str(), "message accepted");
                Reply::new(250, format!("2.0.0 Ok: queued as {queue_id}"))
            }
            Err(e) => {
                tracing::warn!(error = %e, "message not accepted");
                Reply::new(
                    451,
                    format!("4.4.1 Not accepted, try again or another MX: {e}"),
                )
            }
        }
    }
}
