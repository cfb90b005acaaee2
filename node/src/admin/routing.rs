//! The routing table: which domains are local (mail for them is accepted), the
//! downstream route of each, how their recipients are verified, whether their mailboxes
//! have the portal and a daily digest, and the recipient lists.

use tonic::Status;

use peage_proto::v1::{
    command, Domain, DomainListReply, DomainListRequest, DomainRemove, DomainRemoveReply,
    DomainRemoveRequest, DomainSet, DomainSetReply, DomainSetRequest, RecipientsAdd,
    RecipientsAddRequest, RecipientsChangeReply, RecipientsListReply, RecipientsListRequest,
    RecipientsRemove, RecipientsRemoveRequest,
};

use super::convert::{outcome_status, storage_status};
use super::service::AdminService;
use super::validate::invalid;
use crate::clock::now_ms;
use crate::state::recipients::{normalize_address, MAX_PER_COMMAND};
use crate::state::routing::{normalize_domain, normalize_route};
use crate::state::{DigestLang, DigestSchedule, DmarcAction, DomainRoute, Verify};
use crate::types::Outcome;

pub async fn set(
    svc: &AdminService,
    author: String,
    r: DomainSetRequest,
) -> Result<DomainSetReply, Status> {
    let domain = normalize_domain(&r.domain).map_err(|e| invalid(e.to_string()))?;
    let route = normalize_route(&r.route).map_err(|e| invalid(e.to_string()))?;
    // Re-routing a domain without saying how to verify it, or what DMARC does, keeps what
    // it had.
    let indexes = svc.cluster.state().indexes();
    let dmarc = match r.dmarc.as_str() {
        "" => indexes.dmarc_of(&domain),
        word => DmarcAction::parse(word).ok_or_else(|| {
            invalid(format!(
                "dmarc `{word}`: expected `reject`, `quarantine`, `score` or `default`"
            ))
        })?,
    };
    let verify = match r.verify.as_str() {
        "" => indexes.verify_of(&domain).unwrap_or_default(),
        word => Verify::parse(word).ok_or_else(|| {
            invalid(format!(
                "verify `{word}`: expected `none`, `list` or `callout`"
            ))
        })?,
    };
    let portal = match r.portal.as_str() {
        "" => indexes.portal_on(&domain),
        "on" => true,
        "off" => false,
        word => return Err(invalid(format!("portal `{word}`: expected `on` or `off`"))),
    };
    let lang = match r.digest_lang.as_str() {
        "" => indexes.lang_of(&domain),
        word => DigestLang::parse(word)
            .ok_or_else(|| invalid(format!("language `{word}`: expected `en` or `fr`")))?,
    };
    let digest = digest_schedule(indexes.digest_of(&domain), &r.digest_at)?;
    if digest.is_some() && !portal {
        return Err(Status::failed_precondition(format!(
            "a digest links to the portal: turn the portal on for {domain} (--portal on), or the digest off (--digest-at off)"
        )));
    }
    let set = DomainSet {
        domain,
        route,
        author,
        created_at_ms: now_ms(),
        verify: verify.as_str().into(),
        dmarc: dmarc.as_str().into(),
        portal,
        digest_at: digest.map(|d| d.at()).unwrap_or_default(),
        digest_lang: lang.as_str().into(),
    };
    match svc.propose(command::Kind::DomainSet(set.clone())).await? {
        (log_index, Outcome::DomainSet { created }) => Ok(DomainSetReply {
            domain: Some(Domain {
                domain: set.domain,
                route: set.route,
                author: set.author,
                created_at_ms: set.created_at_ms,
                verify: set.verify,
                dmarc: set.dmarc,
                portal: set.portal,
                digest_at: set.digest_at,
                digest_lang: set.digest_lang,
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
        .map(|(domain, r): (String, DomainRoute)| Domain {
            domain,
            route: r.route,
            author: r.author,
            created_at_ms: r.created_at_ms,
            verify: r.verify.as_str().into(),
            dmarc: r.dmarc.as_str().into(),
            portal: r.portal,
            digest_at: r.digest.map(|d| d.at()).unwrap_or_default(),
            digest_lang: r.lang.as_str().into(),
        })
        .collect();
    Ok(DomainListReply {
        domains,
        read: Some(read),
    })
}

/// The digest schedule a `domain add` asks for: `at` "HH:MM" or "off" (empty keeps
/// `current`).
fn digest_schedule(
    current: Option<DigestSchedule>,
    at: &str,
) -> Result<Option<DigestSchedule>, Status> {
    match at {
        "" => Ok(current),
        "off" => Ok(None),
        word => DigestSchedule::parse(word).map(Some).ok_or_else(|| {
            invalid(format!(
                "digest time `{word}`: expected HH:MM (UTC, 00:00 to 23:59) or `off`"
            ))
        }),
    }
}

/// Normalises addresses for the recipient lists: each valid, each of a local domain.
fn local_addresses(svc: &AdminService, addresses: &[String]) -> Result<Vec<String>, Status> {
    if addresses.is_empty() || addresses.len() > MAX_PER_COMMAND {
        return Err(invalid(format!(
            "between 1 and {MAX_PER_COMMAND} addresses a request (got {})",
            addresses.len()
        )));
    }
    let indexes = svc.cluster.state().indexes();
    addresses
        .iter()
        .map(|a| {
            let (address, domain) = normalize_address(a).map_err(invalid)?;
            match indexes.verify_of(&domain) {
                Some(_) => Ok(address),
                None => Err(invalid(format!(
                    "`{address}`: {domain} is not a local domain"
                ))),
            }
        })
        .collect()
}

pub async fn recipients_add(
    svc: &AdminService,
    author: String,
    r: RecipientsAddRequest,
) -> Result<RecipientsChangeReply, Status> {
    let add = RecipientsAdd {
        addresses: local_addresses(svc, &r.addresses)?,
        author,
        created_at_ms: now_ms(),
    };
    recipients_change(svc, command::Kind::RecipientsAdd(add)).await
}

pub async fn recipients_remove(
    svc: &AdminService,
    r: RecipientsRemoveRequest,
) -> Result<RecipientsChangeReply, Status> {
    let rm = RecipientsRemove {
        addresses: local_addresses(svc, &r.addresses)?,
    };
    recipients_change(svc, command::Kind::RecipientsRemove(rm)).await
}

async fn recipients_change(
    svc: &AdminService,
    change: command::Kind,
) -> Result<RecipientsChangeReply, Status> {
    match svc.propose(change).await? {
        (log_index, Outcome::RecipientsChanged { changed }) => {
            Ok(RecipientsChangeReply { changed, log_index })
        }
        (_, other) => Err(outcome_status(other)),
    }
}

pub async fn recipients_list(
    svc: &AdminService,
    r: RecipientsListRequest,
) -> Result<RecipientsListReply, Status> {
    let domain = normalize_domain(&r.domain).map_err(|e| invalid(e.to_string()))?;
    let read = svc.read_barrier(r.stale).await?;
    let limit = match r.limit {
        0 => 1000,
        n => (n as usize).min(10_000),
    };
    // One more than asked says whether there are more.
    let mut addresses = svc
        .cluster
        .state()
        .recipients(domain, r.after, limit + 1)
        .await
        .map_err(storage_status)?;
    let more = addresses.len() > limit;
    addresses.truncate(limit);
    Ok(RecipientsListReply {
        addresses,
        more,
        read: Some(read),
    })
}
