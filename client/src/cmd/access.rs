//! `peagectl token`, `peagectl audit`, `peagectl portal` and `peagectl digest`: API tokens
//! made, removed and listed; the audit log of admin writes; links to a mailbox's held mail
//! in the portal, and its digest sent now.

use serde_json::json;

use peage_client::parse_duration_secs;
use peage_client::v1::{
    AuditListRequest, DigestSendRequest, PortalLinkRequest, TokenAddRequest, TokenInfo,
    TokenListRequest, TokenRemoveRequest,
};
use peage_client::ClientError;

use super::context::Ctx;
use super::messages::ago_ms;
use crate::cli::{AuditArgs, TokenCmd};
use crate::output::{print_json, print_read_note, read_json, utc};

fn token_json(t: &TokenInfo) -> serde_json::Value {
    json!({"name": t.name, "role": t.role, "domains": t.domains,
           "expires_at_ms": t.expires_at_ms, "author": t.author,
           "created_at_ms": t.created_at_ms, "source": t.source})
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

pub async fn tokens(ctx: &mut Ctx, cmd: TokenCmd) -> Result<(), ClientError> {
    let stale = ctx.stale;
    let admin = ctx.admin().await?;
    match cmd {
        TokenCmd::Add {
            name,
            role,
            domains,
            expires_in,
        } => {
            let expires_at_ms = match expires_in {
                Some(d) => {
                    let secs = parse_duration_secs(&d).map_err(ClientError::InvalidArgument)?;
                    now_ms() + secs as i64 * 1000
                }
                None => 0,
            };
            let request = TokenAddRequest {
                name,
                role: role.name().into(),
                domains,
                expires_at_ms,
            };
            let reply = admin.token_add(request).await;
            let r = reply.map_err(|e| ctx.failed(e))?.into_inner();
            let token = r.token.unwrap_or_default();
            if ctx.json {
                print_json(json!({"token": token_json(&token), "secret": r.secret,
                                  "log_index": r.log_index}));
            } else {
                println!(
                    "token {} ({}) added at log index {}",
                    token.name, token.role, r.log_index
                );
                println!("secret (shown once, stored nowhere in clear): {}", r.secret);
            }
        }
        TokenCmd::Rm { name } => {
            let request = TokenRemoveRequest { name: name.clone() };
            let reply = admin.token_remove(request).await;
            let r = reply.map_err(|e| ctx.failed(e))?.into_inner();
            match r.removed {
                true => println!("token {name} removed at log index {}", r.log_index),
                false => return Err(ClientError::NotFound(format!("no API token {name}"))),
            }
        }
        TokenCmd::Ls => {
            let request = TokenListRequest { stale };
            let reply = admin.token_list(request).await;
            let r = reply.map_err(|e| ctx.failed(e))?.into_inner();
            if ctx.json {
                let tokens: Vec<_> = r.tokens.iter().map(token_json).collect();
                print_json(json!({"tokens": tokens, "read": read_json(&r.read)}));
                return Ok(());
            }
            println!(
                "{:<20}  {:<12}  {:<6}  {:<23}  {:<12}  DOMAINS",
                "NAME", "ROLE", "SOURCE", "EXPIRES (UTC)", "AUTHOR"
            );
            for t in &r.tokens {
                let expires = match t.expires_at_ms {
                    0 => "never".to_owned(),
                    ms => utc(ms),
                };
                let domains = match t.domains.is_empty() {
                    true => "(all)".to_owned(),
                    false => t.domains.join(","),
                };
                println!(
                    "{:<20}  {:<12}  {:<6}  {:<23}  {:<12}  {domains}",
                    t.name, t.role, t.source, expires, t.author
                );
            }
            print_read_note(&r.read);
        }
    }
    Ok(())
}

pub async fn audit(ctx: &mut Ctx, a: AuditArgs) -> Result<(), ClientError> {
    let request = AuditListRequest {
        token: a.by,
        action: a.action,
        failed_only: a.failed,
        since_ms: ago_ms(&a.since)?,
        until_ms: 0,
        limit: a.limit,
        stale: ctx.stale,
    };
    let reply = ctx.admin().await?.audit_list(request).await;
    let r = reply.map_err(|e| ctx.failed(e))?.into_inner();
    if ctx.json {
        let entries: Vec<_> = r
            .entries
            .iter()
            .map(|e| {
                json!({"id": e.id, "at_ms": e.at_ms, "token": e.token, "role": e.role,
                       "client": e.client, "node_id": e.node_id, "action": e.action,
                       "target": e.target, "outcome": e.outcome})
            })
            .collect();
        print_json(json!({"entries": entries, "read": read_json(&r.read)}));
        return Ok(());
    }
    println!(
        "{:<23}  {:<16}  {:<12}  {:<21}  {:<4}  {:<16}  {:<30}  OUTCOME",
        "TIME (UTC)", "TOKEN", "ROLE", "CLIENT", "NODE", "ACTION", "TARGET"
    );
    for e in &r.entries {
        println!(
            "{:<23}  {:<16}  {:<12}  {:<21}  {:<4}  {:<16}  {:<30}  {}",
            utc(e.at_ms),
            e.token,
            e.role,
            e.client,
            e.node_id,
            e.action,
            e.target,
            e.outcome
        );
    }
    print_read_note(&r.read);
    Ok(())
}

pub async fn portal_link(
    ctx: &mut Ctx,
    mailbox: String,
    valid: Option<String>,
) -> Result<(), ClientError> {
    let valid_secs = match valid {
        Some(d) => parse_duration_secs(&d).map_err(ClientError::InvalidArgument)?,
        None => 0,
    };
    let request = PortalLinkRequest {
        mailbox,
        valid_secs,
    };
    let reply = ctx.admin().await?.portal_link(request).await;
    let r = reply.map_err(|e| ctx.failed(e))?.into_inner();
    if ctx.json {
        print_json(json!({"url": r.url, "expires_at_ms": r.expires_at_ms}));
    } else {
        println!("{}", r.url);
        println!("good until {} (UTC)", utc(r.expires_at_ms));
    }
    Ok(())
}

pub async fn digest_send(ctx: &mut Ctx, recipient: String, all: bool) -> Result<(), ClientError> {
    let request = DigestSendRequest {
        recipient: recipient.clone(),
        all,
    };
    let reply = ctx.admin().await?.digest_send(request).await;
    let r = reply.map_err(|e| ctx.failed(e))?.into_inner();
    if ctx.json {
        print_json(json!({"queue_id": r.queue_id, "messages": r.messages}));
    } else {
        println!(
            "digest of {} held message(s) queued for {recipient} (queue id {})",
            r.messages, r.queue_id
        );
    }
    Ok(())
}
