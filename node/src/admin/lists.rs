//! The block and allow lists: adding (with a reason and an expiry), removing, listing by
//! page and checking a value, on any node.

use tonic::Status;

use peage_mail::lists::{normalize_probe, ListEntry};
use peage_proto::v1::{
    command, ListAdd, ListAddReply, ListAddRequest, ListCheckReply, ListCheckRequest,
    ListQueryReply, ListQueryRequest, ListRemove, ListRemoveReply, ListRemoveRequest,
};

use super::convert::{entry_to_proto, outcome_status, storage_status};
use super::service::AdminService;
use super::validate;
use crate::clock::now_ms;
use crate::state::list_entries::ListFilter;
use crate::types::Outcome;

pub async fn add(
    svc: &AdminService,
    author: String,
    r: ListAddRequest,
) -> Result<ListAddReply, Status> {
    let (list, kind, value) = validate::entry(r.list, r.kind, &r.value)?;
    validate::reason(&r.reason, svc.max_reason_bytes)?;
    let created_at_ms = now_ms();
    let expires_at_ms = validate::expiry(r.ttl_secs, created_at_ms)?;
    let add = ListAdd {
        list: list as i32,
        kind: kind as i32,
        value: value.clone(),
        reason: r.reason.clone(),
        author: author.clone(),
        created_at_ms,
        expires_at_ms,
    };
    match svc.propose(command::Kind::ListAdd(add)).await? {
        (log_index, Outcome::ListAdded { entry_id, created }) => {
            let entry = ListEntry {
                id: entry_id,
                list,
                kind,
                value,
                reason: r.reason,
                author,
                created_at_ms,
                expires_at_ms,
            };
            Ok(ListAddReply {
                entry: Some(entry_to_proto(&entry)),
                created,
                log_index,
            })
        }
        (_, other) => Err(outcome_status(other)),
    }
}

pub async fn remove(svc: &AdminService, r: ListRemoveRequest) -> Result<ListRemoveReply, Status> {
    let (list, kind, value) = validate::entry(r.list, r.kind, &r.value)?;
    let rm = ListRemove {
        list: list as i32,
        kind: kind as i32,
        value: value.clone(),
    };
    match svc.propose(command::Kind::ListRemove(rm)).await? {
        (_, Outcome::ListRemoved { removed: 0 }) => Err(Status::not_found(format!(
            "no {} entry `{value}` on the {} list",
            kind.as_str(),
            list.as_str()
        ))),
        (log_index, Outcome::ListRemoved { removed }) => Ok(ListRemoveReply { removed, log_index }),
        (_, other) => Err(outcome_status(other)),
    }
}

pub async fn query(svc: &AdminService, r: ListQueryRequest) -> Result<ListQueryReply, Status> {
    let list = validate::optional(r.list, validate::list)?;
    let kind = validate::optional(r.kind, validate::kind)?;
    let limit = validate::page_size(r.page_size)?;
    validate::contains(&r.contains)?;
    let read = svc.read_barrier(r.stale).await?;
    let filter = ListFilter {
        list,
        kind,
        contains: r.contains,
        after_id: r.page_token,
        limit,
    };
    let page = svc
        .cluster
        .state()
        .list_entries(filter)
        .await
        .map_err(storage_status)?;
    Ok(ListQueryReply {
        entries: page.entries.iter().map(entry_to_proto).collect(),
        next_page_token: page.next_after,
        read: Some(read),
    })
}

pub async fn check(svc: &AdminService, r: ListCheckRequest) -> Result<ListCheckReply, Status> {
    let kind = validate::kind(r.kind)?;
    let probe = normalize_probe(kind, &r.value).map_err(|e| validate::invalid(e.to_string()))?;
    let read = svc.read_barrier(r.stale).await?;
    let matches = svc.cluster.state().indexes().check(kind, &probe, now_ms());
    Ok(ListCheckReply {
        matches: matches.iter().map(entry_to_proto).collect(),
        normalized: probe,
        read: Some(read),
    })
}
