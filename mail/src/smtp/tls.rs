//! STARTTLS and implicit TLS: the rustls server configuration over the PEM files in the
//! config, which follows the files — a renewed certificate (certbot every 60 days) is served
//! from the next handshake on, without a restart — and says when the one served expires.

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::Context;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
pub use tokio_rustls::TlsAcceptor;

/// When the certificate served expires, in seconds since the epoch (an alert compares it
/// with the time: a renewal that stopped working is seen weeks before clients fail).
pub const TLS_CERTIFICATE_EXPIRY: &str = "peage_tls_certificate_expiry_seconds";
/// A certificate expiring sooner than this is logged at WARN each time it is loaded.
const EXPIRY_WARNING_SECS: i64 = 21 * 86_400;

/// Loads a certificate chain and its key (errors name the file), and serves them until the
/// files change.
pub fn acceptor(cert: &Path, key: &Path) -> anyhow::Result<TlsAcceptor> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let files = CertificateFiles::open(cert, key, provider.clone())?;
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .context("TLS protocol versions")?
        .with_no_client_auth()
        .with_cert_resolver(Arc::new(files));
    Ok(TlsAcceptor::from(Arc::new(config)))
}

/// The files' identity: a renewal writes new files (or points the links at new ones).
type Stamp = [Option<(u64, i64, i64)>; 2];

fn stamp(cert: &Path, key: &Path) -> Stamp {
    [cert, key].map(|path| {
        std::fs::metadata(path)
            .ok()
            .map(|m| (m.ino(), m.mtime(), m.mtime_nsec()))
    })
}

#[derive(Debug)]
struct CertificateFiles {
    cert: PathBuf,
    key: PathBuf,
    provider: Arc<CryptoProvider>,
    /// What is served, and the files' stamp when it (or a failed reload) was last read.
    loaded: Mutex<(Arc<CertifiedKey>, Stamp)>,
}

impl CertificateFiles {
    fn open(cert: &Path, key: &Path, provider: Arc<CryptoProvider>) -> anyhow::Result<Self> {
        let stamp = stamp(cert, key);
        let served = load(cert, key, &provider)?;
        announce(cert, &served);
        Ok(CertificateFiles {
            cert: cert.into(),
            key: key.into(),
            provider,
            loaded: Mutex::new((Arc::new(served), stamp)),
        })
    }

    /// The certificate to serve, read again when its files changed (two `stat`s a
    /// handshake). Files that do not load — a renewal half written, a key that does not
    /// match — leave the previous certificate served, and are tried again once they change.
    fn current(&self) -> Arc<CertifiedKey> {
        let mut loaded = self.loaded.lock().unwrap_or_else(|e| e.into_inner());
        let now = stamp(&self.cert, &self.key);
        if now != loaded.1 {
            loaded.1 = now;
            match load(&self.cert, &self.key, &self.provider) {
                Ok(renewed) => {
                    tracing::info!(cert = %self.cert.display(), "the TLS certificate changed on disk: the new one is served");
                    announce(&self.cert, &renewed);
                    loaded.0 = Arc::new(renewed);
                }
                Err(e) => tracing::error!(error = format!("{e:#}"),
                    "the TLS certificate's files changed but do not load: the previous certificate is still served"),
            }
        }
        loaded.0.clone()
    }
}

impl ResolvesServerCert for CertificateFiles {
    fn resolve(&self, _client_hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.current())
    }
}

fn load(cert: &Path, key: &Path, provider: &CryptoProvider) -> anyhow::Result<CertifiedKey> {
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert)
        .with_context(|| format!("smtp.tls_cert: cannot read {}", cert.display()))?
        .collect::<Result<_, _>>()
        .with_context(|| {
            format!(
                "smtp.tls_cert: {} is not a PEM certificate chain",
                cert.display()
            )
        })?;
    anyhow::ensure!(
        !chain.is_empty(),
        "smtp.tls_cert: {} holds no certificate",
        cert.display()
    );
    let key = PrivateKeyDer::from_pem_file(key)
        .with_context(|| format!("smtp.tls_key: {} is not a PEM private key", key.display()))?;
    CertifiedKey::from_der(chain, key, provider)
        .context("smtp.tls_cert and smtp.tls_key do not make a usable pair")
}

/// The served certificate's expiry: on `/metrics`, and in the log when it is near or past.
fn announce(path: &Path, served: &CertifiedKey) {
    let Some(expires) = served.end_entity_cert().ok().and_then(|der| expiry(der)) else {
        tracing::warn!(cert = %path.display(), "cannot read the TLS certificate's expiry date");
        return;
    };
    metrics::gauge!(TLS_CERTIFICATE_EXPIRY).set(expires as f64);
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64);
    let days = (expires - now) / 86_400;
    if expires <= now {
        tracing::error!(cert = %path.display(), "the TLS certificate has expired: clients that check it refuse it; renew it (the new files are served at once)");
    } else if expires - now < EXPIRY_WARNING_SECS {
        tracing::warn!(cert = %path.display(), days, "the TLS certificate expires soon: is its renewal running?");
    }
}

/// When a DER certificate expires (its validity's notAfter), in seconds since the epoch.
fn expiry(cert: &CertificateDer<'_>) -> Option<i64> {
    use der::asn1::{GeneralizedTime, UtcTime};
    use der::{Reader, SliceReader, Tag, TagNumber};
    let version = Tag::ContextSpecific {
        constructed: true,
        number: TagNumber::N0,
    };
    let mut reader = SliceReader::new(cert.as_ref()).ok()?;
    let not_after = reader.sequence(|certificate| {
        let tbs = certificate.sequence(|tbs| {
            if tbs.peek_tag()? == version {
                skip(tbs, 1)?;
            }
            skip(tbs, 3)?; // serialNumber, signature, issuer
            let not_after = tbs.sequence(|validity| {
                skip(validity, 1)?; // notBefore
                match validity.peek_tag()? {
                    Tag::UtcTime => Ok(validity.decode::<UtcTime>()?.to_unix_duration()),
                    _ => Ok(validity.decode::<GeneralizedTime>()?.to_unix_duration()),
                }
            })?;
            skip_rest(tbs)?;
            Ok(not_after)
        })?;
        skip_rest(certificate)?;
        Ok(tbs)
    });
    i64::try_from(not_after.ok()?.as_secs()).ok()
}

/// Reads past `n` elements of any type.
fn skip<'a, R: der::Reader<'a>>(reader: &mut R, n: usize) -> der::Result<()> {
    for _ in 0..n {
        reader.decode::<der::asn1::AnyRef<'a>>()?;
    }
    Ok(())
}

/// Reads past every element left.
fn skip_rest<'a, R: der::Reader<'a>>(reader: &mut R) -> der::Result<()> {
    while !reader.is_finished() {
        skip(reader, 1)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn expiring(not_after: Option<(i32, u8, u8)>) -> Option<i64> {
        let mut params = rcgen::CertificateParams::new(vec!["mx.example".to_owned()]).unwrap();
        if let Some((y, m, d)) = not_after {
            params.not_after = rcgen::date_time_ymd(y, m, d);
        }
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = params.self_signed(&key).unwrap();
        expiry(cert.der())
    }

    #[test]
    fn the_expiry_is_read_in_either_time_form() {
        // Before 2050 a UTCTime, from then on a GeneralizedTime (rcgen's default: 4096).
        assert_eq!(expiring(Some((2031, 5, 6))), Some(1_935_792_000));
        assert_eq!(expiring(Some((2000, 1, 1))), Some(946_684_800));
        assert_eq!(expiring(None), Some(67_090_118_400));
    }

    #[test]
    fn bytes_that_are_no_certificate_have_no_expiry() {
        for bytes in [&b""[..], b"\x30\x03\x02\x01\x01", b"not DER at all"] {
            assert_eq!(expiry(&CertificateDer::from(bytes.to_vec())), None);
        }
    }
}
