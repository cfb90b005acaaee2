//! Counting verdicts as cluster-wide evidence: each node adds up what its MX decided per
//! reputation and bulk key (`peage_mail::evidence`), and flushes the sums through Raft in
//! one `EvidenceAdd` entry per interval; the leader proposes the decay steps.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use peage_mail::filter::Verdict;
use peage_mail::shutdown::{Every, Shutdown};
use peage_mail::sync::lock;
use peage_proto::v1::{command, EvidenceAdd, EvidenceCount, EvidenceDecay};

use crate::clock::now_ms;
use crate::cluster::Cluster;

/// Keys waiting for the next flush; past this many, new ones wait for a later message.
const MAX_PENDING_KEYS: usize = 100_000;

#[derive(Debug, Clone)]
pub struct EvidenceConfig {
    pub flush: Duration,
    pub decay_every: Duration,
    pub keep_per_mille: u32,
}

/// This node's counts since its last flush: [ham, spam, reject] in thousandths.
#[derive(Clone, Default)]
pub struct Recorder(Arc<Mutex<HashMap<String, [i64; 3]>>>);

impl Recorder {
    /// Counts one final verdict under each of the message's keys.
    pub fn count(&self, keys: &[String], verdict: Verdict) {
        let slot = match verdict {
            Verdict::Deliver => 0,
            Verdict::Quarantine => 1,
            Verdict::Reject => 2,
        };
        let mut pending = lock(&self.0);
        for k in keys {
            if pending.len() >= MAX_PENDING_KEYS && !pending.contains_key(k) {
                continue;
            }
            pending.entry(k.clone()).or_insert([0; 3])[slot] += 1000;
        }
    }

    fn take(&self) -> HashMap<String, [i64; 3]> {
        std::mem::take(&mut *lock(&self.0))
    }

    /// Puts counts back after a failed flush, so nothing counted is lost.
    fn restore(&self, counts: HashMap<String, [i64; 3]>) {
        let mut pending = lock(&self.0);
        for (k, c) in counts {
            if pending.len() >= MAX_PENDING_KEYS && !pending.contains_key(&k) {
                continue;
            }
            let e = pending.entry(k).or_insert([0; 3]);
            for (a, b) in e.iter_mut().zip(c) {
                *a += b;
            }
        }
    }
}

/// Most keys in one `EvidenceAdd`: with keys of at most `MAX_KEY_BYTES`, an entry stays far
/// below the replication RPC's size budget however many keys clients made up.
const KEYS_PER_ENTRY: usize = 1000;

/// The counts as entries of at most `KEYS_PER_ENTRY` keys.
fn entries(pending: HashMap<String, [i64; 3]>) -> Vec<EvidenceAdd> {
    let counts: Vec<EvidenceCount> = pending
        .into_iter()
        .map(|(key, c)| EvidenceCount {
            key,
            ham_milli: c[0],
            spam_milli: c[1],
            reject_milli: c[2],
        })
        .collect();
    counts
        .chunks(KEYS_PER_ENTRY)
        .map(|chunk| EvidenceAdd {
            counts: chunk.to_vec(),
        })
        .collect()
}

/// Proposes what was counted since the last flush; what cannot be committed now is kept
/// for the next flush.
async fn flush(cluster: &Cluster, recorder: &Recorder) {
    let mut adds = entries(recorder.take()).into_iter();
    while let Some(add) = adds.next() {
        if let Err(e) = cluster
            .propose(command::Kind::EvidenceAdd(add.clone()))
            .await
        {
            tracing::debug!(error = %e, "evidence flush failed; kept for the next one");
            for kept in std::iter::once(add).chain(adds) {
                recorder.restore(
                    kept.counts
                        .into_iter()
                        .map(|c| (c.key, [c.ham_milli, c.spam_milli, c.reject_milli]))
                        .collect(),
                );
            }
            return;
        }
    }
}

/// Flushes this node's counts, and on the leader proposes decay steps, until `stop`.
pub async fn run(cluster: Cluster, recorder: Recorder, config: EvidenceConfig, stop: Shutdown) {
    let mut every = Every::new(config.flush, stop);
    let mut last_decay = Instant::now();
    while every.tick().await {
        flush(&cluster, &recorder).await;
        let leads = cluster.leads();
        if leads && last_decay.elapsed() >= config.decay_every {
            let decay = EvidenceDecay {
                keep_per_mille: config.keep_per_mille,
                // Forget keys worth less than a tenth of a message.
                drop_below_milli: 100,
                now_ms: now_ms(),
            };
            match cluster.propose(command::Kind::EvidenceDecay(decay)).await {
                Ok(_) => last_decay = Instant::now(),
                Err(e) => tracing::debug!(error = %e, "evidence decay failed"),
            }
        } else if !leads {
            last_decay = Instant::now();
        }
    }
}

#[cfg(test)]
mod tests {
    use prost::Message;

    use peage_mail::evidence::MAX_KEY_BYTES;

    use super::*;

    /// However many keys hostile clients made up, each entry stays under a bound far below
    /// the peer service's message limit, and nothing counted is left out.
    #[test]
    fn a_flush_of_many_long_keys_is_split_into_bounded_entries() {
        let pending: HashMap<String, [i64; 3]> = (0..100_000)
            .map(|i| {
                (
                    format!("helo:{i:0>width$}", width = MAX_KEY_BYTES - 5),
                    [0, 0, 1000],
                )
            })
            .collect();
        let adds = entries(pending);
        assert_eq!(adds.len(), 100);
        let biggest = adds.iter().map(|a| a.encoded_len()).max().unwrap();
        assert!(biggest < 512 * 1024, "{biggest} bytes");
        assert_eq!(adds.iter().map(|a| a.counts.len()).sum::<usize>(), 100_000);
    }
}
