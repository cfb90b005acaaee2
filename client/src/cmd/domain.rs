//! `peagectl domain add|rm|ls`: the routing table.

use serde_json::{json, Value};

use peage_client::v1::{DomainListRequest, DomainRemoveRequest, DomainSetRequest};
use peage_client::ClientError;

use super::context::Ctx;
use crate::cli::DomainCmd;
use crate::output::{print_json, print_read_note, read_json};

pub async fn run(ctx: &mut Ctx, cmd: DomainCmd) -> Result<(), ClientError> {
    match cmd {
        DomainCmd::Add { domain, route } => {
            let reply = ctx
                .admin()
                .await?
                .domain_set(DomainSetRequest { domain, route })
                .await;
            let r = reply.map_err(|e| ctx.failed(e))?.into_inner();
            let d = r.domain.unwrap_or_default();
            println!(
                "{} local domain {} → {} (log index {})",
                if r.created { "added" } else { "re-routed" },
                d.domain,
                d.route,
                r.log_index
            );
        }
        DomainCmd::Rm { domain } => {
            let rm = DomainRemoveRequest {
                domain: domain.clone(),
            };
            let reply = ctx.admin().await?.domain_remove(rm).await;
            let r = reply.map_err(|e| ctx.failed(e))?.into_inner();
            println!("removed local domain {domain} (log index {})", r.log_index);
        }
        DomainCmd::Ls => {
            let ls = DomainListRequest { stale: ctx.stale };
            let reply = ctx.admin().await?.domain_list(ls).await;
            let r = reply.map_err(|e| ctx.failed(e))?.into_inner();
            if ctx.json {
                let list: Vec<Value> = r
                    .domains
                    .iter()
                    .map(|d| {
                        json!({"domain": d.domain, "route": d.route, "author": d.author, "created_at_ms": d.created_at_ms})
                    })
                    .collect();
                print_json(json!({"domains": list, "read": read_json(&r.read)}));
            } else {
                println!("{:<32}  {:<32}  AUTHOR", "DOMAIN", "ROUTE");
                for d in &r.domains {
                    println!("{:<32}  {:<32}  {}", d.domain, d.route, d.author);
                }
                print_read_note(&r.read);
            }
        }
    }
    Ok(())
}
