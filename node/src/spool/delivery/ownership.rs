//! Who delivers a message: the owner renews its leases in one entry per round; the leader
//! takes over the lapsed leases of others, a whole owner's queue in one command; an owner
//! whose attempts at a message keep failing hands it to another node, whose path to the
//! downstream may work.

use std::cmp::Reverse;
use std::collections::BTreeMap;
use std::sync::Arc;

use peage_proto::v1::{command, SpoolHandOff, SpoolRenew, SpoolTakeover};

use crate::cluster::Cluster;
use crate::metrics::{DELIVERY_MOVED, DELIVERY_MOVE_COMMANDS};
use crate::state::spool::SpooledMessage;
use crate::tracking::event_of;
use crate::types::{NodeId, Outcome};

/// Most messages one renewal or takeover names: a thousand ids stay far below the entry
/// size limit (tens of KiB) while a whole queue moves or renews in a few entries.
pub const MAX_IDS_PER_COMMAND: usize = 1000;

/// Failed attempts at one owner before it hands the message over.
pub const HAND_OFF_AFTER: u32 = 3;

/// Extends this node's leases on `queue_ids`, a thousand per command, together.
pub async fn renew(cluster: &Cluster, queue_ids: Vec<String>, lease_ms: i64) {
    let lease_until_ms = cluster.leader_now_ms() + lease_ms;
    let renewals = queue_ids.chunks(MAX_IDS_PER_COMMAND).map(|ids| {
        let r = SpoolRenew {
            owner: cluster.id(),
            queue_ids: ids.to_vec(),
            lease_until_ms,
        };
        async move {
            if let Err(e) = cluster.propose(command::Kind::SpoolRenew(r)).await {
                tracing::debug!(error = %e, "lease renewal failed");
            }
        }
    });
    futures::future::join_all(renewals).await;
}

/// Takes the lapsed messages over for this (leading) node: one command per previous owner
/// and thousand messages, proposed together so that they share entries.
pub async fn take_over(cluster: &Cluster, lapsed: Vec<Arc<SpooledMessage>>, lease_ms: i64) {
    let mut by_owner: BTreeMap<NodeId, Vec<String>> = BTreeMap::new();
    for m in &lapsed {
        by_owner
            .entry(m.owner)
            .or_default()
            .push(m.queue_id.clone());
    }
    let now = cluster.leader_now_ms();
    let commands = by_owner.into_iter().flat_map(|(from, ids)| {
        let chunks: Vec<Vec<String>> = ids.chunks(MAX_IDS_PER_COMMAND).map(<[_]>::to_vec).collect();
        chunks.into_iter().map(move |queue_ids| {
            (
                from,
                SpoolTakeover {
                    queue_id: String::new(),
                    queue_ids,
                    from_owner: from,
                    to_owner: cluster.id(),
                    lease_until_ms: now + lease_ms,
                    now_ms: now,
                },
            )
        })
    });
    let proposals = commands.map(|(from, t)| async move {
        let asked = t.queue_ids.len();
        let ids = t.queue_ids.clone();
        let result = cluster.propose(command::Kind::SpoolTakeover(t)).await;
        match counted("takeover", result) {
            Ok(moved) => {
                tracing::info!(from, asked, moved, "took over delivery");
                // Those that were delivered or renewed meanwhile stay with their owner.
                let spool = cluster.state().spool();
                let now_ours = ids.iter().filter_map(|id| spool.get(id));
                for m in now_ours.filter(|m| m.owner == cluster.id()) {
                    let why = format!("delivery taken over from node {from}: its lease lapsed");
                    let event = event_of(&m, "taken_over", m.rcpt_to.clone(), why);
                    cluster.tracking().record(event);
                }
            }
            Err(e) => tracing::warn!(from, asked, error = %e, "takeover failed"),
        }
    });
    futures::future::join_all(proposals).await;
}

/// Hands `m` to another node after `HAND_OFF_AFTER` failures here (`hand_off_target` says
/// which). Each message is handed off at most once per other voter, so a downstream that is
/// down for every site leaves it with its last owner's backoff. Returns whether it was
/// handed off.
pub async fn hand_off(cluster: &Cluster, m: &SpooledMessage, lease_ms: i64) -> bool {
    let metrics = cluster.metrics();
    let voters: Vec<NodeId> = metrics.membership_config.membership().voter_ids().collect();
    if m.handoffs as usize + 1 >= voters.len() {
        return false;
    }
    let matched = cluster.matched_here();
    let Some(to) = hand_off_target(
        cluster.id(),
        &voters,
        metrics.current_leader,
        matched.as_ref(),
    ) else {
        return false;
    };
    let h = SpoolHandOff {
        from_owner: cluster.id(),
        to_owner: to,
        queue_ids: vec![m.queue_id.clone()],
        lease_until_ms: cluster.leader_now_ms() + lease_ms,
    };
    match counted(
        "hand_off",
        cluster.propose(command::Kind::SpoolHandOff(h)).await,
    ) {
        Ok(moved) => {
            tracing::info!(queue_id = %m.queue_id, to, "handed over after repeated failures");
            if moved > 0 {
                let why = format!("delivery handed to node {to} after repeated failures here");
                let event = event_of(m, "handed_off", m.rcpt_to.clone(), why);
                cluster.tracking().record(event);
            }
            moved > 0
        }
        Err(e) => {
            tracing::warn!(queue_id = %m.queue_id, to, error = %e, "hand-off failed");
            false
        }
    }
}

/// Where a message goes from `me`: the leader, known to be in touch with a majority, when
/// that is not this node; from the leader (which knows how far each follower's log
/// matches its own: `matched`), the voter that is furthest along — a site that is down
/// stops matching with the next entry, and a message handed to it would wait a whole lease
/// before the leader took it back — ties going to the next voter after `me`.
fn hand_off_target(
    me: NodeId,
    voters: &[NodeId],
    leader: Option<NodeId>,
    matched: Option<&BTreeMap<NodeId, u64>>,
) -> Option<NodeId> {
    if let Some(l) = leader.filter(|l| *l != me) {
        return Some(l);
    }
    let after_me = voters.iter().copied().filter(|v| *v > me);
    let before_me = voters.iter().copied().filter(|v| *v < me);
    let mut in_turn = after_me.chain(before_me);
    match matched {
        // `min_by_key` keeps the first of equals: the first in turn.
        Some(matched) => in_turn.min_by_key(|v| Reverse(matched.get(v).copied().unwrap_or(0))),
        None => in_turn.next(),
    }
}

/// Counts a move command and the messages it moved.
fn counted(
    how: &'static str,
    result: Result<(u64, Outcome), crate::cluster::error::WriteError>,
) -> Result<u32, crate::cluster::error::WriteError> {
    let (_, outcome) = result?;
    metrics::counter!(DELIVERY_MOVE_COMMANDS, "how" => how).increment(1);
    let moved = match outcome {
        Outcome::SpoolOwned { changed } => changed,
        _ => 0,
    };
    metrics::counter!(DELIVERY_MOVED, "how" => how).increment(u64::from(moved));
    Ok(moved)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_follower_hands_to_the_leader() {
        assert_eq!(hand_off_target(1, &[1, 2, 3], Some(3), None), Some(3));
    }

    #[test]
    fn the_leader_hands_to_the_follower_whose_log_matches_furthest_not_to_a_dead_one() {
        let matched = BTreeMap::from([(1, 40), (2, 23), (3, 41)]);
        assert_eq!(
            hand_off_target(1, &[1, 2, 3], Some(1), Some(&matched)),
            Some(3)
        );
        let matched = BTreeMap::from([(1, 40), (2, 40), (3, 12)]);
        assert_eq!(
            hand_off_target(1, &[1, 2, 3], Some(1), Some(&matched)),
            Some(2)
        );
    }

    #[test]
    fn followers_equally_far_along_are_taken_in_turn_after_the_leader() {
        let matched = BTreeMap::from([(1, 40), (2, 40), (3, 40)]);
        assert_eq!(
            hand_off_target(2, &[1, 2, 3], Some(2), Some(&matched)),
            Some(3)
        );
        assert_eq!(
            hand_off_target(3, &[1, 2, 3], Some(3), Some(&matched)),
            Some(1)
        );
    }

    #[test]
    fn without_a_leader_or_its_figures_the_next_voter_in_turn() {
        assert_eq!(hand_off_target(3, &[1, 2, 3], None, None), Some(1));
        assert_eq!(hand_off_target(1, &[1, 2, 3], None, None), Some(2));
        assert_eq!(hand_off_target(1, &[1], None, None), None);
    }
}
