//! Maintenance: the state digest operators and drills compare across nodes, and building
//! a snapshot on demand.

use std::time::Duration;

use tonic::Status;

use peage_proto::v1::{
    StateDigestReply, StateDigestRequest, TriggerSnapshotReply, TriggerSnapshotRequest,
};

use super::convert::storage_status;
use super::service::AdminService;

/// How long a requested snapshot may take to cover the applied index.
const SNAPSHOT_WAIT: Duration = Duration::from_secs(30);

pub async fn state_digest(
    svc: &AdminService,
    req: StateDigestRequest,
) -> Result<StateDigestReply, Status> {
    let read = svc.read_barrier(req.stale).await?;
    let d = svc.cluster.state().digest().await.map_err(storage_status)?;
    Ok(StateDigestReply {
        sha256: d.sha256,
        applied_index: d.applied_index,
        list_entries: d.list_entries,
        read: Some(read),
    })
}

pub async fn trigger_snapshot(
    svc: &AdminService,
    _: TriggerSnapshotRequest,
) -> Result<TriggerSnapshotReply, Status> {
    let raft = svc.cluster.raft();
    let target = svc.cluster.state().applied_index();
    raft.trigger()
        .snapshot()
        .await
        .map_err(|e| Status::internal(e.to_string()))?;
    let covered = raft
        .wait(Some(SNAPSHOT_WAIT))
        .metrics(
            |m| m.snapshot.is_some_and(|l| l.index >= target),
            "snapshot covers the applied index",
        )
        .await
        .map_err(|e| Status::deadline_exceeded(format!("snapshot not built: {e}")))?;
    Ok(TriggerSnapshotReply {
        snapshot_index: covered.snapshot.map_or(0, |l| l.index),
    })
}
