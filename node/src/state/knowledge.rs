//! The in-memory indexes rebuilt from the state machine — list lookups, the routing table
//! and the recipient lists, the policy, the classifier's counts, reputation and bulk evidence — kept in step with
//! every committed apply, and the filter's `Knowledge` over them. Filtering and relay
//! control read these, never SQLite and never consensus.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::RwLock;

use peage_mail::bayes::{Class, TokenTable};
use peage_mail::evidence::Evidence;
use peage_mail::features::Features;
use peage_mail::filter::{Knowledge, Policy};
use peage_mail::lists::{normalize_probe, EntryKind, ListEntry, ListIndex};
use peage_mail::logistic::{self, Model};
use peage_mail::sync::{into_inner, read, write};

pub use super::addressing::{
    domain_of, Account, CalloutAnswer, DigestLang, DigestSchedule, DkimKey, DmarcAction,
    DomainRoute, IdentityFrom, Lock, Verify, ANY_HOSTED_DOMAIN,
};
use super::addressing::{Addressing, Grant};
use crate::clock::now_ms;

/// The replicated policy: the filter's thresholds, and how long quarantine is kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClusterPolicy {
    pub filter: Policy,
    pub quarantine_retention_ms: i64,
    /// Outgoing mail at this score or more is held in the outbound quarantine.
    pub outbound_hold_at_milli: i64,
}

impl Default for ClusterPolicy {
    fn default() -> Self {
        ClusterPolicy {
            filter: Policy::default(),
            quarantine_retention_ms: DEFAULT_QUARANTINE_RETENTION_MS,
            outbound_hold_at_milli: Policy::default().quarantine_at_milli,
        }
    }
}

/// Quarantined messages are kept 30 days unless the policy says otherwise.
pub const DEFAULT_QUARANTINE_RETENTION_MS: i64 = 30 * 86_400 * 1000;

/// What the recipient index holds for an address (lower-cased): its 64-bit hash. Two
/// addresses share one with odds of about one in 10^13 for a million mailboxes.
pub fn recipient_key(address: &str) -> u64 {
    xxhash_rust::xxh3::xxh3_64(address.as_bytes())
}

/// Evidence per key: [ham, spam, reject] in thousandths of a message.
pub type EvidenceTable = HashMap<String, [i64; 3]>;

/// A change the in-memory indexes must follow once the transaction is committed.
#[derive(Debug)]
pub enum IndexChange {
    Upsert(ListEntry),
    Remove(u64),
    RouteSet {
        domain: String,
        route: DomainRoute,
    },
    RouteRemove {
        domain: String,
    },
    /// Mailboxes added to and removed from the recipient lists (their keys).
    Recipients {
        added: Vec<u64>,
        removed: Vec<u64>,
    },
    /// A domain's signing key now (`None`: it signs nothing).
    Dkim {
        domain: String,
        key: Option<DkimKey>,
    },
    /// An account locked (or its lock changed), or unlocked (`None`).
    Lock {
        login: String,
        lock: Option<Lock>,
    },
    /// A submission account set, or removed.
    UserSet {
        login: String,
        account: Account,
    },
    UserRemove {
        login: String,
    },
    /// An admin API token set (by the SHA-256 of its secret), or removed.
    TokenSet {
        secret_sha256: String,
        grant: Grant,
    },
    TokenRemove {
        secret_sha256: String,
    },
    PortalKey(Vec<u8>),
    /// Callout answers cached (by mailbox key) and expired ones dropped.
    Callouts {
        set: Vec<(u64, CalloutAnswer)>,
        removed: Vec<u64>,
    },
    Policy(ClusterPolicy),
    /// Evidence counts added, per key: [ham, spam, reject] in thousandths.
    EvidenceAdd(Vec<(String, [i64; 3])>),
    /// Every count scaled by `keep_per_mille` / 1000, and keys below `drop_below` removed.
    EvidenceDecay {
        keep_per_mille: i64,
        drop_below: i64,
    },
    /// One message's tokens added to (+1) or taken from (-1) a class.
    Bayes {
        tokens: Vec<u64>,
        class: Class,
        delta: i32,
    },
    /// The logistic classifier's weights that changed, with their new values.
    Logistic(Vec<(u32, f32)>),
    /// A spool row written or removed: the spool index reads it again before the commit.
    SpoolRow(String),
}

/// Everything the filter and relay control look up, each behind its own lock so that
/// readers of one never wait for a writer of another.
#[derive(Default)]
pub struct Indexes {
    /// Lookups for filtering and `list check`.
    lists: RwLock<ListIndex>,
    /// The routing table (it is small): relay control and delivery read it on every message.
    routes: RwLock<BTreeMap<String, DomainRoute>>,
    /// The recipient lists: the key of every listed mailbox (`recipients::recipient_key`).
    recipients: RwLock<HashSet<u64>>,
    /// The callout cache, by mailbox key.
    callouts: RwLock<HashMap<u64, CalloutAnswer>>,
    /// Submission accounts by login.
    users: RwLock<HashMap<String, Account>>,
    /// Locked accounts by login (expired locks too: they count towards the unlocks).
    locks: RwLock<HashMap<String, Lock>>,
    /// The signing key of each hosted domain that has one.
    dkim: RwLock<HashMap<String, DkimKey>>,
    /// Admin API tokens made through the API, by the SHA-256 of their secret.
    tokens: RwLock<HashMap<String, Grant>>,
    /// The portal's signing key, once made.
    portal_key: RwLock<Option<Vec<u8>>>,
    /// The filter's thresholds (read on every message) and the quarantine's retention.
    policy: RwLock<ClusterPolicy>,
    /// The classifier's counts, in step with `bayes_tokens` / `bayes_learned`.
    bayes: RwLock<TokenTable>,
    /// The logistic classifier's weights, in step with `logistic_weights`.
    logistic: RwLock<Model>,
    /// Reputation and bulk counts, in step with the `evidence` table.
    evidence: RwLock<EvidenceTable>,
}

impl Indexes {
    /// Indexes holding what was loaded from the database.
    pub(super) fn new(
        lists: ListIndex,
        addressing: Addressing,
        policy: ClusterPolicy,
        (bayes, logistic): (TokenTable, Model),
        evidence: EvidenceTable,
    ) -> Indexes {
        Indexes {
            lists: RwLock::new(lists),
            routes: RwLock::new(addressing.routes),
            recipients: RwLock::new(addressing.recipients),
            callouts: RwLock::new(addressing.callouts),
            users: RwLock::new(addressing.users),
            locks: RwLock::new(addressing.locks),
            dkim: RwLock::new(addressing.dkim),
            tokens: RwLock::new(addressing.tokens),
            portal_key: RwLock::new(addressing.portal_key),
            policy: RwLock::new(policy),
            bayes: RwLock::new(bayes),
            logistic: RwLock::new(logistic),
            evidence: RwLock::new(evidence),
        }
    }

    /// Takes everything `fresh` holds (after a restore from a snapshot).
    pub(super) fn replace_with(&self, fresh: Indexes) {
        *write(&self.lists) = into_inner(fresh.lists);
        *write(&self.routes) = into_inner(fresh.routes);
        *write(&self.recipients) = into_inner(fresh.recipients);
        *write(&self.callouts) = into_inner(fresh.callouts);
        *write(&self.users) = into_inner(fresh.users);
        *write(&self.locks) = into_inner(fresh.locks);
        *write(&self.dkim) = into_inner(fresh.dkim);
        *write(&self.tokens) = into_inner(fresh.tokens);
        *write(&self.portal_key) = into_inner(fresh.portal_key);
        *write(&self.policy) = into_inner(fresh.policy);
        *write(&self.bayes) = into_inner(fresh.bayes);
        *write(&self.logistic) = into_inner(fresh.logistic);
        *write(&self.evidence) = into_inner(fresh.evidence);
    }

    /// The logistic classifier's weights as last committed (`logistic::BatchWeights` reads
    /// them during an apply: the index follows every commit before the next apply starts).
    pub(super) fn logistic_model(&self) -> std::sync::RwLockReadGuard<'_, Model> {
        read(&self.logistic)
    }

    /// Follows the changes of one committed apply, with the same arithmetic as SQLite's.
    pub(super) fn follow(&self, changes: Vec<IndexChange>) {
        for change in changes {
            match change {
                IndexChange::Upsert(e) => write(&self.lists).upsert(e),
                IndexChange::Remove(id) => write(&self.lists).remove(id),
                IndexChange::RouteSet { domain, route } => {
                    write(&self.routes).insert(domain, route);
                }
                IndexChange::RouteRemove { domain } => {
                    write(&self.routes).remove(&domain);
                }
                IndexChange::Recipients { added, removed } => {
                    let mut keys = write(&self.recipients);
                    keys.extend(added);
                    for key in removed {
                        keys.remove(&key);
                    }
                }
                IndexChange::UserSet { login, account } => {
                    write(&self.users).insert(login, account);
                }
                IndexChange::UserRemove { login } => {
                    write(&self.users).remove(&login);
                }
                IndexChange::TokenSet {
                    secret_sha256,
                    grant,
                } => {
                    write(&self.tokens).insert(secret_sha256, grant);
                }
                IndexChange::TokenRemove { secret_sha256 } => {
                    write(&self.tokens).remove(&secret_sha256);
                }
                IndexChange::PortalKey(key) => *write(&self.portal_key) = Some(key),
                IndexChange::Dkim { domain, key } => match key {
                    Some(key) => {
                        write(&self.dkim).insert(domain, key);
                    }
                    None => {
                        write(&self.dkim).remove(&domain);
                    }
                },
                IndexChange::Lock { login, lock } => match lock {
                    Some(lock) => {
                        write(&self.locks).insert(login, lock);
                    }
                    None => {
                        write(&self.locks).remove(&login);
                    }
                },
                IndexChange::Callouts { set, removed } => {
                    let mut answers = write(&self.callouts);
                    for key in removed {
                        answers.remove(&key);
                    }
                    answers.extend(set);
                }
                IndexChange::Policy(p) => *write(&self.policy) = p,
                IndexChange::Bayes {
                    tokens,
                    class,
                    delta,
                } => write(&self.bayes).apply(&tokens, class, delta),
                IndexChange::Logistic(changed) => {
                    let mut model = write(&self.logistic);
                    for (bucket, weight) in changed {
                        model.set(bucket, weight);
                    }
                }
                IndexChange::EvidenceAdd(added) => add_evidence(&mut write(&self.evidence), added),
                IndexChange::EvidenceDecay {
                    keep_per_mille,
                    drop_below,
                } => decay_evidence(&mut write(&self.evidence), keep_per_mille, drop_below),
                // The spool index follows rows, read inside the transaction (`machine`).
                IndexChange::SpoolRow(_) => {}
            }
        }
    }

    /// The route of a local domain (already lower-case), or None: not ours to accept.
    pub fn route_for(&self, domain: &str) -> Option<String> {
        read(&self.routes).get(domain).map(|r| r.route.clone())
    }

    /// Whether a local domain's mailbox owners may use the quarantine portal.
    pub fn portal_on(&self, domain: &str) -> bool {
        read(&self.routes).get(domain).is_some_and(|r| r.portal)
    }

    /// The language of a local domain's digests and portal pages (English for another).
    pub fn lang_of(&self, domain: &str) -> DigestLang {
        read(&self.routes)
            .get(domain)
            .map(|r| r.lang)
            .unwrap_or_default()
    }

    /// A local domain's digest schedule, when its mailboxes get one.
    pub fn digest_of(&self, domain: &str) -> Option<DigestSchedule> {
        read(&self.routes).get(domain).and_then(|r| r.digest)
    }

    /// How a local domain's recipients are verified; `None` for a domain that is not local.
    pub fn verify_of(&self, domain: &str) -> Option<Verify> {
        read(&self.routes).get(domain).map(|r| r.verify)
    }

    /// Whether a mailbox (lower-cased address) is in the recipient lists.
    pub fn is_listed_recipient(&self, address: &str) -> bool {
        read(&self.recipients).contains(&recipient_key(address))
    }

    /// What a downstream last answered for a mailbox (lower-cased address) — valid or not —
    /// while that answer holds at `now_ms`; None when there is none to go by.
    pub fn callout_answer(&self, address: &str, now_ms: i64) -> Option<bool> {
        let answers = read(&self.callouts);
        let (valid, until) = answers.get(&recipient_key(address))?;
        (*until > now_ms).then_some(*valid)
    }

    /// What a failing DMARC policy does to mail for `domain` (the node's setting for a
    /// domain that does not say, or is not local).
    pub fn dmarc_of(&self, domain: &str) -> DmarcAction {
        read(&self.routes)
            .get(domain)
            .map_or(DmarcAction::NodeDefault, |r| r.dmarc)
    }

    /// The submission account `login` (as stored: lower-case).
    pub fn account(&self, login: &str) -> Option<Account> {
        read(&self.users).get(login).cloned()
    }

    /// The principal a client at `ip` is trusted as: the one whose network holding `ip`
    /// is the narrowest (ties: the first login).
    pub fn trusted_principal(&self, ip: std::net::IpAddr) -> Option<String> {
        read(&self.users)
            .iter()
            .flat_map(|(login, a)| a.networks.iter().map(move |n| (n, login)))
            .filter(|(net, _)| net.contains(&ip))
            .min_by(|(a, la), (b, lb)| b.prefix_len().cmp(&a.prefix_len()).then(la.cmp(lb)))
            .map(|(_, login)| login.clone())
    }

    /// The key that signs `domain`'s outgoing mail, if it has one.
    /// The grant of the API token whose secret hashes to `secret_sha256`.
    pub fn token(&self, secret_sha256: &str) -> Option<Grant> {
        read(&self.tokens).get(secret_sha256).cloned()
    }

    /// The portal's signing key, once one was made (`PortalKeySet`).
    pub fn portal_key(&self) -> Option<Vec<u8>> {
        read(&self.portal_key).clone()
    }

    pub fn dkim_key(&self, domain: &str) -> Option<DkimKey> {
        read(&self.dkim).get(domain).cloned()
    }

    /// The lock on account `login` while it holds at `now_ms`.
    pub fn lock_of(&self, login: &str, now_ms: i64) -> Option<Lock> {
        read(&self.locks)
            .get(login)
            .filter(|l| l.until_ms > now_ms)
            .cloned()
    }

    /// Mailboxes in the recipient lists.
    pub fn recipient_count(&self) -> usize {
        read(&self.recipients).len()
    }

    /// The whole routing table, by domain.
    pub fn domains(&self) -> BTreeMap<String, DomainRoute> {
        read(&self.routes).clone()
    }

    /// The current policy.
    pub fn policy(&self) -> ClusterPolicy {
        *read(&self.policy)
    }

    /// What the classifier has learned: (spam messages, ham messages, distinct tokens,
    /// approximate bytes of the in-memory table).
    pub fn bayes_counts(&self) -> (u64, u64, u64, u64) {
        let t = read(&self.bayes);
        (
            t.spam_messages,
            t.ham_messages,
            t.len() as u64,
            t.approximate_bytes() as u64,
        )
    }

    /// The live entries matching a normalised probe value.
    pub fn check(&self, kind: EntryKind, probe: &str, now_ms: i64) -> Vec<ListEntry> {
        read(&self.lists).check(kind, probe, now_ms)
    }

    /// Whether any list entry has expired at `now_ms`.
    pub fn has_expired(&self, now_ms: i64) -> bool {
        read(&self.lists).has_expired(now_ms)
    }
}

/// The filter looks lists up in this node's replica, never waiting on consensus.
impl Knowledge for Indexes {
    fn lookup(&self, kind: EntryKind, value: &str) -> Vec<ListEntry> {
        match normalize_probe(kind, value) {
            Ok(probe) => self.check(kind, &probe, now_ms()),
            Err(_) => Vec::new(),
        }
    }

    fn spam_probability(&self, tokens: &[u64]) -> Option<f64> {
        read(&self.bayes).spam_probability(tokens)
    }

    /// Silent, like the Bayes classifier, until enough of each class is learned.
    fn logistic_probability(&self, features: &Features) -> Option<f64> {
        read(&self.bayes).spam_probability(&[])?;
        let margin = logistic::margin(&*read(&self.logistic), features);
        Some(logistic::probability(margin))
    }

    fn evidence(&self, key: &str) -> Option<Evidence> {
        read(&self.evidence).get(key).map(|counts| Evidence {
            ham: counts[0] as f64 / 1000.0,
            spam: counts[1] as f64 / 1000.0,
            reject: counts[2] as f64 / 1000.0,
        })
    }
}

fn add_evidence(table: &mut EvidenceTable, added: Vec<(String, [i64; 3])>) {
    for (key, counts) in added {
        let e = table.entry(key).or_insert([0; 3]);
        for (a, b) in e.iter_mut().zip(counts) {
            *a += b;
        }
    }
}

fn decay_evidence(table: &mut EvidenceTable, keep_per_mille: i64, drop_below: i64) {
    table.retain(|_, e| {
        for n in e.iter_mut() {
            *n = *n * keep_per_mille / 1000;
        }
        e.iter().sum::<i64>() >= drop_below
    });
}
