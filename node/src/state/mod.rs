//! The replicated data model: the `StateStore` handle on the SQLite state machine and the
//! in-memory indexes rebuilt from it.
//!
//! Each applied batch of log entries is one SQLite transaction that also records
//! `last_applied` and the membership (`machine`). The database runs `synchronous=NORMAL`:
//! what a crash loses is replayed from the Raft log, and a snapshot checkpoints (fsyncs) the
//! database before openraft may purge the entries it covers (`snapshot`). Each table family
//! (`list_entries`, `routing`, `policy`, `spool`, `digests_sent`, `bayes`, `logistic`,
//! `evidence`) owns its commands' apply and its reads; `apply` dispatches to them,
//! `knowledge` holds the indexes the filter reads, `spool_index` the spool in memory,
//! `queries` and `digest` the read API.

pub mod addressing;
mod apply;
pub mod audit;
mod bayes;
pub mod callouts;
pub mod digest;
pub mod digests_sent;
pub mod dkim_keys;
mod evidence;
mod knowledge;
pub mod list_entries;
pub mod locks;
mod logistic;
mod machine;
mod policy;
pub mod portal_key;
mod queries;
pub mod recipients;
pub mod routing;
mod schema;
mod snapshot;
pub mod spool;
mod spool_index;
pub mod sql;
pub mod tokens;
pub mod users;

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard, RwLock};

use openraft::{AnyError, LogId, StorageError, StorageIOError};
use rusqlite::Connection;

use peage_mail::lists::ListIndex;
use peage_mail::sync::{lock, read, write};

use crate::sqlite_file;
use crate::types::{Membership, NodeId};
pub use knowledge::{
    domain_of, Account, ClusterPolicy, DigestLang, DigestSchedule, DkimKey, DmarcAction,
    DomainRoute, IdentityFrom, Indexes, Verify, ANY_HOSTED_DOMAIN,
};
pub use spool_index::{Lapsed, SpoolCounts, SpoolIndex};

const DB_FILE: &str = "state.sqlite";
const SNAPSHOT_DIR: &str = "snapshots";

/// A cheap-to-clone handle on the state machine, shared by openraft and the admin service.
#[derive(Clone)]
pub struct StateStore {
    inner: Arc<Inner>,
}

struct Inner {
    /// The node's data directory; the database and snapshots live under it.
    dir: PathBuf,
    /// The one connection; only used on the blocking pool, and swapped on snapshot install.
    db: Mutex<Connection>,
    /// What filtering, relay control and `list check` read, kept in step with every apply.
    indexes: Indexes,
    /// The spool's rows, kept in step with every apply like `indexes`.
    spool: SpoolIndex,
    /// The last applied log id and membership, readable without touching SQLite.
    applied: RwLock<(Option<LogId<NodeId>>, Membership)>,
}

/// A storage failure of the state machine, as openraft wants it.
fn sm_err(e: impl std::error::Error + 'static) -> StorageError<NodeId> {
    StorageError::from(StorageIOError::write_state_machine(AnyError::new(&e)))
}

/// A storage failure of a snapshot, as openraft wants it.
fn snap_err(e: impl std::error::Error + 'static) -> StorageError<NodeId> {
    StorageError::from(StorageIOError::write_snapshot(None, AnyError::new(&e)))
}

impl StateStore {
    /// Opens (or creates) the state under `dir`, migrating the schema. If the latest snapshot
    /// is ahead of the database (a crash lost the database's tail after the log was purged),
    /// the database is restored from that snapshot.
    pub fn open(dir: &Path) -> Result<StateStore, StorageError<NodeId>> {
        std::fs::create_dir_all(dir.join(SNAPSHOT_DIR)).map_err(sm_err)?;
        remove_leftovers(dir);
        let path = dir.join(DB_FILE);
        // The state is the Raft log's to rebuild (from the local snapshot, the log, or the
        // leader's snapshot): a damaged file is set aside rather than keep the node down.
        let (conn, applied) = match schema::open_checked(&path) {
            Err(e) if sqlite_file::unreadable(&e) => {
                let kept = sqlite_file::set_aside(&path).map_err(sm_err)?;
                tracing::error!(error = %e, kept = %kept.display(), "the state database cannot be read: kept aside, the state is rebuilt from the snapshot and the Raft log");
                schema::open_checked(&path).map_err(sm_err)?
            }
            opened => opened.map_err(sm_err)?,
        };
        let store = StateStore {
            inner: Arc::new(Inner {
                dir: dir.to_owned(),
                db: Mutex::new(conn),
                indexes: Indexes::default(),
                spool: SpoolIndex::default(),
                applied: RwLock::new(applied),
            }),
        };
        match store.latest_snapshot()? {
            Some((meta, path)) if meta.last_log_id > store.applied().0 => {
                if let Err(e) = sqlite_file::check_file(&path) {
                    // Without it the log rebuilds the state, or the leader sends its own.
                    let kept = sqlite_file::set_aside(&path).map_err(sm_err)?;
                    tracing::error!(error = %e, kept = %kept.display(), "the latest snapshot cannot be read: kept aside");
                    store.rebuild_indexes()?;
                } else {
                    tracing::warn!(snapshot = ?meta.last_log_id, "state database is behind its snapshot; restoring it");
                    // Restoring rebuilds the indexes too.
                    store.restore_from(&path)?;
                }
            }
            _ => store.rebuild_indexes()?,
        }
        Ok(store)
    }

    fn lock_db(&self) -> MutexGuard<'_, Connection> {
        lock(&self.inner.db)
    }

    pub fn applied(&self) -> (Option<LogId<NodeId>>, Membership) {
        read(&self.inner.applied).clone()
    }

    pub fn applied_index(&self) -> u64 {
        self.applied().0.map_or(0, |l| l.index)
    }

    fn set_applied(&self, applied: (Option<LogId<NodeId>>, Membership)) {
        *write(&self.inner.applied) = applied;
    }

    /// The in-memory indexes: what the filter and relay control read, never waiting.
    pub fn indexes(&self) -> &Indexes {
        &self.inner.indexes
    }

    /// The spool in memory: what delivery, `/metrics` and the queue listing read.
    pub fn spool(&self) -> &SpoolIndex {
        &self.inner.spool
    }

    /// Runs `f` on the blocking pool: SQLite calls block.
    async fn blocking<T: Send + 'static>(
        &self,
        f: impl FnOnce(&StateStore) -> Result<T, StorageError<NodeId>> + Send + 'static,
    ) -> Result<T, StorageError<NodeId>> {
        let me = self.clone();
        tokio::task::spawn_blocking(move || f(&me))
            .await
            .map_err(sm_err)?
    }

    /// Loads every index from the database (at open, and after a restore).
    fn rebuild_indexes(&self) -> Result<(), StorageError<NodeId>> {
        let db = self.lock_db();
        let mut lists = ListIndex::default();
        let all = list_entries::ListFilter::default();
        for e in list_entries::query(&db, &all, None).map_err(sm_err)? {
            lists.upsert(e);
        }
        let fresh = Indexes::new(
            lists,
            addressing::Addressing {
                routes: routing::query(&db).map_err(sm_err)?,
                recipients: recipients::load_keys(&db).map_err(sm_err)?,
                callouts: callouts::load(&db).map_err(sm_err)?,
                users: users::load(&db).map_err(sm_err)?,
                locks: locks::load(&db).map_err(sm_err)?,
                dkim: dkim_keys::load(&db).map_err(sm_err)?,
                tokens: tokens::load(&db).map_err(sm_err)?,
                portal_key: portal_key::load(&db).map_err(sm_err)?,
            },
            policy::query(&db).map_err(sm_err)?,
            (
                bayes::load_table(&db).map_err(sm_err)?,
                logistic::load_weights(&db).map_err(sm_err)?,
            ),
            evidence::load_table(&db).map_err(sm_err)?,
        );
        self.inner.indexes.replace_with(fresh);
        self.inner
            .spool
            .replace(spool::query_all(&db).map_err(sm_err)?);
        Ok(())
    }
}

/// Files a crash left behind in the middle of building, receiving or installing a
/// snapshot: nothing of the kind is in progress before the store is open.
fn remove_leftovers(dir: &Path) {
    let _ = std::fs::remove_file(dir.join("state.sqlite.tmp"));
    let Ok(entries) = std::fs::read_dir(dir.join(SNAPSHOT_DIR)) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.starts_with("build-") || name.starts_with("recv-") || name.ends_with(".meta.tmp") {
            tracing::info!(file = %name, "removing a snapshot file left by a crash");
            let _ = std::fs::remove_file(entry.path());
        }
    }
}

#[cfg(test)]
mod tests;
