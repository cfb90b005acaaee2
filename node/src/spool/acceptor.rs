//! The node's `Acceptor`, what the SMTP session hands recipients and messages to: relay
//! control against the replica's routing table, the filter's verdict, rejection at DATA,
//! and accepted mail put in the spool before `250`.

use std::borrow::Cow;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Instant;

use tracing::Instrument;

use peage_mail::filter::{self, Judgement, Verdict};
use peage_mail::smtp::address::Recipient;
use peage_mail::smtp::trace::{received, strip_forged_headers};
use peage_mail::smtp::{Acceptor, Envelope, Refusal, Reply};
use peage_mail::trust::{Authenticated, SENDER_PROVED};

use super::callout::{Answer, Callout};
use super::room::Room;
use super::strikes::{Evidence, StrikeKind};
use super::submission::{self, Submission};
use super::{NewMessage, Spooler};
use crate::auth::{Authentication, Authenticator};
use crate::clock::now_ms;
use crate::dkim;
use crate::evidence::Recorder;
use crate::judge::{
    authenticate, held_for_filter_failure, judge, wire_symbols, Judged, FILTER_ERROR,
};
use crate::metrics::{observe_stage, ACCEPT_STAGE_SECONDS, VERDICTS};
use crate::state::Verify;
use crate::tracking;
use peage_proto::v1::TrackEvent;

pub struct NodeAcceptor {
    spooler: Spooler,
    /// Where final verdicts are counted as reputation and bulk evidence.
    evidence: Recorder,
    /// This node's name in the `Received` field, and the authserv-id that no incoming
    /// `Authentication-Results` may claim.
    hostname: String,
    /// Sender authentication, unless turned off (`dns.authenticate`).
    auth: Option<Arc<Authenticator>>,
    /// How domains verified by callout ask their downstream.
    callout: Callout,
    /// SMTP AUTH on the submission listeners.
    submission: Submission,
    /// Free space on the data directory, looked at before each message.
    room: Arc<Room>,
}

impl NodeAcceptor {
    pub fn new(
        spooler: Spooler,
        evidence: Recorder,
        hostname: String,
        (auth, callout, submission): (Option<Arc<Authenticator>>, Callout, Submission),
        room: Arc<Room>,
    ) -> NodeAcceptor {
        NodeAcceptor {
            spooler,
            evidence,
            hostname,
            auth,
            callout,
            submission,
            room,
        }
    }

    /// Judges against the local replica; should the filter fail (it must not), the message
    /// is held for an operator rather than passed or lost; `None` when the filter could not
    /// run at all (the sender is asked to come back).
    async fn judge(&self, judged: Judged) -> Option<(Judgement, Vec<u8>)> {
        match judge(self.spooler.cluster().state(), judged).await {
            Ok((Ok(judgement), message)) => Some((judgement, message)),
            Ok((Err(e), message)) => {
                tracing::error!(error = %e, "filter failed; the message is held in quarantine");
                Some((held_for_filter_failure(), message))
            }
            Err(e) => {
                tracing::error!(error = %e, "the filter could not run");
                None
            }
        }
    }
}

impl Acceptor for NodeAcceptor {
    /// A node outside a working majority could store nothing, nor one whose disk is nearly
    /// full: it says so at once, before the client sends the message, and the client tries
    /// another MX. An authenticated
    /// client sends only as its account's domains.
    fn check_sender(
        &self,
        client_ip: IpAddr,
        mail_from: &str,
        login: Option<&str>,
    ) -> Result<(), Reply> {
        let cluster = self.spooler.cluster();
        if !cluster.in_quorum() {
            return Err(Reply::new(
                451,
                "4.4.1 This node cannot reach a majority of the cluster; try again or another MX",
            ));
        }
        self.room.check()?;
        let Some(login) = login else {
            return Ok(());
        };
        let indexes = cluster.state().indexes();
        let account = submission::principal(indexes, login)?;
        submission::owned(indexes, (login, &account), mail_from, "Sender")?;
        match submission::identity_at_mail(login, &account, mail_from) {
            Some(identity) => {
                let who = submission::sender(&identity, login, client_ip, mail_from);
                self.submission.admit(indexes, cluster, &who)
            }
            // Read from the message's header: checked at the end of DATA.
            None => Ok(()),
        }
    }

    fn trusted_principal(&self, client_ip: IpAddr) -> Option<String> {
        let principal = self
            .spooler
            .cluster()
            .state()
            .indexes()
            .trusted_principal(client_ip);
        if let Some(login) = &principal {
            tracing::debug!(%client_ip, %login, "client trusted by its network");
        }
        principal
    }

    async fn authenticate(
        &self,
        client_ip: IpAddr,
        login: &str,
        password: &str,
    ) -> Result<(), Reply> {
        self.submission
            .logins
            .check(client_ip, login, password)
            .await
    }

    /// Relay control and recipient verification against the local replica's routing table
    /// and recipient lists (or the downstream, for a domain verified by callout). An unknown
    /// domain or listed mailbox is refused for good (550) only when the replica is current;
    /// otherwise the sender is told to come back (451), so a node that has just started
    /// never bounces real mail.
    async fn check_recipient(&self, rcpt: &Recipient, login: Option<&str>) -> Result<(), Reply> {
        if login.is_some() {
            // Our own customer's mail goes anywhere (rate limits are the guard there).
            return Ok(());
        }
        let cluster = self.spooler.cluster();
        let indexes = cluster.state().indexes();
        let refusal = match indexes.verify_of(&rcpt.domain) {
            Some(Verify::None) => return Ok(()),
            Some(Verify::Callout) => return self.call_out(rcpt).await,
            Some(Verify::List) => {
                let address = rcpt.address().to_lowercase();
                if indexes.is_listed_recipient(&address) {
                    return Ok(());
                }
                Reply::new(
                    550,
                    format!("5.1.1 <{address}>: Recipient address rejected: no such user"),
                )
            }
            None => Reply::new(
                550,
                format!(
                    "5.7.1 Relaying denied: {} is not a local domain",
                    rcpt.domain
                ),
            ),
        };
        let waiting_for = if !cluster.is_current() {
            "this node is catching up"
        } else if self.spooler.routes_unseeded() {
            "the cluster's seed routes are not applied yet"
        } else {
            return Err(refusal);
        };
        Err(Reply::new(
            451,
            format!(
                "4.3.0 Cannot confirm <{}> yet, {waiting_for}; try again later",
                rcpt.address()
            ),
        ))
    }

    fn recipient_refused(&self, r: Refusal<'_>) {
        self.spooler.cluster().tracking().record(TrackEvent {
            kind: "refused".into(),
            sender: r.mail_from.to_owned(),
            recipients: vec![r.rcpt.to_owned()],
            client_ip: r.client_ip.to_string(),
            helo: r.helo.to_owned(),
            detail: format!("RCPT: {} {}", r.reply.code, r.reply.text),
            reason: r.reply.status_code(),
            ..TrackEvent::default()
        });
    }

    async fn accept(&self, envelope: Envelope, message: Vec<u8>) -> Reply {
        self.accept_message(envelope, message).await
    }
}

impl NodeAcceptor {
    /// A principal's message at the end of DATA: its header From must be the principal's
    /// too, an identity read from a header is admitted now (lock and rate limit), and the
    /// message is DKIM-signed for its From domain; the identity it is counted as.
    fn outgoing(&self, envelope: &Envelope, message: &mut Vec<u8>) -> Result<String, Reply> {
        let (login, mail_from) = (
            envelope.login.as_deref().unwrap_or_default(),
            envelope.mail_from.as_str(),
        );
        let cluster = self.spooler.cluster();
        let indexes = cluster.state().indexes();
        let account = submission::principal(indexes, login)?;
        let from = submission::header_from(message).unwrap_or_default();
        submission::owned(indexes, (login, &account), &from, "From")?;
        let identity = submission::identity_of(login, &account, mail_from, message);
        if submission::identity_at_mail(login, &account, mail_from).is_none() {
            let who = submission::sender(&identity, login, envelope.client_ip, mail_from);
            self.submission.admit(indexes, cluster, &who)?;
        }
        let rcpts: Vec<String> = envelope.rcpt_to.iter().map(Recipient::address).collect();
        self.submission
            .limits
            .admit_recipients(cluster, &identity, &rcpts)?;
        let domain = submission::domain_of(&from).unwrap_or_default();
        if let Some(key) = indexes.dkim_key(&domain) {
            match dkim::sign(message, &domain, &key) {
                Ok(signed) => *message = signed,
                Err(e) => tracing::warn!(%domain, error = %e, "not DKIM-signed"),
            }
        }
        Ok(identity)
    }

    /// Outgoing mail's verdict: held in the outbound quarantine at the policy's outbound
    /// threshold, never refused (it is the evidence for the abuse desk and for the
    /// identity's lock; a message the filter failed on stays held, whatever its points);
    /// marked as sent by `login` as `identity`, which also lets bounces go back to it
    /// (`spool::delivery::may_bounce_to`).
    fn judge_outgoing(&self, login: &str, identity: &str, judgement: &mut Judgement) {
        let why = format!("authenticated as {login}");
        judgement.symbols.push(filter::symbol(SENDER_PROVED, why));
        let why = submission::identity_reason(login, identity);
        judgement
            .symbols
            .push(filter::symbol(submission::OUTBOUND_IDENTITY, why));
        let policy = self.spooler.cluster().state().indexes().policy();
        let failed = judgement.symbols.iter().any(|s| s.name == FILTER_ERROR);
        judgement.verdict = if judgement.total_milli >= policy.outbound_hold_at_milli || failed {
            Verdict::Quarantine
        } else {
            Verdict::Deliver
        };
    }

    /// Records what became of a message in this node's tracking store.
    fn track(
        &self,
        kind: &str,
        envelope: &Envelope,
        (queue_id, message_id): (&str, &str),
        (judgement, size): (&Judgement, usize),
        detail: String,
    ) {
        let reason = match kind {
            "rejected" => judgement.main_symbol().map_or("policy", |s| &s.name),
            _ => "",
        };
        self.spooler.cluster().tracking().record(TrackEvent {
            kind: kind.into(),
            queue_id: queue_id.into(),
            message_id: message_id.into(),
            sender: envelope.mail_from.clone(),
            recipients: envelope.rcpt_to.iter().map(Recipient::address).collect(),
            client_ip: envelope.client_ip.to_string(),
            helo: envelope.helo.clone(),
            verdict: judgement.verdict.as_str().into(),
            score_milli: judgement.total_milli,
            detail,
            size: size as u64,
            outbound: envelope.login.is_some(),
            class: judgement.class().into(),
            reason: reason.into(),
            tls: tls_of(envelope.tls),
            login: envelope.login.clone().unwrap_or_default(),
            rdns: envelope.rdns.clone(),
            ..TrackEvent::default()
        });
    }

    /// The downstream's word on a mailbox of a domain verified by callout (cached
    /// cluster-wide): refused for good → `550 5.1.1`; no answer now → taken unverified (the
    /// message waits in the spool like any other, and a refusal then bounces only to a
    /// proved sender).
    async fn call_out(&self, rcpt: &Recipient) -> Result<(), Reply> {
        let cluster = self.spooler.cluster();
        let address = rcpt.address().to_lowercase();
        let Some(route) = cluster.state().indexes().route_for(&rcpt.domain) else {
            return Err(Reply::new(
                451,
                "4.3.0 The domain's route changed; try again",
            ));
        };
        match self.callout.ask(cluster, &route, &address).await {
            Answer::Valid => Ok(()),
            Answer::Invalid(why) => Err(Reply::new(
                550,
                format!("5.1.1 <{address}>: Recipient address rejected: {why}"),
            )),
            Answer::Unknown(why) => {
                tracing::info!(%address, %why, "callout without an answer; recipient taken unverified");
                Ok(())
            }
        }
    }

    /// The message as stored: delivered and quarantined copies both carry the trace (ours,
    /// authentication's, a customer's identity) and the verdict above what arrived.
    fn stamped(
        &self,
        envelope: &Envelope,
        authentication: Option<&Authentication>,
        identity: &Option<String>,
        judgement: &Judgement,
        message: Vec<u8>,
    ) -> Vec<u8> {
        let mut body = received(envelope, &self.hostname, now_ms()).into_bytes();
        if let Some(found) = authentication {
            body.extend_from_slice(found.header.as_bytes());
        }
        if let (Some(login), Some(identity)) = (&envelope.login, identity) {
            body.extend_from_slice(submission::trace_header(login, identity).as_bytes());
        }
        body.extend_from_slice(
            filter::headers(judgement.verdict, judgement.total_milli, &judgement.symbols)
                .as_bytes(),
        );
        body.extend_from_slice(&message);
        body
    }

    async fn accept_message(&self, mut envelope: Envelope, message: Vec<u8>) -> Reply {
        let span = tracing::info_span!("accept", client = %envelope.client_ip);
        let started = Instant::now();
        let message = match strip_forged_headers(&message, &self.hostname) {
            Cow::Borrowed(_) => message,
            Cow::Owned(stripped) => stripped,
        };
        let mut judged = Judged {
            client_ip: envelope.client_ip,
            helo: envelope.helo.clone(),
            mail_from: envelope.mail_from.clone(),
            message,
            proved: Authenticated::nothing(),
            recipients: envelope.rcpt_to.iter().map(|r| r.address()).collect(),
        };
        // Our own customer: no DNS checks, but the From must be theirs too.
        let auth = self.auth.as_deref().filter(|_| envelope.login.is_none());
        let identity = match &envelope.login {
            Some(_) => match self.outgoing(&envelope, &mut judged.message) {
                Ok(identity) => Some(identity),
                Err(reply) => return reply,
            },
            None => None,
        };
        let authentication = authenticate(auth, &mut judged).await;
        if let Some(found) = &authentication {
            envelope.rdns.clone_from(&found.rdns);
        }
        let Some((mut judgement, message)) = self.judge(judged).await else {
            return Reply::new(451, "4.3.0 The filter could not run; try again later");
        };
        if let (Some(auth), Some(found)) = (auth, &authentication) {
            let indexes = self.spooler.cluster().state().indexes();
            let domains = envelope.rcpt_to.iter().map(|r| indexes.dmarc_of(&r.domain));
            let action = auth.dmarc_action(domains);
            auth.combine(&mut judgement, found, &indexes.policy().filter, action);
        }
        if let (Some(login), Some(identity)) = (&envelope.login, &identity) {
            self.judge_outgoing(login, identity, &mut judgement);
        }
        let spam = judgement.verdict != Verdict::Deliver;
        observe_stage(ACCEPT_STAGE_SECONDS, "filter", started);
        metrics::counter!(VERDICTS, "verdict" => judgement.verdict.as_str()).increment(1);
        if judgement.verdict == Verdict::Reject {
            self.evidence
                .count(&judgement.evidence_keys, judgement.verdict);
            tracing::info!(score = judgement.total_milli, symbols = ?judgement.symbols, "message rejected");
            let reply = format!("5.7.1 Rejected: {}", judgement.main_reason());
            let message_id = tracking::message_id_of(&message);
            self.track(
                "rejected",
                &envelope,
                ("", &message_id),
                (&judgement, message.len()),
                format!("550 {reply}"),
            );
            return Reply::new(550, reply);
        }
        let message_id = tracking::message_id_of(&message);
        let size = message.len();
        let body = self.stamped(
            &envelope,
            authentication.as_ref(),
            &identity,
            &judgement,
            message,
        );
        let new = NewMessage {
            mail_from: envelope.mail_from.clone(),
            rcpt_to: envelope.rcpt_to.iter().map(Recipient::address).collect(),
            client_ip: envelope.client_ip.to_string(),
            helo: envelope.helo.clone(),
            body,
            verdict: judgement.verdict.as_str(),
            score_milli: judgement.total_milli,
            symbols: wire_symbols(&judgement.symbols),
            digest: None,
        };
        match self.spooler.enqueue(new).instrument(span).await {
            Ok(queue_id) => {
                // Counted once final: a 451 would bring the same message back.
                self.evidence
                    .count(&judgement.evidence_keys, judgement.verdict);
                tracing::info!(queue_id = %queue_id, verdict = judgement.verdict.as_str(), "message accepted");
                let kind = match judgement.verdict {
                    Verdict::Quarantine => "quarantined",
                    _ => "accepted",
                };
                let ids = (queue_id.as_str(), message_id.as_str());
                let detail = verdict_detail(&judgement);
                self.track(kind, &envelope, ids, (&judgement, size), detail);
                if let (Some(login), Some(identity), true) = (&envelope.login, &identity, spam) {
                    let kind = match judgement.carries_malware() {
                        true => StrikeKind::Malware,
                        false => StrikeKind::Spam,
                    };
                    let evidence = Evidence {
                        login,
                        identity,
                        queue_id: &queue_id,
                        kind,
                        why: judgement.main_reason(),
                        count: 1,
                    };
                    self.submission.locks.strike(&self.spooler, evidence).await;
                }
                Reply::new(250, format!("2.0.0 Ok: queued as {queue_id}"))
            }
            Err(e) => {
                tracing::warn!(error = %e, "message not accepted");
                Reply::new(
                    451,
                    format!("4.4.1 Not accepted, try again or another MX: {e}"),
                )
            }
        }
    }
}

/// What a tracked acceptance says of the verdict: the points, and the main reason when a
/// rule or classifier said anything.
fn verdict_detail(j: &Judgement) -> String {
    let points = filter::points(j.total_milli);
    match j.symbols.iter().any(|s| s.score_milli != 0) {
        true => format!(
            "{} at {points} points: {}",
            j.verdict.as_str(),
            j.main_reason()
        ),
        false => format!("{} at {points} points", j.verdict.as_str()),
    }
}

/// The connection's TLS as tracking records it: `TLSv1.3 TLS_AES_256_GCM_SHA384`.
fn tls_of(tls: Option<(&str, &str)>) -> String {
    tls.map(|(version, suite)| format!("{version} {suite}"))
        .unwrap_or_default()
}
