//! `peage cert`: the cluster CA and the node certificates that mutual TLS between sites and
//! TLS on the admin API are made of (`[tls]` in a node's config). Keys are ECDSA P-256,
//! written readable by the owner only; nothing is overwritten.

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::Context;
use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose,
};

/// The CA's name: node certificates are issued under it, so `peage cert node` rebuilds the
/// issuer from these parameters and the CA's key, without parsing the CA certificate.
const CA_NAME: &str = "Peage cluster CA";

/// A certificate and its private key, as PEM.
pub struct Issued {
    pub cert_pem: String,
    pub key_pem: String,
}

fn ca_params() -> anyhow::Result<CertificateParams> {
    let mut params = CertificateParams::new(Vec::<String>::new())?;
    let mut name = DistinguishedName::new();
    name.push(DnType::CommonName, CA_NAME);
    params.distinguished_name = name;
    params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    Ok(params)
}

/// A new cluster CA.
pub fn new_ca() -> anyhow::Result<Issued> {
    let key = KeyPair::generate()?;
    let cert = ca_params()?.self_signed(&key)?;
    Ok(Issued {
        cert_pem: cert.pem(),
        key_pem: key.serialize_pem(),
    })
}

/// A node certificate signed by the CA whose key is `ca_key_pem`, naming `hosts` (the IPs
/// or DNS names of the node's peer and admin addresses), good for both ends of a connection.
pub fn node_certificate(ca_key_pem: &str, name: &str, hosts: &[String]) -> anyhow::Result<Issued> {
    anyhow::ensure!(
        !hosts.is_empty(),
        "a node certificate needs at least one host (IP or name)"
    );
    let ca_key = KeyPair::from_pem(ca_key_pem).context("the CA key is not a PEM private key")?;
    let issuer = Issuer::new(ca_params()?, ca_key);
    let mut params = CertificateParams::new(hosts.to_vec())?;
    params.distinguished_name.push(DnType::CommonName, name);
    params.key_usages = vec![
        KeyUsagePurpose::DigitalSignature,
        KeyUsagePurpose::KeyEncipherment,
    ];
    params.extended_key_usages = vec![
        ExtendedKeyUsagePurpose::ServerAuth,
        ExtendedKeyUsagePurpose::ClientAuth,
    ];
    let key = KeyPair::generate()?;
    let cert = params.signed_by(&key, &issuer)?;
    Ok(Issued {
        cert_pem: cert.pem(),
        key_pem: key.serialize_pem(),
    })
}

/// Writes `contents` to a new file (never over an existing one), private when `secret`.
fn write_new(path: &Path, contents: &str, secret: bool) -> anyhow::Result<()> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    if secret {
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    }
    let mut file = options
        .open(path)
        .with_context(|| format!("cannot create {} (it is never overwritten)", path.display()))?;
    file.write_all(contents.as_bytes())
        .with_context(|| format!("cannot write {}", path.display()))
}

/// `peage cert ca DIR`: DIR/ca.pem and DIR/ca.key.
pub fn make_ca(dir: &Path) -> anyhow::Result<Vec<PathBuf>> {
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let ca = new_ca()?;
    let (cert, key) = (dir.join("ca.pem"), dir.join("ca.key"));
    write_new(&key, &ca.key_pem, true)?;
    write_new(&cert, &ca.cert_pem, false)?;
    Ok(vec![cert, key])
}

/// `peage cert node DIR NAME HOST...`: DIR/NAME.pem and DIR/NAME.key, signed with DIR/ca.key.
pub fn make_node(dir: &Path, name: &str, hosts: &[String]) -> anyhow::Result<Vec<PathBuf>> {
    anyhow::ensure!(
        !name.is_empty()
            && name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_'),
        "the node name `{name}` must be letters, digits, `-` or `_` (it names the files)"
    );
    let ca_key_path = dir.join("ca.key");
    let ca_key = std::fs::read_to_string(&ca_key_path).with_context(|| {
        format!(
            "cannot read the CA key {} (make it with `peage cert ca {}`)",
            ca_key_path.display(),
            dir.display()
        )
    })?;
    let issued = node_certificate(&ca_key, name, hosts)?;
    let (cert, key) = (
        dir.join(format!("{name}.pem")),
        dir.join(format!("{name}.key")),
    );
    write_new(&key, &issued.key_pem, true)?;
    write_new(&cert, &issued.cert_pem, false)?;
    Ok(vec![cert, key])
}
