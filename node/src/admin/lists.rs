//! The block and allow lists: adding (with a reason and an expiry), removing, listing by
//! page and checking a value, on any node; the cluster's own entries and the entries a
//! hosted domain or mailbox keeps for itself (its scope), each caller within its own.

use tonic::Status;

use peage_mail::lists::{normalize_probe, normalize_scope, ListEntry};
use peage_proto::v1::{
    command, ListAdd, ListAddReply, ListAddRequest, ListCheckReply, ListCheckRequest,
    ListQueryReply, ListQueryRequest, ListRemove, ListRemoveReply, ListRemoveRequest,
};

use super::auth::Caller;
use super::convert::{entry_to_proto, outcome_status, storage_status};
use super::scoped;
use super::service::AdminService;
use super::validate;
use crate::clock::now_ms;
use crate::state::list_entries::ListFilter;
use crate::types::Outcome;

/// The normalised scope of an entry the caller writes: theirs, and a hosted domain's.
fn writable_scope(svc: &AdminService, caller: &Caller, scope: &str) -> Result<String, Status> {
    let scope = normalize_scope(scope).map_err(|e| validate::invalid(format!("scope: {e}")))?;
    scoped::list_write(caller, &scope)?;
    let domain = scope.rsplit('@').next().unwrap_or_default();
    let indexes = svc.cluster.state().indexes();
    let hosted = std::iter::successors(Some(domain), |d| d.split_once('.').map(|(_, up)| up))
        .any(|d| indexes.route_for(d).is_some());
    if !scope.is_empty() && !hosted {
        return Err(Status::failed_precondition(format!(
            "scope {scope}: {domain} is not a hosted domain (peagectl domain ls)"
        )));
    }
    Ok(scope)
}

pub async fn add(
    svc: &AdminService,
    caller: Caller,
    r: ListAddRequest,
) -> Result<ListAddReply, Status> {
    let scope = writable_scope(svc, &caller, &r.scope)?;
    let author = caller.name;
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
        scope: scope.clone(),
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
                scope,
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

pub async fn remove(
    svc: &AdminService,
    caller: Caller,
    r: ListRemoveRequest,
) -> Result<ListRemoveReply, Status> {
    let scope = writable_scope(svc, &caller, &r.scope)?;
    let (list, kind, value) = validate::entry(r.list, r.kind, &r.value)?;
    let rm = ListRemove {
        list: list as i32,
        kind: kind as i32,
        value: value.clone(),
        scope: scope.clone(),
    };
    match svc.propose(command::Kind::ListRemove(rm)).await? {
        (_, Outcome::ListRemoved { removed: 0 }) => Err(Status::not_found(format!(
            "no {} entry `{value}` on the {} list{}",
            kind.as_str(),
            list.as_str(),
            match scope.as_str() {
                "" => " (cluster-wide)".to_owned(),
                scope => format!(" of {scope}"),
            }
        ))),
        (log_index, Outcome::ListRemoved { removed }) => Ok(ListRemoveReply { removed, log_index }),
        (_, other) => Err(outcome_status(other)),
    }
}

/// A page of the entries the caller sees: with a scope asked, that domain's own entries
/// (its subdomains' and mailboxes' included); otherwise every entry, or for a token bound
/// to domains every entry of theirs.
pub async fn query(
    svc: &AdminService,
    caller: Caller,
    r: ListQueryRequest,
) -> Result<ListQueryReply, Status> {
    let asked = normalize_scope(&r.scope).map_err(|e| validate::invalid(format!("scope: {e}")))?;
    let scopes = if asked.is_empty() {
        caller.scope.domains().to_vec()
    } else if asked.contains('@') {
        return Err(validate::invalid(
            "scope: a domain (its mailboxes' entries are listed with it)",
        ));
    } else if scoped::sees_list_entry(&caller.scope, &asked) {
        vec![asked]
    } else {
        return Err(caller.scope.outside(&asked));
    };
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
        scopes,
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

/// The live entries matching a value, of those the caller sees.
pub async fn check(
    svc: &AdminService,
    caller: Caller,
    r: ListCheckRequest,
) -> Result<ListCheckReply, Status> {
    let kind = validate::kind(r.kind)?;
    let probe = normalize_probe(kind, &r.value).map_err(|e| validate::invalid(e.to_string()))?;
    let read = svc.read_barrier(r.stale).await?;
    let mut matches = svc.cluster.state().indexes().check(kind, &probe, now_ms());
    matches.retain(|e| scoped::sees_list_entry(&caller.scope, &e.scope));
    Ok(ListCheckReply {
        matches: matches.iter().map(entry_to_proto).collect(),
        normalized: probe,
        read: Some(read),
    })
}
