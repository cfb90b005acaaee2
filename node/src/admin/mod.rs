//! The admin gRPC service: bearer-token auth with roles (`auth`), request validation
//! (`validate`), one room per concern (`membership`, `lists`, `routing`, `policy`,
//! `messages`, `learn`, `maintenance`), and the wire conversions and status mapping
//! (`convert`). Writes go through the cluster (forwarded to the leader); reads wait for a
//! linearizable barrier unless `stale` is asked for. This file only dispatches.

mod auth;
mod convert;
mod learn;
mod lists;
mod maintenance;
mod membership;
mod messages;
mod policy;
mod routing;
mod service;
mod validate;

use tonic::{Request, Response, Status};

use peage_proto::v1::admin_server::Admin;
use peage_proto::v1::*;

pub use service::AdminService;

type Reply<T> = Result<Response<T>, Status>;

#[tonic::async_trait]
impl Admin for AdminService {
    async fn status(&self, req: Request<StatusRequest>) -> Reply<StatusReply> {
        membership::status(self, req).await
    }

    async fn add_learner(&self, req: Request<AddLearnerRequest>) -> Reply<MembershipReply> {
        membership::add_learner(self, req).await
    }

    async fn promote_voter(&self, req: Request<PromoteVoterRequest>) -> Reply<MembershipReply> {
        membership::promote_voter(self, req).await
    }

    async fn remove_node(&self, req: Request<RemoveNodeRequest>) -> Reply<MembershipReply> {
        membership::remove_node(self, req).await
    }

    async fn list_add(&self, req: Request<ListAddRequest>) -> Reply<ListAddReply> {
        lists::add(self, req).await
    }

    async fn list_remove(&self, req: Request<ListRemoveRequest>) -> Reply<ListRemoveReply> {
        lists::remove(self, req).await
    }

    async fn list_query(&self, req: Request<ListQueryRequest>) -> Reply<ListQueryReply> {
        lists::query(self, req).await
    }

    async fn list_check(&self, req: Request<ListCheckRequest>) -> Reply<ListCheckReply> {
        lists::check(self, req).await
    }

    async fn domain_set(&self, req: Request<DomainSetRequest>) -> Reply<DomainSetReply> {
        routing::set(self, req).await
    }

    async fn domain_remove(&self, req: Request<DomainRemoveRequest>) -> Reply<DomainRemoveReply> {
        routing::remove(self, req).await
    }

    async fn domain_list(&self, req: Request<DomainListRequest>) -> Reply<DomainListReply> {
        routing::list(self, req).await
    }

    async fn check_message(&self, req: Request<CheckMessageRequest>) -> Reply<CheckMessageReply> {
        policy::check_message(self, req).await
    }

    async fn policy_get(&self, req: Request<PolicyGetRequest>) -> Reply<PolicyReply> {
        policy::get(self, req).await
    }

    async fn policy_set(&self, req: Request<PolicySetRequest>) -> Reply<PolicyReply> {
        policy::set(self, req).await
    }

    async fn queue_list(&self, req: Request<QueueListRequest>) -> Reply<QueueListReply> {
        messages::list(self, req).await
    }

    async fn message_show(&self, req: Request<MessageRef>) -> Reply<MessageShowReply> {
        messages::show(self, req).await
    }

    async fn message_release(&self, req: Request<MessageRef>) -> Reply<MessageActionReply> {
        messages::release(self, req).await
    }

    async fn message_drop(&self, req: Request<MessageRef>) -> Reply<MessageActionReply> {
        messages::remove(self, req).await
    }

    async fn message_retry(&self, req: Request<MessageRef>) -> Reply<MessageActionReply> {
        messages::retry(self, req).await
    }

    async fn learn(&self, req: Request<LearnRequest>) -> Reply<LearnReply> {
        learn::learn(self, req).await
    }

    async fn state_digest(&self, req: Request<StateDigestRequest>) -> Reply<StateDigestReply> {
        maintenance::state_digest(self, req).await
    }

    async fn trigger_snapshot(
        &self,
        req: Request<TriggerSnapshotRequest>,
    ) -> Reply<TriggerSnapshotReply> {
        maintenance::trigger_snapshot(self, req).await
    }
}
