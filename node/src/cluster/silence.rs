//! Which peers stopped answering Raft's calls: one log line when a peer falls silent and one
//! when it answers again, in place of openraft's three lines a retry (every heartbeat: some
//! eighty lines a second, gigabytes a day, for a site that is down); and how long, with
//! each member's matched index, for `peagectl status` (`MemberReplication`).

use std::collections::btree_map::Entry;
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use peage_mail::sync::lock;

use crate::types::NodeId;

/// What the leader knows of one member's replication.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MemberReplication {
    /// The last log index known to be there (0: none yet).
    pub matched: u64,
    /// How long it has not answered the leader's calls, when it does not.
    pub silent_ms: Option<u64>,
}

/// Since when each silent peer has not answered; shared by the replication streams to it.
#[derive(Clone, Default)]
pub struct PeerSilence(Arc<Mutex<BTreeMap<NodeId, Instant>>>);

impl PeerSilence {
    /// A call to `target` got no answer (it could not connect, or timed out): logged the
    /// first time only.
    pub fn failed(&self, target: NodeId, addr: &str, error: &dyn std::fmt::Display) {
        if let Entry::Vacant(v) = lock(&self.0).entry(target) {
            v.insert(Instant::now());
            tracing::warn!(
                peer = target,
                addr,
                %error,
                "peer not answering; Raft retries it every heartbeat (logged again when it answers)"
            );
        }
    }

    /// `target` answered: logged when it had been silent.
    pub fn answered(&self, target: NodeId, addr: &str) {
        if let Some(since) = lock(&self.0).remove(&target) {
            let silent_ms = since.elapsed().as_millis() as u64;
            tracing::info!(peer = target, addr, silent_ms, "peer answers again");
        }
    }

    /// How long each silent peer has not answered (only a leader replicates, so only a
    /// leader's figures are current).
    pub fn silences(&self) -> BTreeMap<NodeId, Duration> {
        lock(&self.0)
            .iter()
            .map(|(id, since)| (*id, since.elapsed()))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_peer_is_silent_from_its_first_failure_until_it_answers() {
        let s = PeerSilence::default();
        assert!(s.silences().is_empty());
        s.failed(3, "127.0.0.3:50052", &"tcp connect error");
        let first = s.silences()[&3];
        s.failed(3, "127.0.0.3:50052", &"tcp connect error");
        assert_eq!(s.silences().keys().collect::<Vec<_>>(), [&3]);
        assert!(s.silences()[&3] >= first, "silent since the first failure");
        s.answered(3, "127.0.0.3:50052");
        assert!(s.silences().is_empty());
    }
}
