//! The leader's clock as this node can tell it. Leases are judged against the leader's wall
//! clock (the leader proposes a takeover once a lease has ended by its clock), so every node
//! reads lease time through `Cluster::leader_now_ms`: each follower measures its offset from
//! the leader with every read-index call (the leader puts its clock in the reply), as soon as
//! it follows a new leader and then every few seconds, and delivery adds the measurement's
//! uncertainty to its safety margin. Exported
//! as `peage_clock_offset_ms` and `peage_clock_offset_uncertainty_ms`.

use std::time::{Duration, Instant};

use peage_mail::shutdown::Shutdown;

use super::write::leader_peer_addr;
use super::Cluster;
use crate::clock::now_ms;
use crate::types::NodeId;

/// An offset past this is worth an operator's look: leases lean on the margin it eats.
const WARN_OFFSET_MS: i64 = 1000;

impl Cluster {
    /// Now by the leader's clock, as well as this node can tell (its own clock on the
    /// leader).
    pub fn leader_now_ms(&self) -> i64 {
        now_ms() + self.leader_clock_offset_ms()
    }

    /// How far `leader_now_ms` may be off (0 on the leader).
    pub fn leader_clock_uncertainty_ms(&self) -> i64 {
        if self.leads() {
            return 0;
        }
        self.inner.leader_clock.uncertainty_ms()
    }

    /// The leader's clock minus ours (0 on the leader).
    pub fn leader_clock_offset_ms(&self) -> i64 {
        if self.leads() {
            return 0;
        }
        self.inner.leader_clock.offset_ms()
    }

    /// Asks the leader for its clock (a read-index call) when this node follows one;
    /// returns the leader it measured.
    async fn measure_leader_clock(&self) -> Option<NodeId> {
        let m = self.metrics();
        let leader = m.current_leader.filter(|l| *l != self.inner.id)?;
        let addr = leader_peer_addr(&m, leader).ok()?;
        let read = self
            .inner
            .peers
            .read_index(leader, &addr, Duration::from_secs(1))
            .await
            .ok()?;
        self.record_leader_clock(&read);
        Some(leader)
    }
}

/// How often `watch` looks for a new leader to measure.
const LOOK_EVERY: Duration = Duration::from_millis(100);

/// Runs until `stop`: measures the leader's clock as soon as this node follows a leader it
/// has not measured yet (leases and forward deadlines are in that leader's clock), then
/// every `every`; warns when it is far.
pub async fn watch(cluster: Cluster, every: Duration, mut stop: Shutdown) {
    let mut measured: Option<(NodeId, Instant)> = None;
    loop {
        tokio::select! {
            _ = tokio::time::sleep(LOOK_EVERY) => {}
            _ = stop.wait() => return,
        }
        let leader = cluster.metrics().current_leader;
        let due = measured.is_none_or(|(l, at)| Some(l) != leader || at.elapsed() >= every);
        if !due {
            continue;
        }
        let Some(l) = cluster.measure_leader_clock().await else {
            continue;
        };
        measured = Some((l, Instant::now()));
        let offset = cluster.leader_clock_offset_ms();
        if offset.abs() > WARN_OFFSET_MS {
            tracing::warn!(
                offset_ms = offset,
                "this node's clock is far from the leader's: check NTP"
            );
        }
    }
}
