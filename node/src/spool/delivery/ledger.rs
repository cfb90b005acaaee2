//! The delivered ledger: deliveries written down locally before their `SpoolDone` is
//! proposed, so that a node killed between the downstream's `250` and the commit proposes
//! them again when it restarts, instead of delivering them a second time.
//!
//! Written, never synced: it guards against duplicates after a process crash (the page cache
//! survives a SIGKILL), not against loss. A ledger lost with the machine means a duplicate,
//! never a lost message, and a `SpoolDone` proposed twice is applied as a no-op.

use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use prost::Message;

use peage_mail::sync::lock;
use peage_proto::v1::SpoolDone;

/// The ledger's file inside the node's data directory.
pub const LEDGER_FILE: &str = "delivered.ledger";
/// Past this size the file is rewritten with only what is still unsettled.
const COMPACT_AT: u64 = 1 << 20;
/// A record's header: its mark, and the length (u32 LE) of the encoded `SpoolDone`.
const HEADER: usize = 1 + 4;
/// No record is larger: a length claiming more is a torn or damaged tail.
const MAX_RECORD: usize = 1 << 20;

/// Deliveries noted and not yet settled (their `SpoolDone` committed and applied here).
pub struct Ledger {
    inner: Mutex<Inner>,
}

struct Inner {
    path: PathBuf,
    file: File,
    bytes: u64,
    unsettled: HashMap<String, Vec<String>>,
}

impl Ledger {
    /// Opens the ledger at `path` and returns the deliveries a crash left unsettled, one
    /// `SpoolDone` per message; they stay noted until settled.
    pub fn open(path: &Path) -> io::Result<(Ledger, Vec<SpoolDone>)> {
        let unsettled = match File::open(path) {
            Ok(mut f) => read_records(&mut f)?,
            Err(e) if e.kind() == io::ErrorKind::NotFound => HashMap::new(),
            Err(e) => return Err(e),
        };
        let (file, bytes) = rewrite(path, &unsettled)?;
        let left = unsettled
            .iter()
            .map(|(queue_id, rcpt_to)| SpoolDone {
                queue_id: queue_id.clone(),
                rcpt_to: rcpt_to.clone(),
            })
            .collect();
        let inner = Inner {
            path: path.to_path_buf(),
            file,
            bytes,
            unsettled,
        };
        Ok((
            Ledger {
                inner: Mutex::new(inner),
            },
            left,
        ))
    }

    /// Writes down a delivery whose `SpoolDone` is about to be proposed.
    pub fn note(&self, done: &SpoolDone) {
        let mut inner = lock(&self.inner);
        let record = encode(Mark::Delivered, done);
        if let Err(e) = inner.file.write_all(&record) {
            // Only a duplicate is at stake: deliver on, and say why a restart may repeat it.
            tracing::warn!(error = %e, queue_id = %done.queue_id, "cannot note the delivery in the ledger");
        }
        inner.bytes += record.len() as u64;
        let rcpts = inner.unsettled.entry(done.queue_id.clone()).or_default();
        rcpts.extend(done.rcpt_to.iter().cloned());
    }

    /// Forgets a delivery whose `SpoolDone` is applied here; empties or compacts the file
    /// when that is cheap.
    pub fn settle(&self, done: &SpoolDone) {
        let mut inner = lock(&self.inner);
        forget(&mut inner.unsettled, done);
        let result = if inner.unsettled.is_empty() && inner.bytes == 0 {
            Ok(())
        } else if inner.unsettled.is_empty() {
            inner.file.set_len(0).map(|()| inner.bytes = 0)
        } else if inner.bytes > COMPACT_AT {
            rewrite(&inner.path, &inner.unsettled).map(|(file, bytes)| {
                inner.file = file;
                inner.bytes = bytes;
            })
        } else {
            let record = encode(Mark::Settled, done);
            inner.bytes += record.len() as u64;
            inner.file.write_all(&record)
        };
        if let Err(e) = result {
            tracing::warn!(error = %e, "cannot trim the delivered ledger");
        }
    }

    /// How many messages have deliveries noted and not settled.
    pub fn unsettled(&self) -> usize {
        lock(&self.inner).unsettled.len()
    }
}

/// What a record says of its recipients.
#[derive(Clone, Copy, PartialEq)]
enum Mark {
    Delivered = 1,
    Settled = 2,
}

/// A record: its header, then the encoded `SpoolDone`.
fn encode(mark: Mark, done: &SpoolDone) -> Vec<u8> {
    let body = done.encode_to_vec();
    let mut record = Vec::with_capacity(HEADER + body.len());
    record.push(mark as u8);
    record.extend_from_slice(&(body.len() as u32).to_le_bytes());
    record.extend_from_slice(&body);
    record
}

fn forget(unsettled: &mut HashMap<String, Vec<String>>, done: &SpoolDone) {
    if let Some(rcpts) = unsettled.get_mut(&done.queue_id) {
        rcpts.retain(|r| !done.rcpt_to.contains(r));
        if rcpts.is_empty() {
            unsettled.remove(&done.queue_id);
        }
    }
}

/// Every whole record of `f`, merged per message; a torn or damaged tail ends the reading.
fn read_records(f: &mut File) -> io::Result<HashMap<String, Vec<String>>> {
    let mut bytes = Vec::new();
    f.read_to_end(&mut bytes)?;
    let mut unsettled: HashMap<String, Vec<String>> = HashMap::new();
    let mut rest = bytes.as_slice();
    while rest.len() >= HEADER {
        let len = u32::from_le_bytes([rest[1], rest[2], rest[3], rest[4]]) as usize;
        if len > MAX_RECORD || rest.len() < HEADER + len {
            break;
        }
        let Ok(done) = SpoolDone::decode(&rest[HEADER..HEADER + len]) else {
            break;
        };
        match rest[0] {
            m if m == Mark::Delivered as u8 => {
                let rcpts = unsettled.entry(done.queue_id).or_default();
                for r in done.rcpt_to {
                    if !rcpts.contains(&r) {
                        rcpts.push(r);
                    }
                }
            }
            m if m == Mark::Settled as u8 => forget(&mut unsettled, &done),
            _ => break,
        }
        rest = &rest[HEADER + len..];
    }
    if !rest.is_empty() {
        tracing::warn!(
            bytes = rest.len(),
            "the delivered ledger ends in a torn record; it is dropped"
        );
    }
    Ok(unsettled)
}

/// Replaces the file at `path` with `unsettled` alone and opens it for appending.
fn rewrite(path: &Path, unsettled: &HashMap<String, Vec<String>>) -> io::Result<(File, u64)> {
    let tmp = path.with_extension("tmp");
    let mut bytes = Vec::new();
    for (queue_id, rcpt_to) in unsettled {
        bytes.extend(encode(
            Mark::Delivered,
            &SpoolDone {
                queue_id: queue_id.clone(),
                rcpt_to: rcpt_to.clone(),
            },
        ));
    }
    std::fs::write(&tmp, &bytes)?;
    std::fs::rename(&tmp, path)?;
    let file = OpenOptions::new().append(true).open(path)?;
    Ok((file, bytes.len() as u64))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn done(queue_id: &str, rcpts: &[&str]) -> SpoolDone {
        SpoolDone {
            queue_id: queue_id.into(),
            rcpt_to: rcpts.iter().map(|r| r.to_string()).collect(),
        }
    }

    #[test]
    fn what_was_noted_and_not_settled_comes_back_at_open() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(LEDGER_FILE);
        let (ledger, left) = Ledger::open(&path).unwrap();
        assert!(left.is_empty());
        ledger.note(&done("a", &["x@example.test", "y@example.test"]));
        ledger.note(&done("b", &["z@example.test"]));
        ledger.settle(&done("a", &["x@example.test"]));
        ledger.settle(&done("b", &["z@example.test"]));
        drop(ledger);
        let (ledger, left) = Ledger::open(&path).unwrap();
        assert_eq!(left.len(), 1);
        assert_eq!(left[0].queue_id, "a");
        assert_eq!(left[0].rcpt_to, vec!["y@example.test"]);
        assert_eq!(ledger.unsettled(), 1);
    }

    #[test]
    fn the_file_is_emptied_once_everything_is_settled() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(LEDGER_FILE);
        let (ledger, _) = Ledger::open(&path).unwrap();
        ledger.note(&done("a", &["x@example.test"]));
        assert!(std::fs::metadata(&path).unwrap().len() > 0);
        ledger.settle(&done("a", &["x@example.test"]));
        assert_eq!(std::fs::metadata(&path).unwrap().len(), 0);
        assert_eq!(ledger.unsettled(), 0);
        drop(ledger);
        assert!(Ledger::open(&path).unwrap().1.is_empty());
    }

    #[test]
    fn a_torn_tail_is_dropped_and_the_whole_records_kept() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(LEDGER_FILE);
        let mut bytes = encode(Mark::Delivered, &done("a", &["x@example.test"]));
        let b = encode(Mark::Delivered, &done("b", &["y@example.test"]));
        bytes.extend_from_slice(&b[..b.len() - 3]);
        std::fs::write(&path, &bytes).unwrap();
        let (_, left) = Ledger::open(&path).unwrap();
        assert_eq!(left.len(), 1);
        assert_eq!(left[0].queue_id, "a");
        // A length no record can have is a damaged file, not a reason to allocate it.
        let mut huge = vec![Mark::Delivered as u8];
        huge.extend_from_slice(&u32::MAX.to_le_bytes());
        std::fs::write(&path, huge).unwrap();
        assert!(Ledger::open(&path).unwrap().1.is_empty());
    }

    #[test]
    fn a_long_run_keeps_the_file_small() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(LEDGER_FILE);
        let (ledger, _) = Ledger::open(&path).unwrap();
        // One delivery always in flight, so the file is never simply emptied.
        ledger.note(&done("pinned", &["p@example.test"]));
        for i in 0..40_000 {
            let d = done(&format!("q{i}"), &["someone@example.test"]);
            ledger.note(&d);
            ledger.settle(&d);
        }
        assert!(std::fs::metadata(&path).unwrap().len() <= COMPACT_AT + 4096);
        drop(ledger);
        let (_, left) = Ledger::open(&path).unwrap();
        assert_eq!(left.len(), 1);
        assert_eq!(left[0].queue_id, "pinned");
    }
}
