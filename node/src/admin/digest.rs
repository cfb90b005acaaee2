//! The quarantine digests: once a day, at each domain's time, the leader sends each of the
//! domain's mailboxes with newly held mail one message listing it, with links into the
//! portal; `DigestSend` sends one mailbox its digest now. A digest is a spooled message
//! like a bounce, whose `SpoolPut` carries its key: apply records it in the same
//! transaction and refuses a second one, so a digest goes out once even when a new leader
//! redoes a round its predecessor died in.

use std::collections::{BTreeSet, HashSet};
use std::sync::Arc;
use std::time::Duration;

use tonic::Status;

use peage_mail::shutdown::{Every, Shutdown};
use peage_mail::smtp::trace::{utc_date, utc_minute};
use peage_proto::v1::{DigestSendReply, DigestSendRequest, DigestSent, TrackEvent};

use super::auth::Caller;
use super::convert::storage_status;
use super::digest_mail::{Digest, Listed};
use super::mailbox::mailbox_in_scope;
use super::service::AdminService;
use crate::clock::now_ms;
use crate::cluster::error::WriteError;
use crate::metrics::{DIGESTS, DIGEST_ROUNDS};
use crate::spool::{EnqueueError, NewMessage};
use crate::state::spool::{SpooledMessage, DIGEST_SENT_ALREADY};
use crate::state::{domain_of, DigestLang, DigestSchedule};

/// The most messages one digest lists (the newest); the portal shows them all.
const MAX_LISTED: usize = 200;

const DAY_MS: i64 = 86_400_000;

/// What became of one digest.
enum Digested {
    Sent(DigestSendReply),
    /// Nothing held was new since the recipient's last digest, which listed up to then.
    NothingNew {
        listed_up_to: i64,
    },
    /// This digest (its key) was sent already.
    SentAlready,
}

/// The time today's digest lists mail up to, and the day's name, once it is due at `now`:
/// `grace` after that time, so that a message accepted just before it had the time to
/// commit.
fn due_today(schedule: DigestSchedule, now: i64, grace: Duration) -> Option<(i64, String)> {
    let at = now.div_euclid(DAY_MS) * DAY_MS + i64::from(schedule.second_of_day) * 1000;
    if now < at + grace.as_millis() as i64 {
        return None;
    }
    let (y, m, d) = utc_date(at);
    Some((at, format!("{y:04}-{m:02}-{d:02}")))
}

/// On the leader, every `every`: the day's digests of each domain whose time has come.
pub async fn send_daily(admin: Arc<AdminService>, every: Duration, stop: Shutdown) {
    let mut every = Every::new(every, stop);
    // The (domain, day) rounds this node finished as leader: not gone through again.
    let mut done = HashSet::new();
    while every.tick().await {
        if admin.cluster.leads() {
            admin.daily_round(now_ms(), &mut done).await;
        }
    }
}

/// One domain's round: its digest language, the day's time its digests list mail up to,
/// and the day.
struct DomainRound {
    domain: String,
    lang: DigestLang,
    up_to_ms: i64,
    day: String,
}

impl AdminService {
    /// Sends the digests due at `now` that were not sent yet, leaving out the rounds `done`
    /// and adding those it finishes.
    async fn daily_round(&self, now: i64, done: &mut HashSet<(String, String)>) {
        let indexes = self.cluster.state().indexes();
        let due: Vec<DomainRound> = indexes
            .domains()
            .into_iter()
            .filter(|(_, route)| route.portal)
            .filter_map(|(domain, route)| {
                let schedule = route.digest?;
                let (up_to_ms, day) = due_today(schedule, now, self.digest_grace)?;
                let round = DomainRound {
                    domain,
                    lang: route.lang,
                    up_to_ms,
                    day,
                };
                (!done.contains(&(round.domain.clone(), round.day.clone()))).then_some(round)
            })
            .collect();
        if !due.is_empty() {
            let held = self.cluster.state().spool().quarantined_before(now);
            for round in due {
                if self.domain_round(&round, &held).await {
                    done.insert((round.domain, round.day));
                }
            }
        }
        metrics::counter!(DIGEST_ROUNDS).increment(1);
    }

    /// The digests of one domain's mailboxes among `held`; whether each went out (or had
    /// nothing new, or had gone out before) with this node still the leader.
    async fn domain_round(&self, round: &DomainRound, held: &[Arc<SpooledMessage>]) -> bool {
        // A mailbox is one whatever case its senders wrote it in, as in the portal.
        let recipients: BTreeSet<String> = held
            .iter()
            .filter(|m| m.accepted_at_ms <= round.up_to_ms)
            .flat_map(|m| m.rcpt_to.iter())
            .filter(|r| domain_of(r).as_deref() == Some(round.domain.as_str()))
            .map(|r| r.to_ascii_lowercase())
            .collect();
        let mut all_out = true;
        for recipient in recipients {
            if !self.cluster.leads() {
                // Deposed mid-round: the new leader redoes it, skipping what was sent.
                return false;
            }
            let key = format!("daily:{recipient}:{}", round.day);
            let sent = self.send_digest(&recipient, round.lang, key, round.up_to_ms, false);
            let outcome = match sent.await {
                Ok(Digested::Sent(sent)) => {
                    tracing::info!(
                        recipient = recipient.as_str(),
                        queue_id = sent.queue_id,
                        messages = sent.messages,
                        "digest of held mail sent"
                    );
                    tokio::time::sleep(self.digest_pause).await;
                    "sent"
                }
                Ok(Digested::SentAlready) => "already",
                Ok(Digested::NothingNew { .. }) => continue,
                Err(e) => {
                    tracing::warn!(recipient = recipient.as_str(), error = %e, "digest not sent");
                    all_out = false;
                    "failed"
                }
            };
            metrics::counter!(DIGESTS, "outcome" => outcome).increment(1);
        }
        all_out && self.cluster.leads()
    }

    /// Puts in the spool the digest `key` for `recipient` of the mail held up to
    /// `up_to_ms` since its last digest (or of everything held then, with `everything`).
    async fn send_digest(
        &self,
        recipient: &str,
        lang: DigestLang,
        key: String,
        up_to_ms: i64,
        everything: bool,
    ) -> Result<Digested, Status> {
        let state = self.cluster.state();
        let (listed_up_to, sent) = state
            .digest_sent(recipient.to_owned(), key.clone())
            .await
            .map_err(storage_status)?;
        if sent {
            return Ok(Digested::SentAlready);
        }
        let after_ms = if everything { i64::MIN } else { listed_up_to };
        let mut held: Vec<Arc<SpooledMessage>> = state
            .spool()
            .quarantined_before(up_to_ms.saturating_add(1))
            .into_iter()
            .filter(|m| {
                m.accepted_at_ms > after_ms
                    && m.rcpt_to.iter().any(|r| r.eq_ignore_ascii_case(recipient))
            })
            .collect();
        if held.is_empty() {
            return Ok(Digested::NothingNew { listed_up_to });
        }
        held.reverse();
        held.truncate(MAX_LISTED);
        let mut listed = Vec::with_capacity(held.len());
        for m in &held {
            listed.push(Listed {
                queue_id: m.queue_id.clone(),
                accepted_at_ms: m.accepted_at_ms,
                sender: m.mail_from.clone(),
                subject: self.subject_of(m).await,
                score_milli: m.score_milli,
                why: main_reason(m),
            });
        }
        let (link, link_expires_at_ms) = self.mailbox_link(recipient, self.link_validity).await?;
        let retention = state.indexes().policy().quarantine_retention_ms;
        let body = Digest {
            recipient,
            lang,
            listed: &listed,
            link: &link,
            link_expires_at_ms,
            retention_days: retention / DAY_MS,
            hostname: &self.hostname,
            now_ms: now_ms(),
            id: &format!("{:016x}", rand::random::<u64>()),
        }
        .build();
        let new = NewMessage {
            mail_from: String::new(),
            rcpt_to: vec![recipient.to_owned()],
            client_ip: "127.0.0.1".into(),
            helo: self.hostname.clone(),
            body,
            verdict: "deliver",
            score_milli: 0,
            symbols: Vec::new(),
            digest: Some(DigestSent {
                key,
                recipient: recipient.to_owned(),
                up_to_ms,
            }),
        };
        let size = new.body.len() as u64;
        match self.spooler.enqueue(new).await {
            Ok(queue_id) => {
                // What an operator asked about a missing digest finds with `peagectl track`.
                self.cluster.tracking().record(TrackEvent {
                    kind: "digest".into(),
                    queue_id: queue_id.clone(),
                    recipients: vec![recipient.to_owned()],
                    verdict: "deliver".into(),
                    detail: format!(
                        "digest of {} held message(s) up to {}",
                        listed.len(),
                        utc_minute(up_to_ms)
                    ),
                    size,
                    ..TrackEvent::default()
                });
                Ok(Digested::Sent(DigestSendReply {
                    queue_id,
                    messages: listed.len() as u32,
                }))
            }
            Err(EnqueueError::Commit(WriteError::Refused(why)))
                if why.starts_with(DIGEST_SENT_ALREADY) =>
            {
                Ok(Digested::SentAlready)
            }
            Err(e) => Err(Status::unavailable(format!("the digest was not sent: {e}"))),
        }
    }
}

/// The reason of the check that weighed most in holding `m`.
fn main_reason(m: &SpooledMessage) -> String {
    m.symbols
        .iter()
        .max_by_key(|(_, score, _)| *score)
        .map(|(_, _, reason)| reason.clone())
        .unwrap_or_default()
}

/// `DigestSend`: `r.recipient`'s digest now, for a caller whose scope covers it.
pub async fn send_now(
    svc: &AdminService,
    caller: Caller,
    r: DigestSendRequest,
) -> Result<DigestSendReply, Status> {
    let recipient = mailbox_in_scope(&caller, &r.recipient)?;
    svc.read_barrier(false).await?;
    svc.portal_open(&recipient)?;
    let lang = svc.mailbox_lang(&recipient);
    let now = now_ms();
    let key = format!("now:{recipient}:{now}");
    match svc.send_digest(&recipient, lang, key, now, r.all).await? {
        Digested::Sent(sent) => Ok(sent),
        Digested::NothingNew { listed_up_to } if listed_up_to > 0 && !r.all => {
            Err(Status::failed_precondition(format!(
                "nothing was held for {recipient} since its last digest ({}): no digest sent \
                 (--all lists everything held)",
                utc_minute(listed_up_to)
            )))
        }
        Digested::NothingNew { .. } => Err(Status::failed_precondition(format!(
            "nothing is held for {recipient}: no digest sent"
        ))),
        Digested::SentAlready => Err(Status::aborted(
            "a digest with this key was sent already: ask again",
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_day_s_digest_is_due_its_grace_after_its_time_and_names_its_day() {
        let at = |hh_mm: &str| DigestSchedule::parse(hh_mm).unwrap();
        let grace = Duration::from_secs(10);
        // 2026-12-06 07:30 UTC.
        let day = 1_796_515_200_000 + 7 * 3_600_000 + 30 * 60_000;
        assert_eq!(due_today(at("07:30"), day, grace), None);
        assert_eq!(due_today(at("07:30"), day + 9_999, grace), None);
        let due = Some((day, "2026-12-06".to_owned()));
        assert_eq!(due_today(at("07:30"), day + 10_000, grace), due);
        assert_eq!(
            due_today(at("07:29:50"), day, grace).map(|d| d.0),
            Some(day - 10_000)
        );
        // Before today's time, nothing is due (yesterday's was due yesterday).
        assert_eq!(due_today(at("23:59"), day, grace), None);
        let midnight = Some((1_796_515_200_000, "2026-12-06".to_owned()));
        assert_eq!(due_today(at("00:00"), day, grace), midnight);
    }

    #[test]
    fn schedules_are_read_to_the_second_and_written_back_as_given() {
        for (at, second) in [("07:30", 27_000), ("00:00", 0), ("23:59:59", 86_399)] {
            let s = DigestSchedule::parse(at).unwrap();
            assert_eq!((s.second_of_day, s.at().as_str()), (second, at));
        }
        for bad in [
            "",
            "7:30",
            "24:00",
            "12:60",
            "12:00:60",
            "12-00",
            "aa:bb",
            "12:00:00:00",
        ] {
            assert_eq!(DigestSchedule::parse(bad), None, "{bad}");
        }
        assert_eq!(DigestLang::parse("de"), None);
        assert_eq!(DigestLang::parse("fr"), Some(DigestLang::Fr));
    }
}
