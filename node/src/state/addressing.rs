//! The vocabulary of who may receive and send: a local domain's route and how its
//! recipients are verified, what a failing DMARC policy does, the callout answers, the
//! submission accounts, their locks and their domains' DKIM keys; and who may drive the
//! cluster (an API token's role and grant); all of them as loaded from the database.

use std::collections::{BTreeMap, HashMap, HashSet};

use serde::{Deserialize, Serialize};

/// A local domain's entry in the routing table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DomainRoute {
    /// smtp://HOST:PORT
    pub route: String,
    pub author: String,
    pub created_at_ms: i64,
    pub verify: Verify,
    pub dmarc: DmarcAction,
    /// The domain's mailbox owners may use the quarantine portal.
    pub portal: bool,
    /// When its mailboxes get the daily digest of their held mail, if they do.
    pub digest: Option<DigestSchedule>,
    /// The language of its digests and of its portal pages.
    pub lang: DigestLang,
}

/// When a domain's daily digest of held mail goes out: seconds after midnight, UTC (its
/// language is the domain's, `DomainRoute::lang`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DigestSchedule {
    pub second_of_day: u32,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum DigestLang {
    #[default]
    En,
    Fr,
}

impl DigestLang {
    /// `en` (or empty) or `fr`.
    pub fn parse(word: &str) -> Option<DigestLang> {
        match word {
            "" | "en" => Some(DigestLang::En),
            "fr" => Some(DigestLang::Fr),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            DigestLang::En => "en",
            DigestLang::Fr => "fr",
        }
    }
}

impl DigestSchedule {
    /// A schedule from `HH:MM` or `HH:MM:SS` (UTC); `None` for an empty or malformed time.
    pub fn parse(at: &str) -> Option<DigestSchedule> {
        let parts: Vec<&str> = at.split(':').collect();
        if !(2..=3).contains(&parts.len())
            || parts
                .iter()
                .any(|p| p.len() != 2 || !p.bytes().all(|b| b.is_ascii_digit()))
        {
            return None;
        }
        let number = |i: usize| parts.get(i).map_or(Some(0), |p| p.parse::<u32>().ok());
        let (h, m, s) = (number(0)?, number(1)?, number(2)?);
        if h > 23 || m > 59 || s > 59 {
            return None;
        }
        Some(DigestSchedule {
            second_of_day: h * 3600 + m * 60 + s,
        })
    }

    /// The time as `HH:MM`, or `HH:MM:SS` when it has seconds.
    pub fn at(&self) -> String {
        let (h, m, s) = (
            self.second_of_day / 3600,
            self.second_of_day % 3600 / 60,
            self.second_of_day % 60,
        );
        match s {
            0 => format!("{h:02}:{m:02}"),
            s => format!("{h:02}:{m:02}:{s:02}"),
        }
    }
}

/// What a failing DMARC policy does to mail for a local domain, from the most lenient.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default)]
pub enum DmarcAction {
    /// Its symbol's points only.
    Score,
    /// The sender's p=reject or p=quarantine holds the message, never refuses it.
    Quarantine,
    /// The sender's policy as it says: p=reject refused (550), p=quarantine held.
    Reject,
    /// Whatever the node's `dns.dmarc_policy` says.
    #[default]
    NodeDefault,
}

impl DmarcAction {
    /// The operator's word (empty or `default`: the node's setting).
    pub fn parse(word: &str) -> Option<DmarcAction> {
        match word {
            "" | "default" => Some(DmarcAction::NodeDefault),
            "score" => Some(DmarcAction::Score),
            "quarantine" => Some(DmarcAction::Quarantine),
            "reject" => Some(DmarcAction::Reject),
            _ => None,
        }
    }

    /// As stored and shown (empty for the node's setting).
    pub fn as_str(self) -> &'static str {
        match self {
            DmarcAction::NodeDefault => "",
            DmarcAction::Score => "score",
            DmarcAction::Quarantine => "quarantine",
            DmarcAction::Reject => "reject",
        }
    }
}

/// How a local domain's RCPT addresses are checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Verify {
    /// Any local part is accepted (the downstream may refuse it later).
    #[default]
    None,
    /// Only the mailboxes in the replicated recipient list; others `550 5.1.1`.
    List,
    /// What the downstream answers to `RCPT` (asked once, the answer cached cluster-wide).
    Callout,
}

impl Verify {
    /// The configuration's word (empty: an older release's `DomainSet`, `none`).
    pub fn parse(word: &str) -> Option<Verify> {
        match word {
            "" | "none" => Some(Verify::None),
            "list" => Some(Verify::List),
            "callout" => Some(Verify::Callout),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Verify::None => "none",
            Verify::List => "list",
            Verify::Callout => "callout",
        }
    }
}

/// What the callout index keeps per mailbox key: the downstream's answer (valid or not),
/// and until when it holds.
pub type CalloutAnswer = (bool, i64);

/// What AUTH and the sender check need of a submission principal: an account that logs
/// in (a user, or one credential for a whole domain), or a platform MTA trusted by its
/// networks (no password).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Account {
    /// Empty: the principal cannot log in (it is trusted by its networks).
    pub password_hash: String,
    /// The domains it may send as; `*` is every hosted domain (the routing table's).
    pub domains: Vec<String>,
    /// Clients on these networks send as this principal without AUTH.
    pub networks: Vec<ipnet::IpNet>,
    /// Whom its mail is counted, limited and locked as.
    pub identity: IdentityFrom,
}

/// The domain of `address`, lower-case.
pub fn domain_of(address: &str) -> Option<String> {
    let (local, domain) = address.rsplit_once('@')?;
    (!local.is_empty() && !domain.is_empty()).then(|| domain.to_ascii_lowercase())
}

/// Every hosted domain, in an account's domains.
pub const ANY_HOSTED_DOMAIN: &str = "*";

/// Where a principal's identity comes from: the login itself, each message's envelope
/// sender (one credential for a domain, one identity per mailbox), or a header the platform
/// MTA adds (`Received` reads its `(Authenticated sender: …)` clause).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum IdentityFrom {
    #[default]
    Login,
    Sender,
    Header(String),
}

impl IdentityFrom {
    /// `login`, `sender` or `header:NAME`.
    pub fn parse(text: &str) -> Result<IdentityFrom, String> {
        match text.trim() {
            "" | "login" => Ok(IdentityFrom::Login),
            "sender" => Ok(IdentityFrom::Sender),
            other => match other.strip_prefix("header:") {
                Some(name)
                    if !name.is_empty()
                        && name.len() <= 64
                        && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-') =>
                {
                    Ok(IdentityFrom::Header(name.to_owned()))
                }
                _ => Err(format!(
                    "identity `{other}`: login, sender or header:NAME (a header field name)"
                )),
            },
        }
    }
}

impl std::fmt::Display for IdentityFrom {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            IdentityFrom::Login => f.write_str("login"),
            IdentityFrom::Sender => f.write_str("sender"),
            IdentityFrom::Header(name) => write!(f, "header:{name}"),
        }
    }
}

/// Why an account may not send, and until when (`locks::UNTIL_UNLOCKED`: an operator's
/// call).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lock {
    pub until_ms: i64,
    pub reason: String,
}

/// A hosted domain's signing key: its selector, `ed25519` or `rsa`, and PKCS#8 DER.
#[derive(Clone, PartialEq, Eq)]
pub struct DkimKey {
    pub selector: String,
    pub algorithm: String,
    pub private_key: Vec<u8>,
}

impl std::fmt::Debug for DkimKey {
    // Never the private half in a log line.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "DkimKey({} {})", self.selector, self.algorithm)
    }
}

/// What a token may do. `operator`: everything. `helpdesk`: read everything (message bodies
/// too), release and retry messages; no policy, membership, lists or accounts. `auditor`:
/// read records and settings, no message body, no write. `domain-admin`: only its domains'
/// mail, tracking, recipients, accounts and locks, reading bodies and releasing included.
/// The older names stay accepted: `admin` is an operator, `quarantine-reader` a helpdesk,
/// `read-only` an auditor.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Role {
    #[serde(alias = "admin")]
    Operator,
    #[serde(alias = "quarantine-reader")]
    Helpdesk,
    #[serde(alias = "read-only")]
    Auditor,
    DomainAdmin,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Operator => "operator",
            Role::Helpdesk => "helpdesk",
            Role::Auditor => "auditor",
            Role::DomainAdmin => "domain-admin",
        }
    }

    /// The role's name, or an older one.
    pub fn parse(word: &str) -> Option<Role> {
        match word.trim() {
            "operator" | "admin" => Some(Role::Operator),
            "helpdesk" | "quarantine-reader" => Some(Role::Helpdesk),
            "auditor" | "read-only" => Some(Role::Auditor),
            "domain-admin" => Some(Role::DomainAdmin),
            _ => None,
        }
    }
}

/// What authenticating with a token grants.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Grant {
    pub name: String,
    pub role: Role,
    /// Empty: every domain.
    pub domains: Vec<String>,
    /// 0: never expires.
    pub expires_at_ms: i64,
}

/// Who may receive and send, as loaded from the database: the routing table, the recipient
/// lists, the callout cache, the submission accounts, their locks and their domains' keys.
pub(super) struct Addressing {
    pub routes: BTreeMap<String, DomainRoute>,
    pub recipients: HashSet<u64>,
    pub callouts: HashMap<u64, CalloutAnswer>,
    pub users: HashMap<String, Account>,
    pub locks: HashMap<String, Lock>,
    pub dkim: HashMap<String, DkimKey>,
    /// Admin API tokens by the SHA-256 of their secret.
    pub tokens: HashMap<String, Grant>,
    /// The portal's signing key, once made.
    pub portal_key: Option<Vec<u8>>,
}
