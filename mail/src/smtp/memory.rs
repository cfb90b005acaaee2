//! The bytes of incoming messages a node holds in memory at once, over all its SMTP
//! sessions: each session holds what it has received of its message until the message is
//! accepted or refused, and one that would pass the node's limit is refused with `452`.
//!
//! Why: a message is received into memory whole (the filter reads all of it), so without a
//! shared limit a thousand clients sending 25 MB at once would ask for 25 GB.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

/// The node's limit and what its sessions hold now; clones share them.
#[derive(Debug, Clone)]
pub struct DataMemory {
    shared: Arc<Shared>,
}

#[derive(Debug)]
struct Shared {
    limit: usize,
    used: AtomicUsize,
}

impl DataMemory {
    pub fn new(limit: usize) -> DataMemory {
        DataMemory {
            shared: Arc::new(Shared {
                limit,
                used: AtomicUsize::new(0),
            }),
        }
    }

    pub fn limit(&self) -> usize {
        self.shared.limit
    }

    /// What every session holds together.
    pub fn used(&self) -> usize {
        self.shared.used.load(Ordering::Relaxed)
    }

    /// A holding of nothing yet, for one message.
    pub fn hold(&self) -> Held {
        Held {
            memory: self.clone(),
            bytes: 0,
        }
    }
}

/// What one message holds; given back when dropped.
#[derive(Debug)]
pub struct Held {
    memory: DataMemory,
    bytes: usize,
}

impl Held {
    /// Grows the holding to `total` bytes, unless that would take the node past its limit
    /// (the holding then stays as it was).
    pub fn grow_to(&mut self, total: usize) -> bool {
        let Some(more) = total.checked_sub(self.bytes).filter(|&m| m > 0) else {
            return true;
        };
        let shared = &self.memory.shared;
        let before = shared.used.fetch_add(more, Ordering::Relaxed);
        if before.saturating_add(more) > shared.limit {
            shared.used.fetch_sub(more, Ordering::Relaxed);
            return false;
        }
        self.bytes = total;
        true
    }
}

impl Drop for Held {
    fn drop(&mut self) {
        self.memory
            .shared
            .used
            .fetch_sub(self.bytes, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn holdings_share_the_limit_and_give_back_when_dropped() {
        let memory = DataMemory::new(100);
        let mut a = memory.hold();
        let mut b = memory.hold();
        assert!(a.grow_to(60));
        assert!(!b.grow_to(50), "60 + 50 passes 100");
        assert!(b.grow_to(40));
        assert_eq!(memory.used(), 100);
        assert!(a.grow_to(60), "no growth needs no room");
        drop(a);
        assert_eq!(memory.used(), 40);
        assert!(b.grow_to(90));
        drop(b);
        assert_eq!(memory.used(), 0);
    }
}
