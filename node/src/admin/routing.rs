//! The routing table: which domains are local (mail for them is accepted) and the
//! downstream route of each.

use tonic::Status;

use peage_proto::v1::{
    command, Domain, DomainListReply, DomainListRequest, DomainRemove, DomainRemoveReply,
    DomainRemoveRequest, DomainSet, DomainSetReply, DomainSetRequest,
};

use super::convert::outcome_status;
use super::service::AdminService;
use super::validate::invalid;
use crate::clock::now_ms;
use crate::state::routing::{normalize_domain, normalize_route};
use crate::types::Outcome;

pub async fn set(
    svc: &AdminService,
    author: String,
    r: DomainSetRequest,
) -> Result<DomainSetReply, Status> {
    let domain = normalize_domain(&r.domain).map_err(|e| invalid(e.to_string()))?;
    let route = normalize_route(&r.route).map_err(|e| invalid(e.to_string()))?;
    let set = DomainSet {
        domain,
        route,
        author,
        created_at_ms: now_ms(),
    };
    match svc.propose(command::Kind::DomainSet(set.clone())).await? {
        (log_index, Outcome::DomainSet { created }) => Ok(DomainSetReply {
            domain: Some(Domain {
                domain: set.domain,
                route: set.route,
                author: set.author,
                created_at_ms: set.created_at_ms,
            }),
            created,
            log_index,
        }),
        (_, other) => Err(outcome_status(other)),
    }
}

pub async fn remove(
    svc: &AdminService,
    req: DomainRemoveRequest,
) -> Result<DomainRemoveReply, Status> {
    let domain = normalize_domain(&req.domain).map_err(|e| invalid(e.to_string()))?;
    let rm = DomainRemove {
        domain: domain.clone(),
    };
    match svc.propose(command::Kind::DomainRemove(rm)).await? {
        (log_index, Outcome::DomainRemoved { removed: true }) => {
            Ok(DomainRemoveReply { log_index })
        }
        (_, Outcome::DomainRemoved { removed: false }) => Err(Status::not_found(format!(
            "`{domain}` is not a local domain"
        ))),
        (_, other) => Err(outcome_status(other)),
    }
}

pub async fn list(svc: &AdminService, req: DomainListRequest) -> Result<DomainListReply, Status> {
    let read = svc.read_barrier(req.stale).await?;
    let domains = svc
        .cluster
        .state()
        .indexes()
        .domains()
        .into_iter()
        .map(|(domain, r)| Domain {
            domain,
            route: r.route,
            author: r.author,
            created_at_ms: r.created_at_ms,
        })
        .collect();
    Ok(DomainListReply {
        domains,
        read: Some(read),
    })
}
