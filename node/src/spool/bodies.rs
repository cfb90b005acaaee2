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

/// After this long without enough answers from the peers asked so far, one more is asked:
/// a peer that is slow or cut off (no refusal comes) costs this much, not the timeout.
const ASK_ANOTHER_AFTER: Duration = Duration::from_millis(100);

/// Stores `body` under `hash` for the message `queue_id` here and, at the same time, on as
/// many peers as a majority of the voters needs (each copy fsynced): one more is asked when
/// one refuses or is slow to answer. The others get it from the repair (`delivery::repair`)
/// if the message is still queued then; most are delivered first and never need it, so a
/// body is written, synced and checkpointed on a majority rather than on every node.
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
    let peers_needed = needed.saturating_sub(local_vote);
    let mut candidates = peers_in_turn(&voters, me, m.current_leader, queue_id)
        .into_iter()
        .filter_map(|id| Some((id, membership.get_node(&id)?.peer_addr.clone())))
        .peekable();
    let ask = |(id, addr): (NodeId, String)| {
        let (peers, hash, body) = (cluster.peers().clone(), hash.to_owned(), body.clone());
        async move {
            let r = peers
                .put_blob(&addr, &hash, body.to_vec(), queue_id, timeout)
                .await;
            (id, r)
        }
    };
    let mut asked: FuturesUnordered<_> = candidates.by_ref().take(peers_needed).map(ask).collect();
    let on_peers = async {
        let mut holding = Vec::new();
        while holding.len() < peers_needed {
            let answer = tokio::select! {
                answer = asked.next(), if !asked.is_empty() => answer,
                _ = tokio::time::sleep(ASK_ANOTHER_AFTER), if candidates.peek().is_some() => None,
                // Nobody left to wait for or to ask.
                else => None,
            };
            match answer {
                Some((id, Ok(()))) => {
                    holding.push(id);
                    continue;
                }
                Some((id, Err(e))) => {
                    tracing::warn!(peer = id, error = %e, "peer did not take a body")
                }
                None => {}
            }
            // Refused or slow: ask the next peer, if any is left.
            match candidates.next() {
                Some(peer) => asked.push(ask(peer)),
                None if asked.is_empty() => break,
                None => {}
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

/// The voters other than `me` in the order they are asked for a body: starting at a place
/// the queue id picks, so that copies spread over the peers, and the leader last, as it
/// carries the Raft work.
fn peers_in_turn(
    voters: &[NodeId],
    me: NodeId,
    leader: Option<NodeId>,
    queue_id: &str,
) -> Vec<NodeId> {
    let others: Vec<NodeId> = voters.iter().copied().filter(|id| *id != me).collect();
    if others.is_empty() {
        return others;
    }
    let turn = queue_id
        .bytes()
        .fold(0usize, |h, b| h.wrapping_mul(31).wrapping_add(b.into()));
    let mut order: Vec<NodeId> = others
        .iter()
        .cycle()
        .skip(turn % others.len())
        .take(others.len())
        .copied()
        .collect();
    order.sort_by_key(|id| Some(*id) == leader);
    order
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

#[cfg(test)]
mod tests {
    use super::peers_in_turn;

    fn queue_ids() -> impl Iterator<Item = String> {
        (0..64u64).map(|i| format!("{:016X}", i.wrapping_mul(0x9E37_79B9_7F4A_7C15)))
    }

    #[test]
    fn a_follower_asks_the_other_follower_before_the_leader() {
        for id in queue_ids() {
            assert_eq!(peers_in_turn(&[1, 2, 3], 1, Some(2), &id), [3, 2], "{id}");
        }
    }

    #[test]
    fn the_leader_spreads_its_copies_over_the_followers() {
        let firsts: std::collections::BTreeSet<u64> = queue_ids()
            .map(|id| peers_in_turn(&[1, 2, 3], 2, Some(2), &id)[0])
            .collect();
        assert_eq!(firsts, [1, 3].into());
        for id in queue_ids() {
            let mut order = peers_in_turn(&[1, 2, 3], 2, Some(2), &id);
            order.sort_unstable();
            assert_eq!(order, [1, 3], "every follower is a candidate");
        }
    }

    #[test]
    fn a_learner_asks_every_voter_and_the_leader_last() {
        for id in queue_ids() {
            let order = peers_in_turn(&[1, 2, 3], 4, Some(1), &id);
            assert_eq!(order.len(), 3);
            assert_eq!(order[2], 1, "{order:?}");
        }
    }
}
