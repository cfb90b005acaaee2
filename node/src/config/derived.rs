//! What a node derives from its configuration: the initial Raft members, the name it
//! gives itself in SMTP.

use std::collections::BTreeMap;

use super::Config;
use crate::types::PeageNode;

impl Config {
    /// The initial members as Raft nodes, keyed by id.
    pub fn initial_members(&self) -> BTreeMap<u64, PeageNode> {
        self.cluster
            .members
            .iter()
            .map(|m| {
                (
                    m.id,
                    PeageNode {
                        site: m.site.clone(),
                        peer_addr: m.peer.clone(),
                        admin_addr: m.admin.clone(),
                    },
                )
            })
            .collect()
    }

    /// The free space under which new mail is refused (`spool.min_free_mb`, or twice the
    /// largest message).
    pub fn min_free_bytes(&self) -> u64 {
        match self.spool.min_free_mb {
            Some(mb) => mb.saturating_mul(1 << 20),
            None => 2 * self.smtp.max_message_bytes as u64,
        }
    }

    /// The name the node gives itself in SMTP: the configured one, or `<site>.peage`.
    pub fn hostname(&self) -> String {
        self.smtp
            .hostname
            .clone()
            .unwrap_or_else(|| format!("{}.peage", self.node.site))
    }
}
