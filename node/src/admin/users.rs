//! Submission accounts: creating one or changing its password or domains (the password
//! hashed here, off the runtime, so that only its Argon2id hash is proposed), removing one,
//! listing them without their hashes; and their locks, listed, set and lifted.

use tonic::Status;

use peage_proto::v1::{
    command, IdentityChangeReply, IdentityListReply, IdentityListRequest, IdentityLock,
    IdentityLockRequest, IdentityUnlock, IdentityUnlockRequest, LockedIdentity, User,
    UserListReply, UserListRequest, UserRemove, UserRemoveReply, UserRemoveRequest, UserSet,
    UserSetReply, UserSetRequest,
};

use super::convert::{outcome_status, storage_status};
use super::service::AdminService;
use super::validate::invalid;
use crate::clock::now_ms;
use crate::logins::hash_password;
use crate::state::routing::normalize_domain;
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
            .map(|d| normalize_domain(d).map_err(|e| invalid(e.to_string())))
            .collect::<Result<Vec<_>, _>>()?;
        domains.sort();
        domains.dedup();
        domains
    };
    let password_hash = match (r.password.as_str(), current) {
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
