//! Sender authentication at the edge (mail-auth): the client's reverse DNS (iprev), SPF for
//! the HELO and MAIL FROM identities
//! (the HELO one stands for the null sender), DKIM, ARC and DMARC, all within one DNS budget per message so
//! that a slow resolver turns into `temperror`, never into a stuck client; their symbols,
//! the `Authentication-Results` field (RFC 8601) under this node's authserv-id, and what a
//! failing DMARC policy asks for; and the domains it proved, the only names the filter
//! credits (`peage_mail::trust`). The DNS blocklists (`blocklists`) are asked at the same
//! time, within the same budget.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use mail_auth::hickory_resolver::config::{
    ConnectionConfig, NameServerConfig, ResolverConfig, ResolverOpts,
};
use mail_auth::{
    dkim::Canonicalization, dmarc::verify::DmarcParameters, dmarc::Policy as DmarcPolicy,
    spf::verify::SpfParameters, AuthenticatedMessage, AuthenticationResults, DkimResult,
    DmarcOutput, DmarcResult, IprevOutput, IprevResult, MessageAuthenticator, SpfResult,
};

use peage_mail::filter::{symbol, url_hosts_of, verdict, Judgement, Policy, Symbol, Verdict};
use peage_mail::trust::{Authenticated, SENDER_PROVED};

use crate::blocklists::{self, Blocklist, Checks};
use crate::state::DmarcAction;

/// What the checks found for one message.
#[derive(Debug, Default)]
pub struct Authentication {
    /// `SPF_*`, `DKIM_*`, `ARC_*`, `DMARC_*` symbols (scored in `filter::SCORES`).
    pub symbols: Vec<Symbol>,
    /// The whole `Authentication-Results:` field, CRLF-terminated.
    pub header: String,
    /// DMARC failed and the author domain's policy says reject (honoured when configured).
    pub dmarc_reject: bool,
    /// DMARC failed and the policy says quarantine.
    pub dmarc_quarantine: bool,
    /// The domains SPF (HELO, MAIL FROM) or a valid DKIM signature vouched for.
    pub proved: Authenticated,
    /// The client's host name when reverse DNS names one whose addresses include the
    /// client's (iprev pass); empty otherwise.
    pub rdns: String,
}

/// The resolver and limits sender authentication works with, and what it makes of a
/// failing DMARC policy.
pub struct Authenticator {
    inner: Arc<MessageAuthenticator>,
    hostname: String,
    budget: Duration,
    /// A failing DMARC policy of reject or quarantine decides the verdict (else it is scored).
    honour_dmarc: bool,
    /// DNSBL and URI blocklist zones, asked alongside.
    blocklists: Vec<Blocklist>,
}

impl Authenticator {
    /// Resolves through `servers` (`IP:PORT`; the system's resolvers when empty), each query
    /// given `timeout`, each message at most `budget` for all of its lookups.
    pub fn new(
        servers: &[SocketAddr],
        (timeout, budget): (Duration, Duration),
        hostname: String,
        (honour_dmarc, blocklists): (bool, Vec<Blocklist>),
    ) -> anyhow::Result<Authenticator> {
        let mut opts = ResolverOpts::default();
        opts.timeout = timeout;
        opts.attempts = 1;
        let inner = if servers.is_empty() {
            MessageAuthenticator::new_system_conf()?
        } else {
            let name_servers = servers
                .iter()
                .map(|s| {
                    let mut udp = ConnectionConfig::udp();
                    udp.port = s.port();
                    let mut tcp = ConnectionConfig::tcp();
                    tcp.port = s.port();
                    NameServerConfig::new(s.ip(), true, vec![udp, tcp])
                })
                .collect();
            MessageAuthenticator::new(ResolverConfig::from_name_servers(name_servers), opts)?
        };
        Ok(Authenticator {
            inner: Arc::new(inner),
            hostname,
            budget,
            honour_dmarc,
            blocklists,
        })
    }

    /// The resolvers, for the other lookups the node makes (outgoing mail's MX).
    pub fn resolver(&self) -> Arc<MessageAuthenticator> {
        self.inner.clone()
    }

    /// Authenticates one message and asks the blocklists about it, all at once; past the
    /// budget, what was not answered is `temperror` (authentication) or not listed.
    pub async fn check(
        &self,
        client_ip: IpAddr,
        helo: &str,
        mail_from: &str,
        message: &[u8],
    ) -> Authentication {
        let deadline = tokio::time::Instant::now() + self.budget;
        let hosts = if self.blocklists.iter().any(|l| l.checks == Checks::Uri) {
            url_hosts_of(message)
        } else {
            Vec::new()
        };
        let run = tokio::time::timeout_at(deadline, self.run(client_ip, helo, mail_from, message));
        let listed =
            blocklists::look_up(&self.inner, &self.blocklists, client_ip, &hosts, deadline);
        let (found, listed) = tokio::join!(run, listed);
        let mut found = self.authenticated(found, mail_from);
        found.symbols.extend(listed);
        found
    }

    /// What authentication found, or `temperror` when the budget ran out first.
    fn authenticated(
        &self,
        found: Result<Authentication, tokio::time::error::Elapsed>,
        mail_from: &str,
    ) -> Authentication {
        match found {
            Ok(mut found) => {
                if !mail_from.is_empty() && found.proved.vouches_for(mail_from) {
                    let why = format!("{mail_from} is proved by SPF or DKIM");
                    found.symbols.push(symbol(SENDER_PROVED, why));
                }
                found
            }
            Err(_) => Authentication {
                symbols: vec![symbol(
                    "AUTH_TEMPERROR",
                    format!("DNS answers took longer than {:?}", self.budget),
                )],
                header: format!(
                    "Authentication-Results: {};\r\n\tspf=temperror; dkim=temperror; dmarc=temperror\r\n",
                    self.hostname
                ),
                ..Authentication::default()
            },
        }
    }

    /// What a failing DMARC policy does to a message for these recipient domains' settings:
    /// each domain's own (the node's `dns.dmarc_policy` where it has none), the most lenient
    /// deciding, so that no domain's mail is refused against its setting.
    pub fn dmarc_action(&self, domains: impl IntoIterator<Item = DmarcAction>) -> DmarcAction {
        let node = if self.honour_dmarc {
            DmarcAction::Reject
        } else {
            DmarcAction::Score
        };
        domains
            .into_iter()
            .map(|a| {
                if a == DmarcAction::NodeDefault {
                    node
                } else {
                    a
                }
            })
            .min()
            .unwrap_or(node)
    }

    /// Adds what authentication found to the filter's judgement: its symbols' points, and
    /// as `action` says a failing DMARC policy's own verdict (reject, or at least quarantine).
    pub fn combine(
        &self,
        judgement: &mut Judgement,
        found: &Authentication,
        policy: &Policy,
        action: DmarcAction,
    ) {
        judgement.symbols.extend(found.symbols.iter().cloned());
        let (mut verdict, total) = verdict(&judgement.symbols, policy);
        let action = self.dmarc_action([action]);
        let failing = found.dmarc_reject || found.dmarc_quarantine;
        if action == DmarcAction::Reject && found.dmarc_reject {
            verdict = Verdict::Reject;
        } else if action >= DmarcAction::Quarantine && failing && verdict == Verdict::Deliver {
            verdict = Verdict::Quarantine;
        }
        judgement.verdict = verdict;
        judgement.total_milli = total;
    }

    async fn run(
        &self,
        client_ip: IpAddr,
        helo: &str,
        mail_from: &str,
        message: &[u8],
    ) -> Authentication {
        let host = self.hostname.as_str();
        let helo_domain = if helo.is_empty() { "unknown" } else { helo };
        // The null sender's identity is its HELO (RFC 7208 §2.4).
        let sender = if mail_from.is_empty() {
            format!("postmaster@{helo_domain}")
        } else {
            mail_from.to_owned()
        };
        let (helo_spf, spf, iprev) = tokio::join!(
            self.inner
                .verify_spf(SpfParameters::verify_ehlo(client_ip, helo_domain, host)),
            self.inner.verify_spf(SpfParameters::verify_mail_from(
                client_ip,
                helo_domain,
                host,
                &sender,
            )),
            self.inner.verify_iprev(client_ip)
        );
        let mut out = Authentication {
            rdns: confirmed_name(&iprev),
            ..Authentication::default()
        };
        if let Some(s) = helo_spf_symbol(helo_spf.result(), helo_domain) {
            out.symbols.push(s);
        }
        if helo_spf.result() == SpfResult::Pass {
            out.proved.vouch(helo_domain);
        }
        out.symbols.push(spf_symbol(spf.result(), &sender));
        if spf.result() == SpfResult::Pass {
            out.proved
                .vouch(sender.rsplit_once('@').map_or("", |(_, d)| d));
        }
        let mut results = AuthenticationResults::new(host)
            .with_iprev_result(&iprev, client_ip)
            .with_spf_ehlo_result(&helo_spf, client_ip, helo_domain)
            .with_spf_mailfrom_result(&spf, client_ip, &sender, helo_domain);
        let Some(parsed) = AuthenticatedMessage::parse(message) else {
            out.header = format!("Authentication-Results: {results}\r\n");
            return out;
        };
        let mut dkim = self.inner.verify_dkim(&parsed).await;
        // mail-auth 0.13.3 hashes whitespace-only lines at the end of the body into a relaxed
        // body hash (RFC 6376 §3.4.4 ignores them; fixed upstream in 0.15): a relaxed
        // signature that failed is checked again over the body without them.
        let trimmed = without_trailing_blank_lines(message);
        let reparsed = trimmed.as_deref().and_then(AuthenticatedMessage::parse);
        if let Some(reparsed) = &reparsed {
            if dkim.iter().any(|d| d.result() != &DkimResult::Pass) {
                let again = self.inner.verify_dkim(reparsed).await;
                for (first, second) in dkim.iter_mut().zip(again) {
                    let relaxed = first
                        .signature()
                        .is_some_and(|s| s.cb == Canonicalization::Relaxed);
                    if relaxed
                        && first.result() != &DkimResult::Pass
                        && second.result() == &DkimResult::Pass
                    {
                        *first = second;
                    }
                }
            }
        }
        let arc = self.inner.verify_arc(&parsed).await;
        let from_domain = sender.rsplit_once('@').map_or(helo_domain, |(_, d)| d);
        let dmarc = self
            .inner
            .verify_dmarc(DmarcParameters {
                message: &parsed,
                dkim_output: &dkim,
                dkim2_output: None,
                rfc5321_mail_from_domain: from_domain,
                spf_output: &spf,
            })
            .await;
        let header_from = parsed.from.first().map_or("", |f| f.as_str());
        for d in &dkim {
            let signer = d.signature().map(|s| s.d.as_str());
            out.symbols.push(dkim_symbol(d.result(), signer));
            if let (DkimResult::Pass, Some(signer)) = (d.result(), signer) {
                out.proved.vouch(signer);
            }
        }
        if !arc.result().eq(&DkimResult::None) {
            let name = if arc.result() == &DkimResult::Pass {
                "ARC_VALID"
            } else {
                "ARC_INVALID"
            };
            out.symbols.push(symbol(name, "the ARC chain"));
        }
        dmarc_symbols(&dmarc, &mut out);
        results = results
            .with_dkim_results(&dkim, header_from)
            .with_arc_result(&arc, client_ip)
            .with_dmarc_result(&dmarc);
        out.header = format!("Authentication-Results: {results}\r\n");
        out
    }
}

/// The first name reverse DNS gave, when forward DNS confirmed it (without the final dot).
fn confirmed_name(iprev: &IprevOutput) -> String {
    match (&iprev.result, &iprev.ptr) {
        (IprevResult::Pass, Some(names)) => names.first().map_or_else(String::new, |n| {
            n.trim_end_matches('.').to_ascii_lowercase()
        }),
        _ => String::new(),
    }
}

/// The message without the whitespace-only lines that end its body, when it has any.
pub fn without_trailing_blank_lines(message: &[u8]) -> Option<Vec<u8>> {
    let body_start = message.windows(4).position(|w| w == b"\r\n\r\n")? + 4;
    let mut end = message.len();
    // Back over whole lines (ending in CRLF) that hold nothing but spaces and tabs.
    while end > body_start {
        let Some(content) = message[body_start..end].strip_suffix(b"\r\n") else {
            break;
        };
        let line_start = content
            .windows(2)
            .rposition(|w| w == b"\r\n")
            .map_or(0, |i| i + 2);
        if !content[line_start..]
            .iter()
            .all(|b| matches!(b, b' ' | b'\t'))
        {
            break;
        }
        end = body_start + line_start;
    }
    (end < message.len()).then(|| message[..end].to_vec())
}

/// What DMARC found, as a symbol, and a failing policy's demand.
fn dmarc_symbols(dmarc: &DmarcOutput, out: &mut Authentication) {
    match dmarc.result() {
        DmarcResult::Pass => out.symbols.push(symbol(
            "DMARC_PASS",
            format!("aligned with {}", dmarc.domain()),
        )),
        DmarcResult::Fail(_) => {
            let policy = dmarc.policy();
            out.dmarc_reject = policy == DmarcPolicy::Reject;
            out.dmarc_quarantine = policy == DmarcPolicy::Quarantine;
            let name = match policy {
                DmarcPolicy::Reject => "DMARC_FAIL_REJECT",
                DmarcPolicy::Quarantine => "DMARC_FAIL_QUARANTINE",
                _ => "DMARC_FAIL_NONE",
            };
            out.symbols.push(symbol(
                name,
                format!("{} fails DMARC (policy {policy:?})", dmarc.domain()),
            ));
        }
        DmarcResult::TempError(_) | DmarcResult::PermError(_) | DmarcResult::None => {}
    }
}

fn spf_symbol(result: SpfResult, sender: &str) -> Symbol {
    let name = match result {
        SpfResult::Pass => "SPF_PASS",
        SpfResult::Fail => "SPF_FAIL",
        SpfResult::SoftFail => "SPF_SOFTFAIL",
        SpfResult::Neutral => "SPF_NEUTRAL",
        SpfResult::TempError => "SPF_TEMPERROR",
        SpfResult::PermError => "SPF_PERMERROR",
        SpfResult::None => "SPF_NONE",
    };
    symbol(name, format!("SPF for {sender}"))
}

/// HELO names are checked for what they fail; a pass is what `proved` records.
fn helo_spf_symbol(result: SpfResult, helo: &str) -> Option<Symbol> {
    let name = match result {
        SpfResult::Fail => "SPF_HELO_FAIL",
        SpfResult::SoftFail => "SPF_HELO_SOFTFAIL",
        SpfResult::Pass => "SPF_HELO_PASS",
        _ => return None,
    };
    Some(symbol(name, format!("SPF for the HELO name {helo}")))
}

fn dkim_symbol(result: &DkimResult, domain: Option<&str>) -> Symbol {
    let name = match result {
        DkimResult::Pass => "DKIM_VALID",
        DkimResult::TempError(_) => "DKIM_TEMPERROR",
        DkimResult::None => "DKIM_NONE",
        _ => "DKIM_INVALID",
    };
    symbol(name, format!("DKIM signature of {}", domain.unwrap_or("?")))
}

#[cfg(test)]
mod tests {
    use super::without_trailing_blank_lines;

    #[test]
    fn only_whitespace_lines_at_the_end_of_the_body_come_off() {
        let m = b"Subject: x\r\n\r\nhello \r\n\r\n \t\r\n  \r\n";
        assert_eq!(
            without_trailing_blank_lines(m).as_deref(),
            Some(&b"Subject: x\r\n\r\nhello \r\n"[..])
        );
        assert_eq!(
            without_trailing_blank_lines(b"Subject: x\r\n\r\nhello\r\n"),
            None
        );
        assert_eq!(
            without_trailing_blank_lines(b"Subject: x\r\n\r\n \r\n").as_deref(),
            Some(&b"Subject: x\r\n\r\n"[..])
        );
        assert_eq!(without_trailing_blank_lines(b"Subject: x\r\n"), None);
    }
}
