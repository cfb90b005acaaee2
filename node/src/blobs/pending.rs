//! Bodies the journal made durable but no file holds yet: read from memory until their
//! segment's checkpoint, which places as files only those a message may still need. A body
//! whose every message finished before then (delivered, bounced, dropped) never becomes a
//! file: under load most bodies live and die inside one segment.
//!
//! Which messages need a body is told by the writers themselves: each `put` names the
//! message (its queue id) it stores the body for; an apply that adds a record on a body still
//! here (a released part of a held message) claims it too, and the apply of the record that
//! ends a message withdraws its claim. A body stored for no named message, or for one whose record
//! is not committed yet, keeps its claim and is placed: the grace-based sweep removes it
//! later, as it removes any unreferenced file.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};

use peage_mail::sync::lock;

/// The journaled bodies not yet placed, by hash.
#[derive(Default)]
pub struct Pending {
    bodies: Mutex<HashMap<String, Body>>,
}

struct Body {
    bytes: Arc<Vec<u8>>,
    /// The messages it was stored for that have not finished.
    claims: HashSet<String>,
    /// It was stored for no named message once: only the sweep may remove it.
    unnamed: bool,
    /// The segment holding its latest record: that segment's checkpoint decides its fate.
    segment: u64,
}

impl Body {
    fn needed(&self) -> bool {
        self.unnamed || !self.claims.is_empty()
    }
}

/// A body whose latest record is in the segment being checkpointed.
pub struct Checkpointed {
    pub hash: String,
    pub bytes: Arc<Vec<u8>>,
    /// Some message may still need it: it must become a file before the segment goes.
    pub needed: bool,
}

impl Pending {
    /// Records that `bytes` is durable in `segment`, stored for the message `claim`.
    pub fn journaled(&self, hash: &str, bytes: &Arc<Vec<u8>>, claim: Option<&str>, segment: u64) {
        let mut bodies = lock(&self.bodies);
        let body = bodies.entry(hash.to_owned()).or_insert_with(|| Body {
            bytes: bytes.clone(),
            claims: HashSet::new(),
            unnamed: false,
            segment,
        });
        body.segment = segment;
        match claim {
            Some(id) => {
                body.claims.insert(id.to_owned());
            }
            None => body.unnamed = true,
        }
    }

    pub fn get(&self, hash: &str) -> Option<Arc<Vec<u8>>> {
        lock(&self.bodies).get(hash).map(|b| b.bytes.clone())
    }

    /// The bytes of the bodies waiting for their checkpoint, held in memory meanwhile.
    pub fn bytes(&self) -> u64 {
        let bodies = lock(&self.bodies);
        bodies.values().map(|b| b.bytes.len() as u64).sum()
    }

    /// The message `queue_id` needs the body `hash` too, if it waits for its checkpoint.
    pub fn claim_if_journaled(&self, queue_id: &str, hash: &str) {
        if let Some(body) = lock(&self.bodies).get_mut(hash) {
            body.claims.insert(queue_id.to_owned());
        }
    }

    /// The message `queue_id` no longer needs the body `hash`.
    pub fn finished(&self, queue_id: &str, hash: &str) {
        if let Some(body) = lock(&self.bodies).get_mut(hash) {
            body.claims.remove(queue_id);
        }
    }

    /// The bodies among `hashes` whose latest record is in `segment`, and whether each is
    /// still needed.
    pub fn of_segment(&self, segment: u64, hashes: &[String]) -> Vec<Checkpointed> {
        let bodies = lock(&self.bodies);
        let mut seen = HashSet::new();
        hashes
            .iter()
            .filter(|h| seen.insert(h.as_str()))
            .filter_map(|h| {
                let body = bodies.get(h).filter(|b| b.segment == segment)?;
                Some(Checkpointed {
                    hash: h.clone(),
                    bytes: body.bytes.clone(),
                    needed: body.needed(),
                })
            })
            .collect()
    }

    /// Forgets `hashes` once `segment` is checkpointed (placed, or not needed), unless a
    /// later segment holds them again.
    pub fn release<'h>(&self, segment: u64, hashes: impl Iterator<Item = &'h str>) {
        let mut bodies = lock(&self.bodies);
        for h in hashes {
            if bodies.get(h).is_some_and(|b| b.segment == segment) {
                bodies.remove(h);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn needed(p: &Pending, segment: u64, hash: &str) -> Option<bool> {
        let of = p.of_segment(segment, &[hash.to_owned()]);
        of.first().map(|c| c.needed)
    }

    #[test]
    fn a_body_is_needed_until_every_message_that_needs_it_has_finished() {
        let p = Pending::default();
        let bytes = Arc::new(b"body".to_vec());
        p.journaled("h", &bytes, Some("A"), 1);
        p.journaled("h", &bytes, Some("B"), 1);
        p.finished("A", "h");
        assert_eq!(needed(&p, 1, "h"), Some(true), "B still needs it");
        p.finished("B", "h");
        assert_eq!(needed(&p, 1, "h"), Some(false));
        // A part of a held message released as a message of its own, before the rest of it
        // is removed: the body is still needed for that part.
        p.journaled("r", &bytes, Some("Q"), 1);
        p.claim_if_journaled("S", "r");
        p.finished("Q", "r");
        assert_eq!(needed(&p, 1, "r"), Some(true), "S needs it");
        p.finished("S", "r");
        assert_eq!(needed(&p, 1, "r"), Some(false));
        // Stored for no named message (a restore, a peer that names none): always placed.
        p.journaled("u", &bytes, None, 1);
        p.finished("A", "u");
        assert_eq!(needed(&p, 1, "u"), Some(true));
    }

    #[test]
    fn a_body_journaled_again_is_decided_by_its_latest_segment() {
        let p = Pending::default();
        let bytes = Arc::new(b"body".to_vec());
        p.journaled("h", &bytes, Some("A"), 1);
        p.finished("A", "h");
        // Accepted again (the same content) before segment 1's checkpoint.
        p.journaled("h", &bytes, Some("C"), 2);
        assert_eq!(needed(&p, 1, "h"), None, "segment 2 decides");
        p.release(1, ["h"].into_iter());
        assert!(
            p.get("h").is_some(),
            "still readable until segment 2's checkpoint"
        );
        assert_eq!(needed(&p, 2, "h"), Some(true));
        assert_eq!(p.bytes(), 4);
        p.release(2, ["h"].into_iter());
        assert!(p.get("h").is_none());
        assert_eq!(p.bytes(), 0);
    }
}
