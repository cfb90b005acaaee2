//! The state machine's read API over SQLite, on the blocking pool: pages of list entries
//! and of a domain's recipient list, the keys and the audit log, the digests sent.
//! Lookups that must never wait go through `knowledge` and `spool_index` instead.

use openraft::StorageError;

use super::list_entries::{self, ListFilter, ListPage};
use peage_proto::v1::{AuditEntry, AuditListRequest};

use super::{audit, digests_sent, dkim_keys, locks, recipients, tokens, users};
use super::{sm_err, StateStore};
use crate::types::NodeId;

impl StateStore {
    pub async fn list_entries(&self, filter: ListFilter) -> Result<ListPage, StorageError<NodeId>> {
        self.blocking(move |me| list_entries::page(&me.lock_db(), &filter).map_err(sm_err))
            .await
    }

    /// A domain's mailboxes after `after`, in order, at most `limit`.
    pub async fn recipients(
        &self,
        domain: String,
        after: String,
        limit: usize,
    ) -> Result<Vec<String>, StorageError<NodeId>> {
        self.blocking(move |me| {
            recipients::page(&me.lock_db(), &domain, &after, limit).map_err(sm_err)
        })
        .await
    }

    /// Up to when `recipient`'s held mail was listed by its digests (0: never), and whether
    /// the digest `key` was sent.
    pub async fn digest_sent(
        &self,
        recipient: String,
        key: String,
    ) -> Result<(i64, bool), StorageError<NodeId>> {
        self.blocking(move |me| {
            let db = me.lock_db();
            let up_to = digests_sent::listed_up_to(&db, &recipient).map_err(sm_err)?;
            let sent = digests_sent::was_sent(&db, &key).map_err(sm_err)?;
            Ok((up_to, sent))
        })
        .await
    }

    /// Every DKIM key, without its private half.
    pub async fn dkim_keys(&self) -> Result<Vec<dkim_keys::DkimRow>, StorageError<NodeId>> {
        self.blocking(move |me| dkim_keys::list(&me.lock_db()).map_err(sm_err))
            .await
    }

    /// Every locked account (expired locks too).
    pub async fn locks(&self) -> Result<Vec<locks::LockRow>, StorageError<NodeId>> {
        self.blocking(move |me| locks::list(&me.lock_db()).map_err(sm_err))
            .await
    }

    /// Every submission account, without hashes.
    pub async fn users(&self) -> Result<Vec<users::UserRow>, StorageError<NodeId>> {
        self.blocking(move |me| users::list(&me.lock_db()).map_err(sm_err))
            .await
    }

    /// Every API token, without hashes.
    pub async fn tokens(&self) -> Result<Vec<tokens::TokenRow>, StorageError<NodeId>> {
        self.blocking(move |me| tokens::list(&me.lock_db()).map_err(sm_err))
            .await
    }

    /// The audit records matching `q`, newest first.
    pub async fn audit(
        &self,
        q: AuditListRequest,
    ) -> Result<Vec<AuditEntry>, StorageError<NodeId>> {
        self.blocking(move |me| audit::list(&me.lock_db(), &q).map_err(sm_err))
            .await
    }
}
