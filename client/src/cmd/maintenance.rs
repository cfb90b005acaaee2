//! `peagectl digest` and `peagectl snapshot`: comparing replicas, building a snapshot.

use serde_json::json;

use peage_client::v1::{StateDigestRequest, TriggerSnapshotRequest};
use peage_client::ClientError;

use super::context::Ctx;
use crate::output::{print_json, print_read_note, read_json};

pub async fn digest(ctx: &mut Ctx) -> Result<(), ClientError> {
    let req = StateDigestRequest { stale: ctx.stale };
    let reply = ctx.admin().await?.state_digest(req).await;
    let r = reply.map_err(|e| ctx.failed(e))?.into_inner();
    if ctx.json {
        print_json(json!({
            "sha256": r.sha256,
            "applied_index": r.applied_index,
            "list_entries": r.list_entries,
            "read": read_json(&r.read),
        }));
    } else {
        println!(
            "{}  applied {}  entries {}",
            r.sha256, r.applied_index, r.list_entries
        );
        print_read_note(&r.read);
    }
    Ok(())
}

pub async fn snapshot(ctx: &mut Ctx) -> Result<(), ClientError> {
    let reply = ctx
        .admin()
        .await?
        .trigger_snapshot(TriggerSnapshotRequest {})
        .await;
    let r = reply.map_err(|e| ctx.failed(e))?.into_inner();
    println!("snapshot at log index {}", r.snapshot_index);
    Ok(())
}
