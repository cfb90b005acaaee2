//! The admin gRPC service: bearer-token auth with roles (`auth`), request validation
//! (`validate`), one room per concern (`membership`, `lists`, `routing`, `policy`,
//! `messages`, `learn`, `maintenance`), and the wire conversions and status mapping
//! (`convert`). Writes go through the cluster (forwarded to the leader); reads wait for a
//! linearizable barrier unless `stale` is asked for. This file only dispatches, and says which
//! role each call needs: every request is authorised here, before its room sees it.

mod auth;
mod convert;
mod dkim;
mod learn;
mod lists;
mod maintenance;
mod membership;
mod messages;
mod policy;
mod routing;
mod service;
mod sql;
mod tracking;
mod users;
mod validate;

use tonic::{Request, Response, Status};

use peage_proto::v1::admin_server::Admin;
use peage_proto::v1::*;

pub use service::AdminService;

use crate::config::Role;

type Reply<T> = Result<Response<T>, Status>;

fn answer<T>(reply: Result<T, Status>) -> Reply<T> {
    reply.map(Response::new)
}

#[tonic::async_trait]
impl Admin for AdminService {
    async fn status(&self, req: Request<StatusRequest>) -> Reply<StatusReply> {
        self.tokens.authorize(&req, Role::ReadOnly)?;
        answer(membership::status(self, req.into_inner()).await)
    }

    async fn add_learner(&self, req: Request<AddLearnerRequest>) -> Reply<MembershipReply> {
        self.tokens.authorize(&req, Role::Admin)?;
        answer(membership::add_learner(self, req.into_inner()).await)
    }

    async fn promote_voter(&self, req: Request<PromoteVoterRequest>) -> Reply<MembershipReply> {
        self.tokens.authorize(&req, Role::Admin)?;
        answer(membership::promote_voter(self, req.into_inner()).await)
    }

    async fn remove_node(&self, req: Request<RemoveNodeRequest>) -> Reply<MembershipReply> {
        self.tokens.authorize(&req, Role::Admin)?;
        answer(membership::remove_node(self, req.into_inner()).await)
    }

    async fn list_add(&self, req: Request<ListAddRequest>) -> Reply<ListAddReply> {
        let author = self.tokens.authorize(&req, Role::Admin)?;
        answer(lists::add(self, author, req.into_inner()).await)
    }

    async fn list_remove(&self, req: Request<ListRemoveRequest>) -> Reply<ListRemoveReply> {
        self.tokens.authorize(&req, Role::Admin)?;
        answer(lists::remove(self, req.into_inner()).await)
    }

    async fn list_query(&self, req: Request<ListQueryRequest>) -> Reply<ListQueryReply> {
        self.tokens.authorize(&req, Role::ReadOnly)?;
        answer(lists::query(self, req.into_inner()).await)
    }

    async fn list_check(&self, req: Request<ListCheckRequest>) -> Reply<ListCheckReply> {
        self.tokens.authorize(&req, Role::ReadOnly)?;
        answer(lists::check(self, req.into_inner()).await)
    }

    async fn domain_set(&self, req: Request<DomainSetRequest>) -> Reply<DomainSetReply> {
        let author = self.tokens.authorize(&req, Role::Admin)?;
        answer(routing::set(self, author, req.into_inner()).await)
    }

    async fn domain_remove(&self, req: Request<DomainRemoveRequest>) -> Reply<DomainRemoveReply> {
        self.tokens.authorize(&req, Role::Admin)?;
        answer(routing::remove(self, req.into_inner()).await)
    }

    async fn domain_list(&self, req: Request<DomainListRequest>) -> Reply<DomainListReply> {
        self.tokens.authorize(&req, Role::ReadOnly)?;
        answer(routing::list(self, req.into_inner()).await)
    }

    async fn recipients_add(
        &self,
        req: Request<RecipientsAddRequest>,
    ) -> Reply<RecipientsChangeReply> {
        let author = self.tokens.authorize(&req, Role::Admin)?;
        answer(routing::recipients_add(self, author, req.into_inner()).await)
    }

    async fn recipients_remove(
        &self,
        req: Request<RecipientsRemoveRequest>,
    ) -> Reply<RecipientsChangeReply> {
        self.tokens.authorize(&req, Role::Admin)?;
        answer(routing::recipients_remove(self, req.into_inner()).await)
    }

    async fn recipients_list(
        &self,
        req: Request<RecipientsListRequest>,
    ) -> Reply<RecipientsListReply> {
        self.tokens.authorize(&req, Role::ReadOnly)?;
        answer(routing::recipients_list(self, req.into_inner()).await)
    }

    async fn user_set(&self, req: Request<UserSetRequest>) -> Reply<UserSetReply> {
        let author = self.tokens.authorize(&req, Role::Admin)?;
        answer(users::set(self, author, req.into_inner()).await)
    }

    async fn user_remove(&self, req: Request<UserRemoveRequest>) -> Reply<UserRemoveReply> {
        self.tokens.authorize(&req, Role::Admin)?;
        answer(users::remove(self, req.into_inner()).await)
    }

    async fn user_list(&self, req: Request<UserListRequest>) -> Reply<UserListReply> {
        self.tokens.authorize(&req, Role::ReadOnly)?;
        answer(users::list(self, req.into_inner()).await)
    }

    async fn identity_list(&self, req: Request<IdentityListRequest>) -> Reply<IdentityListReply> {
        self.tokens.authorize(&req, Role::ReadOnly)?;
        answer(users::locks(self, req.into_inner()).await)
    }

    async fn sql(&self, req: Request<SqlRequest>) -> Reply<SqlReply> {
        self.tokens.authorize(&req, Role::Admin)?;
        answer(sql::query(self, req.into_inner()).await)
    }

    async fn track(&self, req: Request<TrackQuery>) -> Reply<TrackReply> {
        self.tokens.authorize(&req, Role::ReadOnly)?;
        answer(tracking::track(self, req.into_inner()).await)
    }

    async fn rate_limit_show(
        &self,
        req: Request<RateLimitShowRequest>,
    ) -> Reply<RateLimitShowReply> {
        self.tokens.authorize(&req, Role::ReadOnly)?;
        answer(Ok(users::rate_limits(self, req.into_inner())))
    }

    async fn rate_limit_reset(
        &self,
        req: Request<RateLimitResetRequest>,
    ) -> Reply<RateLimitResetReply> {
        self.tokens.authorize(&req, Role::Admin)?;
        answer(users::reset_rate_limits(self, req.into_inner()).await)
    }

    async fn identity_lock(&self, req: Request<IdentityLockRequest>) -> Reply<IdentityChangeReply> {
        let author = self.tokens.authorize(&req, Role::Admin)?;
        answer(users::lock(self, author, req.into_inner()).await)
    }

    async fn identity_unlock(
        &self,
        req: Request<IdentityUnlockRequest>,
    ) -> Reply<IdentityChangeReply> {
        self.tokens.authorize(&req, Role::Admin)?;
        answer(users::unlock(self, req.into_inner()).await)
    }

    async fn dkim_generate(&self, req: Request<DkimGenerateRequest>) -> Reply<DkimKeyReply> {
        let author = self.tokens.authorize(&req, Role::Admin)?;
        answer(dkim::generate(self, author, req.into_inner()).await)
    }

    async fn dkim_activate(&self, req: Request<DkimSelectorRequest>) -> Reply<DkimKeyReply> {
        let author = self.tokens.authorize(&req, Role::Admin)?;
        answer(dkim::activate(self, author, req.into_inner()).await)
    }

    async fn dkim_remove(&self, req: Request<DkimSelectorRequest>) -> Reply<DkimKeyReply> {
        self.tokens.authorize(&req, Role::Admin)?;
        answer(dkim::remove(self, req.into_inner()).await)
    }

    async fn dkim_list(&self, req: Request<DkimListRequest>) -> Reply<DkimListReply> {
        self.tokens.authorize(&req, Role::Admin)?;
        answer(dkim::list(self, req.into_inner()).await)
    }

    async fn check_message(&self, req: Request<CheckMessageRequest>) -> Reply<CheckMessageReply> {
        self.tokens.authorize(&req, Role::ReadOnly)?;
        answer(policy::check_message(self, req.into_inner()).await)
    }

    async fn policy_get(&self, req: Request<PolicyGetRequest>) -> Reply<PolicyReply> {
        self.tokens.authorize(&req, Role::ReadOnly)?;
        answer(policy::get(self, req.into_inner()).await)
    }

    async fn policy_set(&self, req: Request<PolicySetRequest>) -> Reply<PolicyReply> {
        self.tokens.authorize(&req, Role::Admin)?;
        answer(policy::set(self, req.into_inner()).await)
    }

    /// The outbound half (customers' outgoing mail) is the admin role's only.
    async fn queue_list(&self, req: Request<QueueListRequest>) -> Reply<QueueListReply> {
        let needed = match req.get_ref().outbound {
            true => Role::Admin,
            false => Role::ReadOnly,
        };
        self.tokens.authorize(&req, needed)?;
        answer(messages::list(self, req.into_inner()).await)
    }

    async fn message_show(&self, req: Request<MessageRef>) -> Reply<MessageShowReply> {
        self.tokens.authorize(&req, Role::QuarantineReader)?;
        let outgoing_allowed = self.tokens.authorize(&req, Role::Admin).is_ok();
        answer(messages::show(self, req.into_inner(), outgoing_allowed).await)
    }

    async fn message_release(&self, req: Request<MessageRef>) -> Reply<MessageActionReply> {
        let author = self.tokens.authorize(&req, Role::Admin)?;
        answer(messages::release(self, author, req.into_inner()).await)
    }

    async fn message_drop(&self, req: Request<MessageRef>) -> Reply<MessageActionReply> {
        self.tokens.authorize(&req, Role::Admin)?;
        answer(messages::remove(self, req.into_inner()).await)
    }

    async fn message_retry(&self, req: Request<MessageRef>) -> Reply<MessageActionReply> {
        self.tokens.authorize(&req, Role::Admin)?;
        answer(messages::retry(self, req.into_inner()).await)
    }

    async fn learn(&self, req: Request<LearnRequest>) -> Reply<LearnReply> {
        let author = self.tokens.authorize(&req, Role::Admin)?;
        answer(learn::learn(self, author, req.into_inner()).await)
    }

    async fn state_digest(&self, req: Request<StateDigestRequest>) -> Reply<StateDigestReply> {
        self.tokens.authorize(&req, Role::ReadOnly)?;
        answer(maintenance::state_digest(self, req.into_inner()).await)
    }

    async fn trigger_snapshot(
        &self,
        req: Request<TriggerSnapshotRequest>,
    ) -> Reply<TriggerSnapshotReply> {
        self.tokens.authorize(&req, Role::Admin)?;
        answer(maintenance::trigger_snapshot(self, req.into_inner()).await)
    }
}
