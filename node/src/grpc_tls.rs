//! TLS for the gRPC services between sites: mutual TLS on the peer service (a node presents
//! its certificate and accepts only peers whose certificate the cluster CA signed) and
//! server TLS on the admin API (operators authenticate with their token over it). The files
//! are read and checked once, at start, with errors that name them.

use std::path::Path;

use anyhow::Context;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tonic::transport::{Certificate, ClientTlsConfig, Identity, ServerTlsConfig};

/// The cluster CA and this node's certificate and key, as PEM.
#[derive(Clone)]
pub struct GrpcTls {
    ca: Vec<u8>,
    cert: Vec<u8>,
    key: Vec<u8>,
}

impl GrpcTls {
    /// Reads the three PEM files; each must hold what its name says.
    pub fn load(ca: &Path, cert: &Path, key: &Path) -> anyhow::Result<GrpcTls> {
        let read = |key: &str, path: &Path| -> anyhow::Result<Vec<u8>> {
            std::fs::read(path)
                .with_context(|| format!("tls.{key}: cannot read {}", path.display()))
        };
        let tls = GrpcTls {
            ca: read("ca", ca)?,
            cert: read("cert", cert)?,
            key: read("key", key)?,
        };
        let certificates = |key: &str, path: &Path, pem: &[u8]| -> anyhow::Result<()> {
            let found = CertificateDer::pem_slice_iter(pem)
                .collect::<Result<Vec<_>, _>>()
                .ok()
                .filter(|c| !c.is_empty());
            found
                .map(|_| ())
                .with_context(|| format!("tls.{key}: no PEM certificate in {}", path.display()))
        };
        certificates("ca", ca, &tls.ca)?;
        certificates("cert", cert, &tls.cert)?;
        PrivateKeyDer::from_pem_slice(&tls.key)
            .with_context(|| format!("tls.key: no PEM private key in {}", key.display()))?;
        Ok(tls)
    }

    /// From PEM already in memory (tests, `peage dev`).
    pub fn from_pem(ca: &str, cert: &str, key: &str) -> GrpcTls {
        GrpcTls {
            ca: ca.as_bytes().to_vec(),
            cert: cert.as_bytes().to_vec(),
            key: key.as_bytes().to_vec(),
        }
    }

    fn identity(&self) -> Identity {
        Identity::from_pem(&self.cert, &self.key)
    }

    /// The peer service: this node's certificate; a client without one the CA signed is
    /// refused during the handshake.
    pub fn peer_server(&self) -> ServerTlsConfig {
        ServerTlsConfig::new()
            .identity(self.identity())
            .client_ca_root(Certificate::from_pem(&self.ca))
            .client_auth_optional(false)
    }

    /// The admin API: this node's certificate; callers prove themselves with a token.
    pub fn admin_server(&self) -> ServerTlsConfig {
        ServerTlsConfig::new().identity(self.identity())
    }

    /// Calls to a peer at `host` (an IP or name its certificate carries), presenting ours.
    pub fn peer_client(&self, host: &str) -> ClientTlsConfig {
        ClientTlsConfig::new()
            .ca_certificate(Certificate::from_pem(&self.ca))
            .identity(self.identity())
            .domain_name(host)
    }
}

/// The host part of `HOST:PORT` (`[v6]:PORT` too), as a certificate names it.
pub fn host_of(addr: &str) -> &str {
    let host = addr.rsplit_once(':').map_or(addr, |(h, _)| h);
    host.trim_start_matches('[').trim_end_matches(']')
}

#[cfg(test)]
mod tests {
    use super::host_of;

    #[test]
    fn the_host_of_an_address_is_what_its_certificate_names() {
        assert_eq!(host_of("127.0.0.2:50052"), "127.0.0.2");
        assert_eq!(host_of("[::1]:50052"), "::1");
        assert_eq!(host_of("paris.example:50052"), "paris.example");
    }
}
