//! The spool and the quarantine (its incoming and outbound halves apart) as operators see
//! them: listing with filters and pages,
//! showing a message with its body, and acting on one (release, drop, retry) — each within
//! the caller's domains (`scoped`).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use tonic::Status;

use peage_mail::bayes::Class;
use peage_proto::v1::{
    command, MessageActionReply, MessageRef, MessageShowReply, QueueListReply, QueueListRequest,
    QueuedMessage, SpoolDrop, SpoolRelease, SpoolRetry,
};

use super::auth::{Caller, Scope};
use super::convert::{outcome_status, queued_to_proto, unavailable_status};
use super::learn::learn_message;
use super::scoped;
use super::service::AdminService;
use super::tracking::ask_members;
use super::validate;
use crate::spool::bodies::body_of;
use crate::spool::submission;
use crate::state::spool::SpooledMessage;
use crate::state::tokens::Role;
use crate::tracking::event_of;
use crate::types::Outcome;

pub async fn list(
    svc: &AdminService,
    scope: &Scope,
    r: QueueListRequest,
) -> Result<QueueListReply, Status> {
    let limit = validate::page_size(r.page_size)? as usize;
    let read = svc.read_barrier(r.stale).await?;
    let (rcpt, sender) = (r.recipient.to_lowercase(), r.sender.to_lowercase());
    let mut matching: Vec<_> = svc
        .cluster
        .state()
        .spool()
        .all()
        .into_iter()
        .filter(|m| scoped::sees_message(scope, m))
        .filter(|m| m.is_quarantined() == r.quarantine)
        .filter(|m| {
            let outgoing = submission::identity_in(&m.symbols).is_some();
            outgoing == r.outbound || (!r.quarantine && !r.outbound)
        })
        .filter(|m| rcpt.is_empty() || m.rcpt_to.iter().any(|x| x.to_lowercase().contains(&rcpt)))
        .filter(|m| sender.is_empty() || m.mail_from.to_lowercase().contains(&sender))
        .filter(|m| m.accepted_at_ms >= r.since_ms)
        .filter(|m| r.verdict.is_empty() || m.verdict == r.verdict)
        .filter(|m| r.page_token.is_empty() || m.queue_id > r.page_token)
        .collect();
    matching.sort_by(|a, b| a.queue_id.cmp(&b.queue_id));
    let next_page_token = if matching.len() > limit {
        matching.truncate(limit);
        matching
            .last()
            .map(|m| m.queue_id.clone())
            .unwrap_or_default()
    } else {
        String::new()
    };
    let mut messages: Vec<QueuedMessage> = matching
        .into_iter()
        .map(|m| scoped::message(scope, queued_to_proto(Arc::unwrap_or_clone(m))))
        .collect();
    with_owner_sites(svc, &mut messages);
    let unanswered = with_failed_attempts(svc, &mut messages).await;
    Ok(QueueListReply {
        messages,
        read: Some(read),
        next_page_token,
        unanswered,
    })
}

/// How long a member has to say which attempts failed there before a listing goes without.
const DEFERRALS_TIMEOUT: Duration = Duration::from_secs(2);

/// Fills in the failed attempts at `messages` from every member's tracking (each node
/// records its own attempts: an owner's, and a previous owner's before a hand-off or a
/// takeover); the members that did not answer.
/// Names each message's owner by its site, as operators know the nodes.
fn with_owner_sites(svc: &AdminService, messages: &mut [QueuedMessage]) {
    let m = svc.cluster.metrics();
    let members = m.membership_config.membership();
    for message in messages {
        if let Some(node) = members.get_node(&message.owner) {
            message.owner_site = node.site.clone();
        }
    }
}

async fn with_failed_attempts(svc: &AdminService, messages: &mut [QueuedMessage]) -> Vec<String> {
    if messages.is_empty() {
        return Vec::new();
    }
    let ids: Vec<String> = messages.iter().map(|m| m.queue_id.clone()).collect();
    let (found, unanswered) = ask_members(
        svc,
        &ids,
        |ids| svc.cluster.tracking().deferrals(ids),
        |addr, ids| async move {
            let peers = svc.cluster.peers();
            peers.deferral_search(&addr, ids, DEFERRALS_TIMEOUT).await
        },
    )
    .await;
    let at: HashMap<String, usize> = ids.into_iter().zip(0..).collect();
    for d in found.into_iter().flatten() {
        let Some(m) = at.get(&d.queue_id).map(|i| &mut messages[*i]) else {
            continue;
        };
        m.failed_attempts += d.count;
        if d.last_at_ms > m.last_failed_ms {
            (m.last_failed_ms, m.last_failure) = (d.last_at_ms, d.last_detail);
        }
    }
    unanswered
}

/// The message `id` when the caller may see it (one out of scope is not found either).
pub(super) fn find(svc: &AdminService, scope: &Scope, id: &str) -> Result<SpooledMessage, Status> {
    svc.cluster
        .state()
        .spool()
        .get(id)
        .map(Arc::unwrap_or_clone)
        .filter(|m| scoped::sees_message(scope, m))
        .ok_or_else(|| scoped::not_found(id))
}

/// A message and its body; an outgoing one only when `outgoing_allowed` (operators).
pub async fn show(
    svc: &AdminService,
    scope: &Scope,
    req: MessageRef,
    outgoing_allowed: bool,
) -> Result<MessageShowReply, Status> {
    let id = req.queue_id;
    svc.cluster
        .read_barrier(false)
        .await
        .map_err(unavailable_status)?;
    let m = find(svc, scope, &id)?;
    if !outgoing_allowed && submission::identity_in(&m.symbols).is_some() {
        return Err(Status::permission_denied(format!(
            "{id} is outgoing mail, shown to operators only"
        )));
    }
    let body = body_of(&svc.cluster, &m)
        .await
        .map_err(Status::unavailable)?;
    let mut shown = scoped::message(scope, queued_to_proto(m));
    with_owner_sites(svc, std::slice::from_mut(&mut shown));
    Ok(MessageShowReply {
        message: Some(shown),
        body,
    })
}

/// The recipients of message `id` a change by a caller in `scope` is for: empty for the
/// whole message (which `whole_only` demands: every recipient in scope), else those in
/// scope.
fn acting_for(
    svc: &AdminService,
    scope: &Scope,
    id: &str,
    whole_only: bool,
) -> Result<Vec<String>, Status> {
    validate::queue_id(id)?;
    if scope.is_everything() {
        return Ok(Vec::new());
    }
    let m = find(svc, scope, id)?;
    if whole_only {
        scoped::owns_message(scope, &m)?;
        return Ok(Vec::new());
    }
    Ok(scoped::part_of(scope, &m)?.unwrap_or_default())
}

/// A change to message `id` (a `what`), proposed.
async fn act(
    svc: &AdminService,
    id: String,
    what: &str,
    change: command::Kind,
) -> Result<MessageActionReply, Status> {
    match svc.propose(change).await? {
        (log_index, Outcome::SpoolChanged { found: true }) => Ok(MessageActionReply {
            log_index,
            learned: String::new(),
        }),
        (_, Outcome::SpoolChanged { found: false }) => {
            Err(Status::not_found(format!("no {what} {id}")))
        }
        (_, other) => Err(outcome_status(other)),
    }
}

/// Releases a quarantined message and, unless `no_learn`, teaches the classifier it was
/// ham: a staff release (operator, helpdesk) is the correction of a false positive. A
/// domain admin's release teaches nothing: the classifier is every customer's.
pub async fn release(
    svc: &AdminService,
    caller: Caller,
    req: MessageRef,
) -> Result<MessageActionReply, Status> {
    let staff = matches!(caller.role, Role::Operator | Role::Helpdesk);
    let no_learn = req.no_learn || !staff;
    release_as(svc, &caller.scope, caller.name, req.queue_id, !no_learn).await
}

/// Releases a quarantined message for `author` within `scope`, teaching the classifier it
/// was ham when `learn`.
pub async fn release_as(
    svc: &AdminService,
    scope: &Scope,
    author: String,
    queue_id: String,
    learn: bool,
) -> Result<MessageActionReply, Status> {
    let no_learn = !learn;
    let part = acting_for(svc, scope, &queue_id, false)?;
    // The record and body first: once released, the message may be delivered and gone.
    let held = find(svc, scope, &queue_id).ok();
    let body = match (&held, no_learn) {
        (Some(m), false) => body_of(&svc.cluster, m).await.ok(),
        _ => None,
    };
    let lease_until_ms = svc.cluster.leader_now_ms() + svc.lease.as_millis() as i64;
    let owner = svc.cluster.id();
    // A part released is a message of its own.
    let split_queue_id = match part.is_empty() {
        true => String::new(),
        false => format!("{:016X}", rand::random::<u64>()),
    };
    let release = command::Kind::SpoolRelease(SpoolRelease {
        queue_id: queue_id.clone(),
        owner,
        lease_until_ms,
        rcpt_to: part.clone(),
        split_queue_id: split_queue_id.clone(),
    });
    let mut reply = act(svc, queue_id, "quarantined message", release).await?;
    if let Some(m) = held {
        let (rcpts, detail) = match part.is_empty() {
            true => (m.rcpt_to.clone(), format!("released by {author}")),
            // `track --queue-id` follows the part under its own id.
            false => (part, format!("released by {author} as {split_queue_id}")),
        };
        let event = event_of(&m, "released", rcpts, detail);
        svc.cluster.tracking().record(event);
    }
    if let Some(body) = body {
        let learned = learn_message(svc, &body, Class::Ham, author).await?;
        reply.learned = learned.change.as_str().to_owned();
    }
    Ok(reply)
}

pub async fn remove(
    svc: &AdminService,
    scope: Scope,
    req: MessageRef,
) -> Result<MessageActionReply, Status> {
    let rcpt_to = acting_for(svc, &scope, &req.queue_id, false)?;
    let queue_id = req.queue_id.clone();
    let drop = command::Kind::SpoolDrop(SpoolDrop { queue_id, rcpt_to });
    act(svc, req.queue_id, "message", drop).await
}

pub async fn retry(
    svc: &AdminService,
    scope: Scope,
    req: MessageRef,
) -> Result<MessageActionReply, Status> {
    acting_for(svc, &scope, &req.queue_id, true)?;
    let queue_id = req.queue_id.clone();
    let retry = command::Kind::SpoolRetry(SpoolRetry { queue_id });
    act(svc, req.queue_id, "message", retry).await
}
