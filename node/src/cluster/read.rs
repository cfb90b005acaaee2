//! The read path: a linearizable read barrier (the leader confirms its leadership with a
//! quorum, then this replica waits until it has applied that index), or a stale read that
//! says how far behind this replica may be; quorum health for `/healthz` and status.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use openraft::ServerState;

use peage_mail::sync::lock;

use super::error::Unavailable;
use super::network::LeaderRead;
use super::silence::MemberReplication;
use super::write::leader_peer_addr;
use super::{Cluster, Freshness};
use crate::types::NodeId;

/// How many committed entries a follower may have left to apply and still count as current:
/// a moment's lag under load, not a catch-up.
pub const FAR_BEHIND: u64 = 1000;

impl Cluster {
    /// Notes an AppendEntries or snapshot from the leader, and the commit index it carried.
    pub(crate) fn record_leader_contact(&self, commit_index: Option<u64>) {
        let mut c = lock(&self.inner.leader_contact);
        c.at = Some(Instant::now());
        if let Some(i) = commit_index {
            c.commit_index = c.commit_index.max(i);
            c.first_commit_index.get_or_insert(i);
        }
    }

    /// The index a linearizable read must see, confirmed by a quorum (leader only).
    pub(crate) async fn leader_read_index(&self) -> Result<u64, Unavailable> {
        let m = self.leader_metrics_once_acknowledged().await;
        self.check_leader_quorum(&m)?;
        let timeout = self.inner.commit_timeout;
        match tokio::time::timeout(timeout, self.inner.raft.get_read_log_id()).await {
            Err(_) => Err(Unavailable::Timeout(timeout.as_millis() as u64)),
            Ok(Err(e)) => Err(Unavailable::NoQuorum(e.to_string())),
            Ok(Ok((read, applied))) => Ok(read.max(applied).map_or(0, |l| l.index)),
        }
    }

    /// Waits until this node's replica reflects everything committed before the call
    /// (linearizable), or answers at once from the local replica (`stale`). A leader that
    /// cannot be reached (killed a moment ago) is waited out: the read goes to the next
    /// one, if one is elected within the commit timeout.
    pub async fn read_barrier(&self, stale: bool) -> Result<Freshness, Unavailable> {
        if !stale {
            let deadline = Instant::now() + self.inner.commit_timeout;
            let index = loop {
                match self.read_index().await {
                    Err(Unavailable::LeaderUnreachable { leader, .. })
                        if self.wait_for_another_leader(leader, deadline).await => {}
                    other => break other?,
                }
            };
            if !self.wait_applied(index).await {
                return Err(Unavailable::Timeout(
                    self.inner.commit_timeout.as_millis() as u64
                ));
            }
        }
        Ok(self.freshness(stale))
    }

    /// The index a linearizable read must wait for, from the leader (here, or asked).
    async fn read_index(&self) -> Result<u64, Unavailable> {
        let m = self.wait_for_leader().await?;
        let Some(leader) = m.current_leader else {
            return Err(Unavailable::NoQuorum("no leader is known".into()));
        };
        if leader == self.inner.id {
            return self.leader_read_index().await;
        }
        let addr = leader_peer_addr(&m, leader)?;
        let read = self
            .inner
            .peers
            .read_index(leader, &addr, self.inner.commit_timeout)
            .await?;
        self.record_leader_clock(&read);
        Ok(read.index)
    }

    /// Whether a leader other than `gone` became known before `deadline`.
    pub(super) async fn wait_for_another_leader(&self, gone: NodeId, deadline: Instant) -> bool {
        let Some(left) = deadline.checked_duration_since(Instant::now()) else {
            return false;
        };
        let another = move |l: Option<NodeId>| l.is_some_and(|l| l != gone);
        (self.inner.raft.wait(Some(left)))
            .metrics(
                move |m| another(m.current_leader),
                "a leader other than the unreachable one",
            )
            .await
            .is_ok()
    }

    /// How far this replica may be behind, from what the leader last told it.
    pub fn freshness(&self, stale: bool) -> Freshness {
        let applied_index = self.inner.state.applied_index();
        let m = self.metrics();
        let contact = lock(&self.inner.leader_contact);
        let leads = m.current_leader == Some(self.inner.id) && m.state == ServerState::Leader;
        Freshness {
            stale,
            applied_index,
            known_commit_index: if leads {
                applied_index
            } else {
                contact.commit_index.max(applied_index)
            },
            // On the leader, "contact" is the last acknowledgement from a majority: an
            // isolated leader's replica grows stale from then on. A leader elected a moment
            // ago has none yet; until its first one, the last word from the previous leader
            // stands (a majority has just voted for it, so it is no less in touch).
            millis_since_leader_contact: if leads {
                m.millis_since_quorum_ack
                    .or_else(|| contact.at.map(|t| t.elapsed().as_millis() as u64))
            } else {
                contact.at.map(|t| t.elapsed().as_millis() as u64)
            },
        }
    }

    /// Whether this node is part of a working majority: its Raft core runs, it knows a
    /// leader, and that leader's contact (a majority's acknowledgement, on the leader
    /// itself) is recent enough.
    pub fn in_quorum(&self) -> bool {
        let f = self.freshness(true);
        let m = self.metrics();
        m.running_state.is_ok()
            && m.current_leader.is_some()
            && f.millis_since_leader_contact
                .is_some_and(|ms| Duration::from_millis(ms) <= self.inner.quorum_lost_after)
    }

    /// Whether this replica knows what the cluster knows, so that what it does not know (a
    /// domain missing from its routing table) is not known to the cluster either: it is in
    /// a working majority, has applied what the leader had committed when this node started,
    /// and is not far behind now. A leader knows once it has applied an entry of its own term.
    pub fn is_current(&self) -> bool {
        if !self.in_quorum() {
            return false;
        }
        let m = self.metrics();
        if m.current_leader == Some(self.inner.id) {
            return m
                .last_applied
                .is_some_and(|l| l.leader_id.term == m.current_term);
        }
        let applied = self.inner.state.applied_index();
        let contact = lock(&self.inner.leader_contact);
        let started = contact.first_commit_index.is_some_and(|i| applied >= i);
        started && contact.commit_index.saturating_sub(applied) <= FAR_BEHIND
    }

    /// Matched log index per member when this node leads (its replication figures).
    pub fn matched_here(&self) -> Option<BTreeMap<NodeId, u64>> {
        let m = self.metrics();
        let repl = m.replication.as_ref()?;
        Some(
            repl.iter()
                .map(|(id, l)| (*id, l.map_or(0, |l| l.index)))
                .collect(),
        )
    }

    /// Each member's replication when this node leads: its matched index, and how long it
    /// has not answered.
    pub fn replication_here(&self) -> Option<BTreeMap<NodeId, MemberReplication>> {
        let silences = self.inner.silence.silences();
        let matched = self.matched_here()?;
        Some(
            matched
                .into_iter()
                .map(|(id, matched)| {
                    let silent_ms = silences.get(&id).map(|d| d.as_millis() as u64);
                    (id, MemberReplication { matched, silent_ms })
                })
                .collect(),
        )
    }

    /// Each member's replication, from the leader (here, or asked over the peer service);
    /// empty when no leader answers.
    pub async fn replication(&self) -> BTreeMap<NodeId, MemberReplication> {
        if let Some(replication) = self.replication_here() {
            return replication;
        }
        let m = self.metrics();
        let Some(leader) = m.current_leader else {
            return BTreeMap::new();
        };
        let Ok(addr) = leader_peer_addr(&m, leader) else {
            return BTreeMap::new();
        };
        match self
            .inner
            .peers
            .read_index(leader, &addr, Duration::from_secs(1))
            .await
        {
            Ok(read) => {
                self.record_leader_clock(&read);
                read.replication
            }
            Err(_) => BTreeMap::new(),
        }
    }

    /// Notes the leader's clock a read-index answer carried.
    pub(super) fn record_leader_clock(&self, read: &LeaderRead) {
        (self.inner.leader_clock).record(read.sent_ms, read.leader_now_ms, read.received_ms);
    }
}
