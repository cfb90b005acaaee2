//! The admin gRPC service: bearer tokens with roles and domains (`auth`, `tokens`), what a
//! token bound to domains sees (`scoped`), the audit log of writes (`audit`), request
//! validation (`validate`), one room per concern (`membership`, `lists`, `routing`,
//! `policy`, `messages`, `learn`, `maintenance`, ...), and the wire conversions and status
//! mapping (`convert`). Writes go through the cluster (forwarded to the leader); reads wait
//! for a linearizable barrier unless `stale` is asked for. This file only dispatches, and
//! says what kind of access each call is: every request is authorised here, every write
//! audited here, before its room sees it.

mod audit;
mod auth;
mod convert;
pub mod digest;
mod digest_mail;
mod dkim;
mod learn;
mod lists;
mod mailbox;
mod maintenance;
mod membership;
mod messages;
mod policy;
mod routing;
mod scoped;
mod service;
mod sql;
mod stats;
mod tokens;
mod tracking;
mod users;
mod validate;

use tonic::{Request, Response, Status};

use peage_proto::v1::admin_server::Admin;
use peage_proto::v1::*;

pub use mailbox::MailboxAction;
pub use service::AdminService;

use auth::{permit, Access, Caller};

type Reply<T> = Result<Response<T>, Status>;

fn answer<T>(reply: Result<T, Status>) -> Reply<T> {
    reply.map(Response::new)
}

#[tonic::async_trait]
impl Admin for AdminService {
    async fn status(&self, req: Request<StatusRequest>) -> Reply<StatusReply> {
        self.tokens.authorize(&req, Access::ClusterRead)?;
        answer(membership::status(self, req.into_inner()).await)
    }

    async fn add_learner(&self, req: Request<AddLearnerRequest>) -> Reply<MembershipReply> {
        let write = |_: Caller, r| membership::add_learner(self, r);
        answer(
            self.audited(req, Access::Operate, "AddLearner", write)
                .await,
        )
    }

    async fn promote_voter(&self, req: Request<PromoteVoterRequest>) -> Reply<MembershipReply> {
        let write = |_: Caller, r| membership::promote_voter(self, r);
        answer(
            self.audited(req, Access::Operate, "PromoteVoter", write)
                .await,
        )
    }

    async fn remove_node(&self, req: Request<RemoveNodeRequest>) -> Reply<MembershipReply> {
        let write = |_: Caller, r| membership::remove_node(self, r);
        answer(
            self.audited(req, Access::Operate, "RemoveNode", write)
                .await,
        )
    }

    async fn list_add(&self, req: Request<ListAddRequest>) -> Reply<ListAddReply> {
        // Whose entry it may be (the cluster's, or a domain's own) is the room's to check.
        let write = |caller: Caller, r| lists::add(self, caller, r);
        answer(
            self.audited(req, Access::DomainWrite, "ListAdd", write)
                .await,
        )
    }

    async fn list_remove(&self, req: Request<ListRemoveRequest>) -> Reply<ListRemoveReply> {
        let write = |caller: Caller, r| lists::remove(self, caller, r);
        answer(
            self.audited(req, Access::DomainWrite, "ListRemove", write)
                .await,
        )
    }

    async fn list_query(&self, req: Request<ListQueryRequest>) -> Reply<ListQueryReply> {
        let caller = self.tokens.authorize(&req, Access::DomainRead)?;
        answer(lists::query(self, caller, req.into_inner()).await)
    }

    async fn list_check(&self, req: Request<ListCheckRequest>) -> Reply<ListCheckReply> {
        let caller = self.tokens.authorize(&req, Access::DomainRead)?;
        answer(lists::check(self, caller, req.into_inner()).await)
    }

    async fn domain_set(&self, req: Request<DomainSetRequest>) -> Reply<DomainSetReply> {
        let write = |caller: Caller, r| routing::set(self, caller.name, r);
        answer(self.audited(req, Access::Operate, "DomainSet", write).await)
    }

    async fn domain_remove(&self, req: Request<DomainRemoveRequest>) -> Reply<DomainRemoveReply> {
        let write = |_: Caller, r| routing::remove(self, r);
        answer(
            self.audited(req, Access::Operate, "DomainRemove", write)
                .await,
        )
    }

    async fn domain_list(&self, req: Request<DomainListRequest>) -> Reply<DomainListReply> {
        let caller = self.tokens.authorize(&req, Access::DomainRead)?;
        let mut reply = routing::list(self, req.into_inner()).await?;
        reply
            .domains
            .retain(|d| scoped::sees_domain(&caller.scope, d));
        answer(Ok(reply))
    }

    async fn recipients_add(
        &self,
        req: Request<RecipientsAddRequest>,
    ) -> Reply<RecipientsChangeReply> {
        let write = |caller: Caller, r: RecipientsAddRequest| async move {
            scoped::addresses(&caller.scope, &r.addresses)?;
            routing::recipients_add(self, caller.name, r).await
        };
        answer(
            self.audited(req, Access::DomainWrite, "RecipientsAdd", write)
                .await,
        )
    }

    async fn recipients_remove(
        &self,
        req: Request<RecipientsRemoveRequest>,
    ) -> Reply<RecipientsChangeReply> {
        let write = |caller: Caller, r: RecipientsRemoveRequest| async move {
            scoped::addresses(&caller.scope, &r.addresses)?;
            routing::recipients_remove(self, r).await
        };
        answer(
            self.audited(req, Access::DomainWrite, "RecipientsRemove", write)
                .await,
        )
    }

    async fn recipients_list(
        &self,
        req: Request<RecipientsListRequest>,
    ) -> Reply<RecipientsListReply> {
        let caller = self.tokens.authorize(&req, Access::DomainRead)?;
        caller.scope.require_domain(&req.get_ref().domain)?;
        answer(routing::recipients_list(self, req.into_inner()).await)
    }

    async fn user_set(&self, req: Request<UserSetRequest>) -> Reply<UserSetReply> {
        let write = |caller: Caller, r: UserSetRequest| async move {
            scoped::user_write(self, &caller.scope, &r.login, Some(&r))?;
            users::set(self, caller.name, r).await
        };
        answer(
            self.audited(req, Access::DomainWrite, "UserSet", write)
                .await,
        )
    }

    async fn user_remove(&self, req: Request<UserRemoveRequest>) -> Reply<UserRemoveReply> {
        let write = |caller: Caller, r: UserRemoveRequest| async move {
            scoped::user_write(self, &caller.scope, &r.login, None)?;
            users::remove(self, r).await
        };
        answer(
            self.audited(req, Access::DomainWrite, "UserRemove", write)
                .await,
        )
    }

    async fn user_list(&self, req: Request<UserListRequest>) -> Reply<UserListReply> {
        let caller = self.tokens.authorize(&req, Access::DomainRead)?;
        let mut reply = users::list(self, req.into_inner()).await?;
        reply.users.retain(|u| scoped::sees_user(&caller.scope, u));
        answer(Ok(reply))
    }

    async fn identity_list(&self, req: Request<IdentityListRequest>) -> Reply<IdentityListReply> {
        let caller = self.tokens.authorize(&req, Access::DomainRead)?;
        let mut reply = users::locks(self, req.into_inner()).await?;
        reply
            .identities
            .retain(|l| scoped::sees_lock(&caller.scope, l));
        answer(Ok(reply))
    }

    async fn sql(&self, req: Request<SqlRequest>) -> Reply<SqlReply> {
        self.tokens.authorize(&req, Access::Operate)?;
        answer(sql::query(self, req.into_inner()).await)
    }

    async fn track(&self, req: Request<TrackQuery>) -> Reply<TrackReply> {
        let caller = self.tokens.authorize(&req, Access::DomainRead)?;
        answer(tracking::track(self, &caller.scope, req.into_inner()).await)
    }

    async fn stats(&self, req: Request<StatsQuery>) -> Reply<StatsReply> {
        let caller = self.tokens.authorize(&req, Access::DomainRead)?;
        answer(stats::stats(self, &caller.scope, req.into_inner()).await)
    }

    async fn rate_limit_show(
        &self,
        req: Request<RateLimitShowRequest>,
    ) -> Reply<RateLimitShowReply> {
        self.tokens.authorize(&req, Access::ClusterRead)?;
        answer(Ok(users::rate_limits(self, req.into_inner())))
    }

    async fn rate_limit_reset(
        &self,
        req: Request<RateLimitResetRequest>,
    ) -> Reply<RateLimitResetReply> {
        let write = |_: Caller, r| users::reset_rate_limits(self, r);
        answer(
            self.audited(req, Access::Operate, "RateLimitReset", write)
                .await,
        )
    }

    async fn identity_lock(&self, req: Request<IdentityLockRequest>) -> Reply<IdentityChangeReply> {
        let write = |caller: Caller, r: IdentityLockRequest| async move {
            scoped::addresses(&caller.scope, std::slice::from_ref(&r.login))?;
            users::lock(self, caller.name, r).await
        };
        answer(
            self.audited(req, Access::DomainWrite, "IdentityLock", write)
                .await,
        )
    }

    async fn identity_unlock(
        &self,
        req: Request<IdentityUnlockRequest>,
    ) -> Reply<IdentityChangeReply> {
        let write = |caller: Caller, r: IdentityUnlockRequest| async move {
            scoped::addresses(&caller.scope, std::slice::from_ref(&r.login))?;
            users::unlock(self, r).await
        };
        answer(
            self.audited(req, Access::DomainWrite, "IdentityUnlock", write)
                .await,
        )
    }

    async fn dkim_generate(&self, req: Request<DkimGenerateRequest>) -> Reply<DkimKeyReply> {
        let write = |caller: Caller, r| dkim::generate(self, caller.name, r);
        answer(
            self.audited(req, Access::Operate, "DkimGenerate", write)
                .await,
        )
    }

    async fn dkim_activate(&self, req: Request<DkimSelectorRequest>) -> Reply<DkimKeyReply> {
        let write = |caller: Caller, r| dkim::activate(self, caller.name, r);
        answer(
            self.audited(req, Access::Operate, "DkimActivate", write)
                .await,
        )
    }

    async fn dkim_remove(&self, req: Request<DkimSelectorRequest>) -> Reply<DkimKeyReply> {
        let write = |_: Caller, r| dkim::remove(self, r);
        answer(
            self.audited(req, Access::Operate, "DkimRemove", write)
                .await,
        )
    }

    async fn dkim_list(&self, req: Request<DkimListRequest>) -> Reply<DkimListReply> {
        self.tokens.authorize(&req, Access::Operate)?;
        answer(dkim::list(self, req.into_inner()).await)
    }

    async fn check_message(&self, req: Request<CheckMessageRequest>) -> Reply<CheckMessageReply> {
        self.tokens.authorize(&req, Access::ClusterRead)?;
        answer(policy::check_message(self, req.into_inner()).await)
    }

    async fn policy_get(&self, req: Request<PolicyGetRequest>) -> Reply<PolicyReply> {
        self.tokens.authorize(&req, Access::ClusterRead)?;
        answer(policy::get(self, req.into_inner()).await)
    }

    async fn policy_set(&self, req: Request<PolicySetRequest>) -> Reply<PolicyReply> {
        let write = |_: Caller, r| policy::set(self, r);
        answer(self.audited(req, Access::Operate, "PolicySet", write).await)
    }

    /// The outbound half (customers' outgoing mail) is the operators' only.
    async fn queue_list(&self, req: Request<QueueListRequest>) -> Reply<QueueListReply> {
        let access = match req.get_ref().outbound {
            true => Access::Operate,
            false => Access::DomainRead,
        };
        let caller = self.tokens.authorize(&req, access)?;
        answer(messages::list(self, &caller.scope, req.into_inner()).await)
    }

    async fn message_show(&self, req: Request<MessageRef>) -> Reply<MessageShowReply> {
        let caller = self.tokens.authorize(&req, Access::ReadBody)?;
        let outgoing_allowed = permit(&caller, Access::Operate).is_ok();
        answer(messages::show(self, &caller.scope, req.into_inner(), outgoing_allowed).await)
    }

    async fn message_release(&self, req: Request<MessageRef>) -> Reply<MessageActionReply> {
        let write = |caller: Caller, r| messages::release(self, caller, r);
        answer(
            self.audited(req, Access::Release, "MessageRelease", write)
                .await,
        )
    }

    async fn message_drop(&self, req: Request<MessageRef>) -> Reply<MessageActionReply> {
        let write = |caller: Caller, r| messages::remove(self, caller.scope, r);
        answer(
            self.audited(req, Access::DomainWrite, "MessageDrop", write)
                .await,
        )
    }

    async fn message_retry(&self, req: Request<MessageRef>) -> Reply<MessageActionReply> {
        let write = |caller: Caller, r| messages::retry(self, caller.scope, r);
        answer(
            self.audited(req, Access::Release, "MessageRetry", write)
                .await,
        )
    }

    async fn learn(&self, req: Request<LearnRequest>) -> Reply<LearnReply> {
        let write = |caller: Caller, r| learn::learn(self, caller.name, r);
        answer(self.audited(req, Access::Operate, "Learn", write).await)
    }

    async fn state_digest(&self, req: Request<StateDigestRequest>) -> Reply<StateDigestReply> {
        self.tokens.authorize(&req, Access::ClusterRead)?;
        answer(maintenance::state_digest(self, req.into_inner()).await)
    }

    async fn trigger_snapshot(
        &self,
        req: Request<TriggerSnapshotRequest>,
    ) -> Reply<TriggerSnapshotReply> {
        let write = |_: Caller, r| maintenance::trigger_snapshot(self, r);
        answer(
            self.audited(req, Access::Operate, "TriggerSnapshot", write)
                .await,
        )
    }

    async fn portal_link(&self, req: Request<PortalLinkRequest>) -> Reply<PortalLinkReply> {
        // A link opens a mailbox's held mail: as much as releasing it does.
        let write = |caller: Caller, r| mailbox::link(self, caller, r);
        answer(
            self.audited(req, Access::Release, "PortalLink", write)
                .await,
        )
    }

    async fn digest_send(&self, req: Request<DigestSendRequest>) -> Reply<DigestSendReply> {
        // A digest's links open the mailbox's held mail, like `portal_link`'s.
        let write = |caller: Caller, r| digest::send_now(self, caller, r);
        answer(
            self.audited(req, Access::Release, "DigestSend", write)
                .await,
        )
    }

    async fn token_add(&self, req: Request<TokenAddRequest>) -> Reply<TokenAddReply> {
        let write = |caller: Caller, r| tokens::add(self, caller, r);
        answer(self.audited(req, Access::Operate, "TokenAdd", write).await)
    }

    async fn token_remove(&self, req: Request<TokenRemoveRequest>) -> Reply<TokenRemoveReply> {
        let write = |_: Caller, r| tokens::remove(self, r);
        answer(
            self.audited(req, Access::Operate, "TokenRemove", write)
                .await,
        )
    }

    async fn token_list(&self, req: Request<TokenListRequest>) -> Reply<TokenListReply> {
        self.tokens.authorize(&req, Access::Operate)?;
        answer(tokens::list(self, req.into_inner()).await)
    }

    async fn audit_list(&self, req: Request<AuditListRequest>) -> Reply<AuditListReply> {
        self.tokens.authorize(&req, Access::ClusterRead)?;
        answer(audit::list(self, req.into_inner()).await)
    }
}
