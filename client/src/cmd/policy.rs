//! `peagectl policy show|set`: the filter's score thresholds.

use serde_json::json;

use peage_client::v1::{PolicyGetRequest, PolicySetRequest};
use peage_client::ClientError;

use super::context::Ctx;
use crate::cli::PolicyCmd;
use crate::output::{points, print_json};

pub async fn run(ctx: &mut Ctx, cmd: PolicyCmd) -> Result<(), ClientError> {
    let admin = ctx.admin().await?;
    let reply = match cmd {
        PolicyCmd::Show => admin.policy_get(PolicyGetRequest {}).await,
        PolicyCmd::Set { quarantine, reject } => {
            let set = PolicySetRequest {
                quarantine_at: quarantine.unwrap_or(0.0),
                reject_at: reject.unwrap_or(0.0),
            };
            admin.policy_set(set).await
        }
    };
    let r = reply.map_err(|e| ctx.failed(e))?.into_inner();
    let (q, j) = (points(r.quarantine_at_milli), points(r.reject_at_milli));
    if ctx.json {
        print_json(json!({"quarantine_at": q, "reject_at": j}));
    } else {
        println!("quarantine at score >= {q}, reject at score >= {j}");
    }
    Ok(())
}
