//! Counters shared by the sites without Raft, for rate limits: each node counts what it
//! accepts in fixed windows and sends its own counts, whole, to every peer about once a
//! second (`ShareCounts`); a node decides on its own count plus the last counts it heard
//! from the others. Between two reports the others may each accept up to the rate times
//! the interval more than the limit allows: the overshoot is bounded by
//! rate × interval × (nodes − 1), and a lost report is made good by the next one.

use std::collections::HashMap;
use std::sync::Mutex;

use peage_mail::sync::lock;
use peage_proto::v1::{CountsReport, WindowCount};

use crate::types::NodeId;

/// (key, window start) → count.
type Counts = HashMap<(String, i64), u64>;

#[derive(Default)]
pub struct SharedCounts {
    own: Mutex<Counts>,
    /// The last report of each peer.
    heard: Mutex<HashMap<NodeId, Counts>>,
}

/// The start of the window of `length_ms` that `now_ms` falls in.
pub fn window_start(now_ms: i64, length_ms: i64) -> i64 {
    now_ms - now_ms.rem_euclid(length_ms.max(1))
}

impl SharedCounts {
    /// The cluster's count under `key` in the window starting at `start`, as this node
    /// knows it: its own, and what each peer last reported.
    pub fn total(&self, key: &str, start: i64) -> u64 {
        let k = (key.to_owned(), start);
        let own = lock(&self.own).get(&k).copied().unwrap_or(0);
        let heard: u64 = lock(&self.heard).values().filter_map(|c| c.get(&k)).sum();
        own + heard
    }

    /// Counts `n` more under `key` in the window starting at `start`.
    pub fn add(&self, key: &str, start: i64, n: u64) {
        *lock(&self.own).entry((key.to_owned(), start)).or_insert(0) += n;
    }

    /// This node's counts for the windows still open at `now_ms` (older ones are dropped;
    /// a window's length is the last part of its key).
    pub fn report(&self, id: NodeId, now_ms: i64) -> CountsReport {
        let mut own = lock(&self.own);
        own.retain(|(key, start), _| start + window_of(key) > now_ms);
        let counts = own
            .iter()
            .map(|((key, start), count)| WindowCount {
                key: key.clone(),
                window_start_ms: *start,
                count: *count,
            })
            .collect();
        CountsReport {
            node_id: id,
            counts,
        }
    }

    /// A peer's report replaces what it said before.
    pub fn heard(&self, report: CountsReport) {
        let counts = report
            .counts
            .into_iter()
            .map(|c| ((c.key, c.window_start_ms), c.count))
            .collect();
        lock(&self.heard).insert(report.node_id, counts);
    }
}

/// A key ends with its window's length in seconds (`…:60`).
fn window_of(key: &str) -> i64 {
    key.rsplit_once(':')
        .and_then(|(_, secs)| secs.parse::<i64>().ok())
        .map_or(86_400_000, |s| s * 1000)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_total_is_ours_plus_what_each_peer_last_said() {
        let c = SharedCounts::default();
        let start = window_start(125_000, 60_000);
        assert_eq!(start, 120_000);
        c.add("login:a:60", start, 3);
        c.heard(CountsReport {
            node_id: 2,
            counts: vec![WindowCount {
                key: "login:a:60".into(),
                window_start_ms: start,
                count: 4,
            }],
        });
        assert_eq!(c.total("login:a:60", start), 7);
        // A newer report from the same peer replaces the older one.
        c.heard(CountsReport {
            node_id: 2,
            counts: vec![WindowCount {
                key: "login:a:60".into(),
                window_start_ms: start,
                count: 5,
            }],
        });
        assert_eq!(c.total("login:a:60", start), 8);
        assert_eq!(c.report(1, 130_000).counts.len(), 1);
        assert!(
            c.report(1, 180_000).counts.is_empty(),
            "the window has closed"
        );
    }
}
