//! The Raft log, vote and committed index in RocksDB. Appends and the vote are fsynced before
//! openraft is told they are durable; every RocksDB call runs on the blocking pool.

use std::fmt::Debug;
use std::ops::{Bound, RangeBounds};
use std::path::Path;
use std::sync::Arc;

use openraft::storage::{LogFlushed, RaftLogStorage};
use openraft::{
    AnyError, Entry, LogId, LogState, RaftLogReader, StorageError, StorageIOError, Vote,
};
use rocksdb::{ColumnFamilyDescriptor, FlushOptions, Options, WriteBatch, WriteOptions, DB};

use crate::types::{NodeId, TypeConfig};

const CF_LOGS: &str = "logs";
const CF_META: &str = "meta";
const KEY_VOTE: &[u8] = b"vote";
const KEY_COMMITTED: &[u8] = b"committed";
const KEY_PURGED: &[u8] = b"last_purged";

/// A cheap-to-clone handle on the RocksDB log; the reader openraft asks for is the same handle.
#[derive(Clone)]
pub struct LogStore {
    /// Shared with the blocking tasks that do the I/O.
    db: Arc<DB>,
}

fn index_key(index: u64) -> [u8; 8] {
    // Big-endian so that RocksDB's byte order is log order.
    index.to_be_bytes()
}

fn key_index(key: &[u8]) -> u64 {
    let mut b = [0u8; 8];
    b.copy_from_slice(&key[..8]);
    u64::from_be_bytes(b)
}

fn read_err(e: impl std::error::Error + 'static) -> StorageError<NodeId> {
    StorageError::from(StorageIOError::read_logs(AnyError::new(&e)))
}

fn write_err(e: impl std::error::Error + 'static) -> StorageError<NodeId> {
    StorageError::from(StorageIOError::write_logs(AnyError::new(&e)))
}

fn synced() -> WriteOptions {
    let mut w = WriteOptions::default();
    w.set_sync(true);
    w
}

/// The log is written once, read back soon after and purged behind each snapshot: small
/// memtables (RocksDB's default is 64 MiB each, two per family) keep a node's memory from
/// growing with the write rate, at the cost of more, smaller flushes.
fn column_family_options() -> Options {
    let mut cf = Options::default();
    cf.set_write_buffer_size(8 << 20);
    cf.set_max_write_buffer_number(2);
    cf
}

/// Why the Raft log under `data_dir` did not open, in words that say what to do.
pub fn open_error(data_dir: &Path, e: rocksdb::Error) -> anyhow::Error {
    let dir = data_dir.display();
    match e.kind() {
        rocksdb::ErrorKind::Corruption => anyhow::anyhow!(
            "the Raft log in {dir} is damaged, and this node cannot rebuild it (its votes and \
             entries are the cluster's): keep the directory for analysis and replace the node \
             under a new id (RUNBOOK, \"Replacing a dead site\"): {e}"
        ),
        _ if e.to_string().contains("lock") => anyhow::anyhow!(
            "cannot open the Raft log in {dir}: is another node using this data dir? {e}"
        ),
        _ => anyhow::anyhow!("cannot open the Raft log in {dir}: {e}"),
    }
}

/// RocksDB info log files kept besides the current one.
const KEPT_INFO_LOGS: usize = 5;

impl LogStore {
    pub fn open(dir: &Path) -> Result<LogStore, rocksdb::Error> {
        let mut opts = Options::default();
        opts.create_if_missing(true);
        opts.create_missing_column_families(true);
        // The small `meta` family is rarely flushed on its own, and its unflushed writes pin
        // every write-ahead log file since: past this total, RocksDB flushes it so that old
        // log files can go.
        opts.set_max_total_wal_size(16 << 20);
        // RocksDB's own info log (`LOG`) takes a statistics dump every 10 minutes, some
        // 1.2 MB a day, and is kept whole with a thousand old ones: rotated at 1 MiB, a few
        // kept, it stays under 6 MiB however long the node runs and however often it starts.
        opts.set_max_log_file_size(1 << 20);
        opts.set_keep_log_file_num(KEPT_INFO_LOGS);
        let cfs = [CF_LOGS, CF_META]
            .into_iter()
            .map(|name| ColumnFamilyDescriptor::new(name, column_family_options()));
        let db = DB::open_cf_descriptors(&opts, dir, cfs)?;
        Ok(LogStore { db: Arc::new(db) })
    }

    async fn blocking<T: Send + 'static>(
        &self,
        f: impl FnOnce(&DB) -> Result<T, StorageError<NodeId>> + Send + 'static,
    ) -> Result<T, StorageError<NodeId>> {
        let db = self.db.clone();
        tokio::task::spawn_blocking(move || f(&db))
            .await
            .map_err(|e| StorageError::from(StorageIOError::read_logs(AnyError::new(&e))))?
    }

    fn get_meta<T: serde::de::DeserializeOwned>(
        db: &DB,
        key: &[u8],
    ) -> Result<Option<T>, StorageError<NodeId>> {
        let cf = db
            .cf_handle(CF_META)
            .expect("meta column family is created at open");
        match db.get_cf(cf, key).map_err(read_err)? {
            None => Ok(None),
            Some(bytes) => bincode::deserialize(&bytes).map(Some).map_err(read_err),
        }
    }

    fn put_meta<T: serde::Serialize>(
        db: &DB,
        key: &[u8],
        value: &T,
        sync: bool,
    ) -> Result<(), StorageError<NodeId>> {
        let cf = db
            .cf_handle(CF_META)
            .expect("meta column family is created at open");
        let bytes = bincode::serialize(value).map_err(write_err)?;
        let opts = if sync {
            synced()
        } else {
            WriteOptions::default()
        };
        db.put_cf_opt(cf, key, bytes, &opts).map_err(write_err)
    }

    fn last_entry_log_id(db: &DB) -> Result<Option<LogId<NodeId>>, StorageError<NodeId>> {
        let cf = db
            .cf_handle(CF_LOGS)
            .expect("logs column family is created at open");
        let mut it = db.iterator_cf(cf, rocksdb::IteratorMode::End);
        match it.next() {
            None => Ok(None),
            Some(item) => {
                let (_, value) = item.map_err(read_err)?;
                let entry: Entry<TypeConfig> = bincode::deserialize(&value).map_err(read_err)?;
                Ok(Some(entry.log_id))
            }
        }
    }
}

impl RaftLogReader<TypeConfig> for LogStore {
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + Send>(
        &mut self,
        range: RB,
    ) -> Result<Vec<Entry<TypeConfig>>, StorageError<NodeId>> {
        let start = match range.start_bound() {
            Bound::Included(&i) => i,
            Bound::Excluded(&i) => i + 1,
            Bound::Unbounded => 0,
        };
        let end = match range.end_bound() {
            Bound::Included(&i) => Some(i + 1),
            Bound::Excluded(&i) => Some(i),
            Bound::Unbounded => None,
        };
        self.blocking(move |db| {
            let cf = db
                .cf_handle(CF_LOGS)
                .expect("logs column family is created at open");
            let from = index_key(start);
            let mode = rocksdb::IteratorMode::From(&from, rocksdb::Direction::Forward);
            let mut out = Vec::new();
            for item in db.iterator_cf(cf, mode) {
                let (key, value) = item.map_err(read_err)?;
                if end.is_some_and(|end| key_index(&key) >= end) {
                    break;
                }
                out.push(bincode::deserialize(&value).map_err(read_err)?);
            }
            Ok(out)
        })
        .await
    }
}

impl RaftLogStorage<TypeConfig> for LogStore {
    type LogReader = LogStore;

    async fn get_log_state(&mut self) -> Result<LogState<TypeConfig>, StorageError<NodeId>> {
        self.blocking(|db| {
            let last_purged_log_id: Option<LogId<NodeId>> = Self::get_meta(db, KEY_PURGED)?;
            let last_log_id = Self::last_entry_log_id(db)?.or(last_purged_log_id);
            Ok(LogState {
                last_purged_log_id,
                last_log_id,
            })
        })
        .await
    }

    async fn get_log_reader(&mut self) -> Self::LogReader {
        self.clone()
    }

    async fn save_vote(&mut self, vote: &Vote<NodeId>) -> Result<(), StorageError<NodeId>> {
        let vote = *vote;
        // The vote is fsynced before we return: a node must never vote twice in a term.
        self.blocking(move |db| {
            Self::put_meta(db, KEY_VOTE, &vote, true)
                .map_err(|e| StorageError::from(StorageIOError::write_vote(AnyError::new(&e))))
        })
        .await
    }

    async fn read_vote(&mut self) -> Result<Option<Vote<NodeId>>, StorageError<NodeId>> {
        self.blocking(|db| Self::get_meta(db, KEY_VOTE)).await
    }

    async fn save_committed(
        &mut self,
        committed: Option<LogId<NodeId>>,
    ) -> Result<(), StorageError<NodeId>> {
        // Not fsynced: a lost committed index is recomputed from the log after a restart.
        self.blocking(move |db| Self::put_meta(db, KEY_COMMITTED, &committed, false))
            .await
    }

    async fn read_committed(&mut self) -> Result<Option<LogId<NodeId>>, StorageError<NodeId>> {
        self.blocking(
            |db| Ok(Self::get_meta::<Option<LogId<NodeId>>>(db, KEY_COMMITTED)?.flatten()),
        )
        .await
    }

    async fn append<I>(
        &mut self,
        entries: I,
        callback: LogFlushed<TypeConfig>,
    ) -> Result<(), StorageError<NodeId>>
    where
        I: IntoIterator<Item = Entry<TypeConfig>> + Send,
        I::IntoIter: Send,
    {
        let mut batch = WriteBatch::default();
        {
            let cf = self
                .db
                .cf_handle(CF_LOGS)
                .expect("logs column family is created at open");
            for entry in entries {
                let bytes = bincode::serialize(&entry).map_err(write_err)?;
                batch.put_cf(cf, index_key(entry.log_id.index), bytes);
            }
        }
        // One synced write batch per append: one fsync for the whole batch, done before
        // openraft hears that the entries are durable.
        let result = self
            .blocking(move |db| db.write_opt(batch, &synced()).map_err(write_err))
            .await;
        match result {
            Ok(()) => {
                callback.log_io_completed(Ok(()));
                Ok(())
            }
            Err(e) => {
                callback.log_io_completed(Err(std::io::Error::other(e.to_string())));
                Err(e)
            }
        }
    }

    async fn truncate(&mut self, log_id: LogId<NodeId>) -> Result<(), StorageError<NodeId>> {
        self.blocking(move |db| {
            let cf = db
                .cf_handle(CF_LOGS)
                .expect("logs column family is created at open");
            let mut batch = WriteBatch::default();
            batch.delete_range_cf(cf, index_key(log_id.index), index_key(u64::MAX));
            // Synced: entries that conflict with the leader must not come back after a crash.
            db.write_opt(batch, &synced()).map_err(write_err)
        })
        .await
    }

    async fn purge(&mut self, log_id: LogId<NodeId>) -> Result<(), StorageError<NodeId>> {
        self.blocking(move |db| {
            // Record the purge point first: a crash between the two leaves extra entries,
            // which is harmless, never a gap.
            Self::put_meta(db, KEY_PURGED, &log_id, true)?;
            let cf = db
                .cf_handle(CF_LOGS)
                .expect("logs column family is created at open");
            let mut batch = WriteBatch::default();
            let (from, to) = (index_key(0), index_key(log_id.index + 1));
            batch.delete_range_cf(cf, from, to);
            db.write_opt(batch, &WriteOptions::default())
                .map_err(write_err)?;
            // The write-ahead log holds every entry written since the last flush, purged or
            // not, up to `max_total_wal_size`: flushing both families lets it go, so that a
            // drained node keeps about what it still needs (a soak left 9.4 MB of log).
            let meta = db
                .cf_handle(CF_META)
                .expect("meta column family is created at open");
            db.flush_cfs_opt(&[cf, meta], &FlushOptions::default())
                .map_err(write_err)?;
            // A range deletion only hides the entries: their files stay on disk until a
            // compaction meets them, which a log written at one end may never do. Compacting
            // the purged range gives the space back (a soak of 200,000 messages left 100 MB).
            db.compact_range_cf(cf, Some(from), Some(to));
            Ok(())
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rocksdbs_own_info_log_stays_bounded_over_restarts() {
        let dir = tempfile::tempdir().unwrap();
        for _ in 0..(KEPT_INFO_LOGS + 4) {
            drop(LogStore::open(dir.path()).unwrap());
        }
        let info_logs = std::fs::read_dir(dir.path())
            .unwrap()
            .flatten()
            .filter(|f| f.file_name().to_string_lossy().starts_with("LOG"))
            .count();
        assert!(
            (2..=KEPT_INFO_LOGS).contains(&info_logs),
            "{info_logs} info log files"
        );
        let options = std::fs::read_dir(dir.path())
            .unwrap()
            .flatten()
            .filter(|f| f.file_name().to_string_lossy().starts_with("OPTIONS-"))
            .map(|f| std::fs::read_to_string(f.path()).unwrap())
            .next()
            .unwrap();
        assert!(options.contains("max_log_file_size=1048576"), "{options}");
    }

    #[test]
    fn a_damaged_log_and_a_log_in_use_are_told_apart() {
        let data = tempfile::tempdir().unwrap();
        let dir = data.path().join("raft-log");
        let open = LogStore::open(&dir).unwrap();
        let in_use = LogStore::open(&dir).map(|_| ()).unwrap_err();
        let said = open_error(data.path(), in_use).to_string();
        assert!(said.contains("another node"), "{said}");
        drop(open);

        let manifest = std::fs::read_dir(&dir)
            .unwrap()
            .flatten()
            .find(|f| f.file_name().to_string_lossy().starts_with("MANIFEST-"))
            .unwrap()
            .path();
        let mut bytes = std::fs::read(&manifest).unwrap();
        bytes[10..60].fill(0xff);
        std::fs::write(&manifest, bytes).unwrap();
        let damaged = LogStore::open(&dir).map(|_| ()).unwrap_err();
        let said = open_error(data.path(), damaged).to_string();
        assert!(
            said.contains("is damaged") && said.contains("Replacing a dead site"),
            "{said}"
        );
    }
}
