//! Recipient addresses and relay control: which RCPT addresses are refused outright
//! (source routes, `%` and `!` hacks, quoted or repeated `@`, IP literals, trailing dots),
//! and the normalised (local-part, domain) pair that the routing table is asked about.

/// A recipient that passed the syntax checks, with its domain lower-cased.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Recipient {
    pub local: String,
    pub domain: String,
}

impl Recipient {
    pub fn address(&self) -> String {
        format!("{}@{}", self.local, self.domain)
    }
}

/// Why a recipient address is refused before any routing lookup.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AddressRefusal {
    #[error("empty recipient address")]
    Empty,
    #[error("no domain in the recipient address")]
    NoDomain,
    #[error("source routes are not accepted")]
    SourceRoute,
    #[error("'%', '!' or '@' in the local part is a relay trick and is not accepted")]
    RelayHack,
    #[error("quoted local parts are not accepted")]
    Quoted,
    #[error("address literals ([IP]) are not accepted as recipients")]
    AddressLiteral,
    #[error("a trailing dot in the domain is not accepted")]
    TrailingDot,
    #[error("invalid domain")]
    BadDomain,
    #[error("address longer than 254 characters")]
    TooLong,
}

/// Parses an RCPT address as given by the client (already without `<>`).
pub fn parse_recipient(address: &str) -> Result<Recipient, AddressRefusal> {
    let a = address.trim();
    if a.is_empty() {
        return Err(AddressRefusal::Empty);
    }
    if a.len() > 254 {
        return Err(AddressRefusal::TooLong);
    }
    if a.starts_with('@') || a.contains(':') {
        return Err(AddressRefusal::SourceRoute);
    }
    if a.contains('"') || a.contains('\\') {
        return Err(AddressRefusal::Quoted);
    }
    let (local, domain) = a.rsplit_once('@').ok_or(AddressRefusal::NoDomain)?;
    if local.is_empty() {
        return Err(AddressRefusal::Empty);
    }
    // `user%remote@local`, `remote!user@local`, `user@remote@local`: each asks the local
    // host to pass the message on, which is relaying.
    if local.contains(['%', '!', '@']) {
        return Err(AddressRefusal::RelayHack);
    }
    if domain.starts_with('[') {
        return Err(AddressRefusal::AddressLiteral);
    }
    if domain.ends_with('.') {
        return Err(AddressRefusal::TrailingDot);
    }
    let valid_domain = !domain.is_empty()
        && domain.len() <= 253
        && domain.split('.').all(|l| {
            !l.is_empty()
                && l.len() <= 63
                && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
                && !l.starts_with('-')
                && !l.ends_with('-')
        });
    if !valid_domain {
        return Err(AddressRefusal::BadDomain);
    }
    Ok(Recipient {
        local: local.to_owned(),
        domain: domain.to_ascii_lowercase(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_addresses_parse_and_domains_are_lower_cased() {
        let r = parse_recipient("Alice.Smith+tag@Example.TEST").unwrap();
        assert_eq!(r.local, "Alice.Smith+tag");
        assert_eq!(r.domain, "example.test");
    }

    #[test]
    fn relay_tricks_are_refused() {
        use AddressRefusal::*;
        for (addr, why) in [
            ("user%remote.example@example.test", RelayHack),
            ("remote.example!user@example.test", RelayHack),
            ("user@remote.example@example.test", RelayHack),
            ("\"user@remote.example\"@example.test", Quoted),
            ("@example.test:user@remote.example", SourceRoute),
            ("user@[192.0.2.1]", AddressLiteral),
            ("user@[IPv6:2001:db8::1]", SourceRoute),
            ("user@example.test.", TrailingDot),
            ("user@", BadDomain),
            ("user", NoDomain),
            ("", Empty),
            ("user@exa mple.test", BadDomain),
        ] {
            assert_eq!(parse_recipient(addr), Err(why), "{addr}");
        }
    }
}
