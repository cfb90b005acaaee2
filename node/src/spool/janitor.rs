//! Every node's cleanup of message bodies: once no spool record references a body (its
//! message delivered, bounced, dropped, expired) and it has not been written for a grace
//! period, it is removed, and so are temporary files a crash left behind. Only a current
//! replica sweeps: one that is cut off or catching up does not know every record yet.

use std::collections::HashSet;
use std::time::Duration;

use peage_mail::shutdown::{Every, Shutdown};

use crate::cluster::Cluster;
use crate::metrics::{BLOBS_DELETED, BLOB_BYTES};

/// When bodies are swept.
#[derive(Debug, Clone, Copy)]
pub struct JanitorConfig {
    pub every: Duration,
    /// How long an unreferenced body is kept after it was last written; longer than the
    /// time from a body's write to its record's commit (config validation checks it).
    pub grace: Duration,
}

/// Sweeps until `stop`.
pub async fn run(cluster: Cluster, config: JanitorConfig, stop: Shutdown) {
    let mut every = Every::new(config.every, stop);
    while every.tick().await {
        if let Err(e) = sweep_once(&cluster, config.grace).await {
            tracing::warn!(error = %e, "body sweep failed");
        }
    }
}

/// One sweep, if this replica is current.
async fn sweep_once(cluster: &Cluster, grace: Duration) -> anyhow::Result<()> {
    if !cluster.is_current() {
        return Ok(());
    }
    let keep: HashSet<String> = cluster.state().spool().body_hashes();
    // Checked again: a record committed while the list was read is still in it, but a
    // replica that lost the majority meanwhile may have missed newer ones.
    if !cluster.is_current() {
        return Ok(());
    }
    let blobs = cluster.blobs().clone();
    let (swept, usage) = tokio::task::spawn_blocking(move || {
        let swept = blobs.sweep_blocking(&keep, grace)?;
        Ok::<_, std::io::Error>((swept, blobs.usage_blocking()?))
    })
    .await??;
    if swept.files > 0 {
        tracing::info!(
            files = swept.files,
            bytes = swept.bytes,
            "unreferenced bodies swept"
        );
        metrics::counter!(BLOBS_DELETED).increment(swept.files);
    }
    metrics::gauge!(BLOB_BYTES).set(usage.bytes as f64);
    Ok(())
}
