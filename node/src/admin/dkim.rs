//! DKIM keys of hosted domains, for operators only: made here (off the runtime) and
//! proposed whole, so that every site signs with the same key; activated for rotation,
//! removed, and listed with the DNS records to publish — never with their private halves.

use tonic::Status;

use peage_proto::v1::{
    command, DkimGenerateRequest, DkimKeyInfo, DkimKeyRemove, DkimKeyReply, DkimKeySet,
    DkimListReply, DkimListRequest, DkimSelectorRequest, ReadInfo,
};

use super::convert::{outcome_status, storage_status};
use super::service::AdminService;
use super::validate::invalid;
use crate::clock::now_ms;
use crate::dkim::{dns_record, generate as make_key};
use crate::state::dkim_keys::DkimRow;
use crate::state::routing::normalize_domain;
use crate::types::Outcome;

fn info(row: DkimRow) -> DkimKeyInfo {
    DkimKeyInfo {
        dns_name: format!("{}._domainkey.{}", row.selector, row.domain),
        dns_record: dns_record(&row.algorithm, &row.public_key),
        domain: row.domain,
        selector: row.selector,
        algorithm: row.algorithm,
        active: row.active,
        author: row.author,
        created_at_ms: row.created_at_ms,
    }
}

fn selector_ok(selector: &str) -> Result<(), Status> {
    let ok = !selector.is_empty()
        && selector.len() <= 63
        && selector
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-');
    ok.then_some(())
        .ok_or_else(|| invalid(format!("selector `{selector}`: letters, digits and -")))
}

/// Every key as this replica holds it, after a read barrier (`stale`: none).
async fn all_keys(svc: &AdminService, stale: bool) -> Result<(ReadInfo, Vec<DkimKeyInfo>), Status> {
    let read = svc.read_barrier(stale).await?;
    let rows = svc
        .cluster
        .state()
        .dkim_keys()
        .await
        .map_err(storage_status)?;
    Ok((read, rows.into_iter().map(info).collect()))
}

/// The key as stored once the write just made is applied here (a linearizable read waits
/// for that), for the reply.
async fn stored(svc: &AdminService, domain: &str, selector: &str) -> Result<DkimKeyInfo, Status> {
    let (_, keys) = all_keys(svc, false).await?;
    keys.into_iter()
        .find(|k| k.domain == domain && k.selector == selector)
        .ok_or_else(|| Status::not_found(format!("no DKIM key {selector} for {domain}")))
}

pub async fn generate(
    svc: &AdminService,
    author: String,
    r: DkimGenerateRequest,
) -> Result<DkimKeyReply, Status> {
    let domain = normalize_domain(&r.domain).map_err(|e| invalid(e.to_string()))?;
    let algorithm = if r.algorithm.is_empty() {
        "ed25519".to_owned()
    } else {
        r.algorithm
    };
    let selector = if r.selector.is_empty() {
        format!("{algorithm}-{}", now_ms() / 1000)
    } else {
        r.selector
    };
    selector_ok(&selector)?;
    let (algorithm, private_key, public_key) =
        tokio::task::spawn_blocking(move || make_key(&algorithm))
            .await
            .map_err(|e| Status::internal(e.to_string()))?
            .map_err(|e| invalid(e.to_string()))?;
    let first = svc.cluster.state().indexes().dkim_key(&domain).is_none();
    let set = DkimKeySet {
        domain: domain.clone(),
        selector: selector.clone(),
        algorithm,
        private_key,
        public_key,
        active: first,
        author,
        created_at_ms: now_ms(),
    };
    let (log_index, outcome) = svc.propose(command::Kind::DkimKeySet(set)).await?;
    if let Outcome::Refused(_) = outcome {
        return Err(outcome_status(outcome));
    }
    let key = Some(stored(svc, &domain, &selector).await?);
    Ok(DkimKeyReply { key, log_index })
}

pub async fn activate(
    svc: &AdminService,
    author: String,
    r: DkimSelectorRequest,
) -> Result<DkimKeyReply, Status> {
    let domain = normalize_domain(&r.domain).map_err(|e| invalid(e.to_string()))?;
    let set = DkimKeySet {
        domain: domain.clone(),
        selector: r.selector.clone(),
        active: true,
        author,
        created_at_ms: now_ms(),
        ..DkimKeySet::default()
    };
    let (log_index, outcome) = svc.propose(command::Kind::DkimKeySet(set)).await?;
    if let Outcome::Refused(why) = outcome {
        return Err(Status::not_found(why));
    }
    let key = Some(stored(svc, &domain, &r.selector).await?);
    Ok(DkimKeyReply { key, log_index })
}

pub async fn remove(svc: &AdminService, r: DkimSelectorRequest) -> Result<DkimKeyReply, Status> {
    let domain = normalize_domain(&r.domain).map_err(|e| invalid(e.to_string()))?;
    let rm = DkimKeyRemove {
        domain: domain.clone(),
        selector: r.selector.clone(),
    };
    match svc.propose(command::Kind::DkimKeyRemove(rm)).await? {
        (log_index, Outcome::Removed { removed: true }) => Ok(DkimKeyReply {
            key: None,
            log_index,
        }),
        (_, Outcome::Removed { removed: false }) => Err(Status::not_found(format!(
            "no DKIM key {} for {domain}",
            r.selector
        ))),
        (_, other) => Err(outcome_status(other)),
    }
}

pub async fn list(svc: &AdminService, r: DkimListRequest) -> Result<DkimListReply, Status> {
    let (read, keys) = all_keys(svc, r.stale).await?;
    Ok(DkimListReply {
        keys,
        read: Some(read),
    })
}
