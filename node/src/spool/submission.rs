//! What an authenticated client (submission) may send as: the envelope sender and the
//! header From must both be addresses of the account's domains, so that a customer's
//! stolen password cannot be used to send as anyone else.

use mail_parser::MessageParser;
use peage_mail::smtp::Reply;

use crate::state::Indexes;

/// The domain of `address`, lower-case.
fn domain_of(address: &str) -> Option<String> {
    let (local, domain) = address.rsplit_once('@')?;
    (!local.is_empty() && !domain.is_empty()).then(|| domain.to_ascii_lowercase())
}

/// Whether `login` may use `address`; the reply that says why not.
pub fn owned(indexes: &Indexes, login: &str, address: &str, what: &str) -> Result<(), Reply> {
    let Some(account) = indexes.account(login) else {
        return Err(Reply::new(
            550,
            format!("5.7.1 The account {login} no longer exists"),
        ));
    };
    match domain_of(address) {
        Some(domain) if account.domains.contains(&domain) => Ok(()),
        _ => Err(Reply::new(
            553,
            format!("5.7.1 {what} <{address}> is not an address {login} may send as"),
        )),
    }
}

/// The header From's address, if the message has one.
pub fn header_from(message: &[u8]) -> Option<String> {
    let parsed = MessageParser::new().parse_headers(message)?;
    let from = parsed.from()?.first()?.address.as_deref()?.to_owned();
    Some(from)
}

#[cfg(test)]
mod tests {
    use super::{domain_of, header_from};

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
