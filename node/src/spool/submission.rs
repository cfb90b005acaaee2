//! What an authenticated client (submission) may do: send only as the account's domains
//! (envelope sender and header From), and only while the account is not locked; each spam
//! verdict on its mail is a strike through Raft, and the strike that locks the account
//! tells its domains' postmaster (and the operator) with the evidence.

use std::time::Duration;

use mail_parser::MessageParser;
use peage_mail::filter::Judgement;
use peage_mail::smtp::Reply;
use peage_proto::v1::{command, OutboundStrike};

use super::{NewMessage, Spooler};
use crate::clock::now_ms;
use crate::logins::Logins;
use crate::ratelimit::RateLimits;
use crate::state::Indexes;
use crate::types::Outcome;

/// When a run of spam locks an account, and who hears of it.
#[derive(Clone, Debug)]
pub struct LockPolicy {
    pub after_spam: u32,
    pub window: Duration,
    pub lock_for: Duration,
    pub max_auto_unlocks: u32,
    pub notify: Option<String>,
}

/// What the submission path needs: logins, the lock policy and the rate limits.
#[derive(Clone)]
pub struct Submission {
    pub logins: Logins,
    pub locks: LockPolicy,
    pub limits: RateLimits,
}

impl Submission {
    /// `Err` while `login` is locked: the reply to its MAIL FROM.
    pub fn unlocked(&self, indexes: &Indexes, login: &str) -> Result<(), Reply> {
        match indexes.lock_of(login, now_ms()) {
            None => Ok(()),
            Some(lock) => Err(Reply::new(
                550,
                format!(
                    "5.7.1 The account {login} is locked ({}); contact your provider's abuse desk",
                    lock.reason
                ),
            )),
        }
    }

    /// Counts a spam verdict on `login`'s message `queue_id` cluster-wide; when it locks
    /// the account, tells who must know.
    pub async fn strike(&self, spooler: &Spooler, login: &str, queue_id: &str, j: &Judgement) {
        let strike = OutboundStrike {
            login: login.to_owned(),
            at_ms: now_ms(),
            queue_id: queue_id.to_owned(),
            why: j.main_reason(),
            threshold: self.locks.after_spam,
            window_ms: self.locks.window.as_millis() as i64,
            lock_ms: self.locks.lock_for.as_millis() as i64,
            max_auto_unlocks: self.locks.max_auto_unlocks,
        };
        let cluster = spooler.cluster();
        match cluster.propose(command::Kind::OutboundStrike(strike)).await {
            Ok((_, Outcome::Strike { locked: true })) => {
                tracing::warn!(%login, %queue_id, "account locked for sending spam");
                if let Err(e) = self.notify(spooler, login, queue_id).await {
                    tracing::warn!(%login, error = %e, "lock notification not queued");
                }
            }
            Ok(_) => {}
            Err(e) => tracing::warn!(%login, error = %e, "spam strike not recorded"),
        }
    }

    async fn notify(&self, spooler: &Spooler, login: &str, queue_id: &str) -> anyhow::Result<()> {
        let indexes = spooler.cluster().state().indexes();
        let account = indexes.account(login);
        let lock = indexes.lock_of(login, now_ms());
        let mut to: Vec<String> = account
            .map(|a| {
                a.domains
                    .iter()
                    .map(|d| format!("postmaster@{d}"))
                    .collect()
            })
            .unwrap_or_default();
        to.extend(self.locks.notify.clone());
        anyhow::ensure!(!to.is_empty(), "nobody to notify");
        let reason = lock.map_or_else(String::new, |l| l.reason);
        let body = format!(
            "From: Peage <postmaster@invalid>\r\nTo: {}\r\nSubject: Account {login} locked for sending spam\r\n\
             Date: {}\r\nMessage-ID: <lock-{queue_id}@peage>\r\nAuto-Submitted: auto-generated\r\n\r\n\
             The mail account {login} was locked: {reason}.\r\n\
             The messages that caused it are held in the outbound quarantine (the last one: {queue_id}).\r\n\
             Change the account's password, then ask the provider to unlock it.\r\n",
            to.join(", "),
            peage_mail::smtp::trace::rfc2822_ms(now_ms()),
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
        };
        spooler
            .enqueue(message)
            .await
            .map(|_| ())
            .map_err(|e| anyhow::anyhow!("{e}"))
    }
}

/// The domain of `address`, lower-case.
pub fn domain_of(address: &str) -> Option<String> {
    let (local, domain) = address.rsplit_once('@')?;
    (!local.is_empty() && !domain.is_empty()).then(|| domain.to_ascii_lowercase())
}

/// Whether `login` may use `address`; the reply that says why not.
pub fn owned(indexes: &Indexes, login: &str, address: &str, what: &str) -> Result<(), Reply> {
    let Some(account) = indexes.account(login) else {
        return Err(Reply::new(
            550,
            format!("5.7.1 The account {login} no longer exists"),
        ));
    };
    match domain_of(address) {
        Some(domain) if account.domains.contains(&domain) => Ok(()),
        _ => Err(Reply::new(
            553,
            format!("5.7.1 {what} <{address}> is not an address {login} may send as"),
        )),
    }
}

/// The header From's address, if the message has one.
pub fn header_from(message: &[u8]) -> Option<String> {
    let parsed = MessageParser::new().parse_headers(message)?;
    let from = parsed.from()?.first()?.address.as_deref()?.to_owned();
    Some(from)
}

#[cfg(test)]
mod tests {
    use super::{domain_of, header_from};

    #[test]
    fn the_from_and_its_domain_are_read_as_written() {
        let m = b"From: \"Alice\" <Alice@Shop.Example>\r\nSubject: x\r\n\r\nbody\r\n";
        assert_eq!(header_from(m).as_deref(), Some("Alice@Shop.Example"));
        assert_eq!(
            domain_of("Alice@Shop.Example").as_deref(),
            Some("shop.example")
        );
        assert_eq!(header_from(b"Subject: no from\r\n\r\nbody\r\n"), None);
        assert_eq!(domain_of("@shop.example"), None);
        assert_eq!(domain_of("nobody"), None);
    }
}
