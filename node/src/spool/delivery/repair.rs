//! Every node keeps a copy of every body it has a record for, so that any node can deliver
//! or show it after holders are lost: missing bodies are fetched from a holder, one at a
//! time, found by a search (a file check per message not yet seen here) on the blocking pool.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use peage_mail::shutdown::{Every, Shutdown};

use crate::cluster::Cluster;
use crate::spool::bodies::body_of;
use crate::state::spool::SpooledMessage;

/// This often the bodies already seen here are checked again: a file removed behind the
/// node's back (a replaced disk) is fetched again.
const RECHECK: Duration = Duration::from_secs(10);

/// Runs until `stop`: every `period`, finds the bodies missing here and fetches them one
/// after the other.
pub async fn run(cluster: Cluster, period: Duration, stop: Shutdown) {
    let mut every = Every::new(period, stop.clone());
    let mut seen = HashSet::new();
    let mut checked_all = Instant::now();
    while every.tick().await {
        if checked_all.elapsed() >= RECHECK {
            seen.clear();
            checked_all = Instant::now();
        }
        let missing;
        (seen, missing) = find_missing(&cluster, seen).await;
        for m in missing {
            if stop.is_fired() {
                return;
            }
            if fetch(&cluster, &m).await {
                seen.insert(m.body_sha256.clone());
            }
        }
    }
}

/// The messages whose body is not here, oldest first; `seen` (bodies found here before) is
/// returned with those found now added and those of finished messages dropped. Checking only
/// what was not seen keeps a round's cost to the new messages: a full check per fetched
/// body made the search quadratic in the spool under load.
async fn find_missing(
    cluster: &Cluster,
    mut seen: HashSet<String>,
) -> (HashSet<String>, Vec<Arc<SpooledMessage>>) {
    let search = cluster.clone();
    let searched = tokio::task::spawn_blocking(move || {
        let blobs = search.blobs();
        let rows = search.state().spool().all();
        let current: HashSet<&str> = rows.iter().map(|m| m.body_sha256.as_str()).collect();
        seen.retain(|h| current.contains(h.as_str()));
        let mut missing = Vec::new();
        for m in &rows {
            if seen.contains(&m.body_sha256) {
                continue;
            }
            if blobs.has(&m.body_sha256) {
                seen.insert(m.body_sha256.clone());
            } else {
                missing.push(m.clone());
            }
        }
        (seen, missing)
    });
    searched
        .await
        .unwrap_or_else(|_| (HashSet::new(), Vec::new()))
}

/// Fetches the body of `m` from a holder; whether it is now kept here (one that could not be
/// stored is found missing again next round).
async fn fetch(cluster: &Cluster, m: &SpooledMessage) -> bool {
    match body_of(cluster, m).await {
        Ok(_) => cluster.blobs().has(&m.body_sha256),
        Err(e) => {
            tracing::debug!(queue_id = %m.queue_id, error = %e, "body repair failed");
            false
        }
    }
}
