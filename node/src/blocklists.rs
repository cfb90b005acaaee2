//! DNS blocklists: the client's address against DNSBL zones (Spamhaus-ZEN style) and the
//! message's URL hosts against URI blocklists (DBL, SURBL style), all queried at once within
//! the message's DNS budget; each zone's answers map to scored symbols, and an answer that
//! is an error code (a zone refusing the resolver) is reported, never scored.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr};

use mail_auth::MessageAuthenticator;
use serde::{Deserialize, Serialize};
use tokio::time::Instant;

use peage_mail::filter::{symbol, Symbol};

/// Counts the answers that were error codes or not blocklist answers at all, by zone.
pub const BLOCKLIST_ERRORS: &str = "peage_dns_blocklist_errors_total";
/// The symbol (no points) that reports such an answer.
pub const BLOCKLIST_ERROR: &str = "DNS_BLOCKLIST_ERROR";
/// URL hosts asked about per message (a message with more links is judged on its first).
const MAX_HOSTS: usize = 20;

/// One zone, as `[[dns.blocklists]]` configures it.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Blocklist {
    /// The zone queried: `zen.spamhaus.org`, `dbl.spamhaus.org`, `multi.surbl.org`.
    pub zone: String,
    /// `ip`: the client's address (reversed, as DNSBLs take it); `uri`: the message's URL
    /// hosts and their parent domains.
    pub checks: Checks,
    /// The symbol a listing adds (capitals, digits, `_`).
    pub symbol: String,
    /// Its points, for an answer not named in `codes`.
    pub score: f64,
    /// Answers (`127.0.0.x`) with a symbol and points of their own.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub codes: BTreeMap<String, Code>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Checks {
    Ip,
    Uri,
}

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Code {
    pub symbol: String,
    pub score: f64,
}

impl Blocklist {
    /// What is wrong with this entry, as (key under `dns.blocklists[i]`, message).
    pub fn invalid(&self) -> Option<(String, String)> {
        let name_ok = |s: &str| {
            !s.is_empty()
                && s.len() <= 64
                && s.chars()
                    .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_')
        };
        let score_ok = |p: f64| p.is_finite() && p.abs() <= 1000.0;
        let zone_ok = self.zone.contains('.')
            && self.zone.len() <= 200
            && self
                .zone
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_'));
        if !zone_ok {
            return Some(("zone".into(), "must be a DNS zone name".into()));
        }
        if !name_ok(&self.symbol) {
            return Some(("symbol".into(), "capitals, digits and `_` only".into()));
        }
        if !score_ok(self.score) {
            return Some(("score".into(), "must be a number of points".into()));
        }
        for (answer, code) in &self.codes {
            let key = format!("codes.\"{answer}\"");
            match answer.parse::<Ipv4Addr>() {
                Ok(ip) if ip.octets()[0] == 127 && !is_error_code(ip) => {}
                _ => return Some((key, "must be an answer in 127.0.0.0/8".into())),
            }
            if !name_ok(&code.symbol) || !score_ok(code.score) {
                return Some((
                    key,
                    "needs a symbol (capitals, digits, `_`) and a score".into(),
                ));
            }
        }
        None
    }

    /// The names to ask this zone about.
    fn queries(&self, client_ip: IpAddr, hosts: &[String]) -> Vec<String> {
        let mut names = match self.checks {
            Checks::Ip => vec![reversed(client_ip)],
            Checks::Uri => hosts
                .iter()
                .filter(|h| h.parse::<IpAddr>().is_err())
                .take(MAX_HOSTS)
                .flat_map(|h| uri_candidates(h))
                .collect(),
        };
        names.sort();
        names.dedup();
        names
            .into_iter()
            .map(|n| format!("{n}.{}", self.zone))
            .collect()
    }

    /// What one answer means: a scored listing, or an error to report.
    fn finding(&self, queried: &str, answer: Ipv4Addr) -> Result<Symbol, String> {
        let asked = queried
            .strip_suffix(&self.zone)
            .map_or(queried, |n| n.trim_end_matches('.'));
        if is_error_code(answer) || answer.octets()[0] != 127 {
            return Err(format!(
                "{} answered {answer} for {asked}: not a listing (an error code, or a resolver the zone refuses or that rewrites answers); not scored",
                self.zone
            ));
        }
        let (name, points) = match self.codes.get(&answer.to_string()) {
            Some(code) => (code.symbol.as_str(), code.score),
            None => (self.symbol.as_str(), self.score),
        };
        Ok(Symbol {
            name: name.to_owned(),
            score_milli: (points * 1000.0).round() as i64,
            reason: format!("{asked} is listed in {} ({answer})", self.zone),
        })
    }
}

/// Spamhaus answers 127.255.255.x when it refuses a query (public resolver, over quota).
fn is_error_code(answer: Ipv4Addr) -> bool {
    let [a, b, c, _] = answer.octets();
    (a, b, c) == (127, 255, 255)
}

/// An address as DNSBLs are asked about it: octets (IPv4) or nibbles (IPv6) reversed.
fn reversed(ip: IpAddr) -> String {
    match ip {
        IpAddr::V4(v4) => {
            let [a, b, c, d] = v4.octets();
            format!("{d}.{c}.{b}.{a}")
        }
        IpAddr::V6(v6) => {
            let nibbles: Vec<String> = v6
                .octets()
                .iter()
                .rev()
                .flat_map(|byte| [byte & 0xf, byte >> 4])
                .map(|n| format!("{n:x}"))
                .collect();
            nibbles.join(".")
        }
    }
}

/// A URL host and its registered-looking parent (its last two labels): URI blocklists list
/// domains, and the links of a campaign vary the names in front.
fn uri_candidates(host: &str) -> Vec<String> {
    let host = host.trim_end_matches('.').to_ascii_lowercase();
    let host = host.strip_prefix("www.").unwrap_or(&host).to_owned();
    let labels: Vec<&str> = host.split('.').collect();
    if labels.len() < 2 || labels.iter().any(|l| l.is_empty()) {
        return Vec::new();
    }
    let parent = labels[labels.len() - 2..].join(".");
    if parent == host {
        vec![host]
    } else {
        vec![host, parent]
    }
}

/// Asks every zone about the client and the hosts, all at once; what has not answered by
/// `deadline` counts as not listed. One symbol of each name (the highest-scoring one).
pub async fn look_up(
    resolver: &MessageAuthenticator,
    lists: &[Blocklist],
    client_ip: IpAddr,
    hosts: &[String],
    deadline: Instant,
) -> Vec<Symbol> {
    let asks = lists.iter().flat_map(|list| {
        list.queries(client_ip, hosts)
            .into_iter()
            .map(move |name| async move {
                // Fully qualified: no resolver search domain is ever tried after it.
                let fqdn = format!("{name}.");
                let answer = tokio::time::timeout_at(deadline, resolver.ipv4_lookup_raw(&fqdn));
                match answer.await {
                    Ok(Ok(found)) => found
                        .entry
                        .iter()
                        .map(|a| (list.zone.as_str(), list.finding(&name, *a)))
                        .collect(),
                    // Not listed (NXDOMAIN), or no answer in time.
                    _ => Vec::new(),
                }
            })
    });
    let mut found: Vec<Symbol> = Vec::new();
    for (zone, result) in futures::future::join_all(asks).await.into_iter().flatten() {
        match result {
            Ok(listed) => match found.iter_mut().find(|s| s.name == listed.name) {
                Some(s) if s.score_milli < listed.score_milli => *s = listed,
                Some(_) => {}
                None => found.push(listed),
            },
            Err(why) => {
                tracing::warn!(%why, "DNS blocklist answer not scored");
                metrics::counter!(BLOCKLIST_ERRORS, "zone" => zone.to_owned()).increment(1);
                if !found.iter().any(|s| s.name == BLOCKLIST_ERROR) {
                    found.push(symbol(BLOCKLIST_ERROR, why));
                }
            }
        }
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    fn zone(checks: Checks) -> Blocklist {
        Blocklist {
            zone: "zen.test".into(),
            checks,
            symbol: "ZEN".into(),
            score: 3.5,
            codes: BTreeMap::from([(
                "127.0.0.4".into(),
                Code {
                    symbol: "ZEN_XBL".into(),
                    score: 6.0,
                },
            )]),
        }
    }

    #[test]
    fn addresses_are_asked_reversed_and_hosts_with_their_parent() {
        let z = zone(Checks::Ip);
        assert_eq!(
            z.queries("203.0.113.7".parse().unwrap(), &[]),
            ["7.113.0.203.zen.test"]
        );
        let v6 = z.queries("2001:db8::1".parse().unwrap(), &[]);
        assert_eq!(
            v6,
            ["1.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.8.b.d.0.1.0.0.2.zen.test"]
        );
        let u = zone(Checks::Uri);
        let hosts = [
            "www.Evil.Example".into(),
            "a.b.evil.example".into(),
            "192.0.2.1".into(),
        ];
        assert_eq!(
            u.queries("203.0.113.7".parse().unwrap(), &hosts),
            ["a.b.evil.example.zen.test", "evil.example.zen.test",]
        );
    }

    #[test]
    fn answers_map_to_symbols_and_error_codes_are_not_scored() {
        let z = zone(Checks::Ip);
        let q = "7.113.0.203.zen.test";
        let s = z.finding(q, Ipv4Addr::new(127, 0, 0, 2)).unwrap();
        assert_eq!((s.name.as_str(), s.score_milli), ("ZEN", 3500));
        assert!(
            s.reason.contains("7.113.0.203 is listed in zen.test"),
            "{}",
            s.reason
        );
        let s = z.finding(q, Ipv4Addr::new(127, 0, 0, 4)).unwrap();
        assert_eq!((s.name.as_str(), s.score_milli), ("ZEN_XBL", 6000));
        for refused in [
            Ipv4Addr::new(127, 255, 255, 254),
            Ipv4Addr::new(192, 0, 2, 1),
        ] {
            let why = z.finding(q, refused).unwrap_err();
            assert!(why.starts_with("zen.test answered"), "{why}");
        }
    }

    #[test]
    fn a_bad_entry_names_its_key() {
        let mut z = zone(Checks::Ip);
        assert_eq!(z.invalid(), None);
        z.symbol = "zen listed".into();
        assert_eq!(z.invalid().unwrap().0, "symbol");
        let mut z = zone(Checks::Ip);
        z.codes.insert(
            "127.255.255.254".into(),
            Code {
                symbol: "X".into(),
                score: 1.0,
            },
        );
        assert_eq!(z.invalid().unwrap().0, "codes.\"127.255.255.254\"");
        let mut z = zone(Checks::Ip);
        z.zone = "../etc".into();
        assert_eq!(z.invalid().unwrap().0, "zone");
    }
}
