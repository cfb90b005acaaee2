//! Block and allow lists: validating and normalising values, and the in-memory index the
//! lookups go through (a CIDR table for IPs; a bloom filter in front of exact sets for
//! domains, senders and URL hosts), kept in step with apply.

use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;

use fastbloom::BloomFilter;
use ipnet::IpNet;

/// Which list an entry is on; the numbers are the peage.v1 `ListName` values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ListName {
    Block = 1,
    Allow = 2,
}

/// What an entry's value is; the numbers are the peage.v1 `EntryKind` values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum EntryKind {
    Ip = 1,
    Domain = 2,
    Sender = 3,
    Url = 4,
}

impl ListName {
    pub const ALL: [ListName; 2] = [ListName::Block, ListName::Allow];
    pub fn from_i32(v: i32) -> Option<ListName> {
        ListName::ALL.into_iter().find(|l| *l as i32 == v)
    }
    pub fn as_str(self) -> &'static str {
        match self {
            ListName::Block => "block",
            ListName::Allow => "allow",
        }
    }
}

impl EntryKind {
    pub const ALL: [EntryKind; 4] = [
        EntryKind::Ip,
        EntryKind::Domain,
        EntryKind::Sender,
        EntryKind::Url,
    ];
    pub fn from_i32(v: i32) -> Option<EntryKind> {
        EntryKind::ALL.into_iter().find(|k| *k as i32 == v)
    }
    pub fn as_str(self) -> &'static str {
        match self {
            EntryKind::Ip => "ip",
            EntryKind::Domain => "domain",
            EntryKind::Sender => "sender",
            EntryKind::Url => "url",
        }
    }
}

/// One list entry as stored in the replicated state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListEntry {
    pub id: u64,
    pub list: ListName,
    pub kind: EntryKind,
    pub value: String,
    pub reason: String,
    pub author: String,
    pub created_at_ms: i64,
    pub expires_at_ms: Option<i64>,
}

impl ListEntry {
    pub fn is_live(&self, now_ms: i64) -> bool {
        self.expires_at_ms.is_none_or(|t| t > now_ms)
    }
}

/// Why a value cannot be a list entry or be looked up.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InvalidValue {
    #[error("value is empty")]
    Empty,
    #[error("value is longer than {0} bytes")]
    TooLong(usize),
    #[error("invalid IP address or CIDR network `{0}`")]
    Ip(String),
    #[error("CIDR `{given}` has host bits set; did you mean `{network}`?")]
    HostBits { given: String, network: String },
    #[error("invalid domain `{0}`: {1}")]
    Domain(String, &'static str),
    #[error("invalid sender address `{0}`: {1}")]
    Sender(String, &'static str),
    #[error("invalid URL or host `{0}`")]
    Url(String),
}

const MAX_VALUE_BYTES: usize = 512;

/// Normalises a value for storing: IP networks in canonical form, domains lower-case
/// without a trailing dot, URL entries reduced to their host.
pub fn normalize_entry(kind: EntryKind, value: &str) -> Result<String, InvalidValue> {
    let value = trimmed_within_limits(value)?;
    match kind {
        EntryKind::Ip => {
            let net = parse_network(value)?;
            if net.trunc() != net {
                return Err(InvalidValue::HostBits {
                    given: value.to_owned(),
                    network: net.trunc().to_string(),
                });
            }
            Ok(net.to_string())
        }
        EntryKind::Domain => normalize_domain(value),
        EntryKind::Sender => normalize_sender(value),
        EntryKind::Url => url_host(value),
    }
}

/// Normalises a value to look up: an IP address (not a network) for `ip`, the host of a URL.
pub fn normalize_probe(kind: EntryKind, value: &str) -> Result<String, InvalidValue> {
    let value = trimmed_within_limits(value)?;
    match kind {
        EntryKind::Ip => value
            .parse::<IpAddr>()
            .map(|ip| ip.to_string())
            .map_err(|_| InvalidValue::Ip(value.to_owned())),
        _ => normalize_entry(kind, value),
    }
}

fn trimmed_within_limits(value: &str) -> Result<&str, InvalidValue> {
    let value = value.trim();
    if value.is_empty() {
        return Err(InvalidValue::Empty);
    }
    if value.len() > MAX_VALUE_BYTES {
        return Err(InvalidValue::TooLong(MAX_VALUE_BYTES));
    }
    Ok(value)
}

fn parse_network(value: &str) -> Result<IpNet, InvalidValue> {
    if let Ok(net) = value.parse::<IpNet>() {
        return Ok(net);
    }
    value
        .parse::<IpAddr>()
        .map(IpNet::from)
        .map_err(|_| InvalidValue::Ip(value.to_owned()))
}

fn normalize_domain(value: &str) -> Result<String, InvalidValue> {
    let d = value
        .strip_suffix('.')
        .unwrap_or(value)
        .to_ascii_lowercase();
    let bad = |why| InvalidValue::Domain(value.to_owned(), why);
    if d.is_empty() {
        return Err(bad("empty"));
    }
    if d.len() > 253 {
        return Err(bad("longer than 253 characters"));
    }
    if !d.is_ascii() {
        return Err(bad("not ASCII; use its punycode (xn--) form"));
    }
    for label in d.split('.') {
        if label.is_empty() {
            return Err(bad("empty label"));
        }
        if label.len() > 63 {
            return Err(bad("label longer than 63 characters"));
        }
        if !label
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        {
            return Err(bad("only letters, digits, '-' and '_' are allowed"));
        }
        if label.starts_with('-') || label.ends_with('-') {
            return Err(bad("a label starts or ends with '-'"));
        }
    }
    Ok(d)
}

fn normalize_sender(value: &str) -> Result<String, InvalidValue> {
    let bad = |why| InvalidValue::Sender(value.to_owned(), why);
    let (local, domain) = value.rsplit_once('@').ok_or_else(|| bad("no '@'"))?;
    if local.is_empty() {
        return Err(bad("empty local part"));
    }
    if local.len() > 64 {
        return Err(bad("local part longer than 64 characters"));
    }
    if local
        .bytes()
        .any(|b| b.is_ascii_whitespace() || b.is_ascii_control() || b == b'@')
    {
        return Err(bad("spaces, control characters or '@' in the local part"));
    }
    let domain = normalize_domain(domain).map_err(|_| bad("invalid domain"))?;
    Ok(format!("{}@{}", local.to_lowercase(), domain))
}

/// The host of a URL (`https://user@Host.example:8080/x` → `host.example`), or a bare host.
fn url_host(value: &str) -> Result<String, InvalidValue> {
    let bad = || InvalidValue::Url(value.to_owned());
    let rest = match value.find("://") {
        Some(i) => &value[i + 3..],
        None => value,
    };
    let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
    let host_port = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    let host = if let Some(v6) = host_port.strip_prefix('[') {
        v6.split(']').next().ok_or_else(bad)?
    } else {
        host_port.split(':').next().unwrap_or("")
    };
    if let Ok(ip) = host.parse::<IpAddr>() {
        return Ok(ip.to_string());
    }
    normalize_domain(host).map_err(|_| bad())
}

/// A set of exact strings with a bloom filter in front, so that most misses (the common case
/// on the filter path) cost a few hash probes. Removals leave bits set; the filter is rebuilt
/// when too many have piled up.
struct BloomedSet {
    bloom: BloomFilter,
    capacity: usize,
    removed_since_build: usize,
    map: HashMap<String, Vec<u64>>,
}

impl BloomedSet {
    fn new() -> BloomedSet {
        BloomedSet::with_capacity(1024, HashMap::new())
    }

    fn with_capacity(capacity: usize, map: HashMap<String, Vec<u64>>) -> BloomedSet {
        let mut bloom = BloomFilter::with_false_pos(0.001).expected_items(capacity);
        for key in map.keys() {
            bloom.insert(key.as_str());
        }
        BloomedSet {
            bloom,
            capacity,
            removed_since_build: 0,
            map,
        }
    }

    fn rebuild(&mut self) {
        let map = std::mem::take(&mut self.map);
        let capacity = (map.len() * 2).max(1024);
        *self = BloomedSet::with_capacity(capacity, map);
    }

    fn insert(&mut self, key: &str, id: u64) {
        let ids = self.map.entry(key.to_owned()).or_default();
        if !ids.contains(&id) {
            ids.push(id);
        }
        self.bloom.insert(key);
        if self.map.len() > self.capacity {
            self.rebuild();
        }
    }

    fn remove(&mut self, key: &str, id: u64) {
        if let Some(ids) = self.map.get_mut(key) {
            ids.retain(|x| *x != id);
            if ids.is_empty() {
                self.map.remove(key);
                self.removed_since_build += 1;
            }
        }
        if self.removed_since_build > self.capacity / 2 {
            self.rebuild();
        }
    }

    fn get(&self, key: &str) -> &[u64] {
        if !self.bloom.contains(key) {
            return &[];
        }
        self.map.get(key).map_or(&[], |v| v.as_slice())
    }
}

/// Networks grouped by (family, prefix length): a lookup masks the address once per prefix
/// length in use (at most 33 for IPv4, 129 for IPv6) and probes a hash map.
#[derive(Default)]
struct CidrTable {
    by_prefix: BTreeMap<(bool, u8), HashMap<IpNet, Vec<u64>>>,
}

impl CidrTable {
    fn insert(&mut self, net: IpNet, id: u64) {
        let slot = self
            .by_prefix
            .entry((net.addr().is_ipv6(), net.prefix_len()))
            .or_default();
        let ids = slot.entry(net).or_default();
        if !ids.contains(&id) {
            ids.push(id);
        }
    }

    fn remove(&mut self, net: IpNet, id: u64) {
        let key = (net.addr().is_ipv6(), net.prefix_len());
        if let Some(slot) = self.by_prefix.get_mut(&key) {
            if let Some(ids) = slot.get_mut(&net) {
                ids.retain(|x| *x != id);
                if ids.is_empty() {
                    slot.remove(&net);
                }
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
                out.extend_from_slice(ids);
            }
        }
    }
}

/// Every list entry, and the structures that find the ones matching a value.
#[derive(Default)]
pub struct ListIndex {
    entries: HashMap<u64, ListEntry>,
    ips: CidrTable,
    exact: HashMap<EntryKind, BloomedSet>,
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
        match entry.kind {
            EntryKind::Ip => {
                if let Ok(net) = entry.value.parse::<IpNet>() {
                    self.ips.insert(net, entry.id);
                }
            }
            kind => self
                .exact
                .entry(kind)
                .or_insert_with(BloomedSet::new)
                .insert(&entry.value, entry.id),
        }
        self.entries.insert(entry.id, entry);
    }

    pub fn remove(&mut self, id: u64) {
        let Some(old) = self.entries.remove(&id) else {
            return;
        };
        match old.kind {
            EntryKind::Ip => {
                if let Ok(net) = old.value.parse::<IpNet>() {
                    self.ips.remove(net, id);
                }
            }
            kind => {
                if let Some(set) = self.exact.get_mut(&kind) {
                    set.remove(&old.value, id);
                }
            }
        }
    }

    /// Whether any entry has expired at `now_ms` (the leader then proposes a sweep).
    pub fn has_expired(&self, now_ms: i64) -> bool {
        self.entries.values().any(|e| !e.is_live(now_ms))
    }

    /// The live entries of both lists that match `probe`, already normalised by
    /// [`normalize_probe`]. A domain matches itself and its subdomains' entries.
    pub fn check(&self, kind: EntryKind, probe: &str, now_ms: i64) -> Vec<ListEntry> {
        let mut ids = Vec::new();
        match kind {
            EntryKind::Ip => {
                if let Ok(ip) = probe.parse::<IpAddr>() {
                    self.ips.lookup(ip, &mut ids);
                }
            }
            EntryKind::Domain => {
                if let Some(set) = self.exact.get(&kind) {
                    let mut rest = probe;
                    loop {
                        ids.extend_from_slice(set.get(rest));
                        match rest.split_once('.') {
                            Some((_, parent)) => rest = parent,
                            None => break,
                        }
                    }
                }
            }
            EntryKind::Sender | EntryKind::Url => {
                if let Some(set) = self.exact.get(&kind) {
                    ids.extend_from_slice(set.get(probe));
                }
            }
        }
        let mut found: Vec<ListEntry> = ids
            .into_iter()
            .filter_map(|id| self.entries.get(&id))
            .filter(|e| e.is_live(now_ms))
            .cloned()
            .collect();
        found.sort_by_key(|e| e.id);
        found.dedup_by_key(|e| e.id);
        found
    }
}

#[cfg(test)]
mod tests;
