//! The discriminative classifier's features: hashed word unigrams, orthogonal sparse
//! bigrams (OSB, a window of five) and character 4-grams of the normalised text, plus the
//! structure of the message (which headers, content types, HTML tags), each hashed into a
//! fixed space of `BUCKETS` weights.
//!
//! Normalisation is what lets them generalise to next month's campaigns: the text is decoded
//! first (MIME, quoted-printable, base64, HTML turned into its text), lower-cased, digits
//! mapped to one class (prices, dates and tracking numbers change, their shape does not);
//! headers that say when (Date, the timestamps of Received), or that relays and lists add
//! (List-*, ARC/DKIM signatures, other filters' X-Spam-* and our own X-Peage-*) are left
//! out. Where the message came from is kept: the relay names and client networks of its
//! Received headers (`received_relays`, which the Bayes classifier reads too).

use mail_parser::{Message, MimeHeaders};

use crate::text::{normalise, normalise_joined, MessageText};

/// The size of the hashed feature space (a power of two); bucket 0 is the bias.
pub const BUCKETS: u32 = 1 << 20;
/// At most this many distinct features per message.
const MAX_FEATURES: usize = 8_000;
/// Character 4-grams are taken from this many characters of the text at most.
const NGRAM_CHARS: usize = 6_000;
/// Words taken from the text at most (unigrams and OSB pairs).
const MAX_WORDS: usize = 2_000;
/// OSB: each word is paired with each of the next `OSB_WINDOW - 1` words.
const OSB_WINDOW: usize = 5;
/// How far apart the words of an OSB pair are, as hashed between them.
const GAPS: [&str; OSB_WINDOW] = ["0", "1", "2", "3", "4"];

/// A message's features: distinct buckets, sorted, the bias first.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Features(pub Vec<u32>);

/// Headers that say nothing about the sender's content, or that anyone can pre-write.
fn ignored_header(name: &str) -> bool {
    const PREFIXES: [&str; 6] = [
        "list-",
        "x-spam",
        "x-peage-",
        "arc-",
        "x-virus",
        "x-original-",
    ];
    const NAMES: [&str; 9] = [
        "date",
        "received",
        "message-id",
        "dkim-signature",
        "domainkey-signature",
        "authentication-results",
        "delivered-to",
        "return-path",
        "x-received",
    ];
    NAMES.contains(&name) || PREFIXES.iter().any(|p| name.starts_with(p))
}

#[derive(Default)]
struct Builder {
    buckets: Vec<u32>,
    /// The parts of the feature being hashed, each followed by 0xff: hashing them at once
    /// gives what a streaming hasher fed part by part gives, without its state per feature.
    key: Vec<u8>,
}

impl Builder {
    fn add(&mut self, kind: u8, parts: &[&str]) {
        // Most keys (4-grams, words, word pairs) fit on the stack.
        let mut short = [0u8; 64];
        let len: usize = parts.iter().map(|p| p.len() + 1).sum();
        let key: &[u8] = if len <= short.len() {
            let mut at = 0;
            for p in parts {
                short[at..at + p.len()].copy_from_slice(p.as_bytes());
                short[at + p.len()] = 0xff;
                at += p.len() + 1;
            }
            &short[..len]
        } else {
            self.key.clear();
            for p in parts {
                self.key.extend_from_slice(p.as_bytes());
                self.key.push(0xff);
            }
            &self.key
        };
        push_bucket(&mut self.buckets, kind, key);
    }

    /// A character 4-gram of ASCII text: the commonest feature, its key built in place.
    fn add_ascii_4gram(&mut self, kind: u8, gram: [u8; 4]) {
        let [a, b, c, d] = gram;
        push_bucket(&mut self.buckets, kind, &[a, b, c, d, 0xff]);
    }
}

// Inlined so that a 4-gram's constant key length picks xxh3's short path at compile time.
#[inline(always)]
fn push_bucket(buckets: &mut Vec<u32>, kind: u8, key: &[u8]) {
    let hash = xxhash_rust::xxh3::xxh3_64_with_seed(key, u64::from(kind));
    // Never 0: that bucket is the bias.
    let bucket = (hash % u64::from(BUCKETS - 1)) as u32 + 1;
    buckets.push(bucket);
}

/// The features of a parsed message.
pub fn features_of(msg: &Message<'_>, decoded: &MessageText<'_>) -> Features {
    let mut b = Builder {
        buckets: Vec::with_capacity(4096),
        key: Vec::with_capacity(128),
    };
    let subject = normalise(msg.subject().unwrap_or(""));
    text_features(&mut b, b's', &subject, 200);
    if let Some(a) = msg.from().and_then(|a| a.first()) {
        text_features(
            &mut b,
            b'n',
            &normalise(a.name.as_deref().unwrap_or("")),
            100,
        );
        let domain = a
            .address
            .as_deref()
            .and_then(|x| x.rsplit_once('@'))
            .map(|(_, d)| d);
        b.add(b'f', &[&domain.unwrap_or("none").to_ascii_lowercase()]);
    }
    for relay in received_relays(msg) {
        match relay {
            Relay::Host(host) => b.add(b'r', &[&host]),
            Relay::Network(net) => b.add(b'q', &[&net]),
        }
    }
    for (name, value) in msg.headers_raw().take(100) {
        let name = name.to_ascii_lowercase();
        if ignored_header(&name) {
            continue;
        }
        b.add(b'h', &[&name]);
        if matches!(
            name.as_str(),
            "x-mailer" | "user-agent" | "content-type" | "mime-version"
        ) {
            let v = normalise(value);
            b.add(b'v', &[&name, v.split(';').next().unwrap_or("").trim()]);
        }
    }
    for h in decoded.htmls.iter().take(10) {
        html_structure(&mut b, h);
    }
    let text = normalise_joined(decoded.texts.iter().take(10).map(|t| &t[..]));
    text_features(&mut b, b'b', &text, MAX_WORDS);
    for part in msg.attachments().take(20) {
        let name = part.attachment_name().unwrap_or("").to_ascii_lowercase();
        let ext = name.rsplit_once('.').map_or("none", |(_, e)| e);
        b.add(b'a', &[ext]);
        let ct = part.content_type().map(|c| c.ctype()).unwrap_or("none");
        b.add(b'c', &[&ct.to_ascii_lowercase()]);
    }
    Features(sorted_distinct(b.buckets))
}

/// The bias, then the distinct `buckets` in order, the smallest `MAX_FEATURES - 1` of them.
/// A radix sort, two passes of ten bits (buckets are below 2^20): a message has thousands
/// of features, and a comparison sort of them was a quarter of the time spent on features.
fn sorted_distinct(buckets: Vec<u32>) -> Vec<u32> {
    const DIGIT: u32 = 10;
    const _: () = assert!(BUCKETS <= 1 << (2 * DIGIT));
    let mut to = vec![0u32; buckets.len()];
    let mut from = buckets;
    for pass in 0..2 {
        let digit = |b: u32| ((b >> (pass * DIGIT)) & ((1 << DIGIT) - 1)) as usize;
        let mut starts = [0usize; 1 << DIGIT];
        for &b in &from {
            starts[digit(b)] += 1;
        }
        let mut sum = 0;
        for s in starts.iter_mut() {
            (*s, sum) = (sum, sum + *s);
        }
        for &b in &from {
            let d = digit(b);
            to[starts[d]] = b;
            starts[d] += 1;
        }
        std::mem::swap(&mut from, &mut to);
    }
    let mut out = Vec::with_capacity(from.len().min(MAX_FEATURES) + 1);
    out.push(0);
    for b in from {
        if out.len() == MAX_FEATURES {
            break;
        }
        if out.last() != Some(&b) {
            out.push(b);
        }
    }
    out
}

/// Where a message came from, as its Received headers tell it (never when).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Relay {
    /// A relay's name (the `from` or `by` host), lower-cased.
    Host(String),
    /// The /24 network of a client's IPv4 address (`a.b.c`).
    Network(String),
}

/// The relays of the first ten Received headers, in order.
pub fn received_relays(msg: &Message<'_>) -> Vec<Relay> {
    let mut out = Vec::new();
    for r in msg.received_all().take(10) {
        for host in [&r.from, &r.by].into_iter().flatten() {
            if let mail_parser::Host::Name(n) = host {
                out.push(Relay::Host(n.to_ascii_lowercase()));
            }
        }
        if let Some(std::net::IpAddr::V4(ip)) = r.from_ip {
            let [a, b, c, _] = ip.octets();
            out.push(Relay::Network(format!("{a}.{b}.{c}")));
        }
    }
    out
}

/// Unigrams, OSB pairs and character 4-grams of normalised `text`, tagged by where it came from.
fn text_features(b: &mut Builder, place: u8, text: &str, max_words: usize) {
    if text.is_ascii() {
        // Most text is ASCII: words and 4-grams found byte by byte (what the general path
        // finds in it, without its Unicode tests and its table of character boundaries).
        let words = text
            .split(|c: char| !(c.is_ascii_alphanumeric() || matches!(c, '$' | '!' | '%')))
            .filter(|w| !w.is_empty() && w.len() <= 40)
            .take(max_words);
        word_features(b, place, words);
        let end = text.len().min(NGRAM_CHARS);
        for gram in text.as_bytes()[..end].windows(4) {
            b.add_ascii_4gram(
                place.wrapping_add(200),
                [gram[0], gram[1], gram[2], gram[3]],
            );
        }
    } else {
        text_features_chars(b, place, text, max_words);
    }
}

fn text_features_chars(b: &mut Builder, place: u8, text: &str, max_words: usize) {
    let words = text
        .split(|c: char| !(c.is_alphanumeric() || matches!(c, '$' | '!' | '€' | '%')))
        .filter(|w| !w.is_empty() && w.len() <= 40)
        .take(max_words);
    word_features(b, place, words);
    // Each 4-gram is a slice of the text between char boundaries: no copy of its chars.
    // The boundaries of the first NGRAM_CHARS characters, and where the last one ends.
    let bounds: Vec<usize> = text
        .char_indices()
        .map(|(i, _)| i)
        .chain(std::iter::once(text.len()))
        .take(NGRAM_CHARS + 1)
        .collect();
    for w in bounds.windows(5) {
        b.add(place.wrapping_add(200), &[&text[w[0]..w[4]]]);
    }
}

/// Each word, and its OSB pairs with the `OSB_WINDOW - 1` words before it.
fn word_features<'t>(b: &mut Builder, place: u8, words: impl Iterator<Item = &'t str>) {
    let mut before: [&str; OSB_WINDOW] = [""; OSB_WINDOW];
    for (i, w) in words.enumerate() {
        b.add(place, &[w]);
        for d in 1..OSB_WINDOW.min(i + 1) {
            b.add(
                place.wrapping_add(100),
                &[before[(i - d) % OSB_WINDOW], GAPS[d], w],
            );
        }
        before[i % OSB_WINDOW] = w;
    }
}

/// Tag names and style words of HTML: hidden text, tiny fonts and layout tricks.
fn html_structure(b: &mut Builder, html: &str) {
    let mut rest = html;
    let mut n = 0;
    while let Some(start) = rest.find('<') {
        n += 1;
        if n > 2_000 {
            break;
        }
        rest = &rest[start + 1..];
        let end = rest.find('>').unwrap_or(rest.len());
        let tag = normalise(&rest[..end.min(200)]);
        let mut parts =
            tag.split(|c: char| c.is_whitespace() || c == '=' || c == '"' || c == ';' || c == ':');
        if let Some(name) = parts.next() {
            b.add(b't', &[name]);
            for attr in parts.filter(|p| p.len() > 1 && p.len() < 24 && !p.contains('/')) {
                b.add(b'u', &[name, attr]);
            }
        }
        rest = &rest[end.min(rest.len())..];
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use mail_parser::MessageParser;

    fn features(raw: &str) -> Features {
        let msg = MessageParser::default().parse(raw.as_bytes()).unwrap();
        features_of(&msg, &MessageText::of(&msg))
    }

    #[test]
    fn ascii_text_gives_the_features_the_general_path_gives() {
        let long = "Buy now! 50% off, $0 down: a-b c\td ".repeat(300);
        for text in [
            long.as_str(),
            "",
            "abc",
            "abcd",
            "one two three four five six seven",
        ] {
            for max_words in [3, MAX_WORDS] {
                let of = |general: bool| {
                    let mut b = Builder::default();
                    if general {
                        text_features_chars(&mut b, b'b', text, max_words);
                    } else {
                        text_features(&mut b, b'b', text, max_words);
                    }
                    b.buckets
                };
                assert_eq!(of(false), of(true), "{text:?}");
            }
        }
    }

    #[test]
    fn digits_case_and_spacing_do_not_change_the_features() {
        let a = features("Subject: Win 500 dollars\r\n\r\nCall   NOW on 555-1234\r\n");
        let b = features("Subject: win 900 DOLLARS\r\n\r\ncall now on 666-9876\r\n");
        assert_eq!(a, b);
        assert_eq!(a.0[0], 0, "the bias comes first");
        assert!(a.0.windows(2).all(|w| w[0] < w[1]), "sorted and distinct");
    }

    #[test]
    fn timing_and_list_headers_are_not_features_but_relays_are() {
        let plain = features("Subject: hello\r\n\r\nsee you\r\n");
        let headers = |received: &str, date: &str| {
            features(&format!(
                "Received: from mx.example (mx.example [192.0.2.7]) by relay.example; {received}\r\n\
                 Date: {date}\r\nX-Spam-Status: Yes, score=9\r\n\
                 X-Peage-Verdict: deliver\r\nList-Id: <x.example>\r\nSubject: hello\r\n\r\nsee you\r\n"
            ))
        };
        let monday = headers(
            "Mon, 1 Jan 2024 10:00:00 +0000",
            "Mon, 1 Jan 2024 09:59:00 +0000",
        );
        let friday = headers(
            "Fri, 5 Jul 2024 23:10:42 +0200",
            "Fri, 5 Jul 2024 23:01:00 +0200",
        );
        assert_eq!(
            monday, friday,
            "when it was sent or relayed is not a feature"
        );
        let added: Vec<u32> = monday
            .0
            .iter()
            .filter(|f| !plain.0.contains(f))
            .copied()
            .collect();
        let mut relays = Builder::default();
        relays.add(b'r', &["mx.example"]);
        relays.add(b'r', &["relay.example"]);
        relays.add(b'q', &["192.0.2"]);
        let mut expected = relays.buckets;
        expected.sort_unstable();
        assert_eq!(
            added, expected,
            "the relays' names and network, and nothing else"
        );
    }

    #[test]
    fn text_is_decoded_before_it_becomes_features() {
        let plain = features("Subject: x\r\nContent-Type: text/plain\r\n\r\ncheap pills here\r\n");
        let b64 = features(
            "Subject: x\r\nContent-Type: text/plain\r\nContent-Transfer-Encoding: base64\r\n\r\nY2hlYXAgcGlsbHMgaGVyZQ==\r\n",
        );
        // Only the encoding header differs; every text feature is shared.
        let shared = plain.0.iter().filter(|f| b64.0.contains(f)).count();
        assert!(shared + 2 >= plain.0.len(), "{shared} of {}", plain.0.len());
    }

    #[test]
    fn buckets_come_out_sorted_distinct_and_capped_like_a_sort_would_give_them() {
        // Pseudo-random buckets over the whole space, many repeated, more than the cap.
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        let buckets: Vec<u32> = (0..3 * MAX_FEATURES)
            .map(|i| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                if i % 3 == 0 {
                    (i as u32 % 50) + 1
                } else {
                    (x % u64::from(BUCKETS - 1)) as u32 + 1
                }
            })
            .collect();
        for n in [0, 1, 10, 500, buckets.len()] {
            let mut expected = buckets[..n].to_vec();
            expected.sort_unstable();
            expected.dedup();
            expected.truncate(MAX_FEATURES - 1);
            expected.insert(0, 0);
            assert_eq!(
                sorted_distinct(buckets[..n].to_vec()),
                expected,
                "{n} buckets"
            );
        }
    }

    #[test]
    fn word_pairs_keep_their_order_and_distance() {
        let ab = features("Subject: x\r\n\r\nalpha beta\r\n");
        let ba = features("Subject: x\r\n\r\nbeta alpha\r\n");
        assert_ne!(ab, ba);
    }
}

#[cfg(test)]
mod stability {
    use super::*;

    /// Weights learned by a running cluster are indexed by these buckets: the hashing must
    /// never change under them. It was a streaming hasher fed part by part (kept here as
    /// the reference); the one-shot hash of the same bytes must give the same buckets.
    #[test]
    fn buckets_are_those_of_the_streaming_hash_they_were_learned_with() {
        let streaming = |kind: u8, parts: &[&str]| {
            let mut h = xxhash_rust::xxh3::Xxh3::with_seed(u64::from(kind));
            for p in parts {
                h.update(p.as_bytes());
                h.update(&[0xff]);
            }
            (h.digest() % u64::from(BUCKETS - 1)) as u32 + 1
        };
        let long = "x".repeat(300);
        let cases: [(u8, &[&str]); 5] = [
            (b'b', &["cheap"]),
            (b's', &["win", "0000"]),
            (b'h', &[""]),
            (b'o', &["alpha", "2", "beta"]),
            (b'c', &[&long, "é"]),
        ];
        let mut b = Builder::default();
        for (kind, parts) in cases {
            b.add(kind, parts);
            assert_eq!(b.buckets.last(), Some(&streaming(kind, parts)), "{parts:?}");
        }
    }
}
