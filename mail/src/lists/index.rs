//! The in-memory list index the lookups go through, kept in step with apply: a CIDR table
//! for IPs, a bloom filter in front of exact sets for domains, senders and URL hosts, and
//! the entries themselves, compact: a million entries must fit a small node, so each entry
//! is one packed allocation and the exact sets hold entry ids only (8 bytes a slot), found
//! by the hash of the entry's value.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::IpAddr;

use fastbloom::BloomFilter;
use hashbrown::HashTable;
use ipnet::IpNet;
use xxhash_rust::xxh3::xxh3_64;

use super::entry::{EntryKind, ListEntry, ListName};

/// The ids filed under one key: nearly always one.
#[derive(Debug, Clone)]
enum Ids {
    One(u64),
    Many(Vec<u64>),
}

impl Ids {
    fn as_slice(&self) -> &[u64] {
        match self {
            Ids::One(id) => std::slice::from_ref(id),
            Ids::Many(ids) => ids,
        }
    }

    fn add(&mut self, id: u64) {
        match self {
            Ids::One(one) if *one != id => *self = Ids::Many(vec![*one, id]),
            Ids::Many(ids) if !ids.contains(&id) => ids.push(id),
            _ => {}
        }
    }

    /// Removes `id`; whether none is left.
    fn take(&mut self, id: u64) -> bool {
        match self {
            Ids::One(one) => *one == id,
            Ids::Many(ids) => {
                ids.retain(|x| *x != id);
                let last = match ids.as_slice() {
                    [last] => *last,
                    rest => return rest.is_empty(),
                };
                *self = Ids::One(last);
                false
            }
        }
    }
}

/// A set of exact strings with a bloom filter in front, so that most misses (the common case
/// on the filter path) cost a few hash probes. The set holds entry ids, hashed by their
/// entry's value: every call gets the entries to read values from. Removals leave bits set;
/// the filter is rebuilt when too many have piled up.
struct BloomedSet {
    bloom: BloomFilter,
    capacity: usize,
    removed_since_build: usize,
    ids: HashTable<u64>,
}

fn value_hash(value: &[u8]) -> u64 {
    xxh3_64(value)
}

/// The hash an id is filed under: its entry's value's.
fn id_hash(entries: &Entries, id: u64) -> u64 {
    entries.get(&id).map_or(0, |e| value_hash(e.value()))
}

impl BloomedSet {
    fn new() -> BloomedSet {
        BloomedSet::with_capacity(1024, HashTable::new(), &HashMap::new())
    }

    fn with_capacity(capacity: usize, ids: HashTable<u64>, entries: &Entries) -> BloomedSet {
        let mut bloom = BloomFilter::with_false_pos(0.001).expected_items(capacity);
        for id in &ids {
            bloom.insert(&id_hash(entries, *id));
        }
        BloomedSet {
            bloom,
            capacity,
            removed_since_build: 0,
            ids,
        }
    }

    fn rebuild(&mut self, entries: &Entries) {
        let ids = std::mem::take(&mut self.ids);
        let capacity = (ids.len() * 2).max(1024);
        *self = BloomedSet::with_capacity(capacity, ids, entries);
    }

    /// Files `id`, whose entry (with `value`) is already in `entries`.
    fn insert(&mut self, value: &str, id: u64, entries: &Entries) {
        let hash = value_hash(value.as_bytes());
        self.ids
            .insert_unique(hash, id, |other| id_hash(entries, *other));
        self.bloom.insert(&hash);
        if self.ids.len() > self.capacity {
            self.rebuild(entries);
        }
    }

    /// Unfiles `id` (its entry, with `value`, is still in `entries`).
    fn remove(&mut self, value: &str, id: u64) {
        let hash = value_hash(value.as_bytes());
        if let Ok(found) = self.ids.find_entry(hash, |other| *other == id) {
            found.remove();
            self.removed_since_build += 1;
        }
    }

    fn rebuild_if_worn(&mut self, entries: &Entries) {
        if self.removed_since_build > self.capacity / 2 {
            self.rebuild(entries);
        }
    }

    /// Ids of the entries whose value is `key`.
    fn matching(&self, key: &str, entries: &Entries, out: &mut Vec<u64>) {
        let hash = value_hash(key.as_bytes());
        if !self.bloom.contains(&hash) {
            return;
        }
        let same = |id: &u64| entries.get(id).is_some_and(|e| e.value() == key.as_bytes());
        out.extend(self.ids.iter_hash(hash).filter(|id| same(id)).copied());
    }
}

/// Networks grouped by (family, prefix length): a lookup masks the address once per prefix
/// length in use (at most 33 for IPv4, 129 for IPv6) and probes a hash map.
#[derive(Default)]
struct CidrTable {
    by_prefix: BTreeMap<(bool, u8), HashMap<IpNet, Ids>>,
}

impl CidrTable {
    fn insert(&mut self, net: IpNet, id: u64) {
        let slot = self
            .by_prefix
            .entry((net.addr().is_ipv6(), net.prefix_len()))
            .or_default();
        slot.entry(net)
            .and_modify(|ids| ids.add(id))
            .or_insert(Ids::One(id));
    }

    fn remove(&mut self, net: IpNet, id: u64) {
        let key = (net.addr().is_ipv6(), net.prefix_len());
        if let Some(slot) = self.by_prefix.get_mut(&key) {
            if slot.get_mut(&net).is_some_and(|ids| ids.take(id)) {
                slot.remove(&net);
            }
            if slot.is_empty() {
                self.by_prefix.remove(&key);
            }
        }
    }

    fn lookup(&self, ip: IpAddr, out: &mut Vec<u64>) {
        let v6 = ip.is_ipv6();
        for ((fam, prefix), slot) in &self.by_prefix {
            if *fam != v6 {
                continue;
            }
            // The prefix length comes from a stored network of the same family, so it is valid.
            let Ok(net) = IpNet::new(ip, *prefix) else {
                continue;
            };
            if let Some(ids) = slot.get(&net.trunc()) {
                out.extend_from_slice(ids.as_slice());
            }
        }
    }
}

/// Offsets in a packed entry: list, kind, value, reason and author lengths, created, expiry
/// (`i64::MAX`: never), then the value, the reason, the author and the scope.
const LIST: usize = 0;
const KIND: usize = 1;
const VALUE_LEN: usize = 2;
const REASON_LEN: usize = 6;
const AUTHOR_LEN: usize = 10;
const CREATED: usize = 14;
const EXPIRES: usize = 22;
const HEADER: usize = 30;

/// One entry as the index keeps it: a single allocation.
struct Stored(Box<[u8]>);

type Entries = HashMap<u64, Stored>;

impl Stored {
    fn new(e: &ListEntry) -> Stored {
        let list = ListName::ALL.iter().position(|l| *l == e.list).unwrap_or(0);
        let kind = EntryKind::ALL
            .iter()
            .position(|k| *k == e.kind)
            .unwrap_or(0);
        let texts = [&e.value, &e.reason, &e.author, &e.scope];
        let mut b = Vec::with_capacity(HEADER + texts.iter().map(|t| t.len()).sum::<usize>());
        b.extend_from_slice(&[list as u8, kind as u8]);
        for text in &texts[..3] {
            b.extend_from_slice(&(text.len() as u32).to_le_bytes());
        }
        b.extend_from_slice(&e.created_at_ms.to_le_bytes());
        b.extend_from_slice(&e.expires_at_ms.unwrap_or(i64::MAX).to_le_bytes());
        for text in texts {
            b.extend_from_slice(text.as_bytes());
        }
        Stored(b.into_boxed_slice())
    }

    fn u32_at(&self, at: usize) -> usize {
        u32::from_le_bytes(self.0[at..at + 4].try_into().unwrap_or_default()) as usize
    }

    fn i64_at(&self, at: usize) -> i64 {
        i64::from_le_bytes(self.0[at..at + 8].try_into().unwrap_or_default())
    }

    fn kind(&self) -> EntryKind {
        EntryKind::ALL[self.0[KIND] as usize % EntryKind::ALL.len()]
    }

    fn value(&self) -> &[u8] {
        &self.0[HEADER..HEADER + self.u32_at(VALUE_LEN)]
    }

    fn expires_at_ms(&self) -> Option<i64> {
        Some(self.i64_at(EXPIRES)).filter(|t| *t != i64::MAX)
    }

    fn is_live(&self, now_ms: i64) -> bool {
        self.expires_at_ms().is_none_or(|t| t > now_ms)
    }

    fn to_entry(&self, id: u64) -> ListEntry {
        let reason_at = HEADER + self.u32_at(VALUE_LEN);
        let author_at = reason_at + self.u32_at(REASON_LEN);
        let scope_at = author_at + self.u32_at(AUTHOR_LEN);
        let text =
            |range: std::ops::Range<usize>| String::from_utf8_lossy(&self.0[range]).into_owned();
        ListEntry {
            id,
            list: ListName::ALL[self.0[LIST] as usize % ListName::ALL.len()],
            kind: self.kind(),
            value: text(HEADER..reason_at),
            reason: text(reason_at..author_at),
            author: text(author_at..scope_at),
            scope: text(scope_at..self.0.len()),
            created_at_ms: self.i64_at(CREATED),
            expires_at_ms: self.expires_at_ms(),
        }
    }
}

/// Every list entry, and the structures that find the ones matching a value.
#[derive(Default)]
pub struct ListIndex {
    entries: Entries,
    ips: CidrTable,
    exact: HashMap<EntryKind, BloomedSet>,
    /// Entries that expire, by expiry: whether any has expired is one look.
    expiring: BTreeSet<(i64, u64)>,
}

impl ListIndex {
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    pub fn upsert(&mut self, entry: ListEntry) {
        self.remove(entry.id);
        let id = entry.id;
        if let Some(at) = entry.expires_at_ms {
            self.expiring.insert((at, id));
        }
        self.entries.insert(id, Stored::new(&entry));
        match entry.kind {
            EntryKind::Ip => {
                if let Ok(net) = entry.value.parse::<IpNet>() {
                    self.ips.insert(net, id);
                }
            }
            kind => self
                .exact
                .entry(kind)
                .or_insert_with(BloomedSet::new)
                .insert(&entry.value, id, &self.entries),
        }
    }

    pub fn remove(&mut self, id: u64) {
        let Some(old) = self.entries.get(&id) else {
            return;
        };
        let (kind, expires) = (old.kind(), old.expires_at_ms());
        let value = String::from_utf8_lossy(old.value()).into_owned();
        if let Some(at) = expires {
            self.expiring.remove(&(at, id));
        }
        if kind == EntryKind::Ip {
            if let Ok(net) = value.parse::<IpNet>() {
                self.ips.remove(net, id);
            }
        } else if let Some(set) = self.exact.get_mut(&kind) {
            set.remove(&value, id);
        }
        self.entries.remove(&id);
        if let Some(set) = self.exact.get_mut(&kind) {
            set.rebuild_if_worn(&self.entries);
        }
    }

    /// Whether any entry has expired at `now_ms` (the leader then proposes a sweep).
    pub fn has_expired(&self, now_ms: i64) -> bool {
        self.expiring.first().is_some_and(|(at, _)| *at <= now_ms)
    }

    /// The live entries of both lists that match `probe`, already normalised by
    /// [`super::normalize_probe`]. A domain matches itself and its subdomains' entries.
    pub fn check(&self, kind: EntryKind, probe: &str, now_ms: i64) -> Vec<ListEntry> {
        let mut ids = Vec::new();
        let exact = self.exact.get(&kind);
        match kind {
            EntryKind::Ip => {
                if let Ok(ip) = probe.parse::<IpAddr>() {
                    self.ips.lookup(ip, &mut ids);
                }
            }
            EntryKind::Domain => {
                let mut rest = probe;
                while let Some(set) = exact {
                    set.matching(rest, &self.entries, &mut ids);
                    match rest.split_once('.') {
                        Some((_, parent)) => rest = parent,
                        None => break,
                    }
                }
            }
            EntryKind::Sender | EntryKind::Url => {
                if let Some(set) = exact {
                    set.matching(probe, &self.entries, &mut ids);
                }
            }
        }
        ids.sort_unstable();
        ids.dedup();
        ids.into_iter()
            .filter_map(|id| Some((id, self.entries.get(&id)?)))
            .filter(|(_, e)| e.is_live(now_ms))
            .map(|(id, e)| e.to_entry(id))
            .collect()
    }
}
