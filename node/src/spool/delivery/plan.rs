//! The decisions of a delivery round, as pure functions of what the round sees: which
//! leases to renew, which messages to bounce for age, to attempt now, or to take over from
//! an owner whose lease lapsed; the backoff between attempts; and when a new leader may
//! start taking over.
//!
//! An owner renews all its leases together, so that they end together: when one of a dead
//! owner's leases has ended, the others follow within half a lease, and the leader takes
//! them over in one go (`ripe`).

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::state::spool::SpooledMessage;
use crate::state::Lapsed;
use crate::types::NodeId;

/// Per-message retry state, local to the owner (a new owner starts afresh).
#[derive(Debug, Default)]
pub struct Backoff {
    pub attempts: u32,
    pub next_at_ms: i64,
    /// The message's `retry_gen` when this was computed; a newer one means "retry now".
    pub retry_gen: i64,
}

/// What a round sees besides the spool.
pub struct View<'a> {
    pub me: NodeId,
    pub now_ms: i64,
    pub lease_ms: i64,
    pub retention_ms: i64,
    /// This node leads and has led long enough to take lapsed leases over.
    pub may_take_over: bool,
    pub backoff: &'a HashMap<String, Backoff>,
    /// Messages with an attempt (or a bounce) in progress here.
    pub in_flight: &'a HashSet<String>,
}

/// What one round does.
#[derive(Debug, Default)]
pub struct Round {
    /// When one of our leases lapsed or runs low, all of them: renewed in one entry.
    pub renew: Vec<String>,
    /// Ours, held past the retention limit: the remaining recipients are bounced.
    pub expire: Vec<Arc<SpooledMessage>>,
    /// Ours, due for an attempt now.
    pub attempt: Vec<Arc<SpooledMessage>>,
    /// Another owner's, whose lease lapsed: taken over by this leader.
    pub take_over: Vec<Arc<SpooledMessage>>,
    /// The earliest time one of ours that waits (for its backoff, a renewal or the
    /// retention limit) is due again.
    pub next_due_ms: Option<i64>,
}

impl Round {
    fn due_at(&mut self, at_ms: i64) {
        self.next_due_ms = Some(self.next_due_ms.map_or(at_ms, |d| d.min(at_ms)));
    }
}

/// Decides a round over this node's messages and the lapsed ones of others.
/// Quarantined messages wait for an operator, not for a delivery.
pub fn plan(messages: Vec<Arc<SpooledMessage>>, view: &View<'_>) -> Round {
    let mut round = Round::default();
    let mut mine = Vec::new();
    let mut renew_due = false;
    for m in messages.into_iter().filter(|m| !m.is_quarantined()) {
        if m.owner != view.me {
            if view.may_take_over && m.lease_until_ms <= view.now_ms {
                round.take_over.push(m);
            }
            continue;
        }
        mine.push(m.queue_id.clone());
        let renew_at = m.lease_until_ms - view.lease_ms / 2;
        if renew_at <= view.now_ms {
            renew_due = true;
        } else {
            round.due_at(renew_at);
        }
        if m.lease_until_ms <= view.now_ms {
            // Our lease lapsed (we were cut off, or paused): the message may be another
            // node's by now, so do not deliver until renewed.
            continue;
        }
        if view.in_flight.contains(&m.queue_id) {
            continue;
        }
        let expires_at = m.accepted_at_ms + view.retention_ms;
        if view.now_ms > expires_at {
            round.expire.push(m);
            continue;
        }
        round.due_at(expires_at + 1);
        match view.backoff.get(&m.queue_id) {
            Some(b) if b.next_at_ms > view.now_ms && b.retry_gen == m.retry_gen => {
                round.due_at(b.next_at_ms);
            }
            _ => round.attempt.push(m),
        }
    }
    if renew_due {
        round.renew = mine;
    }
    round
}

/// The lapsed messages of other owners that a leader takes over now: all of an owner's
/// once every one of its leases has ended, or those that ended at least half a lease ago
/// (an owner that renews its leases together and still lives never lets one lapse).
pub fn ripe(lapsed: Vec<Lapsed>, now_ms: i64, lease_ms: i64) -> Vec<Arc<SpooledMessage>> {
    lapsed
        .into_iter()
        .filter(|l| {
            let first_end = l.messages.first().map_or(now_ms, |m| m.lease_until_ms);
            l.all || first_end <= now_ms - lease_ms / 2
        })
        .flat_map(|l| l.messages)
        .collect()
}

/// The wait before the next attempt: `first`, doubled per attempt, at most `max`.
pub fn retry_delay(first: Duration, max: Duration, attempts: u32) -> Duration {
    first
        .saturating_mul(1u32 << attempts.min(16).saturating_sub(1))
        .min(max)
}

/// A new leader waits one lease before taking anything over: while there was no leader,
/// live owners could not renew, and they get the time to do it now.
#[derive(Debug, Default)]
pub struct TakeoverGate {
    /// The term this node started leading in, and when.
    leading_since: Option<(u64, Instant)>,
}

impl TakeoverGate {
    /// Whether lapsed leases may be taken over this round.
    pub fn may_take_over(&mut self, leads: bool, term: u64, now: Instant, lease: Duration) -> bool {
        if !leads {
            self.leading_since = None;
        } else if self.leading_since.is_none_or(|(t, _)| t != term) {
            self.leading_since = Some((term, now));
        }
        self.leading_since
            .is_some_and(|(_, since)| now.duration_since(since) >= lease)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(
        id: &str,
        owner: NodeId,
        lease_until_ms: i64,
        accepted_at_ms: i64,
    ) -> Arc<SpooledMessage> {
        Arc::new(SpooledMessage {
            accepted_at_ms,
            lease_until_ms,
            ..SpooledMessage::example(id, owner)
        })
    }

    #[test]
    fn a_round_renews_expires_attempts_and_takes_over() {
        let mut backoff = HashMap::new();
        backoff.insert(
            "waiting".to_owned(),
            Backoff {
                attempts: 1,
                next_at_ms: 2_000,
                retry_gen: 0,
            },
        );
        let in_flight = HashSet::from(["busy".to_owned()]);
        let view = View {
            me: 1,
            now_ms: 1_000,
            lease_ms: 600,
            retention_ms: 500,
            may_take_over: true,
            backoff: &backoff,
            in_flight: &in_flight,
        };
        let mut quarantined = Arc::unwrap_or_clone(message("held", 1, 9_000, 900));
        quarantined.verdict = "quarantine".into();
        let round = plan(
            vec![
                message("lapsed", 1, 1_000, 900),
                message("low", 1, 1_200, 900),
                message("old", 1, 9_000, 100),
                message("waiting", 1, 9_000, 900),
                message("busy", 1, 9_000, 900),
                message("theirs", 2, 999, 900),
                message("theirs-live", 2, 5_000, 900),
                Arc::new(quarantined),
            ],
            &view,
        );
        let ids =
            |v: &[Arc<SpooledMessage>]| v.iter().map(|m| m.queue_id.clone()).collect::<Vec<_>>();
        let mut renewed = round.renew.clone();
        renewed.sort();
        assert_eq!(
            renewed,
            ["busy", "lapsed", "low", "old", "waiting"],
            "all ours at once"
        );
        assert_eq!(ids(&round.expire), ["old"]);
        assert_eq!(ids(&round.attempt), ["low"]);
        assert_eq!(ids(&round.take_over), ["theirs"]);
        // The earliest wake-up: "low" passes the retention limit at 1,401, before the end of
        // "waiting"'s backoff (2,000) and any renewal (8,700).
        assert_eq!(round.next_due_ms, Some(1_401));
    }

    #[test]
    fn a_dead_owners_queue_is_taken_over_once_all_its_leases_ended() {
        let lapsed = |owner: NodeId, ends: &[i64], all: bool| Lapsed {
            owner,
            messages: (ends.iter().enumerate())
                .map(|(i, end)| message(&format!("{owner}-{i}"), owner, *end, 0))
                .collect(),
            all,
        };
        // At 1,000 with leases of 600: owner 2 still holds a live lease and its first ended
        // only 100 ago (it may be renewing); all of owner 3's ended; owner 4's first ended
        // 300 ago, half a lease.
        let taken = ripe(
            vec![
                lapsed(2, &[900], false),
                lapsed(3, &[990, 1_000], true),
                lapsed(4, &[700, 950], false),
            ],
            1_000,
            600,
        );
        let ids: Vec<&str> = taken.iter().map(|m| m.queue_id.as_str()).collect();
        assert_eq!(ids, ["3-0", "3-1", "4-0", "4-1"]);
    }

    #[test]
    fn backoff_doubles_up_to_the_maximum() {
        let (first, max) = (Duration::from_millis(200), Duration::from_secs(2));
        let delays: Vec<u128> = (1..=6)
            .map(|n| retry_delay(first, max, n).as_millis())
            .collect();
        assert_eq!(delays, [200, 400, 800, 1600, 2000, 2000]);
    }

    #[test]
    fn a_new_leader_waits_one_lease_per_term() {
        let (lease, t0) = (Duration::from_secs(2), Instant::now());
        let mut gate = TakeoverGate::default();
        assert!(!gate.may_take_over(true, 5, t0, lease));
        assert!(gate.may_take_over(true, 5, t0 + lease, lease));
        assert!(
            !gate.may_take_over(true, 6, t0 + lease, lease),
            "a new term waits again"
        );
        assert!(!gate.may_take_over(false, 6, t0 + lease * 3, lease));
    }
}
