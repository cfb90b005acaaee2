//! Where mail for a domain outside the routing table goes: its MX (lowest preference
//! first), each exchange's address looked up through the same resolvers as sender
//! authentication, so outgoing mail follows the DNS the node is configured with. The
//! routing table overrides it per domain; no MX falls back to the domain's own address
//! (RFC 5321 §5.1), and a domain with neither has no mail server.

use std::net::IpAddr;

use mail_auth::hickory_resolver::proto::rr::RData;
use mail_auth::MessageAuthenticator;

/// What the DNS says of a domain's mail servers.
#[derive(Debug, PartialEq, Eq)]
pub enum MxAnswer {
    /// `smtp://IP:PORT` routes, most preferred first.
    Routes(Vec<String>),
    /// The domain has no mail server (no MX, no address, or a null MX).
    None,
    /// The DNS did not answer now: try again later.
    TempFail(String),
}

/// Looks up MX records through the node's resolvers.
#[derive(Clone)]
pub struct MxResolver {
    resolver: std::sync::Arc<MessageAuthenticator>,
    /// The port of every exchange (25; tests point it at their sinks).
    port: u16,
}

impl MxResolver {
    pub fn new(resolver: std::sync::Arc<MessageAuthenticator>, port: u16) -> MxResolver {
        MxResolver { resolver, port }
    }

    pub async fn routes(&self, domain: &str) -> MxAnswer {
        let domain = format!("{}.", domain.trim_end_matches('.'));
        let exchanges = match self.resolver.0.mx_lookup(domain.as_str()).await {
            Ok(mx) => {
                let mut records: Vec<(u16, String)> = mx
                    .answers()
                    .iter()
                    .filter_map(|r| match &r.data {
                        RData::MX(mx) => Some((mx.preference, mx.exchange.to_ascii())),
                        _ => None,
                    })
                    .collect();
                records.sort();
                records.into_iter().map(|(_, host)| host).collect()
            }
            Err(e) if e.is_no_records_found() || e.is_nx_domain() => vec![domain.clone()],
            Err(e) => return MxAnswer::TempFail(format!("MX of {domain}: {e}")),
        };
        // A null MX (RFC 7505): the domain takes no mail.
        if exchanges.len() == 1 && exchanges[0] == "." {
            return MxAnswer::None;
        }
        let mut routes = Vec::new();
        for host in exchanges {
            match self.resolver.0.lookup_ip(host.as_str()).await {
                Ok(ips) => routes.extend(ips.iter().map(|ip| self.route(ip))),
                Err(e) if e.is_no_records_found() || e.is_nx_domain() => {}
                Err(e) => return MxAnswer::TempFail(format!("address of {host}: {e}")),
            }
        }
        if routes.is_empty() {
            MxAnswer::None
        } else {
            MxAnswer::Routes(routes)
        }
    }

    fn route(&self, ip: IpAddr) -> String {
        match ip {
            IpAddr::V4(v4) => format!("smtp://{v4}:{}", self.port),
            IpAddr::V6(v6) => format!("smtp://[{v6}]:{}", self.port),
        }
    }
}
