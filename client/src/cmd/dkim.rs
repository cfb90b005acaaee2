//! `peagectl dkim`: the keys that sign the hosted domains' outgoing mail, and the DNS
//! records to publish for them.

use serde_json::json;

use peage_client::v1::{DkimGenerateRequest, DkimKeyInfo, DkimListRequest, DkimSelectorRequest};
use peage_client::ClientError;

use super::context::Ctx;
use crate::cli::DkimCmd;
use crate::output::{print_json, print_read_note, read_json};

fn key_json(k: &DkimKeyInfo) -> serde_json::Value {
    json!({"domain": k.domain, "selector": k.selector, "algorithm": k.algorithm,
           "dns_name": k.dns_name, "dns_record": k.dns_record, "active": k.active,
           "author": k.author, "created_at_ms": k.created_at_ms})
}

fn print_key(ctx: &Ctx, k: &DkimKeyInfo, log_index: u64) {
    if ctx.json {
        print_json(json!({"key": key_json(k), "log_index": log_index}));
        return;
    }
    let signs = if k.active {
        "signs now"
    } else {
        "waits for `dkim activate`"
    };
    println!(
        "{} key {} for {} ({signs}; log index {log_index}). Publish:",
        k.algorithm, k.selector, k.domain
    );
    println!("{} IN TXT \"{}\"", k.dns_name, k.dns_record);
}

pub async fn run(ctx: &mut Ctx, cmd: DkimCmd) -> Result<(), ClientError> {
    let stale = ctx.stale;
    let admin = ctx.admin().await?;
    match cmd {
        DkimCmd::Generate {
            domain,
            selector,
            algorithm,
        } => {
            let request = DkimGenerateRequest {
                domain,
                selector,
                algorithm,
            };
            let r = admin.dkim_generate(request).await;
            let r = r.map_err(|e| ctx.failed(e))?.into_inner();
            print_key(ctx, &r.key.unwrap_or_default(), r.log_index);
        }
        DkimCmd::Activate { domain, selector } => {
            let r = admin
                .dkim_activate(DkimSelectorRequest { domain, selector })
                .await;
            let r = r.map_err(|e| ctx.failed(e))?.into_inner();
            print_key(ctx, &r.key.unwrap_or_default(), r.log_index);
        }
        DkimCmd::Rm { domain, selector } => {
            let request = DkimSelectorRequest {
                domain: domain.clone(),
                selector: selector.clone(),
            };
            let r = admin.dkim_remove(request).await;
            let r = r.map_err(|e| ctx.failed(e))?.into_inner();
            println!(
                "removed key {selector} of {domain} (log index {})",
                r.log_index
            );
        }
        DkimCmd::Ls => {
            let r = admin.dkim_list(DkimListRequest { stale }).await;
            let r = r.map_err(|e| ctx.failed(e))?.into_inner();
            if ctx.json {
                let keys: Vec<_> = r.keys.iter().map(key_json).collect();
                print_json(json!({"keys": keys, "read": read_json(&r.read)}));
                return Ok(());
            }
            for k in &r.keys {
                let signs = if k.active { "signs" } else { "waits" };
                println!(
                    "{:<28}  {:<24}  {:<7}  {signs}",
                    k.domain, k.selector, k.algorithm
                );
                println!("    {} IN TXT \"{}\"", k.dns_name, k.dns_record);
            }
            print_read_note(&r.read);
        }
    }
    Ok(())
}
