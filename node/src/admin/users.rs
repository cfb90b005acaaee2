//! Submission principals: creating one or changing its password, domains, trusted networks
//! or identity method (the password hashed here, off the runtime, so that only its
//! Argon2id hash is proposed), removing one, listing them without their hashes; and the
//! locked identities, listed, locked and unlocked; the outbound rate-limit counts, shown
//! and reset on every node.

use tonic::Status;

use peage_proto::v1::{
    command, IdentityChangeReply, IdentityListReply, IdentityListRequest, IdentityLock,
    IdentityLockRequest, IdentityUnlock, IdentityUnlockRequest, LockedIdentity, RateLimitCount,
    RateLimitResetReply, RateLimitResetRequest, RateLimitShowReply, RateLimitShowRequest, User,
    UserListReply, UserListRequest, UserRemove, UserRemoveReply, UserRemoveRequest, UserSet,
    UserSetReply, UserSetRequest,
};

use super::convert::{outcome_status, storage_status};
use super::service::AdminService;
use super::validate::invalid;
use crate::clock::now_ms;
use crate::logins::hash_password;
use crate::ratelimit::peer_addrs;
use crate::state::routing::normalize_domain;
use crate::state::{IdentityFrom, ANY_HOSTED_DOMAIN};
use crate::types::Outcome;

/// The shortest password an account may have.
pub const MIN_PASSWORD_CHARS: usize = 10;

/// A login as stored: lower-case, an address or a plain name, no spaces or controls.
fn normalize_login(login: &str) -> Result<String, Status> {
    let login = login.trim().to_lowercase();
    let ok = !login.is_empty()
        && login.len() <= 128
        && login
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "._+-@".contains(c));
    if ok {
        Ok(login)
    } else {
        Err(invalid(format!(
            "login `{login}`: 1 to 128 of letters, digits and . _ + - @"
        )))
    }
}

pub async fn set(
    svc: &AdminService,
    author: String,
    r: UserSetRequest,
) -> Result<UserSetReply, Status> {
    let login = normalize_login(&r.login)?;
    let current = svc.cluster.state().indexes().account(&login);
    let domains = if r.domains.is_empty() {
        match &current {
            Some(account) => account.domains.clone(),
            None => return Err(invalid("a new account needs at least one domain")),
        }
    } else {
        let mut domains = r
            .domains
            .iter()
            .map(|d| match d.trim() {
                ANY_HOSTED_DOMAIN => Ok(ANY_HOSTED_DOMAIN.to_owned()),
                d => normalize_domain(d).map_err(|e| invalid(e.to_string())),
            })
            .collect::<Result<Vec<_>, _>>()?;
        domains.sort();
        domains.dedup();
        domains
    };
    let networks: Vec<String> = if r.networks.is_empty() {
        current
            .iter()
            .flat_map(|a| &a.networks)
            .map(|n| n.to_string())
            .collect()
    } else {
        r.networks
            .iter()
            .map(|n| {
                n.trim()
                    .parse::<ipnet::IpNet>()
                    .map(|n| n.trunc().to_string())
                    .map_err(|_| invalid(format!("network `{n}`: a CIDR such as 192.0.2.0/24")))
            })
            .collect::<Result<_, _>>()?
    };
    let identity = match (r.identity.as_str(), &current) {
        ("", Some(account)) => account.identity.clone(),
        (text, _) => IdentityFrom::parse(text).map_err(invalid)?,
    };
    let password_hash = match (r.password.as_str(), current) {
        _ if r.no_password && networks.is_empty() => {
            return Err(invalid(
                "a principal without a password needs a trusted network (--network)",
            ))
        }
        _ if r.no_password => String::new(),
        ("", Some(account)) => account.password_hash,
        ("", None) => return Err(invalid("a new account needs a password")),
        (password, _) if password.chars().count() < MIN_PASSWORD_CHARS => {
            return Err(invalid(format!(
                "the password must have at least {MIN_PASSWORD_CHARS} characters"
            )))
        }
        (password, _) => {
            let password = password.to_owned();
            tokio::task::spawn_blocking(move || hash_password(&password))
                .await
                .map_err(|e| Status::internal(e.to_string()))?
                .map_err(|e| Status::internal(e.to_string()))?
        }
    };
    let set = UserSet {
        login,
        password_hash,
        domains,
        author,
        created_at_ms: now_ms(),
        networks,
        identity: identity.to_string(),
    };
    match svc.propose(command::Kind::UserSet(set)).await? {
        (log_index, Outcome::Set { created }) => Ok(UserSetReply { created, log_index }),
        (_, other) => Err(outcome_status(other)),
    }
}

pub async fn remove(svc: &AdminService, r: UserRemoveRequest) -> Result<UserRemoveReply, Status> {
    let login = normalize_login(&r.login)?;
    let rm = UserRemove {
        login: login.clone(),
    };
    match svc.propose(command::Kind::UserRemove(rm)).await? {
        (log_index, Outcome::Removed { removed: true }) => Ok(UserRemoveReply { log_index }),
        (_, Outcome::Removed { removed: false }) => {
            Err(Status::not_found(format!("no account `{login}`")))
        }
        (_, other) => Err(outcome_status(other)),
    }
}

pub async fn list(svc: &AdminService, r: UserListRequest) -> Result<UserListReply, Status> {
    let read = svc.read_barrier(r.stale).await?;
    let rows = svc.cluster.state().users().await.map_err(storage_status)?;
    let users = rows
        .into_iter()
        .map(|u| User {
            login: u.login,
            domains: u.domains,
            author: u.author,
            created_at_ms: u.created_at_ms,
            networks: u.networks,
            identity: u.identity,
            can_log_in: u.can_log_in,
        })
        .collect();
    Ok(UserListReply {
        users,
        read: Some(read),
    })
}

pub async fn locks(
    svc: &AdminService,
    r: IdentityListRequest,
) -> Result<IdentityListReply, Status> {
    let read = svc.read_barrier(r.stale).await?;
    let rows = svc.cluster.state().locks().await.map_err(storage_status)?;
    let identities = rows
        .into_iter()
        .map(|l| LockedIdentity {
            login: l.login,
            reason: l.lock.reason,
            locked_at_ms: l.locked_at_ms,
            until_ms: l.lock.until_ms,
            locks: l.locks,
            author: l.author,
        })
        .collect();
    Ok(IdentityListReply {
        identities,
        read: Some(read),
    })
}

pub async fn lock(
    svc: &AdminService,
    author: String,
    r: IdentityLockRequest,
) -> Result<IdentityChangeReply, Status> {
    let lock = IdentityLock {
        login: normalize_login(&r.login)?,
        reason: if r.reason.is_empty() {
            "locked by an operator".into()
        } else {
            r.reason
        },
        author,
        at_ms: now_ms(),
    };
    let (log_index, _) = svc.propose(command::Kind::IdentityLock(lock)).await?;
    Ok(IdentityChangeReply { log_index })
}

pub async fn unlock(
    svc: &AdminService,
    r: IdentityUnlockRequest,
) -> Result<IdentityChangeReply, Status> {
    let login = normalize_login(&r.login)?;
    let unlock = IdentityUnlock {
        login: login.clone(),
    };
    match svc.propose(command::Kind::IdentityUnlock(unlock)).await? {
        (log_index, Outcome::Removed { removed: true }) => Ok(IdentityChangeReply { log_index }),
        (_, Outcome::Removed { removed: false }) => {
            Err(Status::not_found(format!("`{login}` is not locked")))
        }
        (_, other) => Err(outcome_status(other)),
    }
}

/// The rate-limit counts this node knows, with their limits.
pub fn rate_limits(svc: &AdminService, r: RateLimitShowRequest) -> RateLimitShowReply {
    let name = Some(r.name.trim().to_lowercase()).filter(|n| !n.is_empty());
    let counts = svc
        .limits
        .show(&svc.cluster, name.as_deref())
        .into_iter()
        .map(|(key, count, limit)| RateLimitCount {
            counter: key.counter,
            name: key.name,
            window_secs: key.secs,
            count,
            limit,
        })
        .collect();
    RateLimitShowReply {
        counts,
        node_id: svc.cluster.id(),
    }
}

/// Forgets every count of a name here and on every peer that answers.
pub async fn reset_rate_limits(
    svc: &AdminService,
    r: RateLimitResetRequest,
) -> Result<RateLimitResetReply, Status> {
    let name = r.name.trim().to_lowercase();
    if name.is_empty() {
        return Err(invalid(
            "name the identity, principal, address or domain to reset",
        ));
    }
    let mut dropped = svc.cluster.shared_counts().forget(&name) as u64;
    let mut unreachable = Vec::new();
    for addr in peer_addrs(&svc.cluster) {
        match svc
            .cluster
            .peers()
            .reset_counts(&addr, &name, RESET_TIMEOUT)
            .await
        {
            Ok(n) => dropped += n,
            Err(e) => {
                tracing::warn!(peer = %addr, error = %e, "rate-limit counts not reset there");
                unreachable.push(addr);
            }
        }
    }
    Ok(RateLimitResetReply {
        dropped,
        unreachable,
    })
}

/// How long a peer has to forget a name's counts.
const RESET_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(3);
