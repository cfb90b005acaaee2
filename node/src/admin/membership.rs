//! Status and membership: what the contacted node sees (role, term, leader, members,
//! placement warnings, what the classifier learned), and adding, promoting and removing
//! nodes through the leader.

use std::collections::{BTreeMap, BTreeSet};

use tonic::Status;

use peage_proto::v1::{
    AddLearnerRequest, Member, MembershipReply, PromoteVoterRequest, RemoveNodeRequest,
    StatusReply, StatusRequest,
};

use super::convert::{read_info, write_status};
use super::service::AdminService;
use super::validate::{invalid, node_addr};
use crate::cluster::placement::{placement_warnings, replication_warnings, role_name, Replica};
use crate::cluster::protocol::WriteOp;
use crate::cluster::MemberReplication;
use crate::types::{NodeId, PeageNode};

/// The members, with the leader's `replication` figures of each (empty: not asked).
fn members(svc: &AdminService, replication: &BTreeMap<NodeId, MemberReplication>) -> Vec<Member> {
    let m = svc.cluster.metrics();
    let membership = m.membership_config.membership();
    let voters: BTreeSet<u64> = membership.voter_ids().collect();
    membership
        .nodes()
        .map(|(id, node)| Member {
            node_id: *id,
            site: node.site.clone(),
            peer_addr: node.peer_addr.clone(),
            admin_addr: node.admin_addr.clone(),
            voter: voters.contains(id),
            matched_index: replication.get(id).map(|r| r.matched),
            silent_ms: replication.get(id).and_then(|r| r.silent_ms),
        })
        .collect()
}

pub async fn status(svc: &AdminService, _: StatusRequest) -> Result<StatusReply, Status> {
    let m = svc.cluster.metrics();
    let replication = svc.cluster.replication().await;
    let members = members(svc, &replication);
    let voters: Vec<(u64, String)> = members
        .iter()
        .filter(|m| m.voter)
        .map(|m| (m.node_id, m.site.clone()))
        .collect();
    let mut warnings = placement_warnings(&voters);
    if m.current_leader.is_none() {
        warnings.push("no leader is known: this node cannot reach a majority".into());
    }
    let replicas: Vec<Replica> = (members.iter())
        .filter_map(|m| {
            Some(Replica {
                id: m.node_id,
                site: &m.site,
                voter: m.voter,
                replication: *replication.get(&m.node_id)?,
            })
        })
        .collect();
    warnings.extend(replication_warnings(&replicas));
    let (learned_spam, learned_ham, learned_tokens, learned_table_bytes) =
        svc.cluster.state().indexes().bayes_counts();
    Ok(StatusReply {
        node_id: svc.cluster.id(),
        site: svc.cluster.site().to_owned(),
        role: role_name(m.state).to_owned(),
        leader_id: m.current_leader,
        term: m.current_term,
        last_applied: m.last_applied.map_or(0, |l| l.index),
        last_log_index: m.last_log_index.unwrap_or(0),
        snapshot_index: m.snapshot.map_or(0, |l| l.index),
        purged_index: m.purged.map_or(0, |l| l.index),
        members,
        warnings,
        read: Some(read_info(svc.cluster.id(), &svc.cluster.freshness(true))),
        millis_since_quorum_ack: m.millis_since_quorum_ack,
        learned_spam,
        learned_ham,
        learned_tokens,
        learned_table_bytes,
    })
}

async fn change(svc: &AdminService, op: WriteOp) -> Result<MembershipReply, Status> {
    let done = svc.cluster.write(op).await.map_err(write_status)?;
    Ok(MembershipReply {
        log_index: done.log_index,
        members: members(svc, &BTreeMap::new()),
    })
}

pub async fn add_learner(
    svc: &AdminService,
    r: AddLearnerRequest,
) -> Result<MembershipReply, Status> {
    if r.node_id == 0 {
        return Err(invalid("node_id must be 1 or more"));
    }
    node_addr("peer_addr", &r.peer_addr)?;
    node_addr("admin_addr", &r.admin_addr)?;
    if r.site.trim().is_empty() {
        return Err(invalid("site must not be empty"));
    }
    let metrics = svc.cluster.metrics();
    if metrics
        .membership_config
        .membership()
        .get_node(&r.node_id)
        .is_some()
    {
        return Err(Status::already_exists(format!(
            "node {} is already a member",
            r.node_id
        )));
    }
    let node = PeageNode {
        site: r.site,
        peer_addr: r.peer_addr,
        admin_addr: r.admin_addr,
    };
    change(
        svc,
        WriteOp::AddLearner {
            id: r.node_id,
            node,
        },
    )
    .await
}

pub async fn promote_voter(
    svc: &AdminService,
    req: PromoteVoterRequest,
) -> Result<MembershipReply, Status> {
    let id = req.node_id;
    change(svc, WriteOp::Promote { id }).await
}

pub async fn remove_node(
    svc: &AdminService,
    req: RemoveNodeRequest,
) -> Result<MembershipReply, Status> {
    let id = req.node_id;
    change(svc, WriteOp::Remove { id }).await
}
