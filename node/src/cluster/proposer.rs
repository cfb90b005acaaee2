//! Group commit: concurrent writers' commands are gathered into one `CommandBatch` per Raft
//! entry, so throughput comes from batching rather than one log flush per write.

use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

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
/// How long a command that can wait (`propose_when_convenient`) waits for a batch to ride
/// in before it goes in one of its own.
const LINGER: Duration = Duration::from_millis(20);

/// Where the proposer sends each gathered batch: the cluster's write path (here on the
/// leader, forwarded to it elsewhere).
pub trait Writer: Clone + Send + Sync + 'static {
    fn write(&self, op: WriteOp) -> impl Future<Output = Result<Committed, WriteError>> + Send;
}

type Reply = oneshot::Sender<Result<(u64, Outcome), WriteError>>;
type Item = (command::Kind, Reply);

/// The two lanes into the proposer: commands someone is waiting on, and commands that can
/// wait a moment for company.
struct Lanes {
    urgent: mpsc::Receiver<Item>,
    patient: mpsc::Receiver<Item>,
}

pub struct Proposer {
    urgent: mpsc::Sender<Item>,
    patient: mpsc::Sender<Item>,
    /// Taken by `start`; the task that drains them lives as long as the node.
    lanes: Mutex<Option<Lanes>>,
}

impl Default for Proposer {
    fn default() -> Self {
        let (urgent, urgent_rx) = mpsc::channel(4096);
        let (patient, patient_rx) = mpsc::channel(4096);
        Proposer {
            urgent,
            patient,
            lanes: Mutex::new(Some(Lanes {
                urgent: urgent_rx,
                patient: patient_rx,
            })),
        }
    }
}

impl Proposer {
    /// Starts the task that gathers and writes batches; later calls do nothing.
    pub fn start(&self, writer: impl Writer) {
        if let Some(lanes) = lock(&self.lanes).take() {
            tokio::spawn(run(lanes, writer));
        }
    }

    /// Hands one command to the next batch; returns its log index and outcome once the
    /// batch is committed and applied.
    pub async fn propose(&self, cmd: command::Kind) -> Result<(u64, Outcome), WriteError> {
        Self::send(&self.urgent, cmd).await
    }

    /// Like `propose`, for a command nobody waits on in a hurry (a delivery's `SpoolDone`):
    /// it rides in the next batch that goes, or in one of its own after `LINGER`. Under a
    /// steady trickle of mail this saves a Raft round per message, which the next message's
    /// record would otherwise queue behind.
    pub async fn propose_when_convenient(
        &self,
        cmd: command::Kind,
    ) -> Result<(u64, Outcome), WriteError> {
        Self::send(&self.patient, cmd).await
    }

    async fn send(
        lane: &mpsc::Sender<Item>,
        cmd: command::Kind,
    ) -> Result<(u64, Outcome), WriteError> {
        let (reply, wait) = oneshot::channel();
        let stopped = || WriteError::NodeBroken("the proposer has stopped".into());
        lane.send((cmd, reply)).await.map_err(|_| stopped())?;
        wait.await.map_err(|_| stopped())?
    }
}

/// Commands gathered for one entry, within the entry's limits.
struct Batch {
    items: Vec<Item>,
    bytes: usize,
}

impl Batch {
    fn new(first: Item) -> Batch {
        Batch {
            bytes: first.0.encoded_len(),
            items: vec![first],
        }
    }

    /// Adds `item` if it fits; gives it back otherwise.
    fn add(&mut self, item: Item) -> Result<(), Item> {
        let size = item.0.encoded_len();
        if self.items.len() >= MAX_BATCH || self.bytes + size > MAX_BATCH_BYTES {
            return Err(item);
        }
        self.bytes += size;
        self.items.push(item);
        Ok(())
    }
}

async fn run(mut lanes: Lanes, writer: impl Writer) {
    let in_flight = Arc::new(Semaphore::new(MAX_IN_FLIGHT));
    // Patient commands waiting for a batch, and when the oldest of them stops waiting.
    let mut waiting: Vec<Item> = Vec::new();
    let mut due: Option<tokio::time::Instant> = None;
    // An urgent command that did not fit in the previous batch opens the next one.
    let mut carried = None;
    loop {
        // Wait for a free slot first, so commands pile up into a bigger batch meanwhile.
        let Ok(permit) = in_flight.clone().acquire_owned().await else {
            return;
        };
        let first = match carried.take() {
            Some(item) => item,
            None => loop {
                tokio::select! {
                    biased;
                    item = lanes.urgent.recv() => match item {
                        Some(item) => break item,
                        None => return,
                    },
                    item = lanes.patient.recv() => match item {
                        Some(item) => {
                            due.get_or_insert_with(|| tokio::time::Instant::now() + LINGER);
                            waiting.push(item);
                        }
                        None => return,
                    },
                    _ = tokio::time::sleep_until(due.unwrap_or_else(tokio::time::Instant::now)),
                        if due.is_some() => break waiting.remove(0),
                }
            },
        };
        let mut batch = Batch::new(first);
        // The patient commands ride along, then as many urgent ones as are queued.
        waiting.extend(std::iter::from_fn(|| lanes.patient.try_recv().ok()));
        let left_over: Vec<Item> = waiting
            .drain(..)
            .filter_map(|item| batch.add(item).err())
            .collect();
        while carried.is_none() {
            let Ok(item) = lanes.urgent.try_recv() else {
                break;
            };
            carried = batch.add(item).err();
        }
        // What did not fit goes in the next batch, as soon as a slot frees.
        due = (!left_over.is_empty()).then(tokio::time::Instant::now);
        waiting = left_over;
        let writer = writer.clone();
        tokio::spawn(async move {
            let _permit = permit;
            write_batch(&writer, batch.items).await;
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::BatchOutcome;
    use peage_proto::v1::SpoolDone;

    /// Records when each entry was written and how many commands it held.
    #[derive(Clone, Default)]
    struct Recorder(Arc<Mutex<Vec<(tokio::time::Instant, usize)>>>);

    impl Writer for Recorder {
        async fn write(&self, op: WriteOp) -> Result<Committed, WriteError> {
            let WriteOp::Commands(payload) = op else {
                unreachable!("the proposer writes commands only")
            };
            let batch = CommandBatch::decode(payload.as_slice()).expect("a batch");
            let n = batch.commands.len();
            let mut log = lock(&self.0);
            log.push((tokio::time::Instant::now(), n));
            Ok(Committed {
                log_index: log.len() as u64,
                outcome: BatchOutcome(vec![Outcome::Swept { removed: 0 }; n]),
            })
        }
    }

    fn done(id: &str) -> command::Kind {
        command::Kind::SpoolDone(SpoolDone {
            queue_id: id.into(),
            rcpt_to: vec!["bob@example.test".into()],
        })
    }

    fn urgent() -> command::Kind {
        command::Kind::SpoolDone(SpoolDone::default())
    }

    /// A started proposer writing into a fresh recorder.
    fn started() -> (Recorder, Arc<Proposer>) {
        let writer = Recorder::default();
        let proposer = Arc::new(Proposer::default());
        proposer.start(writer.clone());
        (writer, proposer)
    }

    #[tokio::test(start_paused = true)]
    async fn a_patient_command_rides_in_the_next_urgent_entry() {
        let (writer, proposer) = started();
        let p = proposer.clone();
        let patient = tokio::spawn(async move { p.propose_when_convenient(done("A")).await });
        tokio::time::sleep(LINGER / 4).await;
        let (index, _) = proposer.propose(urgent()).await.expect("urgent committed");
        let (patient_index, _) = patient.await.unwrap().expect("patient committed");
        assert_eq!(index, patient_index, "both in one entry");
        let log = lock(&writer.0);
        assert_eq!(log.len(), 1, "one entry for both: {log:?}");
        assert_eq!(log[0].1, 2);
    }

    #[tokio::test(start_paused = true)]
    async fn a_patient_command_alone_goes_after_the_linger_not_before() {
        let (writer, proposer) = started();
        let started = tokio::time::Instant::now();
        proposer
            .propose_when_convenient(done("A"))
            .await
            .expect("committed");
        let log = lock(&writer.0);
        assert_eq!(log.len(), 1);
        let waited = log[0].0 - started;
        assert!(
            waited >= LINGER,
            "written after {waited:?}, before the linger"
        );
        assert!(waited < LINGER * 2, "written only after {waited:?}");
    }

    #[tokio::test(start_paused = true)]
    async fn an_urgent_command_never_waits_for_the_linger() {
        let (writer, proposer) = started();
        let started = tokio::time::Instant::now();
        proposer.propose(urgent()).await.expect("committed");
        let log = lock(&writer.0);
        assert_eq!(log[0].0 - started, Duration::ZERO);
    }

    #[tokio::test(start_paused = true)]
    async fn patient_commands_beyond_one_entry_go_in_the_next() {
        let (writer, proposer) = started();
        let waiting: Vec<_> = (0..MAX_BATCH + 10)
            .map(|i| {
                let p = proposer.clone();
                tokio::spawn(async move { p.propose_when_convenient(done(&format!("{i}"))).await })
            })
            .collect();
        for w in waiting {
            w.await.unwrap().expect("committed");
        }
        let sizes: Vec<usize> = lock(&writer.0).iter().map(|e| e.1).collect();
        assert_eq!(sizes.iter().sum::<usize>(), MAX_BATCH + 10);
        assert!(sizes.iter().all(|n| *n <= MAX_BATCH), "{sizes:?}");
    }
}
