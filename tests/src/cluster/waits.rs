//! The conditions tests wait for on a cluster, each with a deadline and a reason: a leader
//! everywhere, every node caught up, digests compared at one applied index.

use std::time::Duration;

use peage_client::v1;

use super::TestCluster;
use crate::wait::wait_for;

impl TestCluster {
    /// Waits until every running node knows the same leader; returns its index in `nodes`.
    pub async fn wait_for_leader_everywhere(&self) -> anyhow::Result<usize> {
        let running: Vec<usize> = (0..self.nodes.len())
            .filter(|i| self.nodes[*i].is_running())
            .collect();
        wait_for(
            "every running node knows the same leader",
            Duration::from_secs(30),
            || {
                let running = running.clone();
                async move {
                    let mut leader = None;
                    for i in running {
                        let s = self.status(i).await.ok()?;
                        let l = s.leader_id?;
                        if leader.is_some_and(|x| x != l) {
                            return None;
                        }
                        leader = Some(l);
                    }
                    let l = leader?;
                    let idx = self.nodes.iter().position(|n| n.id == l)?;
                    self.nodes[idx].is_running().then_some(idx)
                }
            },
        )
        .await
    }

    /// Waits until every running node has applied what node `from` has; returns that index.
    pub async fn sync_all(&self, from: usize) -> anyhow::Result<u64> {
        let index = self.status(from).await?.last_applied;
        for i in (0..self.nodes.len()).filter(|&i| self.nodes[i].is_running()) {
            self.wait_applied(i, index).await?;
        }
        Ok(index)
    }

    /// Every running node's state digest, read when they have all applied the same index
    /// (at least what node `from` has): background entries (lease renewals, evidence
    /// flushes) keep moving the index, so the reads are retried until they line up.
    pub async fn digests(&self, from: usize) -> anyhow::Result<Vec<String>> {
        self.sync_all(from).await?;
        let running: Vec<usize> = (0..self.nodes.len())
            .filter(|&i| self.nodes[i].is_running())
            .collect();
        wait_for(
            "digests at one applied index",
            Duration::from_secs(30),
            || {
                let running = running.clone();
                async move {
                    let mut seen = Vec::new();
                    for i in running {
                        let mut a = self.client(i).await.ok()?;
                        let d = a
                            .state_digest(v1::StateDigestRequest { stale: true })
                            .await
                            .ok()?
                            .into_inner();
                        seen.push((d.applied_index, d.sha256));
                    }
                    seen.windows(2)
                        .all(|w| w[0].0 == w[1].0)
                        .then(|| seen.into_iter().map(|(_, h)| h).collect())
                }
            },
        )
        .await
    }

    /// Waits until node `i` has applied at least `index`.
    pub async fn wait_applied(&self, i: usize, index: u64) -> anyhow::Result<()> {
        wait_for(
            &format!("node {} applies index {index}", self.nodes[i].id),
            Duration::from_secs(30),
            || async move {
                let s = self.status(i).await.ok()?;
                (s.last_applied >= index).then_some(())
            },
        )
        .await
    }
}
