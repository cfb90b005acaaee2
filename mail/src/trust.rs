//! Which names a message has proved: the domains sender authentication vouched for (SPF for
//! the MAIL FROM and HELO identities, valid DKIM signatures). Anything else a client says
//! about itself is a claim, and the filter gives a claim no credit: an allow-listed sender
//! lowers the score, and a sender domain or HELO name earns reputation, only when proved.

/// The symbol a message carries when its envelope sender's domain was proved: the spool
/// keeps it, and a bounce goes only to such a sender (or a local one), never as backscatter
/// to a forged address.
pub const SENDER_PROVED: &str = "SENDER_PROVED";

/// The domains this message's authentication vouched for (lower-case, no trailing dot).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Authenticated {
    domains: Vec<String>,
}

impl Authenticated {
    /// Nothing proved: authentication did not run, or nothing passed.
    pub fn nothing() -> Authenticated {
        Authenticated::default()
    }

    /// Adds a domain that passed a check.
    pub fn vouch(&mut self, domain: &str) {
        let domain = normalised(domain);
        if !domain.is_empty() && !self.domains.contains(&domain) {
            self.domains.push(domain);
        }
    }

    pub fn domains(&self) -> &[String] {
        &self.domains
    }

    /// Whether `name` (a domain, or an address whose domain is taken) is aligned with a
    /// proved domain: the same, or one a subdomain of the other — DMARC's relaxed alignment
    /// approximated without the public-suffix list: a proved name never vouches for a
    /// sibling (`a.example.com` for `b.example.com`), a stranger or a bare top-level name.
    pub fn vouches_for(&self, name: &str) -> bool {
        let name = normalised(name.rsplit_once('@').map_or(name, |(_, d)| d));
        !name.is_empty()
            && self.domains.iter().any(|proved| {
                *proved == name || is_subdomain(&name, proved) || is_subdomain(proved, &name)
            })
    }
}

fn normalised(domain: &str) -> String {
    domain.trim().trim_end_matches('.').to_ascii_lowercase()
}

/// `child` is `parent` with labels in front; a bare top-level name is never a parent.
fn is_subdomain(child: &str, parent: &str) -> bool {
    parent.contains('.')
        && child
            .strip_suffix(parent)
            .is_some_and(|front| front.ends_with('.'))
}

#[cfg(test)]
mod tests {
    use super::Authenticated;

    #[test]
    fn a_proved_domain_vouches_for_itself_its_subdomains_and_parents_only() {
        let mut a = Authenticated::nothing();
        assert!(!a.vouches_for("example.com"), "nothing proved");
        a.vouch("Mail.Example.COM.");
        assert!(a.vouches_for("mail.example.com"));
        assert!(a.vouches_for("alice@MAIL.example.com"));
        assert!(a.vouches_for("example.com"), "relaxed alignment upwards");
        assert!(a.vouches_for("eu.mail.example.com"), "and downwards");
        assert!(!a.vouches_for("other.com"));
        assert!(!a.vouches_for("xexample.com"), "a suffix is not a parent");
        assert!(!a.vouches_for("com"), "a bare top-level name is no parent");
        assert!(!a.vouches_for(""));
        assert!(!a.vouches_for("alice@"));
    }
}
