//! One node's offset from the leader's wall clock, as measured from a read-index answer
//! (the leader's clock between our send and our receipt), with its uncertainty.

use std::sync::atomic::{AtomicI64, Ordering};

/// This node's offset from the leader's clock, as last measured.
#[derive(Debug, Default)]
pub struct LeaderClock {
    /// Leader's clock minus ours, in ms.
    offset_ms: AtomicI64,
    /// How far off that may be: half the round trip it was measured over.
    uncertainty_ms: AtomicI64,
}

/// The offset of a clock that read `leader_now_ms` between our `sent_ms` and `received_ms`,
/// and its uncertainty (half the round trip, rounded up).
pub fn estimate(sent_ms: i64, leader_now_ms: i64, received_ms: i64) -> (i64, i64) {
    let round_trip = (received_ms - sent_ms).max(0);
    let midpoint = sent_ms + round_trip / 2;
    (leader_now_ms - midpoint, (round_trip + 1) / 2)
}

impl LeaderClock {
    pub fn record(&self, sent_ms: i64, leader_now_ms: i64, received_ms: i64) {
        if leader_now_ms == 0 {
            // A leader that does not say its clock (an older release).
            return;
        }
        let (offset, uncertainty) = estimate(sent_ms, leader_now_ms, received_ms);
        self.offset_ms.store(offset, Ordering::Relaxed);
        self.uncertainty_ms.store(uncertainty, Ordering::Relaxed);
    }

    pub fn offset_ms(&self) -> i64 {
        self.offset_ms.load(Ordering::Relaxed)
    }

    pub fn uncertainty_ms(&self) -> i64 {
        self.uncertainty_ms.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_offset_is_taken_at_the_middle_of_the_round_trip() {
        assert_eq!(estimate(1_000, 1_005, 1_010), (0, 5));
        assert_eq!(
            estimate(1_000, 61_005, 1_010),
            (60_000, 5),
            "a clock a minute ahead"
        );
        assert_eq!(estimate(1_000, 500, 1_002), (-501, 1), "a clock behind");
        let clock = LeaderClock::default();
        clock.record(1_000, 1_250, 1_100);
        assert_eq!((clock.offset_ms(), clock.uncertainty_ms()), (200, 50));
        clock.record(1_000, 0, 1_100);
        assert_eq!(
            clock.offset_ms(),
            200,
            "a reply without a clock changes nothing"
        );
    }
}
