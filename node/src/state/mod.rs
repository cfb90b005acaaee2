//! The replicated data model: the SQLite state machine (schema and migrations, apply,
//! queries, snapshots) and the in-memory indexes rebuilt from it.
//!
//! Each applied batch of log entries is one SQLite transaction that also records
//! `last_applied` and the membership. The database runs `synchronous=NORMAL`: what a crash
//! loses is replayed from the Raft log, and a snapshot checkpoints (fsyncs) the database
//! before openraft may purge the entries it covers.

pub mod apply;
pub mod bayes;
pub mod blobs;
pub mod evidence;
pub use peage_mail::lists;
pub mod routing;
mod schema;
mod snapshot_file;
pub mod spool;

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};

use openraft::storage::RaftStateMachine;
use openraft::{
    AnyError, Entry, EntryPayload, LogId, RaftSnapshotBuilder, Snapshot, SnapshotMeta,
    StorageError, StorageIOError, StoredMembership,
};
use rusqlite::{params, Connection, OptionalExtension};
use sha2::{Digest, Sha256};

use apply::IndexChange;
pub use apply::{BatchOutcome, Outcome, COMMAND_VERSION};
use lists::{EntryKind, ListEntry, ListIndex, ListName};
pub use snapshot_file::SnapshotFile;

use crate::cluster::{NodeId, PeageNode, TypeConfig};

const DB_FILE: &str = "state.sqlite";
const SNAPSHOT_DIR: &str = "snapshots";

type Membership = StoredMembership<NodeId, PeageNode>;
type Meta = SnapshotMeta<NodeId, PeageNode>;

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
    /// Lookups for filtering and `list check`, kept in step with every committed apply.
    lists: RwLock<ListIndex>,
    /// The routing table (it is small): relay control and delivery read it on every message.
    routes: RwLock<BTreeMap<String, DomainRoute>>,
    /// The filter's thresholds, read on every message.
    policy: RwLock<crate::filter::Policy>,
    /// The classifier's counts, in step with `bayes_tokens` / `bayes_learned`.
    bayes: RwLock<peage_mail::bayes::TokenTable>,
    /// Reputation and bulk counts, in step with the `evidence` table.
    evidence: RwLock<evidence::EvidenceTable>,
    /// The last applied log id and membership, readable without touching SQLite.
    applied: RwLock<(Option<LogId<NodeId>>, Membership)>,
}

fn sm_err(e: impl std::error::Error + 'static) -> StorageError<NodeId> {
    StorageError::from(StorageIOError::write_state_machine(AnyError::new(&e)))
}

fn snap_err(e: impl std::error::Error + 'static) -> StorageError<NodeId> {
    StorageError::from(StorageIOError::write_snapshot(None, AnyError::new(&e)))
}

/// A local domain's entry in the routing table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DomainRoute {
    /// smtp://HOST:PORT
    pub route: String,
    pub author: String,
    pub created_at_ms: i64,
}

/// One page of `list ls`.
pub struct ListPage {
    pub entries: Vec<ListEntry>,
    /// The id to continue after, or 0 when this was the last page.
    pub next_after: u64,
}

/// A filter for `list ls`.
#[derive(Default, Clone)]
pub struct ListFilter {
    pub list: Option<ListName>,
    pub kind: Option<EntryKind>,
    pub contains: String,
    pub after_id: u64,
    pub limit: u32,
}

impl StateStore {
    /// Opens (or creates) the state under `dir`, migrating the schema. If the latest snapshot
    /// is ahead of the database (a crash lost the database's tail after the log was purged),
    /// the database is restored from that snapshot.
    pub fn open(dir: &Path) -> Result<StateStore, StorageError<NodeId>> {
        std::fs::create_dir_all(dir.join(SNAPSHOT_DIR)).map_err(sm_err)?;
        let conn = schema::open(&dir.join(DB_FILE)).map_err(sm_err)?;
        let applied = read_applied(&conn).map_err(sm_err)?;
        let store = StateStore {
            inner: Arc::new(Inner {
                dir: dir.to_owned(),
                db: Mutex::new(conn),
                lists: RwLock::new(ListIndex::default()),
                routes: RwLock::new(BTreeMap::new()),
                policy: RwLock::new(crate::filter::Policy::default()),
                bayes: RwLock::new(Default::default()),
                evidence: RwLock::new(Default::default()),
                applied: RwLock::new(applied),
            }),
        };
        match store.latest_snapshot()? {
            Some((meta, path)) if meta.last_log_id > store.applied().0 => {
                tracing::warn!(snapshot = ?meta.last_log_id, "state database is behind its snapshot; restoring it");
                // Restoring rebuilds the indexes too.
                store.restore_from(&path)?;
            }
            _ => store.rebuild_indexes()?,
        }
        Ok(store)
    }

    fn lock_db(&self) -> std::sync::MutexGuard<'_, Connection> {
        // A panic while holding the lock would already have failed the apply that held it;
        // the connection itself stays usable, so poisoning is ignored.
        self.inner.db.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn applied(&self) -> (Option<LogId<NodeId>>, Membership) {
        self.inner
            .applied
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    pub fn applied_index(&self) -> u64 {
        self.applied().0.map_or(0, |l| l.index)
    }

    async fn blocking<T: Send + 'static>(
        &self,
        f: impl FnOnce(&StateStore) -> Result<T, StorageError<NodeId>> + Send + 'static,
    ) -> Result<T, StorageError<NodeId>> {
        let me = self.clone();
        tokio::task::spawn_blocking(move || f(&me))
            .await
            .map_err(sm_err)?
    }

    fn rebuild_indexes(&self) -> Result<(), StorageError<NodeId>> {
        let db = self.lock_db();
        let mut index = ListIndex::default();
        for e in query_entries(&db, &ListFilter::default(), None).map_err(sm_err)? {
            index.upsert(e);
        }
        *self.inner.lists.write().unwrap_or_else(|p| p.into_inner()) = index;
        let routes = query_domains(&db).map_err(sm_err)?;
        *self.inner.routes.write().unwrap_or_else(|p| p.into_inner()) = routes;
        let policy = query_policy(&db).map_err(sm_err)?;
        *self.inner.policy.write().unwrap_or_else(|p| p.into_inner()) = policy;
        let table = bayes::load_table(&db).map_err(sm_err)?;
        *self.inner.bayes.write().unwrap_or_else(|p| p.into_inner()) = table;
        let counted = evidence::load_table(&db).map_err(sm_err)?;
        *self
            .inner
            .evidence
            .write()
            .unwrap_or_else(|p| p.into_inner()) = counted;
        Ok(())
    }

    /// The route of a local domain (already lower-case), or None: not ours to accept.
    pub fn route_for(&self, domain: &str) -> Option<String> {
        self.inner
            .routes
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(domain)
            .map(|r| r.route.clone())
    }

    /// The filter's current thresholds.
    pub fn policy(&self) -> crate::filter::Policy {
        *self.inner.policy.read().unwrap_or_else(|p| p.into_inner())
    }

    /// What the classifier has learned: (spam messages, ham messages, distinct tokens,
    /// approximate bytes of the in-memory table).
    pub fn bayes_counts(&self) -> (u64, u64, u64, u64) {
        let t = self.inner.bayes.read().unwrap_or_else(|p| p.into_inner());
        (
            t.spam_messages,
            t.ham_messages,
            t.len() as u64,
            t.approximate_bytes() as u64,
        )
    }

    /// The whole routing table, by domain.
    pub fn domains(&self) -> BTreeMap<String, DomainRoute> {
        self.inner
            .routes
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// The live entries matching a normalised probe value.
    pub fn check(&self, kind: EntryKind, probe: &str, now_ms: i64) -> Vec<ListEntry> {
        self.inner
            .lists
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .check(kind, probe, now_ms)
    }

    /// Whether any list entry has expired at `now_ms`.
    pub fn has_expired(&self, now_ms: i64) -> bool {
        self.inner
            .lists
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .has_expired(now_ms)
    }

    pub async fn list_entries(&self, filter: ListFilter) -> Result<ListPage, StorageError<NodeId>> {
        self.blocking(move |me| {
            let limit = filter.limit.clamp(1, 1000) as usize;
            let db = me.lock_db();
            // One more than asked tells whether another page follows.
            let mut entries = query_entries(&db, &filter, Some(limit + 1)).map_err(sm_err)?;
            let next_after = if entries.len() > limit {
                entries.truncate(limit);
                entries.last().map_or(0, |e| e.id)
            } else {
                0
            };
            Ok(ListPage {
                entries,
                next_after,
            })
        })
        .await
    }

    /// Every message in the spool, oldest first.
    pub async fn spooled(&self) -> Result<Vec<spool::SpooledMessage>, StorageError<NodeId>> {
        self.blocking(|me| spool::query_all(&me.lock_db()).map_err(sm_err))
            .await
    }

    /// One message of the spool, as this replica has applied it.
    pub async fn spooled_message(
        &self,
        queue_id: &str,
    ) -> Result<Option<spool::SpooledMessage>, StorageError<NodeId>> {
        let queue_id = queue_id.to_owned();
        self.blocking(move |me| spool::query_one(&me.lock_db(), &queue_id).map_err(sm_err))
            .await
    }

    /// A canonical SHA-256 of the replicated data (not of the file): equal on every node
    /// that applied the same log.
    pub async fn digest(&self) -> Result<(String, u64, u64), StorageError<NodeId>> {
        self.blocking(|me| {
            let db = me.lock_db();
            let applied = me.applied_index();
            let mut h = Sha256::new();
            let entries = query_entries(&db, &ListFilter::default(), None).map_err(sm_err)?;
            for e in &entries {
                for field in [
                    e.id.to_string(),
                    (e.list as i32).to_string(),
                    (e.kind as i32).to_string(),
                    e.value.clone(),
                    e.reason.clone(),
                    e.author.clone(),
                    e.created_at_ms.to_string(),
                    format!("{:?}", e.expires_at_ms),
                ] {
                    h.update((field.len() as u64).to_le_bytes());
                    h.update(field.as_bytes());
                }
            }
            let seq: Option<i64> = db
                .query_row(
                    "SELECT seq FROM sqlite_sequence WHERE name = 'list_entries'",
                    [],
                    |r| r.get(0),
                )
                .optional()
                .map_err(sm_err)?;
            h.update(format!("seq:{seq:?}").as_bytes());
            for m in spool::query_all(&db).map_err(sm_err)? {
                h.update(format!("{m:?}").as_bytes());
            }
            h.update(format!("{:?}", query_policy(&db).map_err(sm_err)?).as_bytes());
            bayes::digest_rows(&db, &mut |row| h.update(row)).map_err(sm_err)?;
            evidence::digest_rows(&db, &mut |row| h.update(row)).map_err(sm_err)?;
            for (domain, r) in query_domains(&db).map_err(sm_err)? {
                h.update(
                    format!(
                        "domain:{domain}:{}:{}:{}",
                        r.route, r.author, r.created_at_ms
                    )
                    .as_bytes(),
                );
            }
            Ok((hex::encode(h.finalize()), applied, entries.len() as u64))
        })
        .await
    }

    fn snapshot_dir(&self) -> PathBuf {
        self.inner.dir.join(SNAPSHOT_DIR)
    }

    /// The newest complete snapshot: its meta and database file.
    fn latest_snapshot(&self) -> Result<Option<(Meta, PathBuf)>, StorageError<NodeId>> {
        let mut best: Option<(Meta, PathBuf)> = None;
        let dir = std::fs::read_dir(self.snapshot_dir()).map_err(snap_err)?;
        for item in dir {
            let path = item.map_err(snap_err)?.path();
            if path.extension().is_some_and(|e| e == "meta") {
                let text = std::fs::read(&path).map_err(snap_err)?;
                let Ok(meta) = serde_json::from_slice::<SnapshotMeta<NodeId, PeageNode>>(&text)
                else {
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
    fn publish_snapshot(
        &self,
        meta: &SnapshotMeta<NodeId, PeageNode>,
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
        let (last, membership) =
            read_applied(&conn).map_err(|e| format!("{name} is not a Péage snapshot: {e}"))?;
        let last = last.ok_or_else(|| format!("{name} covers no log entry: nothing to restore"))?;
        Ok((last, membership))
    }

    /// Replaces the database with a copy of a snapshot file (atomic rename) and reloads.
    fn restore_from(&self, snapshot_db: &Path) -> Result<(), StorageError<NodeId>> {
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
        let applied = read_applied(&db).map_err(sm_err)?;
        drop(db);
        *self
            .inner
            .applied
            .write()
            .unwrap_or_else(|p| p.into_inner()) = applied;
        self.rebuild_indexes()
    }

    fn apply_blocking(
        &self,
        entries: Vec<Entry<TypeConfig>>,
    ) -> Result<Vec<BatchOutcome>, StorageError<NodeId>> {
        let mut changes = Vec::new();
        let mut results = Vec::with_capacity(entries.len());
        let (mut last, mut membership) = self.applied();
        {
            let mut db = self.lock_db();
            let tx = db.transaction().map_err(sm_err)?;
            for entry in entries {
                last = Some(entry.log_id);
                match entry.payload {
                    EntryPayload::Blank => results.push(BatchOutcome::default()),
                    EntryPayload::Normal(payload) => {
                        results.push(
                            apply::apply_payload(&tx, &payload.0, &mut changes).map_err(sm_err)?,
                        );
                    }
                    EntryPayload::Membership(m) => {
                        membership = StoredMembership::new(Some(entry.log_id), m);
                        results.push(BatchOutcome::default());
                    }
                }
            }
            write_applied(&tx, &last, &membership).map_err(sm_err)?;
            tx.commit().map_err(sm_err)?;
        }
        {
            let mut index = self.inner.lists.write().unwrap_or_else(|p| p.into_inner());
            let mut routes = self.inner.routes.write().unwrap_or_else(|p| p.into_inner());
            for change in changes {
                match change {
                    IndexChange::Upsert(e) => index.upsert(e),
                    IndexChange::Remove(id) => index.remove(id),
                    IndexChange::RouteSet { domain, route } => {
                        routes.insert(domain, route);
                    }
                    IndexChange::RouteRemove { domain } => {
                        routes.remove(&domain);
                    }
                    IndexChange::Policy(p) => {
                        *self.inner.policy.write().unwrap_or_else(|e| e.into_inner()) = p;
                    }
                    IndexChange::Bayes {
                        tokens,
                        class,
                        delta,
                    } => self
                        .inner
                        .bayes
                        .write()
                        .unwrap_or_else(|e| e.into_inner())
                        .apply(&tokens, class, delta),
                    change @ (IndexChange::EvidenceAdd(_) | IndexChange::EvidenceDecay { .. }) => {
                        evidence::follow(
                            &mut self
                                .inner
                                .evidence
                                .write()
                                .unwrap_or_else(|e| e.into_inner()),
                            change,
                        )
                    }
                }
            }
        }
        *self
            .inner
            .applied
            .write()
            .unwrap_or_else(|p| p.into_inner()) = (last, membership);
        Ok(results)
    }

    fn build_snapshot_blocking(&self) -> Result<Snapshot<TypeConfig>, StorageError<NodeId>> {
        let started = std::time::Instant::now();
        let dir = self.snapshot_dir();
        let tmp = dir.join(format!("build-{}.tmp", rand::random::<u64>()));
        let meta = {
            let db = self.lock_db();
            // Make the live database durable up to here before openraft may purge the log.
            db.query_row("PRAGMA wal_checkpoint(FULL)", [], |_| Ok(()))
                .map_err(sm_err)?;
            let (last, membership) = read_applied(&db).map_err(sm_err)?;
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
            SnapshotMeta {
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
        crate::metrics::observe(crate::metrics::SNAPSHOT_BUILD_SECONDS, started.elapsed());
        metrics::gauge!(crate::metrics::SNAPSHOT_BYTES).set(file.len() as f64);
        Ok(Snapshot {
            meta,
            snapshot: Box::new(file),
        })
    }
}

fn sync_dir(dir: &Path) -> std::io::Result<()> {
    std::fs::File::open(dir)?.sync_all()
}

fn read_applied(conn: &Connection) -> rusqlite::Result<(Option<LogId<NodeId>>, Membership)> {
    let get = |key: &str| -> rusqlite::Result<Option<String>> {
        conn.query_row("SELECT value FROM meta WHERE key = ?1", [key], |r| r.get(0))
            .optional()
    };
    let last = match get("last_applied")? {
        Some(s) => serde_json::from_str(&s).map_err(|e| {
            rusqlite::Error::FromSqlConversionFailure(0, rusqlite::types::Type::Text, Box::new(e))
        })?,
        None => None,
    };
    let membership = match get("membership")? {
        Some(s) => serde_json::from_str(&s).map_err(|e| {
            rusqlite::Error::FromSqlConversionFailure(0, rusqlite::types::Type::Text, Box::new(e))
        })?,
        None => Membership::default(),
    };
    Ok((last, membership))
}

fn write_applied(
    tx: &rusqlite::Transaction<'_>,
    last: &Option<LogId<NodeId>>,
    membership: &Membership,
) -> rusqlite::Result<()> {
    tx.execute(
        "INSERT INTO meta (key, value) VALUES ('last_applied', ?1), ('membership', ?2)
         ON CONFLICT (key) DO UPDATE SET value = excluded.value",
        params![to_json(last), to_json(membership)],
    )?;
    Ok(())
}

/// Log ids and memberships are plain data: serialising them to JSON cannot fail.
fn to_json<T: serde::Serialize>(value: &T) -> String {
    serde_json::to_string(value).expect("log ids and memberships serialise to JSON")
}

fn query_entries(
    conn: &Connection,
    filter: &ListFilter,
    limit: Option<usize>,
) -> rusqlite::Result<Vec<ListEntry>> {
    let mut stmt = conn.prepare_cached(
        "SELECT id, list, kind, value, reason, author, created_at_ms, expires_at_ms
         FROM list_entries
         WHERE id > ?1 AND (?2 = 0 OR list = ?2) AND (?3 = 0 OR kind = ?3)
           AND (?4 = '' OR instr(lower(value), lower(?4)) > 0)
         ORDER BY id LIMIT ?5",
    )?;
    let rows = stmt.query_map(
        params![
            filter.after_id as i64,
            filter.list.map_or(0, |l| l as i32),
            filter.kind.map_or(0, |k| k as i32),
            filter.contains,
            limit.map_or(-1, |l| l as i64),
        ],
        |r| {
            let list: i32 = r.get(1)?;
            let kind: i32 = r.get(2)?;
            Ok((
                list,
                kind,
                ListEntry {
                    id: r.get::<_, i64>(0)? as u64,
                    list: ListName::Block,
                    kind: EntryKind::Ip,
                    value: r.get(3)?,
                    reason: r.get(4)?,
                    author: r.get(5)?,
                    created_at_ms: r.get(6)?,
                    expires_at_ms: r.get(7)?,
                },
            ))
        },
    )?;
    let mut out = Vec::new();
    for row in rows {
        let (list, kind, mut e) = row?;
        // Rows are only written by apply, which checked both; skip anything else.
        let (Some(list), Some(kind)) = (ListName::from_i32(list), EntryKind::from_i32(kind)) else {
            continue;
        };
        e.list = list;
        e.kind = kind;
        out.push(e);
    }
    Ok(out)
}

fn query_policy(conn: &Connection) -> rusqlite::Result<crate::filter::Policy> {
    let mut p = crate::filter::Policy::default();
    let mut stmt = conn.prepare_cached("SELECT key, value FROM policy")?;
    let rows = stmt.query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?)))?;
    for row in rows {
        match row? {
            (k, v) if k == "quarantine_at_milli" => p.quarantine_at_milli = v,
            (k, v) if k == "reject_at_milli" => p.reject_at_milli = v,
            _ => {}
        }
    }
    Ok(p)
}

fn query_domains(conn: &Connection) -> rusqlite::Result<BTreeMap<String, DomainRoute>> {
    let mut stmt = conn.prepare_cached(
        "SELECT domain, route, author, created_at_ms FROM domains ORDER BY domain",
    )?;
    let rows = stmt.query_map([], |r| {
        Ok((
            r.get::<_, String>(0)?,
            DomainRoute {
                route: r.get(1)?,
                author: r.get(2)?,
                created_at_ms: r.get(3)?,
            },
        ))
    })?;
    rows.collect()
}

/// Builds snapshots from a clone of the store handle.
pub struct SnapshotBuilder(StateStore);

impl RaftSnapshotBuilder<TypeConfig> for SnapshotBuilder {
    async fn build_snapshot(&mut self) -> Result<Snapshot<TypeConfig>, StorageError<NodeId>> {
        self.0.blocking(|me| me.build_snapshot_blocking()).await
    }
}

impl RaftStateMachine<TypeConfig> for StateStore {
    type SnapshotBuilder = SnapshotBuilder;

    async fn applied_state(
        &mut self,
    ) -> Result<(Option<LogId<NodeId>>, Membership), StorageError<NodeId>> {
        Ok(self.applied())
    }

    async fn apply<I>(&mut self, entries: I) -> Result<Vec<BatchOutcome>, StorageError<NodeId>>
    where
        I: IntoIterator<Item = Entry<TypeConfig>> + Send,
        I::IntoIter: Send,
    {
        let entries: Vec<_> = entries.into_iter().collect();
        self.blocking(move |me| me.apply_blocking(entries)).await
    }

    async fn get_snapshot_builder(&mut self) -> Self::SnapshotBuilder {
        SnapshotBuilder(self.clone())
    }

    async fn begin_receiving_snapshot(
        &mut self,
    ) -> Result<Box<SnapshotFile>, StorageError<NodeId>> {
        let path = self
            .snapshot_dir()
            .join(format!("recv-{}.db", rand::random::<u64>()));
        let file = SnapshotFile::create(&path).await.map_err(snap_err)?;
        Ok(Box::new(file))
    }

    async fn install_snapshot(
        &mut self,
        meta: &SnapshotMeta<NodeId, PeageNode>,
        snapshot: Box<SnapshotFile>,
    ) -> Result<(), StorageError<NodeId>> {
        let received = snapshot.finish().await.map_err(snap_err)?;
        let meta = meta.clone();
        self.blocking(move |me| {
            let path = me.publish_snapshot(&meta, &received)?;
            me.restore_from(&path)?;
            let applied = me.applied().0;
            if applied != meta.last_log_id {
                return Err(StorageError::from(StorageIOError::write_snapshot(
                    Some(meta.signature()),
                    AnyError::error(format!(
                        "installed snapshot says it applied {applied:?}, meta says {:?}",
                        meta.last_log_id
                    )),
                )));
            }
            tracing::info!(snapshot = %meta.snapshot_id, "snapshot installed");
            Ok(())
        })
        .await
    }

    async fn get_current_snapshot(
        &mut self,
    ) -> Result<Option<Snapshot<TypeConfig>>, StorageError<NodeId>> {
        self.blocking(|me| {
            let Some((meta, path)) = me.latest_snapshot()? else {
                return Ok(None);
            };
            let file = SnapshotFile::open_blocking(&path).map_err(snap_err)?;
            Ok(Some(Snapshot {
                meta,
                snapshot: Box::new(file),
            }))
        })
        .await
    }
}

/// The filter looks lists up in this node's replica, never waiting on consensus.
impl crate::filter::Knowledge for StateStore {
    fn lookup(&self, kind: EntryKind, value: &str) -> Vec<ListEntry> {
        match lists::normalize_probe(kind, value) {
            Ok(probe) => self.check(kind, &probe, crate::admin::now_ms()),
            Err(_) => Vec::new(),
        }
    }
    fn spam_probability(&self, tokens: &[u64]) -> Option<f64> {
        self.inner
            .bayes
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .spam_probability(tokens)
    }
    fn evidence(&self, key: &str) -> Option<peage_mail::evidence::Evidence> {
        self.inner
            .evidence
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(key)
            .map(evidence::as_evidence)
    }
}

#[cfg(test)]
mod tests;
