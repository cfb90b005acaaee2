//! Message bodies on their way through the cluster: stored here and on enough peers that a
//! majority of the voters holds each (before its record is proposed), and read back from
//! this node or any holder (kept here then), for delivery, display and repair.

use std::sync::Arc;
use std::time::Duration;

use futures::stream::{FuturesUnordered, StreamExt};

use crate::blobs::{sha256_hex, BlobError};
use crate::cluster::Cluster;
use crate::state::spool::SpooledMessage;
use crate::types::NodeId;

/// Where a body is held once `replicate` returns, and how many holders a majority needs.
pub struct Copies {
    /// This node and the peers that fsynced it; sorted.
    pub holders: Vec<NodeId>,
    /// How many of the holders are voters.
    pub voters_holding: usize,
    /// How many voters make a majority.
    pub needed: usize,
}

/// Stores `body` under `hash` for the message `queue_id` here and, at the same time, on
/// peers until a majority of the voters holds it (each copy fsynced); the others repair
/// themselves later by fetching.
pub async fn replicate(
    cluster: &Cluster,
    hash: &str,
    body: Arc<Vec<u8>>,
    queue_id: &str,
    timeout: Duration,
) -> Result<Copies, BlobError> {
    let me = cluster.id();
    let m = cluster.metrics();
    let membership = m.membership_config.membership();
    let voters: Vec<NodeId> = membership.voter_ids().collect();
    let needed = voters.len() / 2 + 1;
    // A learner holds the body too, but only voters make the majority that must keep it.
    let local_vote = usize::from(voters.contains(&me));
    let mut pending = FuturesUnordered::new();
    for id in voters.iter().copied().filter(|id| *id != me) {
        let Some(node) = membership.get_node(&id) else {
            continue;
        };
        let (peers, addr, hash, body) = (
            cluster.peers().clone(),
            node.peer_addr.clone(),
            hash.to_owned(),
            body.clone(),
        );
        pending.push(async move {
            let r = peers
                .put_blob(&addr, &hash, body.to_vec(), queue_id, timeout)
                .await;
            (id, r)
        });
    }
    let peers_needed = needed.saturating_sub(local_vote);
    let on_peers = async {
        let mut holding = Vec::new();
        while holding.len() < peers_needed {
            match pending.next().await {
                Some((id, Ok(()))) => holding.push(id),
                Some((id, Err(e))) => {
                    tracing::warn!(peer = id, error = %e, "peer did not take a body")
                }
                None => break,
            }
        }
        holding
    };
    let here = cluster
        .blobs()
        .put(hash.to_owned(), body.clone(), Some(queue_id.to_owned()));
    let (here, on_peers) = tokio::join!(here, on_peers);
    here?;
    let voters_holding = local_vote + on_peers.len();
    let mut holders = on_peers;
    holders.push(me);
    holders.sort_unstable();
    Ok(Copies {
        holders,
        voters_holding,
        needed,
    })
}

/// The body, from this node's blob store or, failing that, from a holder (kept here then).
pub async fn body_of(cluster: &Cluster, m: &SpooledMessage) -> Result<Vec<u8>, String> {
    if let Ok(Some(b)) = cluster.blobs().get(&m.body_sha256).await {
        return Ok(b);
    }
    let metrics = cluster.metrics();
    let membership = metrics.membership_config.membership();
    for h in &m.holders {
        let Some(node) = membership.get_node(h) else {
            continue;
        };
        if let Ok(b) = cluster
            .peers()
            .get_blob(&node.peer_addr, &m.body_sha256, Duration::from_secs(30))
            .await
        {
            if sha256_hex(&b) == m.body_sha256 {
                let _ = cluster
                    .blobs()
                    .put(
                        m.body_sha256.clone(),
                        Arc::new(b.clone()),
                        Some(m.queue_id.clone()),
                    )
                    .await;
                return Ok(b);
            }
        }
    }
    Err(format!("no holder of body {} reachable", m.body_sha256))
}
