//! `peagectl ratelimit`: the outbound rate-limit counts as one node knows them, and
//! resetting a name's counts on every node.

use serde_json::json;

use peage_client::v1::{RateLimitResetRequest, RateLimitShowRequest};
use peage_client::ClientError;

use super::context::Ctx;
use crate::cli::RatelimitCmd;
use crate::output::print_json;

pub async fn run(ctx: &mut Ctx, cmd: RatelimitCmd) -> Result<(), ClientError> {
    let json = ctx.json;
    let admin = ctx.admin().await?;
    match cmd {
        RatelimitCmd::Show { name } => {
            let request = RateLimitShowRequest {
                name: name.unwrap_or_default(),
            };
            let reply = admin.rate_limit_show(request).await;
            let r = reply.map_err(|e| ctx.failed(e))?.into_inner();
            if json {
                let counts: Vec<_> = r
                    .counts
                    .iter()
                    .map(|c| json!({"counter": c.counter, "name": c.name, "window_secs": c.window_secs, "count": c.count, "limit": c.limit}))
                    .collect();
                print_json(json!({"counts": counts, "node_id": r.node_id}));
                return Ok(());
            }
            println!(
                "{:<9}  {:<40}  {:>7}  {:>8}  LIMIT",
                "COUNTER", "NAME", "WINDOW", "COUNT"
            );
            for c in &r.counts {
                let limit = match c.limit {
                    0 => "-".to_owned(),
                    n => n.to_string(),
                };
                println!(
                    "{:<9}  {:<40}  {:>6}s  {:>8}  {limit}",
                    c.counter, c.name, c.window_secs, c.count
                );
            }
            println!(
                "(as node {} knows them: its own counts and its peers' last reports)",
                r.node_id
            );
        }
        RatelimitCmd::Reset { name } => {
            let request = RateLimitResetRequest { name: name.clone() };
            let reply = admin.rate_limit_reset(request).await;
            let r = reply.map_err(|e| ctx.failed(e))?.into_inner();
            if json {
                print_json(json!({"dropped": r.dropped, "unreachable": r.unreachable}));
            } else if r.unreachable.is_empty() {
                println!("{name}: its counts are forgotten on every node");
            } else {
                println!(
                    "{name}: its counts are forgotten, except on these nodes, not reached (their counts stand): {}",
                    r.unreachable.join(", ")
                );
            }
        }
    }
    Ok(())
}
