//! A test cluster's certificates when `Tuning::grpc_tls` asks for TLS between nodes and on
//! the admin API: a CA of its own and one certificate per node naming the node's address,
//! made with `peage cert`'s own functions.

use std::path::PathBuf;

use peage_node::config::TlsSection;
use peage_node::tools::cert;

use super::TestCluster;

impl TestCluster {
    fn tls_dir(&self) -> PathBuf {
        self.dir.path().join("tls")
    }

    /// The cluster CA, when the cluster runs TLS.
    pub fn ca_path(&self) -> Option<PathBuf> {
        self.tuning.grpc_tls.then(|| self.tls_dir().join("ca.pem"))
    }

    /// Node `id`'s `[tls]` section, making the CA and its certificate on first use.
    pub(super) fn node_tls(&self, id: u64) -> anyhow::Result<Option<TlsSection>> {
        if !self.tuning.grpc_tls {
            return Ok(None);
        }
        let dir = self.tls_dir();
        if !dir.join("ca.key").exists() {
            cert::make_ca(&dir)?;
        }
        let name = format!("node{id}");
        let (cert, key) = (
            dir.join(format!("{name}.pem")),
            dir.join(format!("{name}.key")),
        );
        if !cert.exists() {
            cert::make_node(&dir, &name, &[format!("{}.{id}", self.net)])?;
        }
        Ok(Some(TlsSection {
            ca: dir.join("ca.pem"),
            cert,
            key,
        }))
    }
}
