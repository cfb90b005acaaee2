//! The body journal: bodies of concurrent sessions made durable together, one `fdatasync`
//! for many, by appending them to a segment file; the body files themselves are placed
//! unsynced and made durable later by one `syncfs` per segment (its checkpoint), after which
//! the segment is deleted. At open, whatever a crash lost of the body files is written again
//! from the segments left.

use std::fs::File;
use std::io::{self, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};
use tokio::sync::oneshot;

use super::layout::{blob_path, holds, place, sync_filesystem, BlobError};

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
    reply: oneshot::Sender<Result<(), BlobError>>,
}

/// The handle on the journal's writer thread; it stops when the last handle is dropped.
pub struct Journal {
    tx: mpsc::Sender<Request>,
    totals: Arc<Totals>,
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
        std::thread::Builder::new()
            .name("body-journal".into())
            .spawn(move || writer.run(rx))?;
        Ok(Journal { tx, totals })
    }

    /// (syncs, bodies) since the store opened: how many bodies one sync covers on average.
    pub fn totals(&self) -> (u64, u64) {
        let t = &self.totals;
        (
            t.syncs.load(Ordering::Relaxed),
            t.bodies.load(Ordering::Relaxed),
        )
    }

    /// Hands a body to the writer; the receiver answers once it is durable.
    pub fn submit(
        &self,
        hash: String,
        bytes: Arc<Vec<u8>>,
    ) -> oneshot::Receiver<Result<(), BlobError>> {
        let (reply, done) = oneshot::channel();
        let sent = self.tx.send(Request { hash, bytes, reply });
        if let Err(mpsc::SendError(r)) = sent {
            let _ = r.reply.send(Err(BlobError::Io(io::Error::other(
                "the body journal has stopped",
            ))));
        }
        done
    }
}

/// The open segment: its size, and how many syncs made how many bodies durable in it.
struct Segment {
    file: File,
    path: PathBuf,
    len: u64,
    syncs: u64,
    bodies: u64,
}

struct Writer {
    dir: PathBuf,
    segment: Option<Segment>,
    next_segment: u64,
    totals: Arc<Totals>,
}

impl Writer {
    fn new(dir: &Path) -> Writer {
        Writer {
            dir: dir.to_owned(),
            segment: None,
            next_segment: 1,
            totals: Arc::default(),
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

    /// Checks a body against its name, places its file and adds its record to `records`.
    fn prepare(&self, r: &Request, records: &mut Vec<u8>) -> Result<(), BlobError> {
        let digest = Sha256::digest(r.bytes.as_slice());
        if hex::encode(digest) != r.hash {
            return Err(BlobError::Mismatch(r.hash.clone()));
        }
        place(&self.dir, &r.hash, &r.bytes)?;
        // Journaled even when the file was there already: that file may come from a batch
        // whose sync failed, and this caller's answer must not rest on it.
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
        let dir = self.dir.clone();
        let checkpoint = move || match sync_filesystem(&dir) {
            Ok(()) => {
                let _ = std::fs::remove_file(&segment.path);
            }
            // Kept: the next open replays it.
            Err(e) => {
                tracing::error!(error = %e, "cannot sync the body store; journal segment kept")
            }
        };
        if std::thread::Builder::new()
            .name("body-checkpoint".into())
            .spawn(checkpoint)
            .is_err()
        {
            tracing::error!("cannot start a body checkpoint; the segment is replayed at next open");
        }
    }
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
mod tests {
    use super::*;
    use crate::blobs::layout::{sha256_hex, TMP_DIR};

    fn writer_in(dir: &Path) -> Writer {
        std::fs::create_dir_all(dir.join(TMP_DIR)).unwrap();
        std::fs::create_dir_all(dir.join(JOURNAL_DIR)).unwrap();
        Writer::new(dir)
    }

    fn request(body: &[u8], hash: &str) -> (Request, oneshot::Receiver<Result<(), BlobError>>) {
        let (reply, done) = oneshot::channel();
        let r = Request {
            hash: hash.to_owned(),
            bytes: Arc::new(body.to_vec()),
            reply,
        };
        (r, done)
    }

    /// Ten sessions' bodies handed over together are made durable by one sync of one
    /// segment; a body that does not match its name is refused alone.
    #[test]
    fn one_sync_makes_a_whole_batch_durable_and_a_bad_body_fails_alone() {
        let dir = tempfile::tempdir().unwrap();
        let mut writer = writer_in(dir.path());
        let bodies: Vec<Vec<u8>> = (0..10).map(|i| format!("body {i}").into_bytes()).collect();
        let (mut batch, mut answers) = (Vec::new(), Vec::new());
        for b in &bodies {
            let (r, done) = request(b, &sha256_hex(b));
            batch.push(r);
            answers.push(done);
        }
        let (bad, bad_answer) = request(b"forged", &sha256_hex(b"other"));
        batch.push(bad);
        writer.store_batch(batch);
        for mut a in answers {
            a.try_recv().unwrap().unwrap();
        }
        assert!(matches!(
            bad_answer.blocking_recv().unwrap(),
            Err(BlobError::Mismatch(_))
        ));
        let segment = writer.segment.as_ref().expect("a segment is open");
        assert_eq!((segment.syncs, segment.bodies), (1, 10));
        for b in &bodies {
            assert!(holds(&blob_path(dir.path(), &sha256_hex(b)), b));
        }
        assert!(!blob_path(dir.path(), &sha256_hex(b"other")).exists());
    }

    /// A crash between the journal's sync and the checkpoint loses the unsynced body files
    /// (here: one gone, one empty, one damaged) and may leave half a record at the end of
    /// the segment: the next open writes every acknowledged body again, ignores the torn
    /// tail and deletes the segment.
    #[test]
    fn the_next_open_restores_what_a_crash_lost_before_the_checkpoint() {
        let dir = tempfile::tempdir().unwrap();
        let mut writer = writer_in(dir.path());
        let bodies: Vec<Vec<u8>> = (0..4).map(|i| vec![b'a' + i; 3000]).collect();
        let (mut batch, mut answers) = (Vec::new(), Vec::new());
        for b in &bodies {
            let (r, done) = request(b, &sha256_hex(b));
            batch.push(r);
            answers.push(done);
        }
        writer.store_batch(batch);
        for mut a in answers {
            a.try_recv().unwrap().unwrap();
        }
        let segment = writer.segment.take().unwrap().path;
        let path = |b: &Vec<u8>| blob_path(dir.path(), &sha256_hex(b));
        std::fs::remove_file(path(&bodies[0])).unwrap();
        std::fs::write(path(&bodies[1]), b"").unwrap();
        std::fs::write(path(&bodies[2]), vec![0u8; 3000]).unwrap();
        let mut torn = File::options().append(true).open(&segment).unwrap();
        torn.write_all(MAGIC).unwrap();
        torn.write_all(&5000u64.to_le_bytes()).unwrap();
        torn.write_all(&[7u8; 100]).unwrap();
        drop(torn);

        let _journal = Journal::open(dir.path()).unwrap();
        for b in &bodies {
            assert!(holds(&path(b), b), "body {} restored", b[0] as char);
        }
        assert!(!segment.exists(), "the replayed segment is deleted");
        assert!(segments(&dir.path().join(JOURNAL_DIR)).unwrap().is_empty());
    }
}
