//! STARTTLS and implicit TLS: the rustls server configuration over the PEM files in the
//! config, which follows the files — a renewed certificate (certbot every 60 days) is served
//! from the next handshake on, without a restart.

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use anyhow::Context;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
pub use tokio_rustls::TlsAcceptor;

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
                    loaded.0 = Arc::new(renewed);
                    tracing::info!(cert = %self.cert.display(), "the TLS certificate changed on disk: the new one is served");
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
