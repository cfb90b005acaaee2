//! The state machine's read API over SQLite, on the blocking pool: pages of list entries
//! and the spool. Lookups that must never wait go through `knowledge` instead.

use std::collections::HashSet;

use openraft::StorageError;

use super::list_entries::{self, ListFilter, ListPage};
use super::spool;
use super::{sm_err, StateStore};
use crate::types::NodeId;

impl StateStore {
    pub async fn list_entries(&self, filter: ListFilter) -> Result<ListPage, StorageError<NodeId>> {
        self.blocking(move |me| list_entries::page(&me.lock_db(), &filter).map_err(sm_err))
            .await
    }

    /// Whether a quarantined message was accepted before `before_ms`.
    pub async fn quarantined_before(&self, before_ms: i64) -> Result<bool, StorageError<NodeId>> {
        self.blocking(move |me| spool::quarantined_before(&me.lock_db(), before_ms).map_err(sm_err))
            .await
    }

    /// The body hashes the spool's records reference.
    pub async fn body_hashes(&self) -> Result<HashSet<String>, StorageError<NodeId>> {
        self.blocking(|me| spool::query_body_hashes(&me.lock_db()).map_err(sm_err))
            .await
    }
}
