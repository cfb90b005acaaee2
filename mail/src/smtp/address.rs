//! Addresses at the edge: which RCPT and MAIL FROM addresses are refused outright (source
//! routes, `%` and `!` hacks, local parts that would need quoting, repeated `@`, IP literals,
//! trailing dots), the normalised (local-part, domain) pair that the routing table is asked
//! about, and the RFC 5321 path form in which every address is sent on.
//!
//! Why local parts that need quoting are refused rather than carried: the SMTP parser hands
//! us the local part already unquoted, so `"bob> NOTIFY=NEVER"@example.test` would reach the
//! downstream as a parameter, and `"../x"@example.test` would reach whatever turns mailboxes
//! into paths. No mailbox of a hosted domain needs quoting; a clear 553 beats a bounce later.

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
    /// Also what the parser leaves of a bare `<postmaster>`, which names no mailbox here:
    /// the cluster is the MX of many domains, each with its own postmaster.
    #[error(
        "no recipient address (a bare <postmaster> names no domain here: write postmaster@DOMAIN)"
    )]
    Empty,
    #[error("no domain in the recipient address")]
    NoDomain,
    #[error("source routes are not accepted")]
    SourceRoute,
    #[error("'%', '!' or '@' in the local part is a relay trick and is not accepted")]
    RelayHack,
    #[error("quoted local parts are not accepted")]
    Quoted,
    #[error("the local part would need quoting (spaces, '<', '>', '\\', leading, trailing or double dots); such addresses are not accepted")]
    NeedsQuoting,
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
    if !is_dot_string(local) {
        return Err(AddressRefusal::NeedsQuoting);
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

impl AddressRefusal {
    /// The reply for a refused address: syntax the sender can fix is `553 5.1.3`, relay
    /// tricks are policy (`550 5.7.1`).
    pub fn reply_code(&self) -> (u16, &'static str) {
        match self {
            AddressRefusal::Quoted
            | AddressRefusal::NeedsQuoting
            | AddressRefusal::TooLong
            | AddressRefusal::Empty
            | AddressRefusal::NoDomain => (553, "5.1.3"),
            _ => (550, "5.7.1"),
        }
    }
}

/// RFC 5321 `atext` (and, for SMTPUTF8 mailboxes, any non-ASCII byte of UTF-8 text).
fn is_atext(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b >= 0x80 || b"!#$%&'*+-/=?^_`{|}~".contains(&b)
}

/// Whether a local part can be written without quotes (an RFC 5321 Dot-string).
pub fn is_dot_string(local: &str) -> bool {
    !local.is_empty()
        && local
            .split('.')
            .all(|atom| !atom.is_empty() && atom.bytes().all(is_atext))
}

/// Checks a MAIL FROM address (already without `<>`): the null sender, or a local part
/// that needs no quoting at a domain or address literal with nothing that could end the
/// path. Only the syntax: the sender is later answered to (DSNs) and sent on downstream.
pub fn check_sender_syntax(address: &str) -> Result<(), AddressRefusal> {
    if address.is_empty() {
        return Ok(());
    }
    if address.len() > 254 {
        return Err(AddressRefusal::TooLong);
    }
    if address.contains(['"', '\\']) {
        return Err(AddressRefusal::Quoted);
    }
    let (local, domain) = address.rsplit_once('@').ok_or(AddressRefusal::NoDomain)?;
    if !is_dot_string(local) {
        return Err(AddressRefusal::NeedsQuoting);
    }
    let literal = domain.starts_with('[')
        && domain.ends_with(']')
        && domain[1..domain.len() - 1]
            .bytes()
            .all(|b| b.is_ascii_hexdigit() || b"Pv6.:".contains(&b));
    let name = !domain.is_empty()
        && domain
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.' || b >= 0x80);
    if literal || name {
        Ok(())
    } else {
        Err(AddressRefusal::BadDomain)
    }
}

/// An address as it is written inside `<>` in MAIL FROM or RCPT TO: the local part quoted
/// (RFC 5321 §4.1.2) unless it is a Dot-string, so that no byte of it can close the path or
/// start a parameter. `None` when no quoting can carry it (control characters).
pub fn smtp_path(address: &str) -> Option<String> {
    let (local, domain) = match address.rsplit_once('@') {
        Some((local, domain)) => (local, Some(domain)),
        None => (address, None),
    };
    if domain.is_some_and(|d| d.bytes().any(|b| !(is_atext(b) || b"[].:".contains(&b)))) {
        return None;
    }
    let mut path = String::with_capacity(address.len() + 2);
    if local.is_empty() || is_dot_string(local) {
        path.push_str(local);
    } else {
        if local.chars().any(|c| c.is_control()) {
            return None;
        }
        path.push('"');
        for c in local.chars() {
            if c == '"' || c == '\\' {
                path.push('\\');
            }
            path.push(c);
        }
        path.push('"');
    }
    if let Some(domain) = domain {
        path.push('@');
        path.push_str(domain);
    }
    Some(path)
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

    /// An address missing its parts is syntax the sender can fix (553 5.1.3, as for quoting),
    /// and a bare `<postmaster>` — which the parser hands over empty — is told what to write.
    #[test]
    fn an_address_without_a_domain_is_refused_as_syntax_and_says_what_to_write() {
        for addr in ["", "user"] {
            let refusal = parse_recipient(addr).expect_err(addr);
            assert_eq!(refusal.reply_code(), (553, "5.1.3"), "{addr}");
        }
        let why = parse_recipient("").unwrap_err().to_string();
        assert!(why.contains("postmaster@DOMAIN"), "{why}");
    }

    #[test]
    fn local_parts_that_need_quoting_are_refused_with_553() {
        // What the SMTP parser leaves of quoted forms: the quotes are gone by then.
        for addr in [
            "bob> NOTIFY=NEVER@example.test",
            "../../../x@example.test",
            ".bob@example.test",
            "bob.@example.test",
            "bo..b@example.test",
            "bob smith@example.test",
            "bob<x@example.test",
            "bob\tx@example.test",
        ] {
            let refusal = parse_recipient(addr).expect_err(addr);
            assert!(
                matches!(
                    refusal,
                    AddressRefusal::NeedsQuoting | AddressRefusal::Quoted
                ),
                "{addr}: {refusal:?}"
            );
            assert_eq!(refusal.reply_code(), (553, "5.1.3"), "{addr}");
        }
        for addr in [
            "o'brien@example.test",
            "a/b=c+d@example.test",
            "josé@example.test",
        ] {
            assert!(parse_recipient(addr).is_ok(), "{addr}");
        }
    }

    #[test]
    fn senders_are_checked_for_what_could_end_the_path() {
        for ok in [
            "",
            "alice@example.org",
            "bounce+x=y@lists.example.org",
            "a@[192.0.2.1]",
        ] {
            assert_eq!(check_sender_syntax(ok), Ok(()), "{ok}");
        }
        for bad in [
            "a> NOTIFY=NEVER@example.org",
            "alice",
            "alice@exa mple.org",
            "alice@example.org> SIZE=1",
            "\"a b\"@example.org",
        ] {
            assert!(check_sender_syntax(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn paths_sent_on_quote_what_needs_quoting() {
        assert_eq!(
            smtp_path("bob@example.test").as_deref(),
            Some("bob@example.test")
        );
        assert_eq!(smtp_path("").as_deref(), Some(""));
        assert_eq!(smtp_path("postmaster").as_deref(), Some("postmaster"));
        assert_eq!(
            smtp_path("bob> NOTIFY=NEVER@example.test").as_deref(),
            Some(r#""bob> NOTIFY=NEVER"@example.test"#)
        );
        assert_eq!(
            smtp_path(r#"a"b\c@example.test"#).as_deref(),
            Some(r#""a\"b\\c"@example.test"#)
        );
        assert_eq!(smtp_path("a\r\nRSET@example.test"), None);
        assert_eq!(smtp_path("bob@example.test> NOTIFY=NEVER"), None);
    }
}
