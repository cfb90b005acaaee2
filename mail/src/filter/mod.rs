//! The filter: checks that add named, scored symbols, and the verdict under the replicated
//! policy. `judge` reads nothing but what it is handed (the envelope, the message bytes,
//! the `Knowledge` of the local replica); the order of the checks is written out in it, top
//! to bottom. Scores are data (`scoring::SCORES`); thresholds are policy.

mod attachments;
mod forgery;
mod phrases;
mod scoring;
mod structure;

use std::net::IpAddr;

use mail_parser::{Message, MessageParser, MimeHeaders};

use crate::evidence::{self, Evidence};
use crate::features::{features_of, Features};
use crate::lists::{EntryKind, ListEntry, ListName};
use crate::text::MessageText;
use crate::trust::Authenticated;
use crate::urls::url_hosts;
use scoring::{classifier_symbols, score_rules_alone};
pub use scoring::{
    evidence_reach_milli, headers, points, symbol, verdict, Judgement, Policy, Symbol, Verdict,
    GTUBE, RULES_ALONE, SCORES,
};

/// What the filter is handed.
pub struct FilterInput<'a> {
    pub client_ip: IpAddr,
    pub helo: &'a str,
    /// Empty for the null sender.
    pub mail_from: &'a str,
    pub message: &'a [u8],
    /// What sender authentication proved: allow-listed names and reputation count only
    /// for these.
    pub proved: &'a Authenticated,
    /// The envelope recipients, normalised: a domain's or a mailbox's own list entries
    /// count only when every recipient is within their scope.
    pub recipients: &'a [String],
}

/// What the filter consults besides the message: the cluster's block and allow lists and
/// its learned statistics (the local replica's, never waiting on consensus).
pub trait Knowledge {
    fn lookup(&self, kind: EntryKind, value: &str) -> Vec<ListEntry>;
    /// The classifier's spam probability for these features; `None` while it is silent.
    fn spam_probability(&self, _tokens: &[u64]) -> Option<f64> {
        None
    }
    /// The logistic classifier's spam probability for these features; `None` while silent.
    fn logistic_probability(&self, _features: &Features) -> Option<f64> {
        None
    }
    /// What the cluster counted under a reputation or bulk key (`crate::evidence`).
    fn evidence(&self, _key: &str) -> Option<Evidence> {
        None
    }
}

/// Runs every check, in order, and applies the policy. Never panics, whatever the bytes.
pub fn judge(input: &FilterInput<'_>, knowledge: &dyn Knowledge, policy: &Policy) -> Judgement {
    let mut found = Vec::new();
    let mut classifiers_silent = true;
    let mut evidence_keys =
        evidence::reputation_keys(input.client_ip, input.mail_from, input.helo, input.proved);

    let lists = ListsFor {
        knowledge,
        recipients: input.recipients,
    };
    // 0. What the cluster counted about the client network, sender domain and HELO.
    reputation(&evidence_keys, knowledge, &mut found);
    // 1. The connection and envelope against the lists.
    envelope_lists(input, &lists, &mut found);
    // 2. GTUBE, on the raw bytes (it must work even on unparsable mail).
    if memchr::memmem::find(input.message, GTUBE.as_bytes()).is_some() {
        found.push(symbol("GTUBE", "the GTUBE test string"));
    }
    // 3. Parse; everything after needs the structure.
    match MessageParser::default().parse(input.message) {
        None => found.push(symbol("UNPARSABLE_MESSAGE", "the message cannot be parsed")),
        Some(msg) => {
            let decoded = MessageText::of(&msg);
            // 4. Header sanity and the From domain.
            headers_and_from(&msg, &lists, input.proved, &mut found);
            // 5. URL hosts in the text and HTML parts.
            url_lists(&decoded, &lists, &mut found);
            // 5b. How it is built, what its headers claim, where its links go, its wording.
            structure::check(&msg, &decoded, &mut |n, why| found.push(symbol(n, why)));
            forgery::check(&msg, input.helo, input.proved, &mut |n, why| {
                found.push(symbol(n, why))
            });
            // 6. What the cluster learned.
            let tokens = crate::bayes::tokens_of(&msg, &decoded);
            let bayes = knowledge.spam_probability(&tokens.0);
            // Both classifiers fall silent together (too little learned): no features then.
            if let Some(bayes) = bayes {
                classifiers_silent = false;
                let features = features_of(&msg, &decoded);
                let logistic = knowledge.logistic_probability(&features);
                found.extend(classifier_symbols(bayes, logistic));
            }
            // 7. Copies of the same text seen across the cluster.
            evidence_keys.extend(bulk(&decoded, knowledge, &mut found));
            // 8. Attachments.
            for part in msg.attachments().take(100) {
                let name = part.attachment_name().unwrap_or("").to_owned();
                attachments::check(&name, part.contents(), &mut |n, why| {
                    found.push(symbol(n, why))
                });
            }
        }
    }
    let mut symbols = dedup(found);
    if classifiers_silent {
        score_rules_alone(&mut symbols);
    }
    let (verdict, total_milli) = verdict(&symbols, policy);
    Judgement {
        symbols,
        verdict,
        total_milli,
        evidence_keys,
    }
}

fn reputation(keys: &[String], knowledge: &dyn Knowledge, out: &mut Vec<Symbol>) {
    let known: Vec<(String, Evidence)> = keys
        .iter()
        .filter_map(|k| Some((k.clone(), knowledge.evidence(k)?)))
        .collect();
    for (name, why) in evidence::reputation_symbols(&known) {
        out.push(symbol(name, why));
    }
}

/// The client's address is what the connection proves; its names count for the allow-list
/// only as far as authentication proved them.
fn envelope_lists(input: &FilterInput<'_>, lists: &ListsFor<'_>, out: &mut Vec<Symbol>) {
    let ip = input.client_ip.to_string();
    let proved = |name: &str| Allow::when(input.proved.vouches_for(name));
    let mut checks = vec![
        (
            EntryKind::Ip,
            ip.as_str(),
            "BLOCKLIST_IP",
            "client IP",
            Allow::Counts,
        ),
        (
            EntryKind::Domain,
            input.helo,
            "BLOCKLIST_HELO",
            "HELO",
            proved(input.helo),
        ),
        (
            EntryKind::Sender,
            input.mail_from,
            "BLOCKLIST_SENDER",
            "sender",
            proved(input.mail_from),
        ),
    ];
    if let Some((_, domain)) = input.mail_from.rsplit_once('@') {
        checks.push((
            EntryKind::Domain,
            domain,
            "BLOCKLIST_SENDER",
            "sender domain",
            proved(domain),
        ));
    }
    for (kind, value, block_name, what, allow) in checks {
        list_symbols(lists, kind, value, (block_name, what), allow, out);
    }
}

fn headers_and_from(
    msg: &Message<'_>,
    lists: &ListsFor<'_>,
    proved: &Authenticated,
    out: &mut Vec<Symbol>,
) {
    match msg.from().and_then(|a| a.first()) {
        None => out.push(symbol("MISSING_FROM", "no From header")),
        Some(addr) => match addr.address.as_deref().and_then(|a| a.rsplit_once('@')) {
            Some((local, domain)) if !local.is_empty() && domain.contains('.') => {
                let address = addr.address.as_deref().unwrap_or("");
                let allow = Allow::when(proved.vouches_for(domain));
                let from_domain = ("BLOCKLIST_FROM_DOMAIN", "From domain");
                list_symbols(lists, EntryKind::Domain, domain, from_domain, allow, out);
                let sender = ("BLOCKLIST_SENDER", "From address");
                list_symbols(lists, EntryKind::Sender, address, sender, allow, out);
            }
            _ => out.push(symbol("MALFORMED_FROM", "the From address is malformed")),
        },
    }
    if msg.date().is_none() {
        out.push(symbol("MISSING_DATE", "no valid Date header"));
    }
    if msg.message_id().is_none() {
        out.push(symbol("MISSING_MESSAGE_ID", "no Message-ID header"));
    }
}

/// The hosts the links of a message's text and HTML parts go to, as the filter sees them
/// (what URI blocklists are asked about); none for an unparsable message.
pub fn url_hosts_of(message: &[u8]) -> Vec<String> {
    MessageParser::default()
        .parse(message)
        .map_or_else(Vec::new, |msg| hosts_linked(&MessageText::of(&msg)))
}

fn hosts_linked(decoded: &MessageText<'_>) -> Vec<String> {
    let mut hosts = Vec::new();
    for t in &decoded.texts {
        url_hosts(t, &mut hosts);
    }
    for h in &decoded.htmls {
        url_hosts(h, &mut hosts);
    }
    hosts
}

fn url_lists(decoded: &MessageText<'_>, lists: &ListsFor<'_>, out: &mut Vec<Symbol>) {
    let hosts = hosts_linked(decoded);
    // A link to a bare IP address: legitimate senders link to their names.
    if let Some(ip) = hosts
        .iter()
        .find(|h| h.parse::<std::net::Ipv4Addr>().is_ok())
    {
        out.push(symbol(
            "URL_IP_LITERAL",
            format!("a link goes to the IP address {ip}, not to a name"),
        ));
    }
    // Anyone can write any link: a URL host can be blocked, never allow-listed.
    for h in &hosts {
        let before = out.len();
        let host = ("BLOCKLIST_URL", "URL host");
        list_symbols(lists, EntryKind::Url, h, host, Allow::Never, out);
        if out.len() == before {
            let domain = ("BLOCKLIST_URL", "URL domain");
            list_symbols(lists, EntryKind::Domain, h, domain, Allow::Never, out);
        }
    }
}

/// Scores how many copies of this text the cluster has seen; returns the bulk keys the
/// message is to be counted under.
fn bulk(
    decoded: &MessageText<'_>,
    knowledge: &dyn Knowledge,
    out: &mut Vec<Symbol>,
) -> Vec<String> {
    let keys = evidence::bulk_keys(decoded);
    let copies = keys
        .iter()
        .filter_map(|k| knowledge.evidence(k))
        .map(|e| e.total())
        .fold(0.0, f64::max);
    if let Some((name, why)) = evidence::bulk_symbol(copies) {
        out.push(symbol(name, why));
    }
    keys
}

/// Whether an allow-list match on a value may lower the score.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Allow {
    /// The value is proved (the client's address; a name authentication vouched for).
    Counts,
    /// A name the client claims: the match is reported with no points.
    Unproved,
    /// A value anyone can write (a link): allow entries are not even looked at.
    Never,
}

impl Allow {
    fn when(proved: bool) -> Allow {
        if proved {
            Allow::Counts
        } else {
            Allow::Unproved
        }
    }
}

/// The lists as they stand for one message: the cluster's entries, and the scoped entries
/// whose scope holds every recipient.
struct ListsFor<'a> {
    knowledge: &'a dyn Knowledge,
    recipients: &'a [String],
}

impl ListsFor<'_> {
    fn lookup(&self, kind: EntryKind, value: &str) -> Vec<ListEntry> {
        let mut found = self.knowledge.lookup(kind, value);
        found.retain(|e| e.applies_to(self.recipients));
        found
    }
}

/// The list symbols for one value, named by its block symbol and what the value is.
fn list_symbols(
    lists: &ListsFor<'_>,
    kind: EntryKind,
    value: &str,
    (block_name, what): (&str, &str),
    allow: Allow,
    out: &mut Vec<Symbol>,
) {
    if value.is_empty() {
        return;
    }
    let found = lists.lookup(kind, value);
    let allowed = found.iter().find(|e| e.list == ListName::Allow);
    match (allowed, allow) {
        (Some(e), Allow::Counts) => out.push(symbol(
            "ALLOWLIST",
            format!("{what} {value} is allow-listed ({})", e.value),
        )),
        (Some(e), Allow::Unproved) => out.push(symbol(
            "ALLOWLIST_UNPROVED",
            format!(
                "{what} {value} is allow-listed ({}) but not proved by SPF or DKIM",
                e.value
            ),
        )),
        _ => {}
    }
    if let Some(e) = found.iter().find(|e| e.list == ListName::Block) {
        let why = if e.reason.is_empty() {
            String::new()
        } else {
            format!(": {}", e.reason)
        };
        out.push(symbol(
            block_name,
            format!("{what} {value} is block-listed ({}){why}", e.value),
        ));
    }
}

/// One symbol of each name: the first reason is kept.
fn dedup(mut symbols: Vec<Symbol>) -> Vec<Symbol> {
    let mut seen = std::collections::HashSet::new();
    symbols.retain(|s| seen.insert(s.name.clone()));
    symbols
}

#[cfg(test)]
mod tests;
