//! The spool in memory, per owner: what delivery, `/metrics` and the queue listing read
//! without touching SQLite. It follows every applied spool row (read again inside the
//! apply transaction) and is rebuilt from the table at open and after a snapshot install;
//! it wakes a node's delivery loop when a message becomes that node's work.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock, RwLock};

use tokio::sync::Notify;

use peage_mail::sync::{read, write};

use super::spool::SpooledMessage;
use crate::types::NodeId;

/// What is told (queue id, body hash, whether the record is there now) of each message
/// whose record an apply added or removed.
type RecordHook = Box<dyn Fn(&str, &str, bool) + Send + Sync>;

/// The rows, by owner and by id, with the counters `/metrics` reads.
#[derive(Default)]
pub struct SpoolIndex {
    rows: RwLock<Rows>,
    /// Notified when a message of the watched owner's is added, or becomes its work (new
    /// owner, verdict or retry generation): other nodes' messages do not wake it.
    new_work: Notify,
    /// The owner whose delivery loop waits on `new_work` (0 until one does: any owner).
    watched: AtomicU64,
    /// Told of each record an apply added or removed.
    on_record: OnceLock<RecordHook>,
}

#[derive(Default)]
struct Rows {
    by_id: HashMap<String, Arc<SpooledMessage>>,
    /// Messages waiting for delivery (not quarantined) per owner, by end of lease.
    by_owner: HashMap<NodeId, BTreeSet<(i64, String)>>,
    /// Messages waiting for delivery (not quarantined), by acceptance time.
    queued_by_age: BTreeSet<(i64, String)>,
    /// Quarantined messages, by acceptance time (retention is judged on it).
    quarantined_by_age: BTreeSet<(i64, String)>,
}

/// Another owner's messages whose lease has ended.
#[derive(Debug)]
pub struct Lapsed {
    pub owner: NodeId,
    /// Ended leases, earliest end first.
    pub messages: Vec<Arc<SpooledMessage>>,
    /// Every message of the owner's is among them.
    pub all: bool,
}

/// What `/metrics` reports of the spool.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SpoolCounts {
    pub queued: usize,
    pub quarantined: usize,
    pub oldest_queued_at_ms: Option<i64>,
}

impl Rows {
    fn insert(&mut self, m: SpooledMessage) {
        if m.is_quarantined() {
            self.quarantined_by_age
                .insert((m.accepted_at_ms, m.queue_id.clone()));
        } else {
            self.by_owner
                .entry(m.owner)
                .or_default()
                .insert((m.lease_until_ms, m.queue_id.clone()));
            self.queued_by_age
                .insert((m.accepted_at_ms, m.queue_id.clone()));
        }
        self.by_id.insert(m.queue_id.clone(), Arc::new(m));
    }

    fn remove(&mut self, queue_id: &str) -> Option<Arc<SpooledMessage>> {
        let m = self.by_id.remove(queue_id)?;
        if m.is_quarantined() {
            self.quarantined_by_age
                .remove(&(m.accepted_at_ms, m.queue_id.clone()));
            return Some(m);
        }
        let key = (m.lease_until_ms, m.queue_id.clone());
        if let Some(leases) = self.by_owner.get_mut(&m.owner) {
            leases.remove(&key);
            if leases.is_empty() {
                self.by_owner.remove(&m.owner);
            }
        }
        self.queued_by_age
            .remove(&(m.accepted_at_ms, m.queue_id.clone()));
        Some(m)
    }
}

/// Whether `now` asks more of a delivery loop than `before` did: a lease renewal or a
/// delivered recipient does not.
fn is_new_work(before: Option<&SpooledMessage>, now: &SpooledMessage) -> bool {
    before.is_none_or(|b| {
        b.owner != now.owner || b.verdict != now.verdict || b.retry_gen != now.retry_gen
    })
}

impl SpoolIndex {
    /// Replaces every row (at open and after a restore).
    pub fn replace(&self, all: Vec<SpooledMessage>) {
        let mut rows = Rows::default();
        for m in all {
            rows.insert(m);
        }
        *write(&self.rows) = rows;
        self.new_work.notify_one();
    }

    /// Calls `hook(queue_id, body_sha256, present)` for each record an apply adds (`true`:
    /// a new message, or a released part of one, needs that body) or removes (`false`: its
    /// message is finished), from now on. Set once: the blob store's, which keeps a body
    /// while some message needs it.
    pub fn on_record(&self, hook: impl Fn(&str, &str, bool) + Send + Sync + 'static) {
        let _ = self.on_record.set(Box::new(hook));
    }

    /// Follows the rows one apply wrote (`Some`) or removed (`None`).
    pub fn follow(&self, changed: Vec<(String, Option<SpooledMessage>)>) {
        let mut woken = false;
        let mut records = Vec::new();
        {
            let mut rows = write(&self.rows);
            for (queue_id, now) in changed {
                let before = rows.remove(&queue_id);
                match now {
                    Some(m) => {
                        woken |= is_new_work(before.as_deref(), &m) && self.is_watched(m.owner);
                        if before.is_none() {
                            records.push((queue_id, m.body_sha256.clone(), true));
                        }
                        rows.insert(m);
                    }
                    None => {
                        let gone = before.map(|m| (queue_id, m.body_sha256.clone(), false));
                        records.extend(gone);
                    }
                }
            }
        }
        if let Some(tell) = self.on_record.get() {
            for (queue_id, hash, present) in records {
                tell(&queue_id, &hash, present);
            }
        }
        if woken {
            self.new_work.notify_one();
        }
    }

    /// Resolves when new work for `owner` may have arrived since the last call returned.
    pub async fn new_work_for(&self, owner: NodeId) {
        self.watched.store(owner, Ordering::Relaxed);
        self.new_work.notified().await
    }

    fn is_watched(&self, owner: NodeId) -> bool {
        let watched = self.watched.load(Ordering::Relaxed);
        watched == 0 || watched == owner
    }

    pub fn get(&self, queue_id: &str) -> Option<Arc<SpooledMessage>> {
        read(&self.rows).by_id.get(queue_id).cloned()
    }

    /// The messages `owner` is to deliver (quarantined ones wait for an operator), earliest
    /// end of lease first.
    pub fn owned_by(&self, owner: NodeId) -> Vec<Arc<SpooledMessage>> {
        let rows = read(&self.rows);
        rows.by_owner.get(&owner).map_or_else(Vec::new, |leases| {
            let ids = leases.iter().map(|(_, id)| id);
            ids.filter_map(|id| rows.by_id.get(id).cloned()).collect()
        })
    }

    /// Per owner other than `me`, the messages to deliver whose lease ended by `now_ms`:
    /// reading only those, not the whole queue.
    pub fn lapsed_elsewhere(&self, me: NodeId, now_ms: i64) -> Vec<Lapsed> {
        let rows = read(&self.rows);
        let others = rows.by_owner.iter().filter(|(owner, _)| **owner != me);
        others
            .filter_map(|(owner, leases)| {
                let ended = leases.range(..(now_ms + 1, String::new()));
                let messages: Vec<_> = ended
                    .filter_map(|(_, id)| rows.by_id.get(id).cloned())
                    .collect();
                let all = messages.len() == leases.len();
                (!messages.is_empty()).then_some(Lapsed {
                    owner: *owner,
                    all,
                    messages,
                })
            })
            .collect()
    }

    /// Every message, oldest first (then by queue id).
    pub fn all(&self) -> Vec<Arc<SpooledMessage>> {
        let rows = read(&self.rows);
        let by_age: BTreeMap<(i64, &str), &Arc<SpooledMessage>> = rows
            .by_id
            .values()
            .map(|m| ((m.accepted_at_ms, m.queue_id.as_str()), m))
            .collect();
        by_age.into_values().cloned().collect()
    }

    /// The quarantined messages accepted before `before_ms`, oldest first.
    pub fn quarantined_before(&self, before_ms: i64) -> Vec<Arc<SpooledMessage>> {
        let rows = read(&self.rows);
        rows.quarantined_by_age
            .iter()
            .take_while(|(at, _)| *at < before_ms)
            .filter_map(|(_, id)| rows.by_id.get(id).cloned())
            .collect()
    }

    /// Every body hash a message in the spool references.
    pub fn body_hashes(&self) -> HashSet<String> {
        let rows = read(&self.rows);
        rows.by_id.values().map(|m| m.body_sha256.clone()).collect()
    }

    pub fn counts(&self) -> SpoolCounts {
        let rows = read(&self.rows);
        SpoolCounts {
            queued: rows.queued_by_age.len(),
            quarantined: rows.quarantined_by_age.len(),
            oldest_queued_at_ms: rows.queued_by_age.first().map(|(at, _)| *at),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn message(id: &str, owner: NodeId, accepted_at_ms: i64, verdict: &str) -> SpooledMessage {
        SpooledMessage {
            accepted_at_ms,
            lease_until_ms: accepted_at_ms + 100,
            verdict: verdict.into(),
            ..SpooledMessage::example(id, owner)
        }
    }

    fn ids(v: &[Arc<SpooledMessage>]) -> Vec<&str> {
        v.iter().map(|m| m.queue_id.as_str()).collect()
    }

    #[test]
    fn rows_follow_owners_verdicts_and_removals() {
        let index = SpoolIndex::default();
        index.replace(vec![
            message("a", 1, 30, "deliver"),
            message("b", 2, 10, "deliver"),
            message("q", 1, 5, "quarantine"),
        ]);
        assert_eq!(ids(&index.owned_by(1)), ["a"], "quarantine waits");
        assert_eq!(ids(&index.all()), ["q", "b", "a"]);
        let lapsed = index.lapsed_elsewhere(1, 110);
        assert_eq!(lapsed.len(), 1);
        assert_eq!((lapsed[0].owner, lapsed[0].all), (2, true));
        assert_eq!(ids(&lapsed[0].messages), ["b"]);
        assert!(index.lapsed_elsewhere(1, 109).is_empty());
        assert!(index
            .lapsed_elsewhere(2, 1_000)
            .iter()
            .all(|l| l.owner == 1));
        assert!(index.quarantined_before(6).len() == 1 && index.quarantined_before(5).is_empty());
        assert_eq!(index.body_hashes().len(), 1, "the examples share one body");
        assert_eq!(
            index.counts(),
            SpoolCounts {
                queued: 2,
                quarantined: 1,
                oldest_queued_at_ms: Some(10)
            }
        );

        let mut moved = message("b", 1, 10, "deliver");
        moved.lease_until_ms = 500;
        let mut released = message("q", 1, 5, "released");
        released.lease_until_ms = 500;
        index.follow(vec![
            ("a".into(), None),
            ("b".into(), Some(moved)),
            ("q".into(), Some(released)),
        ]);
        assert_eq!(
            ids(&index.owned_by(1)),
            ["b", "q"],
            "by end of lease, then id"
        );
        assert!(index.owned_by(2).is_empty());
        assert!(index.get("a").is_none());
        assert_eq!(index.get("b").unwrap().lease_until_ms, 500);
        assert!(index.quarantined_before(1_000).is_empty(), "released");
        assert_eq!(
            index.counts(),
            SpoolCounts {
                queued: 2,
                quarantined: 0,
                oldest_queued_at_ms: Some(5)
            }
        );
    }

    /// The blob store hears of records that appear and disappear, not of updates: a
    /// released part of a held message is a new record on the same body.
    #[test]
    fn records_added_and_removed_are_told_with_their_body() {
        let index = SpoolIndex::default();
        let told = Arc::new(std::sync::Mutex::new(Vec::new()));
        let heard = told.clone();
        index.on_record(move |id, hash, present| {
            heard
                .lock()
                .unwrap()
                .push((id.to_owned(), hash.to_owned(), present))
        });
        index.follow(vec![("q".into(), Some(message("q", 1, 5, "quarantine")))]);
        let mut part = message("s", 1, 5, "released");
        part.body_sha256 = "held".into();
        let mut rest = message("q", 1, 5, "quarantine");
        rest.body_sha256 = "held".into();
        index.follow(vec![("s".into(), Some(part)), ("q".into(), Some(rest))]);
        index.follow(vec![("q".into(), None), ("gone".into(), None)]);
        let body = SpooledMessage::example("x", 1).body_sha256;
        let told = told.lock().unwrap().clone();
        assert_eq!(
            told,
            [
                ("q".to_owned(), body, true),
                ("s".to_owned(), "held".to_owned(), true),
                ("q".to_owned(), "held".to_owned(), false),
            ]
        );
    }

    #[tokio::test]
    async fn a_new_owner_is_woken_but_a_renewal_or_another_owners_mail_is_not() {
        let index = SpoolIndex::default();
        index.replace(vec![message("a", 1, 0, "deliver")]);
        index.new_work_for(2).await; // the replace
        let mut renewed = message("a", 1, 0, "deliver");
        renewed.lease_until_ms = 9_000;
        index.follow(vec![("a".into(), Some(renewed))]);
        index.follow(vec![("b".into(), Some(message("b", 1, 0, "deliver")))]);
        let quiet = tokio::time::timeout(Duration::from_millis(50), index.new_work_for(2)).await;
        assert!(
            quiet.is_err(),
            "node 2's loop woke for a renewal or node 1's mail"
        );
        index.follow(vec![("a".into(), Some(message("a", 2, 0, "deliver")))]);
        tokio::time::timeout(Duration::from_secs(5), index.new_work_for(2))
            .await
            .expect("a takeover by node 2 wakes its delivery loop");
    }
}
