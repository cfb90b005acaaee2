//! The state store as openraft's state machine: each batch of entries applied in one SQLite
//! transaction that also records `last_applied` and the membership, then the in-memory
//! indexes follow; snapshots built, received and installed.

use openraft::storage::RaftStateMachine;
use openraft::{
    AnyError, Entry, EntryPayload, LogId, RaftSnapshotBuilder, Snapshot, StorageError,
    StorageIOError, StoredMembership,
};

use std::collections::BTreeSet;

use super::knowledge::IndexChange;
use super::logistic::{self, BatchWeights};
use super::spool::{self, SpooledMessage};
use super::{apply, schema, sm_err, snap_err, StateStore};
use crate::snapshot_file::SnapshotFile;
use crate::types::{BatchOutcome, Membership, NodeId, SnapshotInfo, TypeConfig};

impl StateStore {
    /// Applies a batch of committed entries in one transaction, then lets the indexes
    /// follow what it changed.
    fn apply_batch(
        &self,
        entries: Vec<Entry<TypeConfig>>,
    ) -> Result<Vec<BatchOutcome>, StorageError<NodeId>> {
        let mut changes = Vec::new();
        let mut results = Vec::with_capacity(entries.len());
        let (mut last, mut membership) = self.applied();
        let spool_rows;
        {
            let mut db = self.lock_db();
            let tx = db.transaction().map_err(sm_err)?;
            let mut weights = BatchWeights::new(self.indexes().logistic_model());
            for entry in entries {
                last = Some(entry.log_id);
                match entry.payload {
                    EntryPayload::Blank => results.push(BatchOutcome::default()),
                    EntryPayload::Normal(payload) => {
                        results.push(
                            apply::apply_payload(&tx, &payload.0, &mut weights, &mut changes)
                                .map_err(sm_err)?,
                        );
                    }
                    EntryPayload::Membership(m) => {
                        membership = StoredMembership::new(Some(entry.log_id), m);
                        results.push(BatchOutcome::default());
                    }
                }
            }
            logistic::flush(&tx, weights, &mut changes).map_err(sm_err)?;
            schema::write_applied(&tx, &last, &membership).map_err(sm_err)?;
            spool_rows = read_spool_rows(&tx, &mut changes).map_err(sm_err)?;
            tx.commit().map_err(sm_err)?;
        }
        self.indexes().follow(changes);
        self.spool().follow(spool_rows);
        self.set_applied((last, membership));
        Ok(results)
    }
}

/// The spool rows this apply wrote or removed, as they end up: each read once, whatever
/// number of commands touched it.
fn read_spool_rows(
    tx: &rusqlite::Transaction<'_>,
    changes: &mut Vec<IndexChange>,
) -> rusqlite::Result<Vec<(String, Option<SpooledMessage>)>> {
    let touched: BTreeSet<String> = changes
        .extract_if(.., |c| matches!(c, IndexChange::SpoolRow(_)))
        .filter_map(|c| match c {
            IndexChange::SpoolRow(id) => Some(id),
            _ => None,
        })
        .collect();
    touched
        .into_iter()
        .map(|id| Ok((id.clone(), spool::query_one(tx, &id)?)))
        .collect()
}

/// Builds snapshots from a clone of the store handle.
pub struct SnapshotBuilder(StateStore);

impl RaftSnapshotBuilder<TypeConfig> for SnapshotBuilder {
    async fn build_snapshot(&mut self) -> Result<Snapshot<TypeConfig>, StorageError<NodeId>> {
        self.0.blocking(|me| me.build_snapshot()).await
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
        self.blocking(move |me| me.apply_batch(entries)).await
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
        meta: &SnapshotInfo,
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
