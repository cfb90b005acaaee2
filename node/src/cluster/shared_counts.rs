//! Counters shared by the sites without Raft, for rate limits: each node counts what it
//! accepts in fixed windows and sends its own counts, whole, to every peer about once a
//! second (`ShareCounts`); a node decides on its own count plus the last counts it heard
//! from the others. Between two reports the others may each accept up to the rate times
//! the interval more than the limit allows: the overshoot is bounded by
//! rate × interval × (nodes − 1), and a lost report is made good by the next one.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::Mutex;

use peage_mail::sync::lock;
use peage_proto::v1::{CountsReport, WindowCount};

use crate::types::NodeId;

/// What is counted: a counter's name, whom it counts, and its window's length.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct CountKey {
    pub counter: String,
    pub name: String,
    pub secs: u64,
}

impl CountKey {
    pub fn new(counter: &str, name: &str, secs: u64) -> CountKey {
        CountKey {
            counter: counter.to_owned(),
            name: name.to_owned(),
            secs,
        }
    }

    pub fn window_ms(&self) -> i64 {
        (self.secs as i64).saturating_mul(1000)
    }

    /// `counter:name:secs` (a name may hold colons: an IPv6 address).
    fn wire(&self) -> String {
        format!("{}:{}:{}", self.counter, self.name, self.secs)
    }

    fn parse(wire: &str) -> Option<CountKey> {
        let (counter, rest) = wire.split_once(':')?;
        let (name, secs) = rest.rsplit_once(':')?;
        let secs = secs.parse().ok().filter(|s| *s > 0)?;
        Some(CountKey::new(counter, name, secs))
    }
}

/// (key, window start) → count.
type Counts = HashMap<(CountKey, i64), u64>;

#[derive(Default)]
pub struct SharedCounts {
    own: Mutex<Counts>,
    /// The last report of each peer.
    heard: Mutex<HashMap<NodeId, Counts>>,
    /// For counts of distinct things (recipients): the hashes this node has counted under
    /// a key in its current window.
    seen: Mutex<HashMap<CountKey, (i64, HashSet<u64>)>>,
}

/// The start of the window of `length_ms` that `now_ms` falls in.
pub fn window_start(now_ms: i64, length_ms: i64) -> i64 {
    now_ms - now_ms.rem_euclid(length_ms.max(1))
}

impl SharedCounts {
    /// The cluster's count under `key` in the window starting at `start`, as this node
    /// knows it: its own, and what each peer last reported.
    pub fn total(&self, key: &CountKey, start: i64) -> u64 {
        let k = (key.clone(), start);
        let own = lock(&self.own).get(&k).copied().unwrap_or(0);
        let heard: u64 = lock(&self.heard).values().filter_map(|c| c.get(&k)).sum();
        own + heard
    }

    /// Counts `n` more under `key` in the window starting at `start`.
    pub fn add(&self, key: &CountKey, start: i64, n: u64) {
        *lock(&self.own).entry((key.clone(), start)).or_insert(0) += n;
    }

    /// This node's counts for the windows still open at `now_ms` (older ones are dropped).
    pub fn report(&self, id: NodeId, now_ms: i64) -> CountsReport {
        let mut own = lock(&self.own);
        own.retain(|(key, start), _| start + key.window_ms() > now_ms);
        let counts = own
            .iter()
            .map(|((key, start), count)| WindowCount {
                key: key.wire(),
                window_start_ms: *start,
                count: *count,
            })
            .collect();
        CountsReport {
            node_id: id,
            counts,
        }
    }

    /// A peer's report replaces what it said before (keys that do not parse are dropped).
    pub fn heard(&self, report: CountsReport) {
        let counts = report
            .counts
            .into_iter()
            .filter_map(|c| Some(((CountKey::parse(&c.key)?, c.window_start_ms), c.count)))
            .collect();
        lock(&self.heard).insert(report.node_id, counts);
    }

    /// Every key counted here or by a peer whose window is open at `now_ms`, in order.
    pub fn open_keys(&self, now_ms: i64) -> BTreeSet<CountKey> {
        let open = |(key, start): &(CountKey, i64)| start + key.window_ms() > now_ms;
        let mut keys: BTreeSet<CountKey> = lock(&self.own)
            .keys()
            .filter(|k| open(k))
            .map(|(k, _)| k.clone())
            .collect();
        for counts in lock(&self.heard).values() {
            keys.extend(counts.keys().filter(|k| open(k)).map(|(k, _)| k.clone()));
        }
        keys
    }

    /// Of `items`, those this node has not counted under `key` in the window starting at
    /// `start` (earlier windows are forgotten).
    pub fn unseen(&self, key: &CountKey, start: i64, items: &HashSet<u64>) -> HashSet<u64> {
        let mut seen = lock(&self.seen);
        seen.retain(|_, (window, _)| *window == start);
        match seen.get(key) {
            Some((_, known)) => items.difference(known).copied().collect(),
            None => items.clone(),
        }
    }

    /// Remembers `items` as counted under `key` in the window starting at `start`.
    pub fn see(&self, key: &CountKey, start: i64, items: HashSet<u64>) {
        let mut seen = lock(&self.seen);
        let entry = seen
            .entry(key.clone())
            .or_insert_with(|| (start, HashSet::new()));
        if entry.0 != start {
            *entry = (start, HashSet::new());
        }
        entry.1.extend(items);
    }

    /// Forgets every count of `name` (ours, what peers said, what was seen); how many
    /// counts were dropped.
    pub fn forget(&self, name: &str) -> usize {
        lock(&self.seen).retain(|key, _| key.name != name);
        let mut dropped = 0;
        let mut own = lock(&self.own);
        let before = own.len();
        own.retain(|(key, _), _| key.name != name);
        dropped += before - own.len();
        for counts in lock(&self.heard).values_mut() {
            let before = counts.len();
            counts.retain(|(key, _), _| key.name != name);
            dropped += before - counts.len();
        }
        dropped
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report(node_id: NodeId, key: &CountKey, start: i64, count: u64) -> CountsReport {
        CountsReport {
            node_id,
            counts: vec![WindowCount {
                key: key.wire(),
                window_start_ms: start,
                count,
            }],
        }
    }

    #[test]
    fn the_total_is_ours_plus_what_each_peer_last_said() {
        let c = SharedCounts::default();
        let start = window_start(125_000, 60_000);
        assert_eq!(start, 120_000);
        let a = CountKey::new("identity", "a", 60);
        c.add(&a, start, 3);
        c.heard(report(2, &a, start, 4));
        assert_eq!(c.total(&a, start), 7);
        // A newer report from the same peer replaces the older one.
        c.heard(report(2, &a, start, 5));
        assert_eq!(c.total(&a, start), 8);
        assert_eq!(c.report(1, 130_000).counts.len(), 1);
        assert!(
            c.report(1, 180_000).counts.is_empty(),
            "the window has closed"
        );
    }

    #[test]
    fn keys_keep_colons_in_names_and_a_reset_forgets_every_count_of_a_name() {
        let ip = CountKey::new("ip", "2001:db8::1", 3600);
        assert_eq!(CountKey::parse(&ip.wire()), Some(ip.clone()));
        assert_eq!(CountKey::parse("identity:x:0"), None);
        assert_eq!(CountKey::parse("nonsense"), None);
        let c = SharedCounts::default();
        let bob = CountKey::new("identity", "bob@x.example", 60);
        c.add(&ip, 0, 2);
        c.add(&bob, 0, 1);
        c.heard(report(3, &bob, 0, 6));
        assert_eq!(c.open_keys(10).len(), 2);
        assert_eq!(c.forget("bob@x.example"), 2);
        assert_eq!(c.total(&bob, 0), 0);
        assert_eq!(c.total(&ip, 0), 2);
    }
}
