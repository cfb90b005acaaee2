//! Snapshots of the state machine: a consistent copy of the SQLite database (`VACUUM INTO`)
//! published under its id with an fsynced meta file, the newest one found again at open,
//! and a database replaced by a snapshot's (installing one, or `peage restore`).

use std::io::Write;
use std::path::{Path, PathBuf};

use openraft::{LogId, Snapshot, StorageError};
use rusqlite::{params, Connection};

use super::{schema, sm_err, snap_err, StateStore, DB_FILE, SNAPSHOT_DIR};
use crate::metrics::{observe, SNAPSHOT_BUILD_SECONDS, SNAPSHOT_BYTES};
use crate::snapshot_file::SnapshotFile;
use crate::types::{Membership, NodeId, SnapshotInfo, TypeConfig};

impl StateStore {
    pub(super) fn snapshot_dir(&self) -> PathBuf {
        self.inner.dir.join(SNAPSHOT_DIR)
    }

    /// The newest complete snapshot: its meta and database file.
    pub(super) fn latest_snapshot(
        &self,
    ) -> Result<Option<(SnapshotInfo, PathBuf)>, StorageError<NodeId>> {
        let mut best: Option<(SnapshotInfo, PathBuf)> = None;
        let dir = std::fs::read_dir(self.snapshot_dir()).map_err(snap_err)?;
        for item in dir {
            let path = item.map_err(snap_err)?.path();
            if path.extension().is_some_and(|e| e == "meta") {
                let text = std::fs::read(&path).map_err(snap_err)?;
                let Ok(meta) = serde_json::from_slice::<SnapshotInfo>(&text) else {
                    tracing::warn!(path = %path.display(), "ignoring unreadable snapshot meta");
                    continue;
                };
                let db = path.with_extension("db");
                if db.exists()
                    && best
                        .as_ref()
                        .is_none_or(|(b, _)| meta.last_log_id > b.last_log_id)
                {
                    best = Some((meta, db));
                }
            }
        }
        Ok(best)
    }

    /// Records a snapshot database under its id: data file first, meta last, both fsynced,
    /// so a meta file always names a complete snapshot. Older snapshots are removed.
    pub(super) fn publish_snapshot(
        &self,
        meta: &SnapshotInfo,
        file: &Path,
    ) -> Result<PathBuf, StorageError<NodeId>> {
        let dir = self.snapshot_dir();
        let db_path = dir.join(format!("{}.db", meta.snapshot_id));
        std::fs::rename(file, &db_path).map_err(snap_err)?;
        let meta_tmp = dir.join(format!("{}.meta.tmp", meta.snapshot_id));
        {
            let mut f = std::fs::File::create(&meta_tmp).map_err(snap_err)?;
            f.write_all(&serde_json::to_vec(meta).map_err(snap_err)?)
                .map_err(snap_err)?;
            f.sync_all().map_err(snap_err)?;
        }
        std::fs::rename(&meta_tmp, dir.join(format!("{}.meta", meta.snapshot_id)))
            .map_err(snap_err)?;
        sync_dir(&dir).map_err(snap_err)?;
        for item in std::fs::read_dir(&dir).map_err(snap_err)?.flatten() {
            let p = item.path();
            let stem = p.file_stem().and_then(|s| s.to_str()).unwrap_or("");
            let stem = stem.strip_suffix(".meta").unwrap_or(stem);
            if stem != meta.snapshot_id && !stem.starts_with("recv-") {
                let _ = std::fs::remove_file(&p);
            }
        }
        Ok(db_path)
    }

    /// Checks a snapshot file copied off a node (SQLite integrity, a log position, a
    /// membership) and makes it this store's database: disaster recovery (`peage restore`).
    pub fn restore_backup(&self, file: &Path) -> Result<(LogId<NodeId>, Membership), String> {
        let found = StateStore::read_backup(file)?;
        self.restore_from(file).map_err(|e| e.to_string())?;
        Ok(found)
    }

    /// The log position and membership a snapshot file covers, once it is known to be an
    /// intact Péage state database.
    pub fn read_backup(file: &Path) -> Result<(LogId<NodeId>, Membership), String> {
        let name = file.display();
        let conn = Connection::open_with_flags(file, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
            .map_err(|e| format!("cannot open {name}: {e}"))?;
        let check: String = conn
            .query_row("PRAGMA integrity_check", [], |r| r.get(0))
            .map_err(|e| format!("{name} is not a readable SQLite database: {e}"))?;
        if check != "ok" {
            return Err(format!("{name} is corrupt: {check}"));
        }
        let (last, membership) = schema::read_applied(&conn)
            .map_err(|e| format!("{name} is not a Péage snapshot: {e}"))?;
        let last = last.ok_or_else(|| format!("{name} covers no log entry: nothing to restore"))?;
        Ok((last, membership))
    }

    /// Replaces the database with a copy of a snapshot file (atomic rename) and reloads.
    pub(super) fn restore_from(&self, snapshot_db: &Path) -> Result<(), StorageError<NodeId>> {
        let path = self.inner.dir.join(DB_FILE);
        let tmp = self.inner.dir.join("state.sqlite.tmp");
        let mut db = self.lock_db();
        std::fs::copy(snapshot_db, &tmp).map_err(snap_err)?;
        std::fs::File::open(&tmp)
            .and_then(|f| f.sync_all())
            .map_err(snap_err)?;
        // Close the old connection before its file is replaced; its WAL belongs to the old
        // database and must not be replayed onto the new one.
        *db = Connection::open_in_memory().map_err(sm_err)?;
        for ext in ["-wal", "-shm"] {
            let _ = std::fs::remove_file(self.inner.dir.join(format!("{DB_FILE}{ext}")));
        }
        std::fs::rename(&tmp, &path).map_err(snap_err)?;
        sync_dir(&self.inner.dir).map_err(snap_err)?;
        *db = schema::open(&path).map_err(sm_err)?;
        let applied = schema::read_applied(&db).map_err(sm_err)?;
        drop(db);
        self.set_applied(applied);
        self.rebuild_indexes()
    }

    /// Builds a snapshot of what is applied now. The live database is checkpointed first:
    /// it must be durable up to here before openraft may purge the log the snapshot covers.
    pub(super) fn build_snapshot(&self) -> Result<Snapshot<TypeConfig>, StorageError<NodeId>> {
        let started = std::time::Instant::now();
        let dir = self.snapshot_dir();
        let tmp = dir.join(format!("build-{}.tmp", rand::random::<u64>()));
        let meta = {
            let db = self.lock_db();
            db.query_row("PRAGMA wal_checkpoint(FULL)", [], |_| Ok(()))
                .map_err(sm_err)?;
            let (last, membership) = schema::read_applied(&db).map_err(sm_err)?;
            db.execute("VACUUM INTO ?1", params![tmp.to_string_lossy()])
                .map_err(snap_err)?;
            let snapshot_id = match last {
                Some(l) => format!(
                    "snap-{}-{}-{}",
                    l.leader_id.term,
                    l.index,
                    rand::random::<u32>()
                ),
                None => format!("snap-empty-{}", rand::random::<u32>()),
            };
            SnapshotInfo {
                last_log_id: last,
                last_membership: membership,
                snapshot_id,
            }
        };
        std::fs::File::open(&tmp)
            .and_then(|f| f.sync_all())
            .map_err(snap_err)?;
        let path = self.publish_snapshot(&meta, &tmp)?;
        let file = SnapshotFile::open_blocking(&path).map_err(snap_err)?;
        tracing::info!(snapshot = %meta.snapshot_id, bytes = file.len(), "snapshot built");
        observe(SNAPSHOT_BUILD_SECONDS, started.elapsed());
        metrics::gauge!(SNAPSHOT_BYTES).set(file.len() as f64);
        Ok(Snapshot {
            meta,
            snapshot: Box::new(file),
        })
    }
}

fn sync_dir(dir: &Path) -> std::io::Result<()> {
    std::fs::File::open(dir)?.sync_all()
}
