//! Block and allow lists: validating and normalising values. What an entry is lives in
//! `entry`, the in-memory index the lookups go through in `index`.

use std::net::IpAddr;

use ipnet::IpNet;

mod entry;
mod index;
pub use entry::{in_scope, EntryKind, ListEntry, ListName};
pub use index::ListIndex;

/// Why a value cannot be a list entry or be looked up.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InvalidValue {
    #[error("value is empty")]
    Empty,
    #[error("value is longer than {0} bytes")]
    TooLong(usize),
    #[error("invalid IP address or CIDR network `{0}`")]
    Ip(String),
    #[error("CIDR `{given}` has host bits set; did you mean `{network}`?")]
    HostBits { given: String, network: String },
    #[error("invalid domain `{0}`: {1}")]
    Domain(String, &'static str),
    #[error("invalid sender address `{0}`: {1}")]
    Sender(String, &'static str),
    #[error("invalid URL or host `{0}`")]
    Url(String),
}

const MAX_VALUE_BYTES: usize = 512;

/// Normalises a value for storing: IP networks in canonical form, domains lower-case
/// without a trailing dot, URL entries reduced to their host.
pub fn normalize_entry(kind: EntryKind, value: &str) -> Result<String, InvalidValue> {
    let value = trimmed_within_limits(value)?;
    match kind {
        EntryKind::Ip => {
            let net = parse_network(value)?;
            if net.trunc() != net {
                return Err(InvalidValue::HostBits {
                    given: value.to_owned(),
                    network: net.trunc().to_string(),
                });
            }
            Ok(net.to_string())
        }
        EntryKind::Domain => normalize_domain(value),
        EntryKind::Sender => normalize_sender(value),
        EntryKind::Url => url_host(value),
    }
}

/// Normalises a scope: empty (cluster-wide), a domain, or a mailbox address.
pub fn normalize_scope(scope: &str) -> Result<String, InvalidValue> {
    let scope = scope.trim();
    if scope.is_empty() {
        return Ok(String::new());
    }
    if scope.contains('@') {
        normalize_sender(scope)
    } else {
        normalize_domain(scope)
    }
}

/// Normalises a value to look up: an IP address (not a network) for `ip`, the host of a URL.
pub fn normalize_probe(kind: EntryKind, value: &str) -> Result<String, InvalidValue> {
    let value = trimmed_within_limits(value)?;
    match kind {
        EntryKind::Ip => value
            .parse::<IpAddr>()
            .map(|ip| ip.to_string())
            .map_err(|_| InvalidValue::Ip(value.to_owned())),
        _ => normalize_entry(kind, value),
    }
}

fn trimmed_within_limits(value: &str) -> Result<&str, InvalidValue> {
    let value = value.trim();
    if value.is_empty() {
        return Err(InvalidValue::Empty);
    }
    if value.len() > MAX_VALUE_BYTES {
        return Err(InvalidValue::TooLong(MAX_VALUE_BYTES));
    }
    Ok(value)
}

fn parse_network(value: &str) -> Result<IpNet, InvalidValue> {
    if let Ok(net) = value.parse::<IpNet>() {
        return Ok(net);
    }
    value
        .parse::<IpAddr>()
        .map(IpNet::from)
        .map_err(|_| InvalidValue::Ip(value.to_owned()))
}

fn normalize_domain(value: &str) -> Result<String, InvalidValue> {
    let d = value
        .strip_suffix('.')
        .unwrap_or(value)
        .to_ascii_lowercase();
    let bad = |why| InvalidValue::Domain(value.to_owned(), why);
    if d.is_empty() {
        return Err(bad("empty"));
    }
    if d.len() > 253 {
        return Err(bad("longer than 253 characters"));
    }
    if !d.is_ascii() {
        return Err(bad("not ASCII; use its punycode (xn--) form"));
    }
    for label in d.split('.') {
        if label.is_empty() {
            return Err(bad("empty label"));
        }
        if label.len() > 63 {
            return Err(bad("label longer than 63 characters"));
        }
        if !label
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        {
            return Err(bad("only letters, digits, '-' and '_' are allowed"));
        }
        if label.starts_with('-') || label.ends_with('-') {
            return Err(bad("a label starts or ends with '-'"));
        }
    }
    Ok(d)
}

fn normalize_sender(value: &str) -> Result<String, InvalidValue> {
    let bad = |why| InvalidValue::Sender(value.to_owned(), why);
    let (local, domain) = value.rsplit_once('@').ok_or_else(|| bad("no '@'"))?;
    if local.is_empty() {
        return Err(bad("empty local part"));
    }
    if local.len() > 64 {
        return Err(bad("local part longer than 64 characters"));
    }
    if local
        .bytes()
        .any(|b| b.is_ascii_whitespace() || b.is_ascii_control() || b == b'@')
    {
        return Err(bad("spaces, control characters or '@' in the local part"));
    }
    let domain = normalize_domain(domain).map_err(|_| bad("invalid domain"))?;
    Ok(format!("{}@{}", local.to_lowercase(), domain))
}

/// The host of a URL (`https://user@Host.example:8080/x` → `host.example`), or a bare host.
fn url_host(value: &str) -> Result<String, InvalidValue> {
    let bad = || InvalidValue::Url(value.to_owned());
    let rest = match value.find("://") {
        Some(i) => &value[i + 3..],
        None => value,
    };
    let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
    let host_port = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    let host = if let Some(v6) = host_port.strip_prefix('[') {
        v6.split(']').next().ok_or_else(bad)?
    } else {
        host_port.split(':').next().unwrap_or("")
    };
    if let Ok(ip) = host.parse::<IpAddr>() {
        return Ok(ip.to_string());
    }
    normalize_domain(host).map_err(|_| bad())
}

#[cfg(test)]
mod tests;
