//! Evidence the cluster counts about senders and campaigns: keys for the reputation of a
//! client network (IPv4 /24, IPv6 /64), an envelope-sender domain and a HELO name, and bulk
//! keys (MinHash of the normalised body), and the symbols the filter derives from their
//! counts. Every node counts the verdicts it gives under these keys; the counts are
//! replicated, so what Paris saw raises the score at Roubaix.

use std::net::IpAddr;

use crate::text::{lower_into, MessageText};
use crate::trust::Authenticated;

/// Decayed message counts under one key (a verdict counts 1, then shrinks with each decay).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Evidence {
    pub ham: f64,
    pub spam: f64,
    pub reject: f64,
}

impl Evidence {
    pub fn total(&self) -> f64 {
        self.ham + self.spam + self.reject
    }
}

/// Reputation needs this much evidence before it speaks.
pub const MIN_REPUTATION_EVIDENCE: f64 = 10.0;
/// Bulk: copies seen cluster-wide for each band.
pub const BULK_SOME: f64 = 5.0;
pub const BULK_MANY: f64 = 20.0;
/// MinHash functions over the body's shingles; a campaign matches on any of them.
const BULK_HASHES: usize = 4;
const SHINGLE_WORDS: usize = 4;
/// Bodies shorter than this many words are not fingerprinted (too common to mean bulk).
const BULK_MIN_WORDS: usize = 12;

/// The reputation keys of an envelope: `net:` client network always; `sender:`
/// envelope-sender domain and `helo:` HELO name (lower-cased) only when `proved` vouches for
/// them, so that forged rejections cannot poison a victim domain's reputation.
pub fn reputation_keys(
    client_ip: IpAddr,
    mail_from: &str,
    helo: &str,
    proved: &Authenticated,
) -> Vec<String> {
    let mut keys = vec![match client_ip {
        IpAddr::V4(v4) => {
            let [a, b, c, _] = v4.octets();
            format!("net:{a}.{b}.{c}.0/24")
        }
        IpAddr::V6(v6) => {
            let s = v6.segments();
            format!("net:{:x}:{:x}:{:x}:{:x}::/64", s[0], s[1], s[2], s[3])
        }
    }];
    if let Some((_, domain)) = mail_from.rsplit_once('@') {
        if let Some(domain) = host_key(domain).filter(|d| proved.vouches_for(d)) {
            keys.push(format!("sender:{domain}"));
        }
    }
    if let Some(helo) = host_key(helo).filter(|h| proved.vouches_for(h)) {
        keys.push(format!("helo:{helo}"));
    }
    keys
}

/// The longest evidence key: what any key of ours can be (a 253-character host name and its
/// prefix), and what apply refuses beyond, the same way on every node.
pub const MAX_KEY_BYTES: usize = 300;

/// A host name (or address literal) as a key: trimmed, lower-cased, without its trailing dot;
/// `None` for anything no host is called, so a client cannot make keys of its choosing.
fn host_key(name: &str) -> Option<String> {
    let name = name.trim().trim_end_matches('.').to_ascii_lowercase();
    let allowed =
        |c: char| c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | '[' | ']' | ':' | '_');
    (!name.is_empty() && name.len() <= 253 && name.chars().all(allowed)).then_some(name)
}

/// The bulk keys of a message: for each of a few hash functions, the smallest hash over
/// its shingles (runs of words of the normalised text: lower-cased letters only, so that
/// names, numbers and links that vary between copies of a campaign matter little).
pub fn bulk_keys(decoded: &MessageText<'_>) -> Vec<String> {
    let mut text = String::new();
    for t in decoded.texts.iter().take(5) {
        text.push_str(t);
        text.push(' ');
    }
    // Each word hashed once; a shingle is the hash of its words' hashes.
    let mut lower = String::new();
    let words: Vec<u64> = text
        .split(|c: char| !c.is_alphabetic())
        .filter(|w| w.chars().count() >= 2)
        .take(2000)
        .map(|w| xxhash_rust::xxh3::xxh3_64(lower_into(w, &mut lower).as_bytes()))
        .collect();
    if words.len() < BULK_MIN_WORDS {
        return Vec::new();
    }
    // One hash per shingle; the MinHash functions are that hash remixed, each its own way.
    let mut minima = [u64::MAX; BULK_HASHES];
    for w in words.windows(SHINGLE_WORDS) {
        let mut bytes = [0u8; 8 * SHINGLE_WORDS];
        for (i, h) in w.iter().enumerate() {
            bytes[i * 8..i * 8 + 8].copy_from_slice(&h.to_le_bytes());
        }
        let shingle = xxhash_rust::xxh3::xxh3_64(&bytes);
        for (function, min) in minima.iter_mut().enumerate() {
            *min = (*min).min(remix(shingle, function as u64));
        }
    }
    minima
        .iter()
        .enumerate()
        .map(|(function, min)| format!("bulk:{function}:{min:016x}"))
        .collect()
}

/// The `function`th MinHash of a shingle's hash: MurmurHash3's 64-bit finaliser of the hash
/// offset by a constant of its own, a different order of the shingles for each function.
fn remix(hash: u64, function: u64) -> u64 {
    let mut h = hash ^ function.wrapping_add(1).wrapping_mul(0x9e37_79b9_7f4a_7c15);
    h ^= h >> 33;
    h = h.wrapping_mul(0xff51_afd7_ed55_8ccd);
    h ^= h >> 33;
    h = h.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    h ^ (h >> 33)
}

fn what(key: &str) -> String {
    match key.split_once(':') {
        Some(("net", v)) => format!("client network {v}"),
        Some(("sender", v)) => format!("sender domain {v}"),
        Some(("helo", v)) => format!("HELO {v}"),
        _ => key.to_owned(),
    }
}

/// Reputation symbols: the worst key with enough evidence, and a good one if every key
/// with enough evidence is clean. `(name, reason)`.
pub fn reputation_symbols(evidence: &[(String, Evidence)]) -> Vec<(&'static str, String)> {
    let judged: Vec<&(String, Evidence)> = evidence
        .iter()
        .filter(|(_, e)| e.total() >= MIN_REPUTATION_EVIDENCE)
        .collect();
    let mut out = Vec::new();
    let bad_share = |e: &Evidence| (e.spam + e.reject) / e.total();
    if let Some((key, e)) = judged
        .iter()
        .copied()
        .max_by(|a, b| bad_share(&a.1).total_cmp(&bad_share(&b.1)))
    {
        let share = bad_share(e);
        let reason = format!(
            "{}: {:.0} % of {:.0} recent messages were spam or refused",
            what(key),
            share * 100.0,
            e.total()
        );
        if share >= 0.8 {
            out.push(("REPUTATION_BAD", reason));
        } else if share >= 0.5 {
            out.push(("REPUTATION_POOR", reason));
        }
    }
    if !judged.is_empty() && judged.iter().all(|(_, e)| e.ham / e.total() >= 0.98) {
        out.push((
            "REPUTATION_GOOD",
            "every known key of this envelope sends clean mail".into(),
        ));
    }
    out
}

/// The bulk symbol for the most copies seen under any of the message's bulk keys.
pub fn bulk_symbol(copies: f64) -> Option<(&'static str, String)> {
    let reason = format!("about {copies:.0} copies of this text seen across the cluster");
    if copies >= BULK_MANY {
        Some(("BULK_MANY", reason))
    } else if copies >= BULK_SOME {
        Some(("BULK_SOME", reason))
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use mail_parser::MessageParser;

    fn keys(body: &str) -> Vec<String> {
        let raw = format!("Subject: x\r\n\r\n{body}\r\n");
        let msg = MessageParser::default().parse(raw.as_bytes()).unwrap();
        bulk_keys(&MessageText::of(&msg))
    }

    #[test]
    fn copies_of_a_campaign_share_bulk_keys_and_other_text_does_not() {
        let campaign = |name: &str, n: u32| {
            format!("Dear {name}, our spring collection is here. Order before Friday and save {n} percent on every item in the catalogue, with free delivery to your door. Visit http://shop.example/?id={n}")
        };
        let a = keys(&campaign("Alice", 20));
        let b = keys(&campaign("Bob", 35));
        assert_eq!(a.len(), 4);
        let shared = a.iter().filter(|k| b.contains(k)).count();
        assert!(shared >= 2, "{a:?} {b:?}");
        let other = keys("Hi team, the minutes of yesterday's planning meeting are attached; please send corrections before Thursday so that we can publish them.");
        assert_eq!(other.iter().filter(|k| a.contains(k)).count(), 0);
        assert!(keys("Too short to mean anything.").is_empty());
    }

    #[test]
    fn reputation_keys_name_the_network_and_only_the_proved_sender_domain_and_helo() {
        let ip = "203.0.113.77".parse().unwrap();
        let mut proved = Authenticated::nothing();
        proved.vouch("spam.example");
        let k = reputation_keys(ip, "a@Spam.Example", "MX.Spam.Example.", &proved);
        assert_eq!(
            k,
            [
                "net:203.0.113.0/24",
                "sender:spam.example",
                "helo:mx.spam.example"
            ]
        );
        // Forged: the same names unproved earn the network its evidence, and nothing else.
        let nothing = Authenticated::nothing();
        let k = reputation_keys(ip, "a@victim.example", "mx.victim.example", &nothing);
        assert_eq!(k, ["net:203.0.113.0/24"]);
        let k = reputation_keys("2001:db8:1:2:3::4".parse().unwrap(), "", "", &nothing);
        assert_eq!(k, ["net:2001:db8:1:2::/64"]);
    }

    #[test]
    fn a_client_cannot_make_keys_of_its_choosing() {
        let huge = "x".repeat(4000);
        // Even were every name proved.
        let longest = format!("{}.example", "a".repeat(245));
        let mut everything = Authenticated::nothing();
        for d in [huge.as_str(), "b c", "evil helo", "[192.0.2.1]", &longest] {
            everything.vouch(d);
        }
        let reputation_keys =
            |ip, from: &str, helo: &str| reputation_keys(ip, from, helo, &everything);
        let k = reputation_keys("192.0.2.1".parse().unwrap(), &format!("a@{huge}"), &huge);
        assert_eq!(k, ["net:192.0.2.0/24"]);
        let k = reputation_keys("192.0.2.1".parse().unwrap(), "a@b c", "evil helo\r\n");
        assert_eq!(k, ["net:192.0.2.0/24"]);
        let k = reputation_keys("192.0.2.1".parse().unwrap(), "", "[192.0.2.1]");
        assert_eq!(k, ["net:192.0.2.0/24", "helo:[192.0.2.1]"]);
        for key in reputation_keys(
            "192.0.2.1".parse().unwrap(),
            &format!("a@{longest}"),
            &longest,
        ) {
            assert!(key.len() <= MAX_KEY_BYTES, "{key}");
        }
    }

    #[test]
    fn reputation_speaks_only_with_enough_evidence() {
        let e = |ham, spam, reject| Evidence { ham, spam, reject };
        assert!(reputation_symbols(&[("net:x".into(), e(0.0, 5.0, 4.0))]).is_empty());
        let bad = reputation_symbols(&[
            ("net:x".into(), e(30.0, 0.0, 0.0)),
            ("sender:spam.example".into(), e(1.0, 6.0, 6.0)),
        ]);
        assert_eq!(bad.len(), 1);
        assert_eq!(bad[0].0, "REPUTATION_BAD");
        assert!(bad[0].1.contains("sender domain spam.example"), "{bad:?}");
        let good = reputation_symbols(&[("net:x".into(), e(40.0, 0.0, 0.0))]);
        assert_eq!(good[0].0, "REPUTATION_GOOD");
        assert_eq!(bulk_symbol(4.0), None);
        assert_eq!(bulk_symbol(5.0).unwrap().0, "BULK_SOME");
        assert_eq!(bulk_symbol(25.0).unwrap().0, "BULK_MANY");
    }
}
