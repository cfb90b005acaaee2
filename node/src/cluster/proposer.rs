//! Group commit: concurrent writers' commands are gathered into one `CommandBatch` per Raft
//! entry, so throughput comes from batching rather than one log flush per write.

use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use prost::Message;
use tokio::sync::{mpsc, oneshot, Semaphore};

use peage_mail::sync::lock;
use peage_proto::v1::{command, Command, CommandBatch};

use super::error::WriteError;
use super::protocol::{Committed, WriteOp};
use crate::metrics::{observe, COMMIT_SECONDS};
use crate::types::{Outcome, COMMAND_VERSION};

/// Most commands gathered into one entry; keeps entries well under the replication RPC's
/// size and time budget.
const MAX_BATCH: usize = 256;
/// Most bytes of commands gathered into one entry (a single larger command goes alone):
/// entries stay well under the peer service's message limit and the replication RPC's time.
const MAX_BATCH_BYTES: usize = 1 << 20;
/// Batches in flight at once; while they commit, the next ones fill up.
const MAX_IN_FLIGHT: usize = 4;

/// Where the proposer sends each gathered batch: the cluster's write path (here on the
/// leader, forwarded to it elsewhere).
pub trait Writer: Clone + Send + Sync + 'static {
    fn write(&self, op: WriteOp) -> impl Future<Output = Result<Committed, WriteError>> + Send;
}

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
    /// Starts the task that gathers and writes batches; later calls do nothing.
    pub fn start(&self, writer: impl Writer) {
        if let Some(rx) = lock(&self.rx).take() {
            tokio::spawn(run(rx, writer));
        }
    }

    /// Hands one command to the next batch; returns its log index and outcome once the
    /// batch is committed and applied.
    pub async fn propose(&self, cmd: command::Kind) -> Result<(u64, Outcome), WriteError> {
        let (reply, wait) = oneshot::channel();
        let stopped = || WriteError::NodeBroken("the proposer has stopped".into());
        self.tx.send((cmd, reply)).await.map_err(|_| stopped())?;
        wait.await.map_err(|_| stopped())?
    }
}

async fn run(mut rx: mpsc::Receiver<(command::Kind, Reply)>, writer: impl Writer) {
    let in_flight = Arc::new(Semaphore::new(MAX_IN_FLIGHT));
    // A command that did not fit in the previous batch opens the next one.
    let mut carried = None;
    loop {
        // Wait for a free slot first, so commands pile up into a bigger batch meanwhile.
        let Ok(permit) = in_flight.clone().acquire_owned().await else {
            return;
        };
        let first = match carried.take() {
            Some(item) => item,
            None => match rx.recv().await {
                Some(item) => item,
                None => return,
            },
        };
        let mut bytes = first.0.encoded_len();
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH {
            let Ok(item) = rx.try_recv() else { break };
            let size = item.0.encoded_len();
            if bytes + size > MAX_BATCH_BYTES {
                carried = Some(item);
                break;
            }
            bytes += size;
            batch.push(item);
        }
        let writer = writer.clone();
        tokio::spawn(async move {
            let _permit = permit;
            write_batch(&writer, batch).await;
        });
    }
}

/// Writes one batch as one entry and answers each of its callers.
async fn write_batch(writer: &impl Writer, batch: Vec<(command::Kind, Reply)>) {
    let (commands, replies): (Vec<_>, Vec<_>) = batch
        .into_iter()
        .map(|(kind, reply)| (Command { kind: Some(kind) }, reply))
        .unzip();
    let payload = CommandBatch {
        version: COMMAND_VERSION,
        commands,
    }
    .encode_to_vec();
    let started = Instant::now();
    let written = writer.write(WriteOp::Commands(payload)).await;
    observe(COMMIT_SECONDS, started.elapsed());
    match written {
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
}
