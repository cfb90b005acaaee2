//! `peage restore`: founds an empty data directory from a snapshot file copied off a node,
//! for the day every site lost its data. The state database becomes the snapshot's, the
//! Raft log starts empty just after it (openraft treats it as purged up to there), and the
//! vote is moved to the snapshot's term so that the next election goes forward from it.
//! Every member listed in the snapshot is restored from the same file, with its own id.

use std::path::Path;

use anyhow::{bail, Context};
use openraft::storage::RaftLogStorage;

use crate::blobs::BlobStore;
use crate::cluster::log_store::LogStore;
use crate::config::Config;
use crate::state::StateStore;

/// Restores `snapshot` into `data_dir` for the node `config` describes; returns a summary.
pub async fn run(config: &Config, data_dir: &Path, snapshot: &Path) -> anyhow::Result<String> {
    for taken in ["raft-log", "state.sqlite"] {
        if data_dir.join(taken).exists() {
            bail!(
                "{} already holds a node ({taken}): restore only into an empty data directory",
                data_dir.display()
            );
        }
    }
    let me = config.node.id;
    // Check the file before creating anything.
    let (_, membership) = StateStore::read_backup(snapshot).map_err(|e| anyhow::anyhow!(e))?;
    let voters: Vec<u64> = membership.membership().voter_ids().collect();
    if !voters.contains(&me) {
        bail!(
            "node {me} is not a voter in this snapshot (voters: {voters:?}): restore each listed node with its own id"
        );
    }
    std::fs::create_dir_all(data_dir)
        .with_context(|| format!("cannot create {}", data_dir.display()))?;
    let state = StateStore::open(data_dir).map_err(|e| anyhow::anyhow!("{e}"))?;
    let (last, membership) = state
        .restore_backup(snapshot)
        .map_err(|e| anyhow::anyhow!(e))?;
    let spooled = state.spool().all();
    let blobs = BlobStore::open(&data_dir.join("blobs")).context("cannot open the blob store")?;
    let missing = spooled
        .iter()
        .filter(|m| !blobs.has(&m.body_sha256))
        .count();
    let mut log = LogStore::open(&data_dir.join("raft-log"))
        .with_context(|| format!("cannot create the Raft log in {}", data_dir.display()))?;
    log.save_vote(&openraft::Vote::new(last.leader_id.term, me))
        .await
        .map_err(|e| anyhow::anyhow!("cannot write the vote: {e}"))?;
    let voters: Vec<u64> = membership.membership().voter_ids().collect();
    Ok(format!(
        "restored node {me} at log index {} (term {}); voters {voters:?}; {} message(s) in the spool, {missing} without a body here (copy a backup of DATA_DIR/blobs/ in before starting)",
        last.index,
        last.leader_id.term,
        spooled.len()
    ))
}
