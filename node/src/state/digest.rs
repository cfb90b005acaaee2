//! A canonical SHA-256 of the replicated data (not of the file): equal on every node that
//! applied the same log, which is how tests and drills check that replicas converged.

use openraft::StorageError;
use sha2::{Digest, Sha256};

use super::{
    audit, bayes, callouts, digests_sent, dkim_keys, evidence, list_entries, locks, logistic,
    policy, portal_key, recipients, routing, spool, tokens, users,
};
use super::{schema, sm_err, StateStore};
use crate::types::NodeId;

/// A state digest: the hash, the index it was taken at, and how many list entries it covers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StateDigest {
    pub sha256: String,
    pub applied_index: u64,
    pub list_entries: u64,
}

impl StateStore {
    pub async fn digest(&self) -> Result<StateDigest, StorageError<NodeId>> {
        self.blocking(|me| {
            let db = me.lock_db();
            // The index the rows are at, from the same database: the in-memory one moves
            // only after an apply's commit has released the database, and a digest taken
            // in between would pair the new rows with the old index.
            let (applied, _) = schema::read_applied(&db).map_err(sm_err)?;
            let applied_index = applied.map_or(0, |l| l.index);
            let mut h = Sha256::new();
            let mut out = |bytes: &[u8]| h.update(bytes);
            let list_entries = list_entries::digest_rows(&db, &mut out).map_err(sm_err)?;
            spool::digest_rows(&db, &mut out).map_err(sm_err)?;
            let policy = policy::query(&db).map_err(sm_err)?;
            out(format!("{policy:?}").as_bytes());
            bayes::digest_rows(&db, &mut out).map_err(sm_err)?;
            logistic::digest_rows(&db, &mut out).map_err(sm_err)?;
            evidence::digest_rows(&db, &mut out).map_err(sm_err)?;
            routing::digest_rows(&db, &mut out).map_err(sm_err)?;
            recipients::digest_rows(&db, &mut out).map_err(sm_err)?;
            callouts::digest_rows(&db, &mut out).map_err(sm_err)?;
            users::digest_rows(&db, &mut out).map_err(sm_err)?;
            locks::digest_rows(&db, &mut out).map_err(sm_err)?;
            dkim_keys::digest_rows(&db, &mut out).map_err(sm_err)?;
            tokens::digest_rows(&db, &mut out).map_err(sm_err)?;
            audit::digest_rows(&db, &mut out).map_err(sm_err)?;
            portal_key::digest_rows(&db, &mut out).map_err(sm_err)?;
            digests_sent::digest_rows(&db, &mut out).map_err(sm_err)?;
            Ok(StateDigest {
                sha256: hex::encode(h.finalize()),
                applied_index,
                list_entries,
            })
        })
        .await
    }
}
