//! The state machine's read API over SQLite, on the blocking pool: pages of list entries.
//! Lookups that must never wait go through `knowledge` and `spool_index` instead.

use openraft::StorageError;

use super::list_entries::{self, ListFilter, ListPage};
use super::{sm_err, StateStore};
use crate::types::NodeId;

impl StateStore {
    pub async fn list_entries(&self, filter: ListFilter) -> Result<ListPage, StorageError<NodeId>> {
        self.blocking(move |me| list_entries::page(&me.lock_db(), &filter).map_err(sm_err))
            .await
    }
}
