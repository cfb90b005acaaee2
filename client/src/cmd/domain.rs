//! `peagectl domain add|rm|ls|users`: the routing table and the recipient lists.

use serde_json::{json, Value};

use peage_client::v1::{
    Domain, DomainListRequest, DomainRemoveRequest, DomainSetRequest, QueueListRequest,
    RecipientsAddRequest, RecipientsListRequest, RecipientsRemoveRequest,
};
use peage_client::ClientError;

use super::context::Ctx;
use crate::cli::{DomainCmd, UsersCmd};
use crate::output::{print_json, print_read_note, read_json};

pub async fn run(ctx: &mut Ctx, cmd: DomainCmd) -> Result<(), ClientError> {
    match cmd {
        DomainCmd::Add {
            domain,
            route,
            verify,
            dmarc,
            portal,
            digest_at,
            lang,
        } => {
            let set = DomainSetRequest {
                domain,
                route,
                verify: verify.unwrap_or_default(),
                dmarc: dmarc.unwrap_or_default(),
                portal: portal.unwrap_or_default(),
                digest_at: digest_at.unwrap_or_default(),
                digest_lang: lang.unwrap_or_default(),
            };
            let reply = ctx.admin().await?.domain_set(set).await;
            let r = reply.map_err(|e| ctx.failed(e))?.into_inner();
            let d = r.domain.unwrap_or_default();
            println!(
                "{} local domain {} → {}, recipients verified: {}, failing DMARC: {}, portal: {}, digest: {}, language: {} (log index {})",
                if r.created { "added" } else { "re-routed" },
                d.domain,
                d.route,
                d.verify,
                dmarc_word(&d.dmarc),
                on_off(d.portal),
                digest_word(&d),
                d.digest_lang,
                r.log_index
            );
        }
        DomainCmd::Users(cmd) => users(ctx, cmd).await?,
        DomainCmd::Rm { domain } => {
            let rm = DomainRemoveRequest {
                domain: domain.clone(),
            };
            let reply = ctx.admin().await?.domain_remove(rm).await;
            let r = reply.map_err(|e| ctx.failed(e))?.into_inner();
            println!("removed local domain {domain} (log index {})", r.log_index);
            still_addressed_to(ctx, &domain).await?;
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
                        json!({"domain": d.domain, "route": d.route, "verify": d.verify, "dmarc": dmarc_word(&d.dmarc), "portal": d.portal, "digest_at": d.digest_at, "lang": d.digest_lang, "author": d.author, "created_at_ms": d.created_at_ms})
                    })
                    .collect();
                print_json(json!({"domains": list, "read": read_json(&r.read)}));
            } else {
                println!(
                    "{:<32}  {:<32}  {:<7}  {:<10}  {:<6}  {:<9}  {:<4}  AUTHOR",
                    "DOMAIN", "ROUTE", "VERIFY", "DMARC", "PORTAL", "DIGEST", "LANG"
                );
                for d in &r.domains {
                    println!(
                        "{:<32}  {:<32}  {:<7}  {:<10}  {:<6}  {:<9}  {:<4}  {}",
                        d.domain,
                        d.route,
                        d.verify,
                        dmarc_word(&d.dmarc),
                        on_off(d.portal),
                        digest_word(d),
                        d.digest_lang,
                        d.author
                    );
                }
                print_read_note(&r.read);
            }
        }
    }
    Ok(())
}

/// A domain's digest as `peagectl` shows it: `07:30 UTC`, or `off`.
fn digest_word(d: &Domain) -> String {
    match d.digest_at.as_str() {
        "" => "off".to_owned(),
        at => format!("{at} UTC"),
    }
}

/// Most addresses in one request (the server's limit).
const USERS_PER_REQUEST: usize = 10_000;

async fn users(ctx: &mut Ctx, cmd: UsersCmd) -> Result<(), ClientError> {
    match cmd {
        UsersCmd::Add { addresses } => {
            let changed = add_users(ctx, addresses).await?;
            println!("{changed} mailbox(es) added");
        }
        UsersCmd::Rm { addresses } => {
            let mut removed = 0;
            for chunk in addresses.chunks(USERS_PER_REQUEST) {
                let rm = RecipientsRemoveRequest {
                    addresses: chunk.to_vec(),
                };
                let reply = ctx.admin().await?.recipients_remove(rm).await;
                removed += reply.map_err(|e| ctx.failed(e))?.into_inner().changed;
            }
            println!("{removed} mailbox(es) removed");
        }
        UsersCmd::Ls { domain } => {
            let mut all = Vec::new();
            let mut after = String::new();
            loop {
                let ls = RecipientsListRequest {
                    domain: domain.clone(),
                    after: after.clone(),
                    limit: 0,
                    stale: ctx.stale,
                };
                let reply = ctx.admin().await?.recipients_list(ls).await;
                let r = reply.map_err(|e| ctx.failed(e))?.into_inner();
                if !ctx.json {
                    for a in &r.addresses {
                        println!("{a}");
                    }
                }
                after = r.addresses.last().cloned().unwrap_or_default();
                all.extend(r.addresses);
                if !r.more {
                    break;
                }
            }
            if ctx.json {
                print_json(json!({"domain": domain, "addresses": all}));
            }
        }
        UsersCmd::Import { file } => {
            let text = std::fs::read_to_string(&file).map_err(|e| {
                ClientError::InvalidArgument(format!("cannot read {}: {e}", file.display()))
            })?;
            let addresses: Vec<String> = text
                .lines()
                .map(|l| l.split('#').next().unwrap_or("").trim())
                .filter(|l| !l.is_empty())
                .map(str::to_owned)
                .collect();
            let total = addresses.len();
            let changed = add_users(ctx, addresses).await?;
            println!(
                "{changed} mailbox(es) added from {} ({total} read, {} already there)",
                file.display(),
                total as u64 - changed
            );
        }
    }
    Ok(())
}

/// Adds mailboxes in requests of at most `USERS_PER_REQUEST`; the count of new ones.
async fn add_users(ctx: &mut Ctx, addresses: Vec<String>) -> Result<u64, ClientError> {
    let mut added = 0;
    for chunk in addresses.chunks(USERS_PER_REQUEST) {
        let add = RecipientsAddRequest {
            addresses: chunk.to_vec(),
        };
        let reply = ctx.admin().await?.recipients_add(add).await;
        added += reply.map_err(|e| ctx.failed(e))?.into_inner().changed;
    }
    Ok(added)
}

/// A domain's DMARC setting as operators name it (the node's own when it says nothing).
fn on_off(on: bool) -> &'static str {
    if on {
        "on"
    } else {
        "off"
    }
}

fn dmarc_word(stored: &str) -> &str {
    if stored.is_empty() {
        "default"
    } else {
        stored
    }
}

/// After a domain is removed: its mail already accepted stays, held or queued (a queued
/// message goes to the domain's MX if the nodes resolve one, else waits for a route until
/// its retention ends). Says how much, and how to drop it, so none of it surprises.
async fn still_addressed_to(ctx: &mut Ctx, domain: &str) -> Result<(), ClientError> {
    let at = format!("@{domain}");
    let mut counts = [0usize; 2];
    for (quarantine, count) in [false, true].into_iter().zip(&mut counts) {
        let req = QueueListRequest {
            quarantine,
            recipient: at.clone(),
            page_size: 1000,
            ..Default::default()
        };
        let reply = ctx.admin().await?.queue_list(req).await;
        let r = reply.map_err(|e| ctx.failed(e))?.into_inner();
        *count = r
            .messages
            .iter()
            .filter(|m| m.rcpt_to.iter().any(|x| x.to_lowercase().ends_with(&at)))
            .count();
    }
    let [queued, held] = counts;
    if queued + held > 0 {
        println!(
            "{queued} queued and {held} held message(s) are still for {domain}: queued mail goes to its MX if the nodes resolve one, else waits for a route until spool.retention_secs; `peagectl queue drop --all --recipient {at}` drops the queued ones"
        );
    }
    Ok(())
}
