//! The body journal: bodies of concurrent sessions made durable together, one `fdatasync`
//! for many, by appending them to a segment file. Until the segment's checkpoint they are
//! read from memory (`pending`); the checkpoint places as files those a message still
//! needs, unsynced, makes them durable by one `syncfs`, and deletes the segment. At open,
//! whatever a crash lost of the body files is written again from the segments left.

use std::collections::HashSet;
use std::fs::File;
use std::io::{self, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};
use tokio::sync::oneshot;

use super::layout::{blob_path, holds, place, sync_filesystem, BlobError};
use super::pending::Pending;

/// The journal's directory inside the blob store.
pub const JOURNAL_DIR: &str = "journal";
const MAGIC: &[u8; 4] = b"PGB1";
/// A record's header: magic, body length (u64 LE), SHA-256 of the body.
const HEADER: usize = 4 + 8 + 32;
/// No body is larger; a header claiming more is a torn or damaged record.
const MAX_RECORD: u64 = 1 << 30;
/// A segment is checkpointed once it holds this much...
const SEGMENT_BYTES: u64 = 16 << 20;
/// ... or once no body has come for this long, so that a store at rest keeps no segment.
const IDLE_CHECKPOINT: Duration = Duration::from_secs(2);
/// How long a batch waits for more bodies when the last one had company.
const LINGER: Duration = Duration::from_micros(500);
/// Most bytes of bodies one sync covers (one larger body goes alone).
const MAX_BATCH_BYTES: usize = 8 << 20;

/// One body to store, and who waits for it to be durable.
struct Request {
    hash: String,
    bytes: Arc<Vec<u8>>,
    /// The message it is stored for (its queue id), if it names one.
    claim: Option<String>,
    reply: oneshot::Sender<Result<(), BlobError>>,
}

/// The handle on the journal's writer thread; it stops when the last handle is dropped.
pub struct Journal {
    tx: mpsc::Sender<Request>,
    totals: Arc<Totals>,
    pending: Arc<Pending>,
}

/// Syncs of the journal and the bodies they made durable, since the store opened.
#[derive(Default)]
pub struct Totals {
    pub syncs: AtomicU64,
    pub bodies: AtomicU64,
}

impl Journal {
    /// Replays the segments a crash left into the store at `dir`, then starts the writer.
    pub fn open(dir: &Path) -> io::Result<Journal> {
        let journal_dir = dir.join(JOURNAL_DIR);
        std::fs::create_dir_all(&journal_dir)?;
        let left = segments(&journal_dir)?;
        if !left.is_empty() {
            let restored = left
                .iter()
                .map(|s| replay(dir, s))
                .sum::<io::Result<u64>>()?;
            sync_filesystem(dir)?;
            for s in &left {
                std::fs::remove_file(s)?;
            }
            tracing::info!(segments = left.len(), restored, "body journal replayed");
        }
        let (tx, rx) = mpsc::channel();
        let writer = Writer::new(dir);
        let totals = writer.totals.clone();
        let pending = writer.pending.clone();
        std::thread::Builder::new()
            .name("body-journal".into())
            .spawn(move || writer.run(rx))?;
        Ok(Journal {
            tx,
            totals,
            pending,
        })
    }

    /// The bodies durable in the journal that no file holds yet.
    pub fn pending(&self) -> &Pending {
        &self.pending
    }

    /// (syncs, bodies) since the store opened: how many bodies one sync covers on average.
    pub fn totals(&self) -> (u64, u64) {
        let t = &self.totals;
        (
            t.syncs.load(Ordering::Relaxed),
            t.bodies.load(Ordering::Relaxed),
        )
    }

    /// Hands a body, stored for the message `claim`, to the writer; the receiver answers
    /// once it is durable (and readable).
    pub fn submit(
        &self,
        hash: String,
        bytes: Arc<Vec<u8>>,
        claim: Option<String>,
    ) -> oneshot::Receiver<Result<(), BlobError>> {
        let (reply, done) = oneshot::channel();
        let sent = self.tx.send(Request {
            hash,
            bytes,
            claim,
            reply,
        });
        if let Err(mpsc::SendError(r)) = sent {
            let _ = r.reply.send(Err(BlobError::Io(io::Error::other(
                "the body journal has stopped",
            ))));
        }
        done
    }
}

/// The open segment: its size, the bodies in it, and how many syncs made how many bodies
/// durable in it.
struct Segment {
    file: File,
    path: PathBuf,
    number: u64,
    hashes: Vec<String>,
    len: u64,
    syncs: u64,
    bodies: u64,
}

struct Writer {
    dir: PathBuf,
    segment: Option<Segment>,
    next_segment: u64,
    totals: Arc<Totals>,
    pending: Arc<Pending>,
}

impl Writer {
    fn new(dir: &Path) -> Writer {
        Writer {
            dir: dir.to_owned(),
            segment: None,
            next_segment: 1,
            totals: Arc::default(),
            pending: Arc::default(),
        }
    }

    fn run(mut self, rx: mpsc::Receiver<Request>) {
        let mut last_batch = 0;
        loop {
            let first = match rx.recv_timeout(IDLE_CHECKPOINT) {
                Ok(r) => r,
                Err(mpsc::RecvTimeoutError::Timeout) => {
                    self.retire_segment();
                    continue;
                }
                Err(mpsc::RecvTimeoutError::Disconnected) => return self.retire_segment(),
            };
            let mut bytes = first.bytes.len();
            let mut batch = vec![first];
            // Under concurrent load (the last sync covered several bodies), wait a moment
            // for more: a sync costs far more than the wait. A lone writer never waits.
            let linger = Instant::now()
                + if last_batch > 1 {
                    LINGER
                } else {
                    Duration::ZERO
                };
            while bytes < MAX_BATCH_BYTES {
                let wait = linger.saturating_duration_since(Instant::now());
                let Ok(r) = rx.recv_timeout(wait) else { break };
                bytes += r.bytes.len();
                batch.push(r);
            }
            last_batch = batch.len();
            self.store_batch(batch);
        }
    }

    /// Places and journals every body of the batch, syncs the segment once, then answers
    /// each caller. Any failure retires the segment: the next batch starts a clean one, so
    /// a torn record never hides acknowledged records behind it.
    fn store_batch(&mut self, batch: Vec<Request>) {
        let mut records = Vec::with_capacity(batch.iter().map(|r| HEADER + r.bytes.len()).sum());
        let mut results = Vec::with_capacity(batch.len());
        for r in &batch {
            results.push(self.prepare(r, &mut records));
        }
        let journaled = results.iter().filter(|r| r.is_ok()).count() as u64;
        let written = match journaled {
            0 => Ok(()),
            _ => self.append_and_sync(&records, journaled),
        };
        if let Err(e) = &written {
            tracing::error!(error = %e, "the body journal could not be written");
            self.retire_segment();
        } else if let Some(segment) = self.segment.as_mut() {
            // Readable before its writer hears it is stored.
            let durable = batch.iter().zip(&results).filter(|(_, r)| r.is_ok());
            for (r, _) in durable {
                let claim = r.claim.as_deref();
                self.pending
                    .journaled(&r.hash, &r.bytes, claim, segment.number);
                segment.hashes.push(r.hash.clone());
            }
        }
        for (r, result) in batch.into_iter().zip(results) {
            let answer = match (&written, result) {
                (Ok(()), result) => result,
                (Err(e), _) => Err(BlobError::Io(io::Error::new(e.kind(), e.to_string()))),
            };
            let _ = r.reply.send(answer);
        }
        if self
            .segment
            .as_ref()
            .is_some_and(|s| s.len >= SEGMENT_BYTES)
        {
            self.retire_segment();
        }
    }

    /// Checks a body against its name and adds its record to `records`.
    fn prepare(&self, r: &Request, records: &mut Vec<u8>) -> Result<(), BlobError> {
        let digest = Sha256::digest(r.bytes.as_slice());
        if hex::encode(digest) != r.hash {
            return Err(BlobError::Mismatch(r.hash.clone()));
        }
        // Journaled even when a file holds it already: that file may be swept before this
        // caller's message is committed, and its answer must not rest on it.
        records.extend_from_slice(MAGIC);
        records.extend_from_slice(&(r.bytes.len() as u64).to_le_bytes());
        records.extend_from_slice(&digest);
        records.extend_from_slice(&r.bytes);
        Ok(())
    }

    fn append_and_sync(&mut self, records: &[u8], bodies: u64) -> io::Result<()> {
        if self.segment.is_none() {
            self.segment = Some(self.new_segment()?);
        }
        let segment = self.segment.as_mut().expect("opened above");
        segment.file.write_all(records)?;
        segment.file.sync_data()?;
        segment.len += records.len() as u64;
        segment.syncs += 1;
        segment.bodies += bodies;
        self.totals.syncs.fetch_add(1, Ordering::Relaxed);
        self.totals.bodies.fetch_add(bodies, Ordering::Relaxed);
        Ok(())
    }

    fn new_segment(&mut self) -> io::Result<Segment> {
        let journal_dir = self.dir.join(JOURNAL_DIR);
        let path = journal_dir.join(format!("{:016}.seg", self.next_segment));
        self.next_segment += 1;
        let file = File::options().create_new(true).append(true).open(&path)?;
        // The segment's own name must survive a crash for its records to.
        File::open(&journal_dir)?.sync_all()?;
        Ok(Segment {
            file,
            path,
            number: self.next_segment - 1,
            hashes: Vec::new(),
            len: 0,
            syncs: 0,
            bodies: 0,
        })
    }

    /// Closes the open segment; a thread of its own makes the bodies it covers durable and
    /// deletes it, while the writer carries on with a new one.
    fn retire_segment(&mut self) {
        let Some(segment) = self.segment.take() else {
            return;
        };
        tracing::debug!(
            syncs = segment.syncs,
            bodies = segment.bodies,
            bytes = segment.len,
            "body journal segment retired"
        );
        let (dir, pending) = (self.dir.clone(), self.pending.clone());
        let checkpoint = move || checkpoint(&dir, &pending, &segment);
        if std::thread::Builder::new()
            .name("body-checkpoint".into())
            .spawn(checkpoint)
            .is_err()
        {
            tracing::error!("cannot start a body checkpoint; the segment is replayed at next open");
        }
    }
}

/// Places the bodies of `segment` that a message may still need, makes them durable, then
/// deletes the segment; the bodies no longer needed are forgotten without becoming files.
fn checkpoint(dir: &Path, pending: &Pending, segment: &Segment) {
    let bodies = pending.of_segment(segment.number, &segment.hashes);
    let mut placed = 0;
    let mut kept = HashSet::new();
    for body in bodies.iter().filter(|b| b.needed) {
        match place(dir, &body.hash, &body.bytes) {
            Ok(()) => placed += 1,
            Err(e) => {
                // Still read from memory, and written again from the segment at next open.
                tracing::error!(error = %e, hash = %body.hash, "cannot place a body");
                kept.insert(body.hash.as_str());
            }
        }
    }
    let durable = match placed {
        0 => Ok(()),
        _ => sync_filesystem(dir),
    };
    match durable {
        Ok(()) if kept.is_empty() => {
            let _ = std::fs::remove_file(&segment.path);
        }
        Ok(()) => tracing::error!("journal segment kept: some bodies could not be placed"),
        // Kept: the next open replays it.
        Err(e) => tracing::error!(error = %e, "cannot sync the body store; journal segment kept"),
    }
    let done = bodies.iter().map(|b| b.hash.as_str());
    pending.release(segment.number, done.filter(|h| !kept.contains(h)));
    tracing::debug!(
        bodies = bodies.len(),
        placed,
        "body journal segment checkpointed"
    );
}

/// The journal's segments, oldest first.
fn segments(journal_dir: &Path) -> io::Result<Vec<PathBuf>> {
    let mut found: Vec<PathBuf> = std::fs::read_dir(journal_dir)?
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "seg"))
        .collect();
    found.sort();
    Ok(found)
}

/// Writes again every body of `segment` whose file is missing or not whole; stops at the
/// first torn or damaged record (the tail of a write a crash interrupted, never
/// acknowledged). Returns how many bodies it wrote.
fn replay(dir: &Path, segment: &Path) -> io::Result<u64> {
    let mut reader = BufReader::new(File::open(segment)?);
    let mut restored = 0;
    loop {
        let mut header = [0u8; HEADER];
        if reader.read_exact(&mut header).is_err() || &header[..4] != MAGIC {
            return Ok(restored);
        }
        let len = u64::from_le_bytes(header[4..12].try_into().expect("8 bytes"));
        if len > MAX_RECORD {
            return Ok(restored);
        }
        let mut bytes = vec![0u8; len as usize];
        if reader.read_exact(&mut bytes).is_err() {
            return Ok(restored);
        }
        let digest = Sha256::digest(&bytes);
        if digest.as_slice() != &header[12..] {
            return Ok(restored);
        }
        let hash = hex::encode(digest);
        let path = blob_path(dir, &hash);
        if !holds(&path, &bytes) {
            let _ = std::fs::remove_file(&path);
            place(dir, &hash, &bytes)?;
            restored += 1;
        }
    }
}

#[cfg(test)]
mod tests;
