//! The body journal on its own: batches, checkpoints, and the replay after a crash.

use super::*;
use crate::blobs::layout::{sha256_hex, TMP_DIR};

fn writer_in(dir: &Path) -> Writer {
    std::fs::create_dir_all(dir.join(TMP_DIR)).unwrap();
    std::fs::create_dir_all(dir.join(JOURNAL_DIR)).unwrap();
    Writer::new(dir)
}

type Answer = oneshot::Receiver<Result<(), BlobError>>;

fn request(body: &[u8], hash: &str, claim: Option<&str>) -> (Request, Answer) {
    let (reply, done) = oneshot::channel();
    let r = Request {
        hash: hash.to_owned(),
        bytes: Arc::new(body.to_vec()),
        claim: claim.map(str::to_owned),
        reply,
    };
    (r, done)
}

/// Stores `bodies` in one batch, each for the message named by its index.
fn store(writer: &mut Writer, bodies: &[Vec<u8>]) {
    let (mut batch, mut answers) = (Vec::new(), Vec::new());
    for (i, b) in bodies.iter().enumerate() {
        let (r, done) = request(b, &sha256_hex(b), Some(&i.to_string()));
        batch.push(r);
        answers.push(done);
    }
    writer.store_batch(batch);
    for mut a in answers {
        a.try_recv().unwrap().unwrap();
    }
}

/// Ten sessions' bodies handed over together are made durable by one sync of one
/// segment, and readable at once; a body that does not match its name is refused alone.
#[test]
fn one_sync_makes_a_whole_batch_durable_and_a_bad_body_fails_alone() {
    let dir = tempfile::tempdir().unwrap();
    let mut writer = writer_in(dir.path());
    let bodies: Vec<Vec<u8>> = (0..10).map(|i| format!("body {i}").into_bytes()).collect();
    let (mut batch, mut answers) = (Vec::new(), Vec::new());
    for b in &bodies {
        let (r, done) = request(b, &sha256_hex(b), Some("A"));
        batch.push(r);
        answers.push(done);
    }
    let (bad, bad_answer) = request(b"forged", &sha256_hex(b"other"), Some("A"));
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
        assert_eq!(writer.pending.get(&sha256_hex(b)).as_deref(), Some(b));
    }
    assert!(writer.pending.get(&sha256_hex(b"other")).is_none());
}

/// Four bodies of 3,000 bytes journaled in one batch, for messages "0" to "3".
fn four_stored() -> (tempfile::TempDir, Writer, Vec<Vec<u8>>) {
    let dir = tempfile::tempdir().unwrap();
    let mut writer = writer_in(dir.path());
    let bodies: Vec<Vec<u8>> = (0..4).map(|i| vec![b'a' + i; 3000]).collect();
    store(&mut writer, &bodies);
    (dir, writer, bodies)
}

/// At the checkpoint, the bodies still needed become files and the others never do;
/// either way the segment goes and memory lets them go.
#[test]
fn the_checkpoint_places_only_the_bodies_a_message_still_needs() {
    let (dir, mut writer, bodies) = four_stored();
    // Messages 0 and 1 delivered before the checkpoint; 2 and 3 still queued.
    writer.pending.finished("0", &sha256_hex(&bodies[0]));
    writer.pending.finished("1", &sha256_hex(&bodies[1]));
    let segment = writer.segment.take().unwrap();
    checkpoint(dir.path(), &writer.pending, &segment);
    let path = |b: &Vec<u8>| blob_path(dir.path(), &sha256_hex(b));
    assert!(!path(&bodies[0]).exists() && !path(&bodies[1]).exists());
    assert!(holds(&path(&bodies[2]), &bodies[2]) && holds(&path(&bodies[3]), &bodies[3]));
    assert!(
        !segment.path.exists(),
        "the checkpointed segment is deleted"
    );
    assert!(bodies
        .iter()
        .all(|b| writer.pending.get(&sha256_hex(b)).is_none()));
}

/// A crash before the checkpoint loses nothing acknowledged: the next open writes every
/// body of the segment as a file (those finished too: the sweep removes them later),
/// mends a damaged or empty file, ignores a torn tail and deletes the segment.
#[test]
fn the_next_open_restores_what_a_crash_lost_before_the_checkpoint() {
    let (dir, mut writer, bodies) = four_stored();
    writer.pending.finished("0", &sha256_hex(&bodies[0]));
    let segment = writer.segment.take().unwrap().path;
    let path = |b: &Vec<u8>| blob_path(dir.path(), &sha256_hex(b));
    for (b, left) in [(&bodies[1], vec![]), (&bodies[2], vec![0u8; 3000])] {
        std::fs::create_dir_all(path(b).parent().unwrap()).unwrap();
        std::fs::write(path(b), left).unwrap();
    }
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
