//! The statistical classifier: features of a message (`tokens`), the learned counts
//! (`TokenTable`), and Robinson–Fisher chi-square combining (`TokenTable::spam_probability`).
//!
//! Why chi-square combining: it judges each side's evidence separately (how unlikely the
//! token probabilities are if the message were ham, and if it were spam) and reports the
//! balance, so a message with strong evidence both ways lands near 0.5 — "unsure" — instead
//! of being pushed to an extreme as naive Bayes' product does. That keeps mixed messages
//! (newsletters, mailing lists, ham quoting spam) out of the extreme bands that carry
//! heavy scores. Token probabilities are Robinson's smoothed estimates, so rare tokens count
//! little; only the 150 strongest tokens vote, and only those at least 0.1 from neutral.

use std::collections::{BTreeSet, HashMap};

use mail_parser::{Message, MessageParser};

use crate::features::{received_relays, Relay};
use crate::text::{lower_into, MessageText};

/// A message's features: distinct 64-bit hashes (xxh3) of its tokens, sorted.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Tokens(pub Vec<u64>);

impl Tokens {
    /// A fingerprint of the features: equal for the same message however its headers were
    /// added to (our own X-Peage-* headers are not features).
    pub fn fingerprint(&self) -> String {
        let mut bytes = Vec::with_capacity(self.0.len() * 8);
        for t in &self.0 {
            bytes.extend_from_slice(&t.to_le_bytes());
        }
        format!("{:032x}", xxhash_rust::xxh3::xxh3_128(&bytes))
    }
}

/// At most this many features per message.
const MAX_TOKENS: usize = 3000;
/// Words shorter or longer than this are not features (long ones give a length token).
const WORD_MIN: usize = 3;
const WORD_MAX: usize = 24;

/// The features of a raw message (`None` if it cannot be parsed at all).
pub fn tokens(message: &[u8]) -> Option<Tokens> {
    let msg = MessageParser::default().parse(message)?;
    Some(tokens_of(&msg, &MessageText::of(&msg)))
}

/// The features of a parsed message: words of the decoded text and HTML parts, chosen
/// headers (prefixed by their name, so "free" in a Subject differs from "free" in a body),
/// URL hosts and their parent domains, Received hosts, content types and attachment kinds.
pub fn tokens_of(msg: &Message<'_>, decoded: &MessageText<'_>) -> Tokens {
    let mut set = hashbrown::HashSet::with_capacity(MAX_TOKENS);
    let mut key = Vec::with_capacity(64);
    let mut add = |prefix: &str, word: &str| {
        if set.len() < MAX_TOKENS {
            key.clear();
            key.extend_from_slice(prefix.as_bytes());
            key.extend_from_slice(word.as_bytes());
            set.insert(xxhash_rust::xxh3::xxh3_64(&key));
        }
    };
    if let Some(s) = msg.subject() {
        words(s, &mut |w| add("subject:", w));
        shouting(s, &mut |w| add("subject-caps:", w));
        let mut prev = String::new();
        words(s, &mut |w| {
            if !prev.is_empty() {
                add("subject-pair:", &format!("{prev} {w}"));
            }
            prev = w.to_owned();
        });
    }
    if let Some(a) = msg.from().and_then(|a| a.first()) {
        if let Some(name) = a.name.as_deref() {
            words(name, &mut |w| add("from-name:", w));
        }
        match a.address.as_deref().and_then(|x| x.rsplit_once('@')) {
            Some((_, domain)) => add("from-domain:", &domain.to_ascii_lowercase()),
            None => add("from:", "no-address"),
        }
    }
    for relay in received_relays(msg) {
        match relay {
            Relay::Host(host) => add("received:", &host),
            Relay::Network(net) => add("received-net:", &net),
        }
    }
    for (name, value) in msg.headers_raw().take(200) {
        let name = name.to_ascii_lowercase();
        if name.starts_with("x-peage-") {
            // Ours (the verdict stamped on stored mail): not a feature of the message.
            continue;
        }
        // Which headers a message has says much about the software that wrote it.
        add("header:", &name);
        match name.as_str() {
            "x-mailer" | "user-agent" => words(value, &mut |w| add("mailer:", w)),
            "content-type" => {
                let lower = value.to_ascii_lowercase();
                add(
                    "content-type:",
                    lower.split(';').next().unwrap_or("").trim(),
                );
                if let Some(cs) = lower.split("charset=").nth(1) {
                    let cs: String = cs
                        .trim_start_matches('"')
                        .chars()
                        .take_while(|c| c.is_ascii_alphanumeric() || *c == '-' || *c == '_')
                        .collect();
                    add("charset:", &cs);
                }
            }
            "content-transfer-encoding" => add("encoding:", &value.trim().to_ascii_lowercase()),
            "message-id" | "to" | "cc" | "reply-to" | "return-path" | "sender" => {
                for domain in address_domains(value) {
                    add(&format!("{name}-domain:"), &domain);
                }
            }
            _ => {}
        }
    }
    let mut text = String::new();
    for t in &decoded.texts {
        text.push_str(t);
        text.push('\n');
    }
    for h in &decoded.htmls {
        add("has:", "html");
        for host in url_hosts(h) {
            url_tokens(&host, &mut add);
        }
        for tag in html_tags(h) {
            add("tag:", &tag);
        }
    }
    for host in url_hosts(&text) {
        url_tokens(&host, &mut add);
    }
    words(&text, &mut |w| add("", w));
    shouting(&text, &mut |w| add("caps:", w));
    for part in msg.attachments().take(20) {
        let name = mail_parser::MimeHeaders::attachment_name(part).unwrap_or("");
        let ext = name.rsplit_once('.').map_or("none", |(_, e)| e);
        add("attachment:", &ext.to_ascii_lowercase());
    }
    let mut tokens: Vec<u64> = set.into_iter().collect();
    tokens.sort_unstable();
    Tokens(tokens)
}

/// Splits text into lower-cased words; over-long ones become a length class.
fn words(text: &str, emit: &mut dyn FnMut(&str)) {
    let mut lower = String::new();
    let mut one = |raw: &str| {
        let w = raw.trim_matches(|c| c == '\'' || c == '-');
        let n = if w.is_ascii() {
            w.len()
        } else {
            w.chars().count()
        };
        if n < WORD_MIN {
            return;
        }
        if n > WORD_MAX {
            emit(&format!(
                "skip:{}:{}",
                w.chars().next().unwrap_or('?'),
                n / 10 * 10
            ));
            return;
        }
        emit(lower_into(w, &mut lower));
    };
    if text.is_ascii() {
        // Most text: split byte by byte, into the same words.
        let in_word = |b: &u8| b.is_ascii_alphanumeric() || matches!(b, b'$' | b'!' | b'\'' | b'-');
        for (start, end) in ascii_runs(text.as_bytes(), in_word) {
            one(&text[start..end]);
        }
    } else {
        for raw in
            text.split(|c: char| !(c.is_alphanumeric() || matches!(c, '$' | '!' | '\'' | '-')))
        {
            one(raw);
        }
    }
}

/// Words written in capitals (FREE, URGENT): the same word shouted is another feature.
fn shouting(text: &str, emit: &mut dyn FnMut(&str)) {
    let mut lower = String::new();
    let mut one = |w: &str| {
        // The cheap tests first: most words are short or lower case.
        if w.len() >= 4
            && w.chars().all(|c| c.is_uppercase() || c.is_ascii_digit())
            && w.chars().any(char::is_uppercase)
            && w.chars().count() >= 4
        {
            emit(lower_into(w, &mut lower));
        }
    };
    if text.is_ascii() {
        // Most text: split byte by byte, into the same words.
        for (start, end) in ascii_runs(text.as_bytes(), u8::is_ascii_alphanumeric) {
            one(&text[start..end]);
        }
    } else {
        text.split(|c: char| !c.is_alphanumeric()).for_each(one);
    }
}

/// The (start, end) of each maximal run of bytes that `inside` accepts.
fn ascii_runs<'b>(
    bytes: &'b [u8],
    inside: impl Fn(&u8) -> bool + 'b,
) -> impl Iterator<Item = (usize, usize)> + 'b {
    let mut i = 0;
    std::iter::from_fn(move || {
        while i < bytes.len() && !inside(&bytes[i]) {
            i += 1;
        }
        let start = i;
        while i < bytes.len() && inside(&bytes[i]) {
            i += 1;
        }
        (i > start).then_some((start, i))
    })
}

fn url_hosts(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    crate::urls::url_hosts(text, &mut out);
    out
}

/// Domains after each `@` in a header value, lower-cased.
fn address_domains(value: &str) -> Vec<String> {
    value
        .split('@')
        .skip(1)
        .take(20)
        .map(|rest| {
            rest.chars()
                .take_while(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-'))
                .collect::<String>()
                .to_ascii_lowercase()
        })
        .filter(|d| !d.is_empty())
        .collect()
}

/// Element names used in HTML (`font`, `table`, `img` …), and a few telling attributes.
fn html_tags(html: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let lower = html.to_ascii_lowercase();
    for piece in lower.split('<').skip(1).take(2000) {
        let name: String = piece
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric())
            .collect();
        if !name.is_empty() && name.len() <= 12 {
            out.insert(name);
        }
        for attr in [
            "bgcolor=",
            "color=",
            "size=",
            "width=",
            "src=\"cid:",
            "display:none",
        ] {
            if piece.contains(attr) {
                out.insert(format!("@{attr}"));
            }
        }
    }
    out
}

/// A URL host and each parent domain with at least two labels.
fn url_tokens(host: &str, add: &mut dyn FnMut(&str, &str)) {
    add("url:", host);
    let labels: Vec<&str> = host.split('.').collect();
    for i in 1..labels.len().saturating_sub(1) {
        add("url-domain:", &labels[i..].join("."));
    }
    if host.chars().all(|c| c.is_ascii_digit() || c == '.') {
        add("url:", "ip-literal");
    }
}

/// Which way a message is learned.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Class {
    Spam,
    Ham,
}

impl Class {
    pub fn as_str(self) -> &'static str {
        match self {
            Class::Spam => "spam",
            Class::Ham => "ham",
        }
    }

    pub fn parse(s: &str) -> Option<Class> {
        match s {
            "spam" => Some(Class::Spam),
            "ham" => Some(Class::Ham),
            _ => None,
        }
    }
}

/// Below this many learned messages of either class the classifier stays silent.
pub const MIN_LEARNED_PER_CLASS: u64 = 50;
/// Robinson's smoothing: the weight and value of the prior for a token seen rarely.
const PRIOR_STRENGTH: f64 = 0.45;
const PRIOR: f64 = 0.5;
/// Only tokens at least this far from 0.5 vote, and at most this many of them.
const MIN_STRENGTH: f64 = 0.1;
const MAX_DISCRIMINATORS: usize = 300;

/// Learned counts: per token, how many spam and ham messages held it; and how many of each
/// were learned. The node keeps one in memory, in step with the replicated state.
#[derive(Debug, Clone, Default)]
pub struct TokenTable {
    counts: HashMap<u64, (u32, u32)>,
    pub spam_messages: u64,
    pub ham_messages: u64,
}

impl TokenTable {
    /// Adds (`delta` = 1) or removes (`delta` = -1) one message's tokens under `class`.
    pub fn apply(&mut self, tokens: &[u64], class: Class, delta: i32) {
        let messages = match class {
            Class::Spam => &mut self.spam_messages,
            Class::Ham => &mut self.ham_messages,
        };
        *messages = messages.saturating_add_signed(i64::from(delta));
        for t in tokens {
            let e = self.counts.entry(*t).or_insert((0, 0));
            let c = match class {
                Class::Spam => &mut e.0,
                Class::Ham => &mut e.1,
            };
            *c = c.saturating_add_signed(delta);
            if *e == (0, 0) {
                self.counts.remove(t);
            }
        }
    }

    /// Sets a token's counts (rebuilding from storage).
    pub fn set(&mut self, token: u64, spam: u32, ham: u32) {
        if (spam, ham) == (0, 0) {
            self.counts.remove(&token);
        } else {
            self.counts.insert(token, (spam, ham));
        }
    }

    pub fn len(&self) -> usize {
        self.counts.len()
    }

    pub fn is_empty(&self) -> bool {
        self.counts.is_empty()
    }

    /// Bytes held by the table (entries and the hash map's capacity), for the benchmarks.
    pub fn approximate_bytes(&self) -> usize {
        self.counts.capacity() * (std::mem::size_of::<(u64, (u32, u32))>() + 1)
    }

    /// The probability that a message with these tokens is spam, in [0, 1]; `None` until
    /// enough of both classes has been learned.
    pub fn spam_probability(&self, tokens: &[u64]) -> Option<f64> {
        if self.spam_messages < MIN_LEARNED_PER_CLASS || self.ham_messages < MIN_LEARNED_PER_CLASS {
            return None;
        }
        let (nspam, nham) = (self.spam_messages as f64, self.ham_messages as f64);
        let mut probs: Vec<f64> = tokens
            .iter()
            .filter_map(|t| self.counts.get(t))
            .map(|&(s, h)| {
                let spam_ratio = f64::from(s) / nspam;
                let ham_ratio = f64::from(h) / nham;
                let p = spam_ratio / (spam_ratio + ham_ratio);
                let n = f64::from(s + h);
                (PRIOR_STRENGTH * PRIOR + n * p) / (PRIOR_STRENGTH + n)
            })
            .filter(|p| (p - 0.5).abs() >= MIN_STRENGTH)
            .collect();
        if probs.is_empty() {
            return Some(0.5);
        }
        probs.sort_by(|a, b| {
            (b - 0.5)
                .abs()
                .partial_cmp(&(a - 0.5).abs())
                .unwrap_or(std::cmp::Ordering::Equal)
        });
        probs.truncate(MAX_DISCRIMINATORS);
        let n = probs.len();
        let (mut ln_ham, mut ln_spam) = (0.0, 0.0);
        for p in &probs {
            let p = p.clamp(1e-6, 1.0 - 1e-6);
            ln_spam += (1.0 - p).ln();
            ln_ham += p.ln();
        }
        let spam = 1.0 - chi2q(-2.0 * ln_spam, 2 * n);
        let ham = 1.0 - chi2q(-2.0 * ln_ham, 2 * n);
        Some(((spam - ham + 1.0) / 2.0).clamp(0.0, 1.0))
    }
}

/// P(chi-square with `v` (even) degrees of freedom >= `x2`).
fn chi2q(x2: f64, v: usize) -> f64 {
    let m = x2 / 2.0;
    let mut term = (-m).exp();
    let mut sum = term;
    for i in 1..v / 2 {
        term *= m / i as f64;
        sum += term;
    }
    sum.min(1.0)
}

#[cfg(test)]
mod tests;
