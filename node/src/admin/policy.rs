//! The replicated policy (the filter's score thresholds, how long quarantine is kept), and
//! scoring a message without storing it.

use std::borrow::Cow;

use tonic::Status;

use peage_mail::smtp::trace::strip_our_stamp;
use peage_mail::trust::Authenticated;

use peage_proto::v1::{
    command, CheckMessageReply, CheckMessageRequest, PolicyGetRequest, PolicyReply, PolicySet,
    PolicySetRequest,
};

use super::convert::outcome_status;
use super::service::AdminService;
use super::validate::{self, invalid};
use crate::judge::{authenticate, judge, wire_symbols, Judged};
use crate::state::{ClusterPolicy, DmarcAction};
use crate::types::Outcome;

fn reply(p: &ClusterPolicy) -> PolicyReply {
    PolicyReply {
        quarantine_at_milli: p.filter.quarantine_at_milli,
        reject_at_milli: p.filter.reject_at_milli,
        quarantine_retention_secs: (p.quarantine_retention_ms / 1000) as u64,
        read: None,
        outbound_hold_at_milli: p.outbound_hold_at_milli,
    }
}

/// The policy as of a read barrier (linearizable unless `stale`), like every read.
pub async fn get(svc: &AdminService, r: PolicyGetRequest) -> Result<PolicyReply, Status> {
    let read = svc.read_barrier(r.stale).await?;
    Ok(PolicyReply {
        read: Some(read),
        ..reply(&svc.cluster.state().indexes().policy())
    })
}

pub async fn set(svc: &AdminService, r: PolicySetRequest) -> Result<PolicyReply, Status> {
    let current = svc.cluster.state().indexes().policy();
    let q = validate::threshold(
        r.quarantine_at,
        current.filter.quarantine_at_milli,
        "quarantine_at",
    )?;
    let j = validate::threshold(r.reject_at, current.filter.reject_at_milli, "reject_at")?;
    if q >= j {
        return Err(invalid(
            "the quarantine threshold must be below the reject threshold",
        ));
    }
    let retention_ms = validate::retention(r.quarantine_retention_secs)?;
    let outbound_hold = validate::threshold(
        r.outbound_hold_at,
        current.outbound_hold_at_milli,
        "outbound_hold_at",
    )?;
    let set = PolicySet {
        quarantine_at_milli: q,
        reject_at_milli: j,
        quarantine_retention_ms: retention_ms,
        outbound_hold_at_milli: outbound_hold,
    };
    match svc.propose(command::Kind::PolicySet(set)).await? {
        (log_index, Outcome::PolicySet) => {
            svc.cluster.wait_applied(log_index).await;
            Ok(reply(&svc.cluster.state().indexes().policy()))
        }
        (_, other) => Err(outcome_status(other)),
    }
}

/// Every symbol, the total and the verdict the local replica gives a message.
pub async fn check_message(
    svc: &AdminService,
    r: CheckMessageRequest,
) -> Result<CheckMessageReply, Status> {
    let mut judged = Judged {
        client_ip: validate::client_ip(&r.client_ip)?,
        helo: r.helo,
        mail_from: r.mail_from,
        // Judged as it was when it arrived: a stored or delivered copy carries our stamp.
        message: match strip_our_stamp(&r.message) {
            Cow::Borrowed(_) => r.message,
            Cow::Owned(stripped) => stripped,
        },
        proved: Authenticated::nothing(),
        recipients: r.rcpt_to,
    };
    // As the SMTP edge would see it from that client: the same DNS checks, the same credit.
    let auth = svc.auth.as_deref();
    let found = authenticate(auth, &mut judged).await;
    let (judgement, _) = judge(svc.cluster.state(), judged)
        .await
        .map_err(|e| Status::unavailable(format!("the filter could not run: {e}")))?;
    let mut judgement = judgement.map_err(|e| Status::internal(e.to_string()))?;
    if let (Some(auth), Some(found)) = (auth, &found) {
        let policy = svc.cluster.state().indexes().policy().filter;
        auth.combine(&mut judgement, found, &policy, DmarcAction::NodeDefault);
    }
    Ok(CheckMessageReply {
        verdict: judgement.verdict.as_str().to_owned(),
        score_milli: judgement.total_milli,
        symbols: wire_symbols(&judgement.symbols),
    })
}
