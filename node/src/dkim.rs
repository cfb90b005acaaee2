//! DKIM for the hosted domains' outgoing mail: keys made here (Ed25519 with ring, RSA-2048
//! with the `rsa` crate, as PKCS#8 DER, the public half as the DNS record's `p=`), and the
//! signature (mail-auth, relaxed/relaxed, From signed twice so no second From can be added,
//! no `l=`). mail-auth 0.13.3 hashes whitespace-only lines at the end of a body into a
//! relaxed body hash (RFC 6376 §3.4.4 ignores them): the body is signed and sent without
//! them, which changes nothing a reader sees and verifies everywhere.

use base64::Engine;
use mail_auth::common::crypto::{Ed25519Key, RsaKey, Sha256};
use mail_auth::common::headers::HeaderWriter;
use mail_auth::dkim::{Canonicalization, DkimSigner};
use rsa::pkcs8::{EncodePrivateKey, EncodePublicKey};
use rustls::pki_types::{PrivateKeyDer, PrivatePkcs8KeyDer};

use crate::auth::without_trailing_blank_lines;
use crate::state::DkimKey;

/// The headers signed: From twice (over-signed), then what a reader relies on.
const SIGNED: [&str; 9] = [
    "From",
    "From",
    "To",
    "Cc",
    "Subject",
    "Date",
    "Message-ID",
    "Reply-To",
    "MIME-Version",
];

/// A new key: (algorithm, PKCS#8 DER, base64 public key for `p=`).
pub fn generate(algorithm: &str) -> anyhow::Result<(String, Vec<u8>, String)> {
    let b64 = |bytes: &[u8]| base64::engine::general_purpose::STANDARD.encode(bytes);
    match algorithm {
        "ed25519" => {
            let pkcs8 = Ed25519Key::generate_pkcs8()
                .map_err(|e| anyhow::anyhow!("cannot make an Ed25519 key: {e}"))?;
            let key = Ed25519Key::from_pkcs8_der(&pkcs8)
                .map_err(|e| anyhow::anyhow!("cannot read the Ed25519 key: {e}"))?;
            Ok(("ed25519".into(), pkcs8, b64(&key.public_key())))
        }
        "rsa" => {
            let private = rsa::RsaPrivateKey::new(&mut rand_core_06::OsRng, 2048)?;
            let der = private.to_pkcs8_der()?.as_bytes().to_vec();
            let public = private.to_public_key().to_public_key_der()?;
            Ok(("rsa".into(), der, b64(public.as_bytes())))
        }
        other => anyhow::bail!("algorithm `{other}`: ed25519 or rsa"),
    }
}

/// The DNS TXT record that publishes a key.
pub fn dns_record(algorithm: &str, public_key: &str) -> String {
    format!("v=DKIM1; k={algorithm}; p={public_key}")
}

/// `message` signed for `domain` with `key`: the DKIM-Signature field first.
pub fn sign(message: &[u8], domain: &str, key: &DkimKey) -> anyhow::Result<Vec<u8>> {
    let trimmed = without_trailing_blank_lines(message);
    let message = trimmed.as_deref().unwrap_or(message);
    let der = || PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.private_key.clone()));
    let signature = match key.algorithm.as_str() {
        "ed25519" => {
            let k = Ed25519Key::from_pkcs8_der(&key.private_key)
                .map_err(|e| anyhow::anyhow!("the Ed25519 key of {domain}: {e}"))?;
            signer(DkimSigner::from_key(k), domain, &key.selector).sign(message)
        }
        _ => {
            let k = RsaKey::<Sha256>::from_key_der(der())
                .map_err(|e| anyhow::anyhow!("the RSA key of {domain}: {e}"))?;
            signer(DkimSigner::from_key(k), domain, &key.selector).sign(message)
        }
    }
    .map_err(|e| anyhow::anyhow!("cannot sign for {domain}: {e}"))?;
    let mut signed = signature.to_header().into_bytes();
    signed.extend_from_slice(message);
    Ok(signed)
}

fn signer<T: mail_auth::common::crypto::SigningKey>(
    s: DkimSigner<T, mail_auth::dkim::NeedDomain>,
    domain: &str,
    selector: &str,
) -> DkimSigner<T, mail_auth::dkim::Done> {
    s.domain(domain)
        .selector(selector)
        .headers(SIGNED)
        .header_canonicalization(Canonicalization::Relaxed)
        .body_canonicalization(Canonicalization::Relaxed)
}
