//! Every node keeps a copy of every body it has a record for, so that any node can deliver
//! or show it after holders are lost: missing bodies are fetched from a holder, one at a
//! time, the search for them (a file check per message) on the blocking pool.

use std::time::Duration;

use peage_mail::shutdown::Shutdown;

use crate::cluster::Cluster;
use crate::spool::bodies::body_of;

/// Runs until `stop`: fetches missing bodies one after the other, and looks again `every`
/// when none is missing (or the last fetch failed).
pub async fn run(cluster: Cluster, every: Duration, mut stop: Shutdown) {
    loop {
        let fetched = repair_one(&cluster).await;
        if fetched {
            continue;
        }
        tokio::select! {
            _ = tokio::time::sleep(every) => {}
            _ = stop.wait() => return,
        }
    }
}

/// Fetches the first missing body; whether one was fetched.
async fn repair_one(cluster: &Cluster) -> bool {
    let search = cluster.clone();
    let missing = tokio::task::spawn_blocking(move || {
        let blobs = search.blobs();
        search
            .state()
            .spool()
            .all()
            .into_iter()
            .find(|m| !blobs.has(&m.body_sha256))
    });
    let Ok(Some(m)) = missing.await else {
        return false;
    };
    match body_of(cluster, &m).await {
        // Only a body now kept here counts: one that could not be stored would be found
        // missing again at once.
        Ok(_) => cluster.blobs().has(&m.body_sha256),
        Err(e) => {
            tracing::debug!(queue_id = %m.queue_id, error = %e, "body repair failed");
            false
        }
    }
}
