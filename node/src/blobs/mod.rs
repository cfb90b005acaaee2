//! The content-addressed blob store beside the state database: message bodies, named by
//! their SHA-256, immutable, made durable through the body journal (one sync for the bodies
//! of concurrent sessions) and read from memory until its checkpoint makes files of those
//! still needed; read back only when they still match their name; swept once no record
//! needs them.

mod journal;
mod layout;
mod pending;

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use journal::Journal;
use layout::{blob_path, check_hash, TMP_DIR};
pub use layout::{is_shard, sha256_hex, BlobError};

/// A cheap-to-clone handle on one node's blob directory.
#[derive(Clone)]
pub struct BlobStore {
    /// `DATA_DIR/blobs`; files live in `xx/<hash>` by the hash's first two hex digits.
    dir: Arc<PathBuf>,
    journal: Arc<Journal>,
}

/// What a sweep removed.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Swept {
    pub files: u64,
    pub bytes: u64,
}

impl BlobStore {
    /// Opens the store: temporary files a crash left behind (no write is in progress
    /// before the store is open) are removed, and bodies it lost are written again from
    /// the journal.
    pub fn open(dir: &Path) -> std::io::Result<BlobStore> {
        let tmp = dir.join(TMP_DIR);
        std::fs::create_dir_all(&tmp)?;
        for entry in std::fs::read_dir(&tmp)?.flatten() {
            let _ = std::fs::remove_file(entry.path());
        }
        Ok(BlobStore {
            dir: Arc::new(dir.to_owned()),
            journal: Arc::new(Journal::open(dir)?),
        })
    }

    fn path(&self, hash: &str) -> PathBuf {
        blob_path(&self.dir, hash)
    }

    pub fn has(&self, hash: &str) -> bool {
        check_hash(hash).is_ok()
            && (self.journal.pending().get(hash).is_some() || self.path(hash).exists())
    }

    /// Stores `bytes` under `hash` (which it must match) durably for the message `claim`
    /// (its queue id): when this returns, the blob survives a crash. Storing an existing
    /// blob marks it as just written (a new message with the same content needs it: the
    /// sweep's grace starts again). Until `finished` withdraws the claim, the body is kept.
    pub async fn put(
        &self,
        hash: String,
        bytes: Arc<Vec<u8>>,
        claim: Option<String>,
    ) -> Result<(), BlobError> {
        check_hash(&hash)?;
        self.journal
            .submit(hash, bytes, claim)
            .await
            .map_err(|_| BlobError::Io(std::io::Error::other("the body journal has stopped")))?
    }

    /// (syncs, bodies) of the body journal since the store opened.
    pub fn journal_totals(&self) -> (u64, u64) {
        self.journal.totals()
    }

    /// Bytes of bodies held in memory until their journal checkpoint.
    pub fn journal_pending_bytes(&self) -> u64 {
        self.journal.pending().bytes()
    }

    /// An apply added (`present`) or removed the record of message `queue_id`, whose body is
    /// `hash`: a body still in the journal is kept while some message's record needs it (a
    /// released part of a held message is a new record on the same body), and one no
    /// message needs by its journal checkpoint never becomes a file.
    pub fn record(&self, queue_id: &str, hash: &str, present: bool) {
        let pending = self.journal.pending();
        match present {
            true => pending.claim_if_journaled(queue_id, hash),
            false => pending.finished(queue_id, hash),
        }
    }

    /// As `put` for no named message, from a thread that may block (never from async code).
    pub fn put_blocking(&self, hash: &str, bytes: &[u8]) -> Result<(), BlobError> {
        check_hash(hash)?;
        self.journal
            .submit(hash.to_owned(), Arc::new(bytes.to_vec()), None)
            .blocking_recv()
            .map_err(|_| BlobError::Io(std::io::Error::other("the body journal has stopped")))?
    }

    /// The body stored under `hash`, if there is one and it still matches its hash: a file
    /// damaged on disk is removed and reported as missing, so it is fetched again from a
    /// holder rather than delivered or served corrupt.
    pub async fn get(&self, hash: &str) -> Result<Option<Vec<u8>>, BlobError> {
        check_hash(hash)?;
        // Checked against its hash when it was journaled.
        if let Some(bytes) = self.journal.pending().get(hash) {
            return Ok(Some(bytes.to_vec()));
        }
        let path = self.path(hash);
        let bytes = match tokio::fs::read(&path).await {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e.into()),
        };
        let (hash, checked) = (hash.to_owned(), bytes);
        let intact = tokio::task::spawn_blocking(move || {
            let ok = sha256_hex(&checked) == hash;
            (ok, checked)
        })
        .await
        .map_err(|e| BlobError::Io(std::io::Error::other(e)))?;
        match intact {
            (true, bytes) => Ok(Some(bytes)),
            (false, _) => {
                tracing::error!(path = %path.display(), "a stored body does not match its hash; removed");
                let _ = tokio::fs::remove_file(&path).await;
                Ok(None)
            }
        }
    }
}

impl BlobStore {
    /// Removes the bodies not in `keep` that were last written more than `grace` ago, and
    /// temporary files as old. `keep` must come from a current replica, and `grace` must
    /// outlast the time from a body's write to its record's commit: a body written for a
    /// message whose record is not committed yet is younger than that.
    pub fn sweep_blocking(
        &self,
        keep: &HashSet<String>,
        grace: Duration,
    ) -> std::io::Result<Swept> {
        let before = SystemTime::now() - grace;
        let mut swept = Swept::default();
        for shard in std::fs::read_dir(self.dir.as_path())?.flatten() {
            let name = shard.file_name();
            let temporary = name == TMP_DIR;
            // The journal is not swept: its checkpoints remove its segments.
            if !(temporary || is_shard(&name)) || !shard.path().is_dir() {
                continue;
            }
            for entry in std::fs::read_dir(shard.path())?.flatten() {
                let name = entry.file_name().to_string_lossy().into_owned();
                if !temporary && keep.contains(&name) {
                    continue;
                }
                let Ok(meta) = entry.metadata() else { continue };
                if meta.modified().is_ok_and(|m| m < before)
                    && std::fs::remove_file(entry.path()).is_ok()
                {
                    swept.files += 1;
                    swept.bytes += meta.len();
                }
            }
        }
        Ok(swept)
    }

    /// How many bodies and bytes the store holds.
    pub fn usage_blocking(&self) -> std::io::Result<Swept> {
        let mut usage = Swept::default();
        for shard in std::fs::read_dir(self.dir.as_path())?.flatten() {
            if !is_shard(&shard.file_name()) || !shard.path().is_dir() {
                continue;
            }
            for entry in std::fs::read_dir(shard.path())?.flatten() {
                usage.files += 1;
                usage.bytes += entry.metadata().map_or(0, |m| m.len());
            }
        }
        Ok(usage)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Waits (20 s at most) for the journal's idle checkpoint to have made files of `hashes`.
    fn checkpointed(store: &BlobStore, hashes: &[String]) {
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        while hashes
            .iter()
            .any(|h| store.journal.pending().get(h).is_some())
        {
            assert!(std::time::Instant::now() < deadline, "no checkpoint");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    #[tokio::test]
    async fn put_get_and_refuse_bad_input() {
        let dir = tempfile::tempdir().unwrap();
        let store = BlobStore::open(dir.path()).unwrap();
        let body = Arc::new(b"hello".to_vec());
        let h = sha256_hex(&body);
        store.put(h.clone(), body.clone(), None).await.unwrap();
        store.put(h.clone(), body.clone(), None).await.unwrap();
        assert!(store.has(&h));
        assert_eq!(store.get(&h).await.unwrap().unwrap(), *body);
        let s = store.clone();
        let hashes = [h.clone()];
        tokio::task::spawn_blocking(move || checkpointed(&s, &hashes))
            .await
            .unwrap();
        assert!(store.has(&h), "a file now");
        assert_eq!(store.get(&h).await.unwrap().unwrap(), *body);
        assert!(matches!(
            store
                .put(h.clone(), Arc::new(b"other".to_vec()), None)
                .await,
            Err(BlobError::Mismatch(_))
        ));
        assert!(matches!(
            store.get("../../etc/passwd").await,
            Err(BlobError::BadHash(_))
        ));
        assert!(store.get(&sha256_hex(b"absent")).await.unwrap().is_none());
    }

    /// Sessions accepting the same content at once (a campaign, a mailing list) all store
    /// it: every writer succeeds, into a shard directory none of them found, the body is
    /// whole, there is one file and no temporary file is left.
    #[test]
    fn concurrent_writers_of_one_body_into_a_new_shard_all_succeed() {
        let dir = tempfile::tempdir().unwrap();
        let store = BlobStore::open(dir.path()).unwrap();
        let body = vec![b'x'; 200_000];
        let h = sha256_hex(&body);
        std::thread::scope(|s| {
            let writers: Vec<_> = (0..16)
                .map(|_| s.spawn(|| store.put_blocking(&h, &body)))
                .collect();
            for w in writers {
                w.join().unwrap().unwrap();
            }
        });
        checkpointed(&store, std::slice::from_ref(&h));
        let shard = dir.path().join(&h[..2]);
        let files: Vec<_> = std::fs::read_dir(&shard).unwrap().flatten().collect();
        assert_eq!(files.len(), 1, "{files:?}");
        assert_eq!(std::fs::read(store.path(&h)).unwrap(), body);
        let left: Vec<_> = std::fs::read_dir(dir.path().join("tmp"))
            .unwrap()
            .flatten()
            .collect();
        assert!(left.is_empty(), "temporary files left: {left:?}");
    }

    #[test]
    fn a_sweep_keeps_what_is_referenced_or_young_and_a_corrupt_body_is_gone() {
        let dir = tempfile::tempdir().unwrap();
        let store = BlobStore::open(dir.path()).unwrap();
        let (kept, young, old) = (b"kept".to_vec(), b"young".to_vec(), b"old".to_vec());
        let hashes: Vec<String> = [&kept, &young, &old].map(|b| sha256_hex(b)).into();
        for b in [&kept, &young, &old] {
            store.put_blocking(&sha256_hex(b), b).unwrap();
        }
        checkpointed(&store, &hashes);
        let long_ago = SystemTime::now() - Duration::from_secs(3600);
        for b in [&kept, &old] {
            let path = store.path(&sha256_hex(b));
            std::fs::File::options()
                .write(true)
                .open(path)
                .unwrap()
                .set_modified(long_ago)
                .unwrap();
        }
        let keep = HashSet::from([sha256_hex(&kept)]);
        let swept = store
            .sweep_blocking(&keep, Duration::from_secs(60))
            .unwrap();
        assert_eq!(swept, Swept { files: 1, bytes: 3 });
        assert!(store.has(&sha256_hex(&kept)) && store.has(&sha256_hex(&young)));
        assert!(!store.has(&sha256_hex(&old)));
        // Putting an old body again makes it young: a new message needs it.
        store.put_blocking(&sha256_hex(&old), &old).unwrap();
        checkpointed(&store, &hashes);
        let swept = store
            .sweep_blocking(&keep, Duration::from_secs(60))
            .unwrap();
        assert_eq!(swept.files, 0);
        // A body damaged on disk is not served, and is gone.
        let h = sha256_hex(&young);
        std::fs::write(store.path(&h), b"damaged").unwrap();
        let runtime = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        assert!(runtime.block_on(store.get(&h)).unwrap().is_none());
        assert!(!store.has(&h));
        assert_eq!(store.usage_blocking().unwrap().files, 2);
    }
}
