//! Checks that add named, scored symbols, and the verdict. `analyze` reads nothing but what
//! it is handed (the envelope, the message bytes, a list lookup); the order of the checks
//! is written out in it, top to bottom. Scores are data (`SCORES`); thresholds are policy.

mod attachments;

use std::net::IpAddr;

use mail_parser::{MessageParser, MimeHeaders};

use crate::lists::{EntryKind, ListEntry, ListName};

/// The GTUBE test string (its Péage-neutral form, as used by every spam filter).
pub const GTUBE: &str = "XJS*C4JDBQADN1.NSBN3*2IDNEN*GTUBE-STANDARD-ANTI-UBE-TEST-EMAIL*C.34X";

/// Symbol names and their scores in milli-points (integers keep records deterministic).
pub const SCORES: &[(&str, i64)] = &[
    ("GTUBE", 1_000_000),
    ("BLOCKLIST_IP", 20_000),
    ("BLOCKLIST_HELO", 20_000),
    ("BLOCKLIST_SENDER", 20_000),
    ("BLOCKLIST_FROM_DOMAIN", 20_000),
    ("BLOCKLIST_URL", 12_000),
    ("ALLOWLIST", -20_000),
    ("MISSING_FROM", 3_000),
    ("MALFORMED_FROM", 3_000),
    ("MISSING_DATE", 1_000),
    ("MISSING_MESSAGE_ID", 1_500),
    ("UNPARSABLE_MESSAGE", 3_000),
    ("EXECUTABLE_ATTACHMENT", 10_000),
    ("DOUBLE_EXTENSION", 3_000),
    ("ARCHIVE_WITH_EXECUTABLE", 10_000),
    ("MACRO_OFFICE_DOCUMENT", 6_000),
    // The classifier's bands (see `bayes_symbol`).
    ("BAYES_99", 8_000),
    ("BAYES_90", 4_500),
    ("BAYES_70", 1_500),
    ("BAYES_10", -1_000),
    ("BAYES_00", -2_500),
    // Cluster-wide evidence (see `crate::evidence`).
    ("REPUTATION_BAD", 3_000),
    ("REPUTATION_POOR", 1_000),
    ("REPUTATION_GOOD", -1_000),
    ("BULK_SOME", 1_000),
    ("BULK_MANY", 2_500),
];

/// The classifier's spam probability as a symbol: strong evidence weighs most; the unsure
/// middle (0.1–0.7) says nothing.
fn bayes_symbol(p: f64) -> Option<Symbol> {
    let name = match p {
        p if p >= 0.99 => "BAYES_99",
        p if p >= 0.90 => "BAYES_90",
        p if p >= 0.70 => "BAYES_70",
        p if p <= 0.01 => "BAYES_00",
        p if p <= 0.10 => "BAYES_10",
        _ => return None,
    };
    Some(symbol(
        name,
        format!("the classifier's spam probability is {p:.3}"),
    ))
}

fn score_of(name: &str) -> i64 {
    SCORES
        .iter()
        .find(|(n, _)| *n == name)
        .map_or(0, |(_, s)| *s)
}

/// One finding: a name from `SCORES`, its score, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Symbol {
    pub name: String,
    pub score_milli: i64,
    pub reason: String,
}

fn symbol(name: &str, reason: impl Into<String>) -> Symbol {
    Symbol {
        name: name.to_owned(),
        score_milli: score_of(name),
        reason: reason.into(),
    }
}

/// What the filter is handed.
pub struct FilterInput<'a> {
    pub client_ip: IpAddr,
    pub helo: &'a str,
    /// Empty for the null sender.
    pub mail_from: &'a str,
    pub message: &'a [u8],
}

/// What the filter consults besides the message: the cluster's block and allow lists and
/// its learned statistics (the local replica's, never waiting on consensus).
pub trait Knowledge {
    fn lookup(&self, kind: EntryKind, value: &str) -> Vec<ListEntry>;
    /// The classifier's spam probability for these features; `None` while it is silent.
    fn spam_probability(&self, _tokens: &[u64]) -> Option<f64> {
        None
    }
    /// What the cluster counted under a reputation or bulk key (`crate::evidence`).
    fn evidence(&self, _key: &str) -> Option<crate::evidence::Evidence> {
        None
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Deliver,
    Quarantine,
    Reject,
}

impl Verdict {
    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::Deliver => "deliver",
            Verdict::Quarantine => "quarantine",
            Verdict::Reject => "reject",
        }
    }
}

/// Score thresholds, in milli-points; replicated policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Policy {
    pub quarantine_at_milli: i64,
    pub reject_at_milli: i64,
}

impl Default for Policy {
    fn default() -> Self {
        Policy {
            quarantine_at_milli: 6_000,
            reject_at_milli: 15_000,
        }
    }
}

/// The total score and what it means under `policy`.
pub fn verdict(symbols: &[Symbol], policy: &Policy) -> (Verdict, i64) {
    let total: i64 = symbols.iter().map(|s| s.score_milli).sum();
    let v = if total >= policy.reject_at_milli {
        Verdict::Reject
    } else if total >= policy.quarantine_at_milli {
        Verdict::Quarantine
    } else {
        Verdict::Deliver
    };
    (v, total)
}

/// Everything the filter concluded about one message.
#[derive(Debug, Clone)]
pub struct Judgement {
    pub symbols: Vec<Symbol>,
    pub verdict: Verdict,
    pub total_milli: i64,
    /// The reputation and bulk keys the verdict is to be counted under.
    pub evidence_keys: Vec<String>,
}

impl Judgement {
    /// The reason of the highest-scoring symbol: what a rejection says.
    pub fn main_reason(&self) -> String {
        self.symbols
            .iter()
            .max_by_key(|s| s.score_milli)
            .map_or_else(
                || "policy".to_owned(),
                |s| format!("{} ({})", s.reason, s.name),
            )
    }
}

/// Runs every check and applies the policy.
pub fn judge(input: &FilterInput<'_>, knowledge: &dyn Knowledge, policy: &Policy) -> Judgement {
    let (symbols, evidence_keys) = examine(input, knowledge);
    let (verdict, total_milli) = verdict(&symbols, policy);
    Judgement {
        symbols,
        verdict,
        total_milli,
        evidence_keys,
    }
}

/// Formats milli-points as points (`1500` → `1.5`).
pub fn points(milli: i64) -> String {
    let sign = if milli < 0 { "-" } else { "" };
    let m = milli.unsigned_abs();
    let (int, frac) = (m / 1000, m % 1000);
    if frac == 0 {
        format!("{sign}{int}")
    } else {
        let f = format!("{frac:03}");
        format!("{sign}{int}.{}", f.trim_end_matches('0'))
    }
}

/// The X-Peage headers that delivered and quarantined mail carries.
pub fn headers(verdict: Verdict, total: i64, symbols: &[Symbol]) -> String {
    let list: Vec<String> = symbols
        .iter()
        .map(|s| format!("{}({})", s.name, points(s.score_milli)))
        .collect();
    format!(
        "X-Peage-Verdict: {}\r\nX-Peage-Score: {}\r\nX-Peage-Symbols: {}\r\n",
        verdict.as_str(),
        points(total),
        if list.is_empty() {
            "none".into()
        } else {
            list.join(", ")
        }
    )
}

fn list_symbols(
    knowledge: &dyn Knowledge,
    kind: EntryKind,
    value: &str,
    block_name: &str,
    what: &str,
    out: &mut Vec<Symbol>,
) {
    if value.is_empty() {
        return;
    }
    let found = knowledge.lookup(kind, value);
    if let Some(e) = found.iter().find(|e| e.list == ListName::Allow) {
        out.push(symbol(
            "ALLOWLIST",
            format!("{what} {value} is allow-listed ({})", e.value),
        ));
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

/// Hosts of the http(s) URLs in a text, lower-cased, without duplicates.
pub(crate) fn url_hosts(text: &str, out: &mut Vec<String>) {
    let lower = text.to_ascii_lowercase();
    for scheme in ["http://", "https://"] {
        let mut rest = lower.as_str();
        while let Some(i) = rest.find(scheme) {
            rest = &rest[i + scheme.len()..];
            let host: String = rest
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_'))
                .collect();
            let host = host.trim_end_matches('.').to_owned();
            if !host.is_empty() && !out.contains(&host) && out.len() < 100 {
                out.push(host);
            }
        }
    }
}

/// Every check, in order. Never panics, whatever the bytes.
pub fn analyze(input: &FilterInput<'_>, knowledge: &dyn Knowledge) -> Vec<Symbol> {
    examine(input, knowledge).0
}

/// The checks, and the evidence keys the message is to be counted under.
fn examine(input: &FilterInput<'_>, knowledge: &dyn Knowledge) -> (Vec<Symbol>, Vec<String>) {
    let mut out = Vec::new();
    let mut keys = crate::evidence::reputation_keys(input.client_ip, input.mail_from, input.helo);
    let known: Vec<(String, crate::evidence::Evidence)> = keys
        .iter()
        .filter_map(|k| Some((k.clone(), knowledge.evidence(k)?)))
        .collect();
    for (name, why) in crate::evidence::reputation_symbols(&known) {
        out.push(symbol(name, why));
    }

    // 1. The connection and envelope against the lists.
    list_symbols(
        knowledge,
        EntryKind::Ip,
        &input.client_ip.to_string(),
        "BLOCKLIST_IP",
        "client IP",
        &mut out,
    );
    list_symbols(
        knowledge,
        EntryKind::Domain,
        input.helo,
        "BLOCKLIST_HELO",
        "HELO",
        &mut out,
    );
    list_symbols(
        knowledge,
        EntryKind::Sender,
        input.mail_from,
        "BLOCKLIST_SENDER",
        "sender",
        &mut out,
    );
    if let Some((_, domain)) = input.mail_from.rsplit_once('@') {
        list_symbols(
            knowledge,
            EntryKind::Domain,
            domain,
            "BLOCKLIST_SENDER",
            "sender domain",
            &mut out,
        );
    }

    // 2. GTUBE, on the raw bytes (it must work even on unparsable mail).
    if memchr_find(input.message, GTUBE.as_bytes()) {
        out.push(symbol("GTUBE", "the GTUBE test string"));
    }

    // 3. Parse; everything after needs the structure.
    let Some(msg) = MessageParser::default().parse(input.message) else {
        out.push(symbol("UNPARSABLE_MESSAGE", "the message cannot be parsed"));
        return (dedup(out), keys);
    };

    // 4. Header sanity and the From domain.
    match msg.from().and_then(|a| a.first()) {
        None => out.push(symbol("MISSING_FROM", "no From header")),
        Some(addr) => match addr.address.as_deref().and_then(|a| a.rsplit_once('@')) {
            Some((local, domain)) if !local.is_empty() && domain.contains('.') => {
                list_symbols(
                    knowledge,
                    EntryKind::Domain,
                    domain,
                    "BLOCKLIST_FROM_DOMAIN",
                    "From domain",
                    &mut out,
                );
                list_symbols(
                    knowledge,
                    EntryKind::Sender,
                    addr.address.as_deref().unwrap_or(""),
                    "BLOCKLIST_SENDER",
                    "From address",
                    &mut out,
                );
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

    // 5. URL hosts in the text and HTML parts.
    let mut hosts = Vec::new();
    for i in 0..msg.text_body_count().min(20) {
        if let Some(t) = msg.body_text(i) {
            url_hosts(&t, &mut hosts);
        }
    }
    for i in 0..msg.html_body_count().min(20) {
        if let Some(h) = msg.body_html(i) {
            url_hosts(&h, &mut hosts);
        }
    }
    for h in &hosts {
        let before = out.len();
        list_symbols(
            knowledge,
            EntryKind::Url,
            h,
            "BLOCKLIST_URL",
            "URL host",
            &mut out,
        );
        if out.len() == before {
            list_symbols(
                knowledge,
                EntryKind::Domain,
                h,
                "BLOCKLIST_URL",
                "URL domain",
                &mut out,
            );
        }
    }

    // 6. What the cluster learned.
    let tokens = crate::bayes::tokens_of(&msg);
    if let Some(s) = knowledge.spam_probability(&tokens.0).and_then(bayes_symbol) {
        out.push(s);
    }

    // 7. Copies of the same text seen across the cluster.
    let bulk = crate::evidence::bulk_keys(&msg);
    let copies = bulk
        .iter()
        .filter_map(|k| knowledge.evidence(k))
        .map(|e| e.total())
        .fold(0.0, f64::max);
    if let Some((name, why)) = crate::evidence::bulk_symbol(copies) {
        out.push(symbol(name, why));
    }
    keys.extend(bulk);

    // 8. Attachments.
    for part in msg.attachments().take(100) {
        let name = part.attachment_name().unwrap_or("").to_owned();
        attachments::check(&name, part.contents(), &mut |n, why| {
            out.push(symbol(n, why))
        });
    }
    (dedup(out), keys)
}

/// One symbol of each name: the first reason is kept.
fn dedup(mut symbols: Vec<Symbol>) -> Vec<Symbol> {
    let mut seen = std::collections::HashSet::new();
    symbols.retain(|s| seen.insert(s.name.clone()));
    symbols
}

fn memchr_find(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

#[cfg(test)]
mod tests;
