//! The decisions of a delivery round, as pure functions of what the round sees: which
//! leases to renew, which messages to bounce for age, to attempt now, or to take over from
//! an owner whose lease lapsed; the backoff between attempts; and when a new leader may
//! start taking over.

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

use crate::state::spool::SpooledMessage;
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
    /// Our leases that lapsed or run low: renewed in one entry.
    pub renew: Vec<String>,
    /// Ours, held past the retention limit: the remaining recipients are bounced.
    pub expire: Vec<SpooledMessage>,
    /// Ours, due for an attempt now.
    pub attempt: Vec<SpooledMessage>,
    /// Another owner's, whose lease lapsed: taken over by this leader.
    pub take_over: Vec<SpooledMessage>,
}

/// Decides a round. Quarantined messages wait for an operator, not for a delivery.
pub fn plan(messages: Vec<SpooledMessage>, view: &View<'_>) -> Round {
    let mut round = Round::default();
    for m in messages.into_iter().filter(|m| !m.is_quarantined()) {
        if m.owner != view.me {
            if view.may_take_over && m.lease_until_ms <= view.now_ms {
                round.take_over.push(m);
            }
            continue;
        }
        if m.lease_until_ms <= view.now_ms {
            // Our lease lapsed (we were cut off, or paused): the message may be another
            // node's by now, so do not deliver until renewed.
            round.renew.push(m.queue_id.clone());
            continue;
        }
        if m.lease_until_ms - view.now_ms < view.lease_ms / 2 {
            round.renew.push(m.queue_id.clone());
        }
        if view.in_flight.contains(&m.queue_id) {
            continue;
        }
        if view.now_ms - m.accepted_at_ms > view.retention_ms {
            round.expire.push(m);
            continue;
        }
        let ready = view
            .backoff
            .get(&m.queue_id)
            .is_none_or(|b| b.next_at_ms <= view.now_ms || b.retry_gen != m.retry_gen);
        if ready {
            round.attempt.push(m);
        }
    }
    round
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
    ) -> SpooledMessage {
        SpooledMessage {
            queue_id: id.into(),
            mail_from: "a@x.test".into(),
            rcpt_to: vec!["b@example.test".into()],
            client_ip: "192.0.2.1".into(),
            helo: "x".into(),
            body_sha256: String::new(),
            size: 1,
            holders: vec![owner],
            owner,
            accepted_at_ms,
            lease_until_ms,
            verdict: "deliver".into(),
            score_milli: 0,
            symbols: Vec::new(),
            retry_gen: 0,
        }
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
        let mut quarantined = message("held", 1, 9_000, 900);
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
                quarantined,
            ],
            &view,
        );
        let ids = |v: &[SpooledMessage]| v.iter().map(|m| m.queue_id.clone()).collect::<Vec<_>>();
        assert_eq!(round.renew, ["lapsed", "low"]);
        assert_eq!(ids(&round.expire), ["old"]);
        assert_eq!(ids(&round.attempt), ["low"]);
        assert_eq!(ids(&round.take_over), ["theirs"]);
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
