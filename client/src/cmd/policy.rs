//! `peagectl policy show|set`: the filter's score thresholds.

use serde_json::json;

use peage_client::v1::{PolicyGetRequest, PolicySetRequest};
use peage_client::{parse_duration_secs, ClientError};

use super::context::Ctx;
use crate::cli::PolicyCmd;
use crate::output::{points, print_json};

pub async fn run(ctx: &mut Ctx, cmd: PolicyCmd) -> Result<(), ClientError> {
    let stale = ctx.stale;
    let admin = ctx.admin().await?;
    let reply = match cmd {
        PolicyCmd::Show => {
            let get = PolicyGetRequest { stale };
            admin.policy_get(get).await
        }
        PolicyCmd::Set {
            quarantine,
            reject,
            quarantine_retention,
            outbound_hold,
        } => {
            let retention = quarantine_retention
                .map(|d| parse_duration_secs(&d))
                .transpose()
                .map_err(ClientError::InvalidArgument)?;
            let set = PolicySetRequest {
                quarantine_at: quarantine.unwrap_or(0.0),
                reject_at: reject.unwrap_or(0.0),
                quarantine_retention_secs: retention.unwrap_or(0),
                outbound_hold_at: outbound_hold.unwrap_or(0.0),
            };
            admin.policy_set(set).await
        }
    };
    let r = reply.map_err(|e| ctx.failed(e))?.into_inner();
    let (q, j) = (points(r.quarantine_at_milli), points(r.reject_at_milli));
    let kept = r.quarantine_retention_secs;
    let held = points(r.outbound_hold_at_milli);
    if ctx.json {
        print_json(
            json!({"quarantine_at": q, "reject_at": j, "quarantine_retention_secs": kept, "outbound_hold_at": held}),
        );
    } else {
        println!("quarantine at score >= {q}, reject at score >= {j}");
        println!("outgoing mail held at score >= {held}");
        println!("quarantined messages kept {}", human_duration(kept));
    }
    Ok(())
}

/// Seconds as the largest whole unit operators type: `30d`, `12h`, `90s`.
fn human_duration(secs: u64) -> String {
    for (unit, size) in [("d", 86_400), ("h", 3600), ("m", 60)] {
        if secs >= size && secs.is_multiple_of(size) {
            return format!("{}{unit}", secs / size);
        }
    }
    format!("{secs}s")
}
