//! `peagectl list add|rm|ls|check`: the block and allow lists.

use serde_json::json;

use peage_client::v1::{
    EntryKind, ListAddRequest, ListCheckRequest, ListQueryRequest, ListRemoveRequest,
};
use peage_client::{parse_duration_secs, ClientError};

use super::context::Ctx;
use crate::cli::ListCmd;
use crate::output::{
    entries_json, entry_json, print_entries, print_json, print_read_note, read_json,
};
use crate::wire::{kind_word, list_word};

pub async fn run(ctx: &mut Ctx, cmd: ListCmd) -> Result<(), ClientError> {
    ctx.admin().await?;
    match cmd {
        ListCmd::Add {
            kind,
            value,
            reason,
            ttl,
            list,
            scope,
        } => {
            let ttl_secs = ttl
                .map(|t| parse_duration_secs(&t))
                .transpose()
                .map_err(ClientError::InvalidArgument)?;
            let add = ListAddRequest {
                list: list as i32,
                kind: kind as i32,
                value,
                reason,
                ttl_secs,
                scope,
            };
            add_entry(ctx, add).await
        }
        ListCmd::Rm {
            kind,
            value,
            list,
            scope,
        } => {
            let rm = ListRemoveRequest {
                list: list as i32,
                kind: kind as i32,
                value,
                scope,
            };
            let reply = ctx.admin().await?.list_remove(rm).await;
            let r = reply.map_err(|e| ctx.failed(e))?.into_inner();
            println!("removed {} entry (log index {})", r.removed, r.log_index);
            Ok(())
        }
        ListCmd::Ls {
            list,
            kind,
            contains,
            scope,
            limit,
            page_token,
            all,
        } => {
            let query = ListQueryRequest {
                list: list.map_or(0, |l| l as i32),
                kind: kind.map_or(0, |k| k as i32),
                contains,
                page_size: limit,
                page_token,
                stale: ctx.stale,
                scope,
            };
            list_entries(ctx, query, all).await
        }
        ListCmd::Check { kind, value } => check(ctx, kind, value).await,
    }
}

async fn add_entry(ctx: &mut Ctx, add: ListAddRequest) -> Result<(), ClientError> {
    let reply = ctx.admin().await?.list_add(add).await;
    let r = reply.map_err(|e| ctx.failed(e))?.into_inner();
    let e = r.entry.unwrap_or_default();
    if ctx.json {
        print_json(
            json!({"entry": entry_json(&e), "created": r.created, "log_index": r.log_index}),
        );
    } else {
        println!(
            "{} {} entry {} `{}`{} (id {}, log index {})",
            if r.created { "added" } else { "replaced" },
            list_word(e.list),
            kind_word(e.kind),
            e.value,
            if e.scope.is_empty() {
                String::new()
            } else {
                format!(" for {}", e.scope)
            },
            e.id,
            r.log_index
        );
    }
    Ok(())
}

/// One page, or every page with `all`.
async fn list_entries(
    ctx: &mut Ctx,
    mut query: ListQueryRequest,
    all: bool,
) -> Result<(), ClientError> {
    let mut entries = Vec::new();
    let read = loop {
        let reply = ctx.admin().await?.list_query(query.clone()).await;
        let r = reply.map_err(|e| ctx.failed(e))?.into_inner();
        entries.extend(r.entries);
        query.page_token = r.next_page_token;
        if !all || query.page_token == 0 {
            break r.read;
        }
    };
    let token = query.page_token;
    if ctx.json {
        print_json(
            json!({"entries": entries_json(&entries), "next_page_token": token, "read": read_json(&read)}),
        );
    } else {
        if entries.is_empty() {
            println!("no entry");
        } else {
            print_entries(&entries);
        }
        if token != 0 {
            println!("(more: --page-token {token}, or --all)");
        }
        print_read_note(&read);
    }
    Ok(())
}

async fn check(ctx: &mut Ctx, kind: EntryKind, value: String) -> Result<(), ClientError> {
    let req = ListCheckRequest {
        kind: kind as i32,
        value,
        stale: ctx.stale,
    };
    let reply = ctx.admin().await?.list_check(req).await;
    let r = reply.map_err(|e| ctx.failed(e))?.into_inner();
    if ctx.json {
        print_json(
            json!({"normalized": r.normalized, "matches": entries_json(&r.matches), "read": read_json(&r.read)}),
        );
        return Ok(());
    }
    let kind = kind_word(kind as i32);
    if r.matches.is_empty() {
        println!("{kind} `{}`: no entry matches", r.normalized);
    } else {
        println!("{kind} `{}` matches:", r.normalized);
        print_entries(&r.matches);
    }
    print_read_note(&r.read);
    Ok(())
}
