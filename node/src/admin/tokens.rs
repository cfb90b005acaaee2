//! API tokens managed through the API: a new one gets a random secret, shown once in the
//! reply, of which only the SHA-256 is replicated; removal; and the list of the
//! replicated tokens next to this node's configured ones (never a secret or hash).

use tonic::Status;

use peage_proto::v1::{
    command, TokenAddReply, TokenAddRequest, TokenInfo, TokenListReply, TokenListRequest,
    TokenRemove, TokenRemoveReply, TokenRemoveRequest, TokenSet,
};

use super::auth::{secret_sha256, Caller};
use super::convert::{outcome_status, storage_status};
use super::service::AdminService;
use super::validate::invalid;
use crate::clock::now_ms;
use crate::state::routing::normalize_domain;
use crate::state::tokens::{Role, TokenRow};
use crate::types::Outcome;

/// Longest token name.
const MAX_NAME_BYTES: usize = 64;

fn checked_name(name: &str) -> Result<String, Status> {
    let name = name.trim();
    let fine = !name.is_empty()
        && name.len() <= MAX_NAME_BYTES
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'@'));
    match fine {
        true => Ok(name.to_owned()),
        false => Err(invalid(format!(
            "token name `{name}`: 1 to {MAX_NAME_BYTES} letters, digits and - _ . @"
        ))),
    }
}

pub async fn add(
    svc: &AdminService,
    caller: Caller,
    r: TokenAddRequest,
) -> Result<TokenAddReply, Status> {
    let name = checked_name(&r.name)?;
    if svc.tokens.is_configured(&name) {
        return Err(invalid(format!(
            "`{name}` is a token of the nodes' configuration files; choose another name"
        )));
    }
    let role = Role::parse(&r.role).ok_or_else(|| {
        invalid(format!(
            "role `{}`: operator, helpdesk, auditor or domain-admin",
            r.role
        ))
    })?;
    let mut domains = r
        .domains
        .iter()
        .map(|d| normalize_domain(d).map_err(|e| invalid(e.to_string())))
        .collect::<Result<Vec<_>, _>>()?;
    domains.sort();
    domains.dedup();
    if role == Role::DomainAdmin && domains.is_empty() {
        return Err(invalid("a domain-admin token needs its domains (--domain)"));
    }
    let now = now_ms();
    if r.expires_at_ms != 0 && r.expires_at_ms <= now {
        return Err(invalid("the expiry is in the past"));
    }
    let secret = format!("peage_{}", hex::encode(rand::random::<[u8; 32]>()));
    let set = TokenSet {
        name: name.clone(),
        role: role.as_str().to_owned(),
        domains: domains.clone(),
        secret_sha256: secret_sha256(&secret),
        author: caller.name,
        created_at_ms: now,
        expires_at_ms: r.expires_at_ms,
    };
    let token = info_of(&set);
    match svc.propose(command::Kind::TokenSet(set)).await? {
        (log_index, Outcome::Set { .. }) => Ok(TokenAddReply {
            token: Some(token),
            secret,
            log_index,
        }),
        (_, other) => Err(outcome_status(other)),
    }
}

pub async fn remove(svc: &AdminService, r: TokenRemoveRequest) -> Result<TokenRemoveReply, Status> {
    let name = checked_name(&r.name)?;
    if svc.tokens.is_configured(&name) {
        return Err(invalid(format!(
            "`{name}` is a token of the nodes' configuration files: remove it there"
        )));
    }
    match svc
        .propose(command::Kind::TokenRemove(TokenRemove { name }))
        .await?
    {
        (log_index, Outcome::Removed { removed }) => Ok(TokenRemoveReply { removed, log_index }),
        (_, other) => Err(outcome_status(other)),
    }
}

pub async fn list(svc: &AdminService, r: TokenListRequest) -> Result<TokenListReply, Status> {
    let read = svc.read_barrier(r.stale).await?;
    let mut tokens: Vec<TokenInfo> = svc
        .tokens
        .configured()
        .iter()
        .map(|t| TokenInfo {
            name: t.name.clone(),
            role: t.role.as_str().to_owned(),
            domains: t.domains.clone(),
            source: "config".into(),
            ..TokenInfo::default()
        })
        .collect();
    let replicated = svc.cluster.state().tokens().await.map_err(storage_status)?;
    tokens.extend(replicated.into_iter().map(|t: TokenRow| TokenInfo {
        name: t.grant.name,
        role: t.grant.role.as_str().to_owned(),
        domains: t.grant.domains,
        expires_at_ms: t.grant.expires_at_ms,
        author: t.author,
        created_at_ms: t.created_at_ms,
        source: "api".into(),
    }));
    Ok(TokenListReply {
        tokens,
        read: Some(read),
    })
}

fn info_of(t: &TokenSet) -> TokenInfo {
    TokenInfo {
        name: t.name.clone(),
        role: t.role.clone(),
        domains: t.domains.clone(),
        expires_at_ms: t.expires_at_ms,
        author: t.author.clone(),
        created_at_ms: t.created_at_ms,
        source: "api".into(),
    }
}
