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

/// The windows limits are counted in, in seconds: a minute, an hour, a day.
pub const WINDOWS: [u64; 3] = [60, 3600, 86_400];

/// Messages an account may send per minute, hour and day (0: no limit), and the accounts
/// or domains that may send a different number.
#[derive(Clone, Debug)]
pub struct RateLimits {
    pub default: [u64; 3],
    /// By login, or by domain (for every account of it); a login's own entry wins.
    pub overrides: std::collections::BTreeMap<String, [u64; 3]>,
}

impl RateLimits {
    /// The limits that apply to `login`.
    pub fn of(&self, login: &str) -> [u64; 3] {
        let domain = login.rsplit_once('@').map_or("", |(_, d)| d);
        self.overrides
            .get(login)
            .or_else(|| self.overrides.get(domain))
            .copied()
            .unwrap_or(self.default)
    }

    /// Counts one more message from `login`, or refuses it when a window is full.
    pub fn admit(&self, cluster: &Cluster, login: &str) -> Result<(), Reply> {
        let counts = cluster.shared_counts();
        let now = now_ms();
        let limits: Vec<(u64, u64)> = WINDOWS.into_iter().zip(self.of(login)).collect();
        let windows: Vec<(String, i64, u64)> = limits
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

#[cfg(test)]
mod tests {
    use super::RateLimits;

    #[test]
    fn a_login_s_own_limits_win_over_its_domain_s_over_the_default() {
        let limits = RateLimits {
            default: [60, 600, 3000],
            overrides: [
                ("shop.example".to_owned(), [100, 1000, 5000]),
                ("boss@shop.example".to_owned(), [0, 0, 0]),
            ]
            .into(),
        };
        assert_eq!(limits.of("alice@other.example"), [60, 600, 3000]);
        assert_eq!(limits.of("alice@shop.example"), [100, 1000, 5000]);
        assert_eq!(limits.of("boss@shop.example"), [0, 0, 0]);
    }
}
