//! What a token bound to some domains may see and touch, decided on the server: a message
//! is seen when one of its recipients is in scope (or it is outgoing mail of a sender in
//! scope), with the other recipients left out; it is released or removed for the
//! recipients in scope only, and retried only when every recipient is; an account, a lock
//! or a mailbox only when all its domains are.

use tonic::Status;

use peage_proto::v1::{
    Domain, LockedIdentity, QueuedMessage, TrackEvent, TrackQuery, User, UserSetRequest,
};

use super::auth::{Caller, Scope};
use super::service::AdminService;
use crate::spool::submission;
use crate::state::addressing::{Role, ANY_HOSTED_DOMAIN};
use crate::state::spool::SpooledMessage;

/// Whether a spooled message is the caller's to see.
pub fn sees_message(scope: &Scope, m: &SpooledMessage) -> bool {
    let outgoing = submission::identity_in(&m.symbols).is_some();
    m.rcpt_to.iter().any(|r| scope.covers_address(r))
        || (outgoing && scope.covers_address(&m.mail_from))
}

/// A message as the caller sees it: recipients outside the scope left out, unless it is
/// the outgoing mail of a sender in scope.
pub fn message(scope: &Scope, mut m: QueuedMessage) -> QueuedMessage {
    if !scope.is_everything() && !scope.covers_address(&m.mail_from) {
        m.rcpt_to.retain(|r| scope.covers_address(r));
    }
    m
}

/// `PERMISSION_DENIED` unless every recipient of the message is in scope: a release, a
/// drop or a retry acts for all of them.
pub fn owns_message(scope: &Scope, m: &SpooledMessage) -> Result<(), Status> {
    match m.rcpt_to.iter().find(|r| !scope.covers_address(r)) {
        None => Ok(()),
        Some(_) if !sees_message(scope, m) => Err(not_found(&m.queue_id)),
        Some(other) => Err(scope.outside(&format!(
            "{} is also addressed to {other}, which",
            m.queue_id
        ))),
    }
}

/// The recipients a release or a removal by a caller in `scope` acts for: `None` for the
/// whole message (every recipient is in scope), else the ones in scope, whose part is
/// taken apart from the others'. Errors as `owns_message` when none is.
pub fn part_of(scope: &Scope, m: &SpooledMessage) -> Result<Option<Vec<String>>, Status> {
    let mine: Vec<String> = m
        .rcpt_to
        .iter()
        .filter(|r| scope.covers_address(r))
        .cloned()
        .collect();
    match mine.len() {
        0 => owns_message(scope, m).map(|()| None),
        n if n == m.rcpt_to.len() => Ok(None),
        _ => Ok(Some(mine)),
    }
}

/// What a caller out of scope is told of a message: the same as of one that does not exist.
pub fn not_found(queue_id: &str) -> Status {
    Status::not_found(format!("no message {queue_id}"))
}

/// A tracking event as the caller sees it; `None` when nothing of it is theirs, or when
/// only a recipient left out matched the search (which would tell who else got it).
pub fn event(scope: &Scope, q: &TrackQuery, mut e: TrackEvent) -> Option<TrackEvent> {
    if scope.is_everything() {
        return Some(e);
    }
    e.recipients.retain(|r| scope.covers_address(r));
    let rcpt = q.recipient.trim().to_lowercase();
    let domain = q.domain.trim().trim_start_matches('@').to_lowercase();
    let matches = |address: &str| {
        let address = address.to_lowercase();
        (rcpt.is_empty() || address.contains(&rcpt))
            && (domain.is_empty() || address.ends_with(&format!("@{domain}")))
    };
    let sender_matches = rcpt.is_empty() && matches(&e.sender);
    let found = sender_matches || e.recipients.iter().any(|r| matches(r));
    (found && !e.recipients.is_empty()).then_some(e)
}

/// Whether a list entry of `list_scope` (empty: the cluster's; a domain; a mailbox) is the
/// caller's to see: a token bound to no domain sees every entry, one bound to domains only
/// the entries scoped within them.
pub fn sees_list_entry(scope: &Scope, list_scope: &str) -> bool {
    scope.is_everything()
        || match list_scope {
            "" => false,
            mailbox if mailbox.contains('@') => scope.covers_address(mailbox),
            domain => scope.covers_domain(domain),
        }
}

/// `PERMISSION_DENIED` unless the caller may write entries of `list_scope`: the cluster's
/// lists take an operator bound to no domain, a domain's or mailbox's own entries a token
/// whose domains cover it.
pub fn list_write(caller: &Caller, list_scope: &str) -> Result<(), Status> {
    if list_scope.is_empty() {
        return match caller.role == Role::Operator && caller.scope.is_everything() {
            true => Ok(()),
            false => Err(Status::permission_denied(
                "the cluster-wide lists take an operator token bound to no domain; \
                 a domain's own entry names its scope (--scope DOMAIN or --scope USER@DOMAIN)",
            )),
        };
    }
    match sees_list_entry(&caller.scope, list_scope) {
        true => Ok(()),
        false => Err(caller.scope.outside(list_scope)),
    }
}

/// `PERMISSION_DENIED` unless every address is of a domain in scope.
pub fn addresses(scope: &Scope, all: &[String]) -> Result<(), Status> {
    match all.iter().find(|a| !scope.covers_address(a)) {
        None => Ok(()),
        Some(a) => Err(scope.outside(a)),
    }
}

fn domains_in_scope(scope: &Scope, domains: &[String]) -> bool {
    scope.is_everything()
        || (!domains.is_empty()
            && domains
                .iter()
                .all(|d| d != ANY_HOSTED_DOMAIN && scope.covers_domain(d)))
}

pub fn sees_user(scope: &Scope, u: &User) -> bool {
    domains_in_scope(scope, &u.domains)
}

pub fn sees_lock(scope: &Scope, l: &LockedIdentity) -> bool {
    scope.covers_address(&l.login)
}

pub fn sees_domain(scope: &Scope, d: &Domain) -> bool {
    scope.covers_domain(&d.domain)
}

/// A domain admin sets accounts of its own domains only, never one trusted by network
/// (that would let a customer's platform relay as anyone) and never an operator's.
pub fn user_write(
    svc: &AdminService,
    scope: &Scope,
    login: &str,
    r: Option<&UserSetRequest>,
) -> Result<(), Status> {
    if scope.is_everything() {
        return Ok(());
    }
    let login = login.trim().to_lowercase();
    if let Some(current) = svc.cluster.state().indexes().account(&login) {
        if !domains_in_scope(scope, &current.domains) {
            return Err(scope.outside(&format!("account {login}")));
        }
    }
    let Some(r) = r else { return Ok(()) };
    if !r.networks.is_empty() || r.no_password {
        return Err(Status::permission_denied(
            "a token bound to domains cannot make an account trusted by network",
        ));
    }
    match r
        .domains
        .iter()
        .find(|d| d.trim() == ANY_HOSTED_DOMAIN || !scope.covers_domain(d))
    {
        None => Ok(()),
        Some(d) => Err(scope.outside(d)),
    }
}
