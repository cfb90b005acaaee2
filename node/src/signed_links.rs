//! HMAC-signed, expiring tokens naming one mailbox: the portal's links (in digests and
//! operators' messages), its session cookies and its CSRF tokens. Each kind signs its own
//! purpose word, so a link is no cookie and a cookie no CSRF token; the key is the
//! replicated portal key, so any node checks what another signed.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use ring::hmac;

/// What a token is for; part of what is signed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Purpose {
    /// A link that opens the portal once (then a session cookie takes over).
    Link,
    /// The session cookie the link is exchanged for.
    Session,
}

impl Purpose {
    fn word(self) -> &'static str {
        match self {
            Purpose::Link => "link",
            Purpose::Session => "session",
        }
    }
}

/// Why a token is refused; the portal shows the user what to do about it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refused {
    #[error("This link is malformed")]
    Malformed,
    #[error("This link was not made by this service or has been altered")]
    Forged,
    #[error("This link has expired")]
    Expired,
}

/// Signs a token for `mailbox` (lower-cased) valid until `expires_at_ms`:
/// `<mailbox, base64url>.<expiry ms>.<HMAC-SHA256, base64url>`.
pub fn sign(key: &[u8], purpose: Purpose, mailbox: &str, expires_at_ms: i64) -> String {
    let mailbox = URL_SAFE_NO_PAD.encode(mailbox.trim().to_lowercase());
    let signed = format!("{}.{mailbox}.{expires_at_ms}", purpose.word());
    let tag = hmac::sign(&hmac::Key::new(hmac::HMAC_SHA256, key), signed.as_bytes());
    format!("{mailbox}.{expires_at_ms}.{}", URL_SAFE_NO_PAD.encode(tag))
}

/// The mailbox a token names and its expiry, when `key` signed it for `purpose` and it is
/// still valid at `now_ms`. The tag is compared in constant time.
pub fn verify(
    key: &[u8],
    purpose: Purpose,
    token: &str,
    now_ms: i64,
) -> Result<(String, i64), Refused> {
    let mut parts = token.trim().split('.');
    let (Some(mailbox), Some(expiry), Some(tag), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(Refused::Malformed);
    };
    let expires_at_ms: i64 = expiry.parse().map_err(|_| Refused::Malformed)?;
    let tag = URL_SAFE_NO_PAD
        .decode(tag)
        .map_err(|_| Refused::Malformed)?;
    let signed = format!("{}.{mailbox}.{expires_at_ms}", purpose.word());
    hmac::verify(
        &hmac::Key::new(hmac::HMAC_SHA256, key),
        signed.as_bytes(),
        &tag,
    )
    .map_err(|_| Refused::Forged)?;
    if now_ms >= expires_at_ms {
        return Err(Refused::Expired);
    }
    let mailbox = URL_SAFE_NO_PAD
        .decode(mailbox)
        .ok()
        .and_then(|m| String::from_utf8(m).ok())
        .ok_or(Refused::Malformed)?;
    Ok((mailbox, expires_at_ms))
}

/// The CSRF token of a session: its forms carry it, a POST without it is refused.
pub fn csrf_token(key: &[u8], session: &str) -> String {
    let tag = hmac::sign(
        &hmac::Key::new(hmac::HMAC_SHA256, key),
        format!("csrf.{session}").as_bytes(),
    );
    URL_SAFE_NO_PAD.encode(tag)
}

/// Whether `given` is the CSRF token of `session` (constant time).
pub fn csrf_matches(key: &[u8], session: &str, given: &str) -> bool {
    let Ok(tag) = URL_SAFE_NO_PAD.decode(given.trim()) else {
        return false;
    };
    hmac::verify(
        &hmac::Key::new(hmac::HMAC_SHA256, key),
        format!("csrf.{session}").as_bytes(),
        &tag,
    )
    .is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &[u8] = b"0123456789abcdef0123456789abcdef";

    #[test]
    fn a_link_names_its_mailbox_until_it_expires() {
        let link = sign(KEY, Purpose::Link, "Bob@Example.test", 1_000);
        assert_eq!(
            verify(KEY, Purpose::Link, &link, 999),
            Ok(("bob@example.test".to_owned(), 1_000))
        );
        assert_eq!(
            verify(KEY, Purpose::Link, &link, 1_000),
            Err(Refused::Expired)
        );
    }

    #[test]
    fn altered_forged_or_misused_tokens_are_refused() {
        let link = sign(KEY, Purpose::Link, "bob@example.test", 1_000);
        let (mailbox, rest) = link.split_once('.').unwrap();
        let eve = URL_SAFE_NO_PAD.encode("eve@example.test");
        assert_ne!(mailbox, eve);
        let other_mailbox = format!("{eve}.{rest}");
        let later = link.replacen(".1000.", ".9000.", 1);
        let other_key = sign(
            b"another key of 32 bytes, exactly",
            Purpose::Link,
            "bob@example.test",
            1_000,
        );
        for forged in [other_mailbox, later, other_key] {
            assert_eq!(
                verify(KEY, Purpose::Link, &forged, 0),
                Err(Refused::Forged),
                "{forged}"
            );
        }
        assert_eq!(
            verify(KEY, Purpose::Session, &link, 0),
            Err(Refused::Forged),
            "a link is not a session"
        );
        for junk in ["", "a.b", "a.b.c.d", "a.x.c", "a.1.!!"] {
            assert_eq!(verify(KEY, Purpose::Link, junk, 0), Err(Refused::Malformed));
        }
    }

    #[test]
    fn a_csrf_token_belongs_to_its_session() {
        let session = sign(KEY, Purpose::Session, "bob@example.test", 1_000);
        let other = sign(KEY, Purpose::Session, "eve@example.test", 1_000);
        let token = csrf_token(KEY, &session);
        assert!(csrf_matches(KEY, &session, &token));
        assert!(!csrf_matches(KEY, &other, &token));
        assert!(!csrf_matches(KEY, &session, ""));
        assert!(!csrf_matches(KEY, &session, &session));
    }
}
