//! Group commit: concurrent writers' commands are gathered into one `CommandBatch` per Raft
//! entry, so throughput comes from batching rather than one log flush per write.

use std::sync::{Arc, Mutex};

use prost::Message;
use tokio::sync::{mpsc, oneshot, Semaphore};

use peage_proto::v1::{command, Command, CommandBatch};

use super::{Cluster, LeaderOp, WriteError};
use crate::state::{Outcome, COMMAND_VERSION};

/// Most commands gathered into one entry; keeps entries well under the replication RPC's
/// size and time budget.
const MAX_BATCH: usize = 256;
/// Batches in flight at once; while they commit, the next ones fill up.
const MAX_IN_FLIGHT: usize = 4;

type Reply = oneshot::Sender<Result<(u64, Outcome), WriteError>>;

pub struct Proposer {
    tx: mpsc::Sender<(command::Kind, Reply)>,
    /// Taken by `start`; the task that drains it lives as long as the node.
    rx: Mutex<Option<mpsc::Receiver<(command::Kind, Reply)>>>,
}

impl Default for Proposer {
    fn default() -> Self {
        let (tx, rx) = mpsc::channel(4096);
        Proposer {
            tx,
            rx: Mutex::new(Some(rx)),
        }
    }
}

impl Proposer {
    pub fn start(&self, cluster: Cluster) {
        let rx = self.rx.lock().unwrap_or_else(|p| p.into_inner()).take();
        if let Some(rx) = rx {
            tokio::spawn(run(rx, cluster));
        }
    }

    pub async fn propose(&self, cmd: command::Kind) -> Result<(u64, Outcome), WriteError> {
        let (reply, wait) = oneshot::channel();
        self.tx
            .send((cmd, reply))
            .await
            .map_err(|_| WriteError::Internal("the proposer has stopped".into()))?;
        wait.await
            .map_err(|_| WriteError::Internal("the proposer dropped the request".into()))?
    }
}

async fn run(mut rx: mpsc::Receiver<(command::Kind, Reply)>, cluster: Cluster) {
    let in_flight = Arc::new(Semaphore::new(MAX_IN_FLIGHT));
    loop {
        // Wait for a free slot first, so commands pile up into a bigger batch meanwhile.
        let Ok(permit) = in_flight.clone().acquire_owned().await else {
            return;
        };
        let Some(first) = rx.recv().await else {
            return;
        };
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(item) => batch.push(item),
                Err(_) => break,
            }
        }
        let cluster = cluster.clone();
        tokio::spawn(async move {
            let _permit = permit;
            let (commands, replies): (Vec<_>, Vec<_>) = batch
                .into_iter()
                .map(|(kind, reply)| (Command { kind: Some(kind) }, reply))
                .unzip();
            let payload = CommandBatch {
                version: COMMAND_VERSION,
                commands,
            }
            .encode_to_vec();
            let started = std::time::Instant::now();
            let submitted = cluster.submit(LeaderOp::Commands(payload)).await;
            crate::metrics::observe(crate::metrics::COMMIT_SECONDS, started.elapsed());
            match submitted {
                Ok(done) => {
                    let mut outcomes = done.outcome.0.into_iter();
                    for reply in replies {
                        let outcome = outcomes
                            .next()
                            .unwrap_or_else(|| Outcome::Refused("no outcome for command".into()));
                        let _ = reply.send(Ok((done.log_index, outcome)));
                    }
                }
                Err(e) => {
                    for reply in replies {
                        let _ = reply.send(Err(e.clone()));
                    }
                }
            }
        });
    }
}
