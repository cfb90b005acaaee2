//! The audit log of admin writes: every write an authenticated caller attempts is run
//! through `AdminService::audited`, which records who (token and role), from where, what
//! (the call and its target: never a password, secret or body) and how it ended as a
//! replicated `AuditRecord`; and `peagectl audit ls` reads them back.

use std::future::Future;

use tonic::{Request, Status};

use peage_proto::v1::*;

use super::auth::{permit, Access, Caller};
use super::convert::storage_status;
use super::service::AdminService;
use super::validate::invalid;
use crate::clock::now_ms;
use crate::state::audit::MAX_LIMIT;

/// The longest target a record keeps (a list value may be kilobytes).
const MAX_TARGET_CHARS: usize = 300;

/// What an audit record says a request acted on.
pub trait AuditTarget {
    fn target(&self) -> String;
}

impl AdminService {
    /// Authenticates `req`, checks `access`, runs `write` and records the attempt (refused
    /// ones too) in the audit log. A request with no valid token is answered without a
    /// record: anyone could fill the log otherwise.
    pub(super) async fn audited<T, R, F, Fut>(
        &self,
        req: Request<T>,
        access: Access,
        action: &'static str,
        write: F,
    ) -> Result<R, Status>
    where
        T: AuditTarget,
        F: FnOnce(Caller, T) -> Fut,
        Fut: Future<Output = Result<R, Status>>,
    {
        let caller = self.tokens.identify(&req)?;
        let target = req.get_ref().target();
        let result = match permit(&caller, access) {
            Ok(()) => write(caller.clone(), req.into_inner()).await,
            Err(refused) => Err(refused),
        };
        let who = (caller.name.as_str(), caller.role.as_str(), caller.client);
        self.record(who, action, &target, &result).await;
        result
    }

    /// Writes one audit record: `who` (name, role, client address) did `action` on
    /// `target`, with `result`.
    pub(super) async fn record<R>(
        &self,
        (name, role, client): (&str, &str, String),
        action: &str,
        target: &str,
        result: &Result<R, Status>,
    ) {
        let outcome = match result {
            Ok(_) => "ok".to_owned(),
            Err(e) => format!("{:?}: {}", e.code(), e.message()),
        };
        let record = AuditRecord {
            at_ms: now_ms(),
            token: name.to_owned(),
            role: role.to_owned(),
            client,
            node_id: self.cluster.id(),
            action: action.to_owned(),
            target: target.chars().take(MAX_TARGET_CHARS).collect(),
            outcome,
            keep_since_ms: now_ms() - self.audit_retention.as_millis() as i64,
        };
        if let Err(e) = self.propose(command::Kind::AuditRecord(record)).await {
            // The write's own answer stands; the operator reads why its record is missing.
            tracing::warn!(action, error = %e.message(), "audit record not written");
        }
    }
}

pub async fn list(svc: &AdminService, q: AuditListRequest) -> Result<AuditListReply, Status> {
    if q.limit > MAX_LIMIT {
        return Err(invalid(format!("limit: at most {MAX_LIMIT}")));
    }
    let read = svc.read_barrier(q.stale).await?;
    let entries = svc.cluster.state().audit(q).await.map_err(storage_status)?;
    Ok(AuditListReply {
        entries,
        read: Some(read),
    })
}

macro_rules! targets {
    ($($request:ty => |$r:ident| $target:expr;)*) => {
        $(impl AuditTarget for $request {
            fn target(&self) -> String {
                let $r = self;
                $target
            }
        })*
    };
}

targets! {
    AddLearnerRequest => |r| format!("node {} ({}) {}", r.node_id, r.site, r.peer_addr);
    PromoteVoterRequest => |r| format!("node {}", r.node_id);
    RemoveNodeRequest => |r| format!("node {}", r.node_id);
    ListAddRequest => |r| list_target(r.list(), r.kind(), &r.value, &r.scope);
    ListRemoveRequest => |r| list_target(r.list(), r.kind(), &r.value, &r.scope);
    DomainSetRequest => |r| format!("{} -> {}", r.domain, r.route);
    DomainRemoveRequest => |r| r.domain.clone();
    RecipientsAddRequest => |r| addresses(&r.addresses);
    RecipientsRemoveRequest => |r| addresses(&r.addresses);
    UserSetRequest => |r| format!("{} ({})", r.login, r.domains.join(", "));
    UserRemoveRequest => |r| r.login.clone();
    RateLimitResetRequest => |r| r.name.clone();
    IdentityLockRequest => |r| r.login.clone();
    IdentityUnlockRequest => |r| r.login.clone();
    DkimGenerateRequest => |r| r.domain.clone();
    DkimSelectorRequest => |r| format!("{} {}", r.domain, r.selector);
    PolicySetRequest => |r| {
        // Zero leaves a setting as it was: only what changes is named.
        let named = [
            ("quarantine at", r.quarantine_at),
            ("reject at", r.reject_at),
            ("retention s", r.quarantine_retention_secs as f64),
            ("outbound hold at", r.outbound_hold_at),
        ];
        let set: Vec<String> = named
            .iter()
            .filter(|(_, v)| *v != 0.0)
            .map(|(k, v)| format!("{k} {v}"))
            .collect();
        set.join(", ")
    };
    MessageRef => |r| r.queue_id.clone();
    LearnRequest => |r| format!("{} ({} bytes)", r.class, r.message.len());
    TriggerSnapshotRequest => |_r| String::new();
    TokenAddRequest => |r| format!("{} ({}; {})", r.name, r.role, r.domains.join(", "));
    TokenRemoveRequest => |r| r.name.clone();
    PortalLinkRequest => |r| r.mailbox.clone();
    DigestSendRequest => |r| r.recipient.clone();
}

/// A list entry named as written, with its scope when it has one.
fn list_target(list: ListName, kind: EntryKind, value: &str, scope: &str) -> String {
    match scope {
        "" => format!("{list:?} {kind:?} {value}"),
        scope => format!("{list:?} {kind:?} {value} for {scope}"),
    }
}

/// A list of addresses, cut short past ten.
fn addresses(all: &[String]) -> String {
    let mut shown = all.iter().take(10).cloned().collect::<Vec<_>>().join(", ");
    if all.len() > 10 {
        shown.push_str(&format!(" and {} more", all.len() - 10));
    }
    shown
}
