//! Outbound rate limits, one per account for the whole cluster: messages per minute, hour
//! and day, counted by each node in fixed windows (`cluster::shared_counts`) and shared
//! with the peers about once a second; a message past a limit is refused `451 4.7.1`. A
//! spammer who spreads a run over the three sites meets one limit, overshot at most by what
//! the other sites accept between two reports (rate × interval × (nodes − 1)).

use std::time::Duration;

use peage_mail::shutdown::Shutdown;
use peage_mail::smtp::Reply;

use crate::clock::now_ms;
use crate::cluster::shared_counts::window_start;
use crate::cluster::Cluster;

/// How often a node reports its counts to its peers.
pub const SHARE_EVERY: Duration = Duration::from_secs(1);

/// Messages an account may send per window (0: no limit), by window length in seconds.
#[derive(Clone, Debug)]
pub struct RateLimits {
    pub limits: Vec<(u64, u64)>,
}

impl RateLimits {
    /// Counts one more message from `login`, or refuses it when a window is full.
    pub fn admit(&self, cluster: &Cluster, login: &str) -> Result<(), Reply> {
        let counts = cluster.shared_counts();
        let now = now_ms();
        let windows: Vec<(String, i64, u64)> = self
            .limits
            .iter()
            .filter(|(_, limit)| *limit > 0)
            .map(|(secs, limit)| {
                let start = window_start(now, *secs as i64 * 1000);
                (format!("login:{login}:{secs}"), start, *limit)
            })
            .collect();
        for (key, start, limit) in &windows {
            if counts.total(key, *start) >= *limit {
                let secs = key.rsplit_once(':').map_or("", |(_, s)| s);
                return Err(Reply::new(
                    451,
                    format!("4.7.1 {login} has sent its {limit} messages for this {secs} s; try again later"),
                ));
            }
        }
        for (key, start, _) in &windows {
            counts.add(key, *start, 1);
        }
        Ok(())
    }
}

/// Sends this node's counts to every other member every `SHARE_EVERY`, until `shutdown`.
pub async fn share(cluster: Cluster, mut shutdown: Shutdown) {
    let mut tick = tokio::time::interval(SHARE_EVERY);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = shutdown.wait() => return,
        }
        let report = cluster.shared_counts().report(cluster.id(), now_ms());
        if report.counts.is_empty() {
            continue;
        }
        let metrics = cluster.metrics();
        let membership = metrics.membership_config.membership();
        let peers: Vec<String> = membership
            .nodes()
            .filter(|(id, _)| **id != cluster.id())
            .map(|(_, node)| node.peer_addr.clone())
            .collect();
        for addr in peers {
            let (cluster, report) = (cluster.clone(), report.clone());
            tokio::spawn(async move {
                let sent = cluster.peers().share_counts(&addr, report, SHARE_EVERY);
                if let Err(e) = sent.await {
                    tracing::debug!(peer = %addr, error = %e, "rate-limit counts not shared");
                }
            });
        }
    }
}
