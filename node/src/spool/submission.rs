//! What a submission principal (an account that logged in, or a platform MTA trusted by
//! its network) may do: send only as its domains (envelope sender and header From), and
//! only while the identity its mail is counted as (the login, the envelope sender, or a
//! header the platform MTA adds) is not locked (`strikes` locks it) and inside its rate
//! limits.

use std::net::IpAddr;

use mail_parser::MessageParser;
use peage_mail::smtp::Reply;

use super::strikes::LockPolicy;
use crate::clock::now_ms;
use crate::cluster::Cluster;
use crate::logins::Logins;
use crate::ratelimit::{RateLimits, Sender};
pub use crate::state::domain_of;
pub use crate::state::spool::{identity_in, OUTBOUND_IDENTITY};
use crate::state::{Account, IdentityFrom, Indexes, ANY_HOSTED_DOMAIN};

/// What the submission path needs: logins, the lock policy and the rate limits.
#[derive(Clone)]
pub struct Submission {
    pub logins: Logins,
    pub locks: LockPolicy,
    pub limits: RateLimits,
}

impl Submission {
    /// `Err` while `identity` is locked: the reply to its MAIL FROM (or to its message,
    /// when the identity is read from a header).
    pub fn unlocked(&self, indexes: &Indexes, identity: &str) -> Result<(), Reply> {
        match indexes.lock_of(identity, now_ms()) {
            None => Ok(()),
            Some(lock) => {
                let contact = self
                    .locks
                    .notify
                    .as_deref()
                    .unwrap_or("your provider's abuse desk");
                Err(Reply::new(
                    550,
                    format!(
                        "5.7.1 {identity} is locked ({}); contact {contact}",
                        lock.reason
                    ),
                ))
            }
        }
    }

    /// Whether `who` may send one more message now: its identity not locked, and every
    /// count inside its rate limits.
    pub fn admit(
        &self,
        indexes: &Indexes,
        cluster: &Cluster,
        who: &Sender<'_>,
    ) -> Result<(), Reply> {
        self.unlocked(indexes, who.identity)?;
        self.limits.admit(cluster, who)
    }
}

/// Whom a message from `login` as `identity` counts against.
pub fn sender<'a>(
    identity: &'a str,
    login: &'a str,
    client_ip: IpAddr,
    mail_from: &'a str,
) -> Sender<'a> {
    Sender {
        identity,
        login,
        client_ip,
        domain: mail_from.rsplit_once('@').map_or("", |(_, d)| d),
    }
}

/// The principal `login` as it stands, or the reply to a client whose principal has just
/// been removed.
pub fn principal(indexes: &Indexes, login: &str) -> Result<Account, Reply> {
    indexes
        .account(login)
        .ok_or_else(|| Reply::new(550, format!("5.7.1 The account {login} no longer exists")))
}

/// Whether `login` may use `address`; the reply that says why not.
pub fn owned(
    indexes: &Indexes,
    (login, account): (&str, &Account),
    address: &str,
    what: &str,
) -> Result<(), Reply> {
    let ours = |domain: &String| {
        account.domains.contains(domain)
            || (account.domains.iter().any(|d| d == ANY_HOSTED_DOMAIN)
                && indexes.verify_of(domain).is_some())
    };
    match domain_of(address) {
        Some(domain) if ours(&domain) => Ok(()),
        _ => Err(Reply::new(
            553,
            format!("5.7.1 {what} <{address}> is not an address {login} may send as"),
        )),
    }
}

/// The identity a message is counted as when it is known at MAIL FROM (not for one read
/// from a header).
pub fn identity_at_mail(login: &str, account: &Account, mail_from: &str) -> Option<String> {
    match &account.identity {
        IdentityFrom::Login => Some(login.to_owned()),
        IdentityFrom::Sender => Some(sender_or(login, mail_from)),
        IdentityFrom::Header(_) => None,
    }
}

/// The identity of a message: the login, the envelope sender, or the configured header's
/// address (the envelope sender when the header is missing); lower-case.
pub fn identity_of(login: &str, account: &Account, mail_from: &str, message: &[u8]) -> String {
    match &account.identity {
        IdentityFrom::Header(name) => {
            header_identity(message, name).unwrap_or_else(|| sender_or(login, mail_from))
        }
        _ => identity_at_mail(login, account, mail_from).unwrap_or_else(|| login.to_owned()),
    }
}

fn sender_or(login: &str, mail_from: &str) -> String {
    match mail_from {
        "" => login.to_owned(),
        sender => sender.to_lowercase(),
    }
}

/// What the topmost `name` field names: for `Received`, its `(Authenticated sender: X)`
/// (Postfix's `smtpd_sasl_authenticated_header`); for another field, the address in its
/// angle brackets or its whole trimmed value.
pub fn header_identity(message: &[u8], name: &str) -> Option<String> {
    let parsed = MessageParser::new().parse_headers(message)?;
    let raw = parsed
        .headers()
        .iter()
        .find(|h| h.name.as_str().eq_ignore_ascii_case(name))
        .map(|h| {
            String::from_utf8_lossy(&message[h.offset_start as usize..h.offset_end as usize])
        })?;
    let value = if name.eq_ignore_ascii_case("received") {
        let (_, after) = raw.split_once("(Authenticated sender:")?;
        after.split_once(')')?.0
    } else {
        match raw.split_once('<').and_then(|(_, a)| a.split_once('>')) {
            Some((address, _)) => address,
            None => raw.as_ref(),
        }
    };
    let value: String = value.split_whitespace().collect::<Vec<_>>().join(" ");
    (!value.is_empty() && value.len() <= 256).then(|| value.to_lowercase())
}

/// The field that lets an abuse desk trace an outgoing message to the identity to lock
/// (and the principal it came through). Clients cannot forge it: every incoming `X-Peage-*`
/// field is removed first.
pub fn trace_header(login: &str, identity: &str) -> String {
    format!("X-Peage-Outbound-Identity: {identity}; principal={login}\r\n")
}

/// `OUTBOUND_IDENTITY`'s reason: the identity, then the principal (a login has no space).
pub fn identity_reason(login: &str, identity: &str) -> String {
    format!("{identity} via {login}")
}

/// The header From's address, if the message has one.
pub fn header_from(message: &[u8]) -> Option<String> {
    let parsed = MessageParser::new().parse_headers(message)?;
    let from = parsed.from()?.first()?.address.as_deref()?.to_owned();
    Some(from)
}

#[cfg(test)]
mod tests {
    use super::{domain_of, header_from, header_identity, identity_of, Account, IdentityFrom};

    #[test]
    fn an_identity_comes_from_the_login_the_sender_or_the_platform_s_header() {
        let message = b"Received: from pc (pc [10.1.2.3])\r\n\t(Authenticated sender: Bob@Shop.Example)\r\n\tby mta.platform (Postfix) with ESMTPSA id X;\r\n\tSat, 5 Dec 2026 10:00:00 +0000\r\nReceived: from older (Authenticated sender: mallory@x.example)\r\nX-Auth-User: Carol <carol@shop.example>\r\nSubject: x\r\n\r\nbody\r\n";
        let account = |identity| Account {
            password_hash: String::new(),
            domains: vec!["*".into()],
            networks: Vec::new(),
            identity,
        };
        let login = "platform";
        let from = "Alice@Shop.Example";
        assert_eq!(
            identity_of(login, &account(IdentityFrom::Login), from, message),
            "platform"
        );
        assert_eq!(
            identity_of(login, &account(IdentityFrom::Sender), from, message),
            "alice@shop.example"
        );
        assert_eq!(
            identity_of(login, &account(IdentityFrom::Sender), "", message),
            "platform"
        );
        let received = account(IdentityFrom::Header("Received".into()));
        assert_eq!(
            identity_of(login, &received, from, message),
            "bob@shop.example",
            "the topmost Received"
        );
        let named = account(IdentityFrom::Header("x-auth-user".into()));
        assert_eq!(
            identity_of(login, &named, from, message),
            "carol@shop.example"
        );
        let missing = account(IdentityFrom::Header("X-Missing".into()));
        assert_eq!(
            identity_of(login, &missing, from, message),
            "alice@shop.example",
            "the sender, failing the header"
        );
        assert_eq!(
            header_identity(b"Received: from a by b\r\n\r\n", "Received"),
            None
        );
    }

    #[test]
    fn the_from_and_its_domain_are_read_as_written() {
        let m = b"From: \"Alice\" <Alice@Shop.Example>\r\nSubject: x\r\n\r\nbody\r\n";
        assert_eq!(header_from(m).as_deref(), Some("Alice@Shop.Example"));
        assert_eq!(
            domain_of("Alice@Shop.Example").as_deref(),
            Some("shop.example")
        );
        assert_eq!(header_from(b"Subject: no from\r\n\r\nbody\r\n"), None);
        assert_eq!(domain_of("@shop.example"), None);
        assert_eq!(domain_of("nobody"), None);
    }
}
