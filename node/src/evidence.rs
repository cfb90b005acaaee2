//! Counting verdicts as cluster-wide evidence: each node adds up what its MX decided per
//! reputation and bulk key (`peage_mail::evidence`), and flushes the sums through Raft in
//! one `EvidenceAdd` entry per interval; the leader proposes the decay steps.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use peage_mail::filter::Verdict;
use peage_mail::shutdown::Shutdown;
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

/// Flushes this node's counts, and on the leader proposes decay steps, until `stop`.
pub async fn run(cluster: Cluster, recorder: Recorder, config: EvidenceConfig, mut stop: Shutdown) {
    let mut tick = tokio::time::interval(config.flush);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut last_decay = Instant::now();
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = stop.wait() => return,
        }
        let pending = recorder.take();
        if !pending.is_empty() {
            let counts = pending
                .iter()
                .map(|(key, c)| EvidenceCount {
                    key: key.clone(),
                    ham_milli: c[0],
                    spam_milli: c[1],
                    reject_milli: c[2],
                })
                .collect();
            let add = EvidenceAdd { counts };
            if let Err(e) = cluster.propose(command::Kind::EvidenceAdd(add)).await {
                tracing::debug!(error = %e, "evidence flush failed; kept for the next one");
                recorder.restore(pending);
            }
        }
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
