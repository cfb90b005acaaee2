//! Outbound abuse evidence counted through Raft: a strike against an identity for each spam
//! verdict, message with malware, recipient refused as unknown or other hard bounce, each
//! kind against its own threshold within one window; the strike that locks the identity
//! tells the domain's postmaster (and the operator) with the evidence.

use std::time::Duration;

use peage_proto::v1::{command, OutboundStrike};

use super::{NewMessage, Spooler};
use crate::clock::now_ms;
use crate::state::{domain_of, ANY_HOSTED_DOMAIN};
use crate::types::Outcome;

/// What a strike counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StrikeKind {
    Spam,
    Malware,
    InvalidRecipient,
    HardBounce,
}

impl StrikeKind {
    /// Its name in the log and the replicated state.
    pub fn as_str(self) -> &'static str {
        match self {
            StrikeKind::Spam => "spam",
            StrikeKind::Malware => "malware",
            StrikeKind::InvalidRecipient => "invalid_recipient",
            StrikeKind::HardBounce => "hard_bounce",
        }
    }
}

/// When a run of strikes locks an identity, and who hears of it.
#[derive(Clone, Debug)]
pub struct LockPolicy {
    /// Strikes of each kind within `window` that lock (0: that kind never locks).
    pub after_spam: u32,
    pub after_malware: u32,
    pub after_invalid_recipients: u32,
    pub after_hard_bounces: u32,
    pub window: Duration,
    pub lock_for: Duration,
    pub max_auto_unlocks: u32,
    pub notify: Option<String>,
}

/// One strike's evidence: whose, which message, what, why, how many at once.
pub struct Evidence<'a> {
    pub login: &'a str,
    pub identity: &'a str,
    pub queue_id: &'a str,
    pub kind: StrikeKind,
    pub why: String,
    pub count: u32,
}

impl LockPolicy {
    fn threshold(&self, kind: StrikeKind) -> u32 {
        match kind {
            StrikeKind::Spam => self.after_spam,
            StrikeKind::Malware => self.after_malware,
            StrikeKind::InvalidRecipient => self.after_invalid_recipients,
            StrikeKind::HardBounce => self.after_hard_bounces,
        }
    }

    /// Counts the evidence cluster-wide; when it locks the identity, tells who must know.
    pub async fn strike(&self, spooler: &Spooler, e: Evidence<'_>) {
        let threshold = self.threshold(e.kind);
        if threshold == 0 {
            return;
        }
        let strike = OutboundStrike {
            login: e.identity.to_owned(),
            at_ms: now_ms(),
            queue_id: e.queue_id.to_owned(),
            why: e.why.clone(),
            threshold,
            window_ms: self.window.as_millis() as i64,
            lock_ms: self.lock_for.as_millis() as i64,
            max_auto_unlocks: self.max_auto_unlocks,
            kind: e.kind.as_str().into(),
            count: e.count,
        };
        let (login, identity, kind) = (e.login, e.identity, e.kind.as_str());
        match spooler
            .cluster()
            .propose(command::Kind::OutboundStrike(strike))
            .await
        {
            Ok((_, Outcome::Strike { locked: true })) => {
                tracing::warn!(%login, %identity, queue_id = %e.queue_id, %kind, "identity locked");
                if let Err(err) = self.notify(spooler, &e).await {
                    tracing::warn!(%identity, error = %err, "lock notification not queued");
                }
            }
            Ok(_) => {}
            Err(err) => tracing::warn!(%identity, %kind, error = %err, "strike not recorded"),
        }
    }

    /// Mails the identity's domain's postmaster (or, for an identity that is no address,
    /// the principal's domains') and the operator's address.
    async fn notify(&self, spooler: &Spooler, e: &Evidence<'_>) -> anyhow::Result<()> {
        let (login, identity, queue_id) = (e.login, e.identity, e.queue_id);
        let indexes = spooler.cluster().state().indexes();
        let domains = match domain_of(identity) {
            Some(domain) => vec![domain],
            None => indexes
                .account(login)
                .map(|a| a.domains)
                .unwrap_or_default(),
        };
        let mut to: Vec<String> = domains
            .iter()
            .filter(|d| *d != ANY_HOSTED_DOMAIN)
            .map(|d| format!("postmaster@{d}"))
            .collect();
        to.extend(self.notify.clone());
        anyhow::ensure!(!to.is_empty(), "nobody to notify");
        let reason = indexes
            .lock_of(identity, now_ms())
            .map_or_else(String::new, |l| l.reason);
        let body = format!(
            "From: Peage <postmaster@invalid>\r\nTo: {}\r\nSubject: {identity} locked for abuse\r\n\
             Date: {}\r\nMessage-ID: <lock-{queue_id}@peage>\r\nAuto-Submitted: auto-generated\r\n\r\n\
             The mail identity {identity} (sending through {login}) was locked: {reason}.\r\n\
             The last message counted: {queue_id} ({}); spam and malware stay held in the\r\n\
             outbound quarantine for the abuse desk.\r\n\
             Change the account's password, then ask the provider to unlock it.\r\n",
            to.join(", "),
            peage_mail::smtp::trace::rfc2822_ms(now_ms()),
            e.why,
        );
        let message = NewMessage {
            mail_from: String::new(),
            rcpt_to: to,
            client_ip: "127.0.0.1".into(),
            helo: "localhost".into(),
            body: body.into_bytes(),
            verdict: "deliver",
            score_milli: 0,
            symbols: Vec::new(),
            digest: None,
        };
        spooler
            .enqueue(message)
            .await
            .map(|_| ())
            .map_err(|e| anyhow::anyhow!("{e}"))
    }
}
