//! Who is calling and what they may do: bearer tokens (the node's configured ones, and the
//! replicated ones made through the API, known by the SHA-256 of their secret), the role
//! each grants, the domains it is bound to, and which roles each kind of request needs.
//! Scope is enforced here and in the rooms on the server, never by the client.

use std::sync::Arc;

use sha2::{Digest, Sha256};
use tonic::{Request, Status};

use crate::clock::now_ms;
use crate::config::{Role, TokenConfig};
use crate::secret::constant_time_eq;
use crate::state::addressing::domain_of;
use crate::state::tokens::Grant;

/// What a request does, which decides the roles that may make it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Cluster-wide records and settings: status, policy, lists, DKIM keys, rate-limit
    /// counts, the audit log. Operators, helpdesks and auditors bound to no domain.
    ClusterRead,
    /// Changing the cluster, and what only operators see: membership, policy, lists,
    /// domains, keys, learning, SQL, tokens, outgoing mail. An operator bound to no domain.
    Operate,
    /// A domain's records (tracking, the queue and quarantine, recipients, accounts, locks),
    /// filtered to the token's domains. Every role.
    DomainRead,
    /// A message's body. Not auditors.
    ReadBody,
    /// Releasing or retrying a message. Not auditors.
    Release,
    /// A domain's own writes: recipients, accounts, locks, dropping a message. Operators
    /// and domain admins.
    DomainWrite,
}

impl Access {
    fn allows(self, role: Role) -> bool {
        use Role::*;
        match self {
            Access::ClusterRead => matches!(role, Operator | Helpdesk | Auditor),
            Access::Operate => role == Operator,
            Access::DomainRead => true,
            Access::ReadBody | Access::Release => matches!(role, Operator | Helpdesk | DomainAdmin),
            Access::DomainWrite => matches!(role, Operator | DomainAdmin),
        }
    }

    /// Whether a token bound to some domains can make it at all.
    fn scoped(self) -> bool {
        !matches!(self, Access::ClusterRead | Access::Operate)
    }

    fn needs(self) -> &'static str {
        match self {
            Access::ClusterRead => "reads cluster-wide records and needs an operator, helpdesk or auditor token bound to no domain",
            Access::Operate => "changes the cluster, or reads outgoing mail or what else only operators see, and needs an operator token bound to no domain",
            Access::DomainRead => "reads records",
            Access::ReadBody => "reads a message body and needs an operator, helpdesk or domain-admin token",
            Access::Release => "releases or retries a message and needs an operator, helpdesk or domain-admin token",
            Access::DomainWrite => "writes and needs an operator or domain-admin token",
        }
    }
}

/// The domains a token is bound to; none: every domain. A domain covers its subdomains.
/// A mailbox owner's (the portal's) covers its own address and nothing else.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Scope {
    domains: Vec<String>,
    mailbox: Option<String>,
}

impl Scope {
    pub fn new(domains: &[String]) -> Scope {
        let mut domains: Vec<String> = domains
            .iter()
            .map(|d| d.trim().trim_end_matches('.').to_ascii_lowercase())
            .filter(|d| !d.is_empty())
            .collect();
        domains.sort();
        domains.dedup();
        Scope {
            domains,
            mailbox: None,
        }
    }

    /// One mailbox's: its own mail and list entries.
    pub fn mailbox(address: &str) -> Scope {
        Scope {
            domains: Vec::new(),
            mailbox: Some(address.trim().to_lowercase()),
        }
    }

    pub fn is_everything(&self) -> bool {
        self.domains.is_empty() && self.mailbox.is_none()
    }

    pub fn domains(&self) -> &[String] {
        &self.domains
    }

    pub fn covers_domain(&self, domain: &str) -> bool {
        let domain = domain.trim().trim_end_matches('.').to_ascii_lowercase();
        self.is_everything()
            || self.domains.iter().any(|d| {
                domain == *d
                    || (domain.ends_with(d.as_str())
                        && domain[..domain.len() - d.len()].ends_with('.'))
            })
    }

    pub fn covers_address(&self, address: &str) -> bool {
        if let Some(mailbox) = &self.mailbox {
            return mailbox.eq_ignore_ascii_case(address.trim());
        }
        self.is_everything() || domain_of(address).is_some_and(|d| self.covers_domain(&d))
    }

    /// `PERMISSION_DENIED` unless `domain` is in scope.
    pub fn require_domain(&self, domain: &str) -> Result<(), Status> {
        match self.covers_domain(domain) {
            true => Ok(()),
            false => Err(self.outside(domain)),
        }
    }

    /// The refusal of something outside the scope.
    pub fn outside(&self, what: &str) -> Status {
        Status::permission_denied(match &self.mailbox {
            Some(mailbox) => format!("{what} is not {mailbox}'s"),
            None => format!(
                "{what} is outside this token's domains ({})",
                self.domains.join(", ")
            ),
        })
    }
}

/// The authenticated caller of one request.
#[derive(Debug, Clone)]
pub struct Caller {
    /// The token's name: the author of what it writes.
    pub name: String,
    pub role: Role,
    pub scope: Scope,
    /// The client's address as this node saw it.
    pub client: String,
}

/// The replicated tokens' grants, by the SHA-256 of their secret.
pub type GrantLookup = Arc<dyn Fn(&str) -> Option<Grant> + Send + Sync>;

#[derive(Clone)]
pub struct Tokens {
    configured: Vec<TokenConfig>,
    replicated: GrantLookup,
}

/// The hex SHA-256 of a token's secret, as the replicated tokens are known.
pub fn secret_sha256(secret: &str) -> String {
    hex::encode(Sha256::digest(secret.as_bytes()))
}

impl Tokens {
    pub fn new(configured: &[TokenConfig], replicated: GrantLookup) -> Tokens {
        Tokens {
            configured: configured.to_vec(),
            replicated,
        }
    }

    /// Whether `name` is a configured token's (an API token may not take it).
    pub fn is_configured(&self, name: &str) -> bool {
        self.configured.iter().any(|t| t.name == name)
    }

    pub fn configured(&self) -> &[TokenConfig] {
        &self.configured
    }

    /// The caller of `req` when it carries a known, unexpired token.
    pub fn identify<T>(&self, req: &Request<T>) -> Result<Caller, Status> {
        let header = req.metadata().get("authorization").ok_or_else(|| {
            Status::unauthenticated("missing bearer token (authorization header)")
        })?;
        let header = header
            .to_str()
            .map_err(|_| Status::unauthenticated("malformed authorization header"))?;
        let secret = header
            .strip_prefix("Bearer ")
            .or_else(|| header.strip_prefix("bearer "))
            .ok_or_else(|| Status::unauthenticated("authorization header is not `Bearer <token>`"))?
            .trim();
        // Every configured token is compared, in constant time, so timing tells nothing;
        // replicated ones are found by their hash, which tells nothing of the secret.
        let mut found = None;
        for t in &self.configured {
            if constant_time_eq(t.token.as_bytes(), secret.as_bytes()) {
                found = Some(Grant {
                    name: t.name.clone(),
                    role: t.role,
                    domains: t.domains.clone(),
                    expires_at_ms: 0,
                });
            }
        }
        let grant = match found {
            Some(g) => g,
            None => (self.replicated)(&secret_sha256(secret))
                .ok_or_else(|| Status::unauthenticated("invalid token"))?,
        };
        if grant.expires_at_ms != 0 && now_ms() >= grant.expires_at_ms {
            return Err(Status::unauthenticated(format!(
                "token `{}` has expired",
                grant.name
            )));
        }
        let client = req
            .remote_addr()
            .map_or_else(|| "unknown".to_owned(), |a| a.to_string());
        Ok(Caller {
            name: grant.name,
            role: grant.role,
            scope: Scope::new(&grant.domains),
            client,
        })
    }

    /// The caller of `req`, when its token may make a request of kind `access`.
    pub fn authorize<T>(&self, req: &Request<T>, access: Access) -> Result<Caller, Status> {
        let caller = self.identify(req)?;
        permit(&caller, access)?;
        Ok(caller)
    }
}

/// `PERMISSION_DENIED`, saying why, unless `caller` may make a request of kind `access`.
pub fn permit(caller: &Caller, access: Access) -> Result<(), Status> {
    if !access.allows(caller.role) {
        return Err(Status::permission_denied(format!(
            "token `{}` is {}; this request {}",
            caller.name,
            caller.role.as_str(),
            access.needs()
        )));
    }
    if !access.scoped() && !caller.scope.is_everything() {
        return Err(Status::permission_denied(format!(
            "token `{}` is bound to {}; this request {}",
            caller.name,
            caller.scope.domains().join(", "),
            access.needs()
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests;
