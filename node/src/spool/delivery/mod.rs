//! Delivery: each node delivers the messages it owns while its lease lasts (renewing it in
//! one entry per round), retries with exponential backoff while the downstream refuses or is
//! down, and — on the leader — takes over messages whose owner's lease has lapsed.
//! At-least-once: `SpoolDone` is proposed only after the downstream's `250`.
//!
//! Each round reads the spool, lets `plan` decide, and carries the decisions out here;
//! `send` talks to the downstream over `connections`.

pub mod connections;
pub mod ledger;
pub mod mx;
mod ownership;
pub mod plan;
mod repair;
pub mod send;
mod stream;
pub mod tracked;

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::task::JoinSet;

use peage_mail::shutdown::Shutdown;
use peage_mail::sync::lock;
use peage_mail::trust::SENDER_PROVED;
use peage_proto::v1::{command, SpoolDone};

use crate::clock::now_ms;
use crate::cluster::Cluster;
use crate::metrics::{BOUNCES_WITHHELD, DELIVERY_ATTEMPTS};
use crate::spool::bodies::body_of;
use crate::spool::strikes::{Evidence, LockPolicy, StrikeKind};
use crate::spool::{dsn, submission, NewMessage, Spooler};
use crate::state::spool::SpooledMessage;
use crate::state::Verify;
use crate::tracking::event_of;
use ledger::Ledger;
use plan::{plan, retry_delay, ripe, Backoff, Round, TakeoverGate, View};
use send::{attempt, AttemptResult, Downstream};

/// Delivery timing and where bounces go.
#[derive(Clone)]
pub struct DeliveryConfig {
    /// The longest wait between rounds; new work and due times start one sooner.
    pub tick: Duration,
    pub lease: Duration,
    pub retry_first: Duration,
    pub retry_max: Duration,
    pub downstream: Downstream,
    /// Past this age, the remaining recipients are bounced.
    pub retention: Duration,
    /// Where DSNs are put.
    pub spooler: Spooler,
    /// What hard bounces of outgoing mail count towards a lock of its identity.
    pub locks: LockPolicy,
}

/// How long a graceful stop waits for delivery attempts in progress.
const STOP_GRACE: Duration = Duration::from_secs(10);

/// The state a node's delivery keeps between rounds, shared with its attempts.
#[derive(Clone)]
struct Local {
    backoff: Arc<Mutex<HashMap<String, Backoff>>>,
    in_flight: Arc<Mutex<HashSet<String>>>,
    uncommitted: Uncommitted,
    ledger: Arc<Ledger>,
}

/// Runs until `stop`: the delivery loop of this node. A round starts when the spool index
/// says a message became ours to deliver, when one of ours is due, or after `tick`.
/// `left` are the deliveries the ledger held from before a crash: their `SpoolDone` is
/// proposed again, and no round delivers them a second time meanwhile.
pub async fn run(
    cluster: Cluster,
    config: DeliveryConfig,
    (ledger, left): (Arc<Ledger>, Vec<SpoolDone>),
    mut stop: Shutdown,
) {
    let local = Local {
        backoff: Arc::default(),
        in_flight: Arc::default(),
        uncommitted: Uncommitted::default(),
        ledger,
    };
    let left_ids: Vec<String> = left.iter().map(|d| d.queue_id.clone()).collect();
    for done in left {
        local.uncommitted.keep(done);
    }
    let settle_left = tokio::spawn(settle_left(
        cluster.clone(),
        local.clone(),
        left_ids,
        stop.clone(),
    ));
    // Attempts in progress; a graceful stop lets them finish and commit, so that a restart
    // does not send again what the downstream already has.
    let mut attempts = JoinSet::new();
    let mut gate = TakeoverGate::default();
    let repair = tokio::spawn(repair::run(cluster.clone(), config.tick, stop.clone()));
    let mut next_round = tokio::time::Instant::now();
    loop {
        tokio::select! {
            _ = tokio::time::sleep_until(next_round) => {}
            _ = cluster.state().spool().new_work_for(cluster.id()) => {}
            _ = stop.wait() => {
                let finish = async { while attempts.join_next().await.is_some() {} };
                if tokio::time::timeout(STOP_GRACE, finish).await.is_err() {
                    tracing::warn!("stopping with delivery attempts still in progress");
                }
                let _ = repair.await;
                let _ = settle_left.await;
                return;
            }
        }
        while attempts.try_join_next().is_some() {}
        let m = cluster.metrics();
        let leads = m.current_leader == Some(cluster.id());
        let may_take_over = gate.may_take_over(leads, m.current_term, Instant::now(), config.lease);
        // Leases are judged by the leader's clock: ours, corrected by the measured offset.
        let now = cluster.leader_now_ms();
        let spool = cluster.state().spool();
        let lease_ms = config.lease.as_millis() as i64;
        let mut messages = spool.owned_by(cluster.id());
        if may_take_over {
            messages.extend(ripe(
                spool.lapsed_elsewhere(cluster.id(), now),
                now,
                lease_ms,
            ));
        }
        let round = {
            let (backoff, in_flight) = (lock(&local.backoff), lock(&local.in_flight));
            let view = View {
                me: cluster.id(),
                now_ms: now,
                lease_ms,
                retention_ms: config.retention.as_millis() as i64,
                may_take_over,
                backoff: &backoff,
                in_flight: &in_flight,
            };
            plan(messages, &view)
        };
        let wait = round.next_due_ms.map_or(config.tick, |due| {
            Duration::from_millis((due - now).max(0) as u64).min(config.tick)
        });
        next_round = tokio::time::Instant::now() + wait;
        carry_out(&cluster, &config, &local, round, &mut attempts).await;
    }
}

/// Starts the round's bounces and attempts, proposes its takeovers and renewals.
async fn carry_out(
    cluster: &Cluster,
    config: &DeliveryConfig,
    local: &Local,
    round: Round,
    attempts: &mut JoinSet<()>,
) {
    let lease_ms = config.lease.as_millis() as i64;
    for m in round.expire {
        let why = "4.4.7 Delivery time expired: the message was held past the retention limit";
        let result = AttemptResult::all_failed(&m.rcpt_to, why);
        let expired = event_of(&m, "expired", m.rcpt_to.clone(), why.into());
        cluster.tracking().record(expired);
        spawn_tracked(attempts, local, m.queue_id.clone(), {
            let (cluster, config, local) = (cluster.clone(), config.clone(), local.clone());
            async move { record(&cluster, &config, &m, result, &local).await }
        });
    }
    for m in round.attempt {
        let id = m.queue_id.clone();
        spawn_tracked(attempts, local, id.clone(), {
            let (cluster, config, local) = (cluster.clone(), config.clone(), local.clone());
            async move {
                // This round's list may predate a delivery that finished since: look
                // again, now that no other attempt can start.
                if let Some(done) = local.uncommitted.take(&id) {
                    // Delivered already; only the commit is missing.
                    commit_done(&cluster, done, &local).await;
                } else if let Some(current) = still_ours(&cluster, &config, &id) {
                    deliver_and_record(&cluster, &config, &current, &local).await;
                }
            }
        });
    }
    if !round.take_over.is_empty() {
        ownership::take_over(cluster, round.take_over, lease_ms).await;
    }
    ownership::renew(cluster, round.renew, lease_ms).await;
}

/// Runs `work` for a message marked in flight until it ends.
fn spawn_tracked(
    attempts: &mut JoinSet<()>,
    local: &Local,
    id: String,
    work: impl std::future::Future<Output = ()> + Send + 'static,
) {
    let in_flight = local.in_flight.clone();
    lock(&in_flight).insert(id.clone());
    attempts.spawn(async move {
        work.await;
        lock(&in_flight).remove(&id);
    });
}

/// The message as this replica has it now, if this node still owns it with enough lease
/// left, by the leader's clock and less the uncertainty of our reading of it, to start an
/// attempt (a renewal comes first otherwise).
fn still_ours(cluster: &Cluster, config: &DeliveryConfig, id: &str) -> Option<Arc<SpooledMessage>> {
    let m = cluster.state().spool().get(id)?;
    let left = m.lease_until_ms - cluster.leader_now_ms() - cluster.leader_clock_uncertainty_ms();
    (m.owner == cluster.id() && !m.is_quarantined() && left >= config.lease.as_millis() as i64 / 4)
        .then_some(m)
}

async fn deliver_and_record(
    cluster: &Cluster,
    config: &DeliveryConfig,
    m: &SpooledMessage,
    local: &Local,
) {
    let result = attempt(cluster, &config.downstream, m).await;
    let throttled = result.throttled;
    let why = result.retry.first().map(|(_, why)| why.clone());
    record(cluster, config, m, result, local).await;
    let Some(why) = why else {
        lock(&local.backoff).remove(&m.queue_id);
        return;
    };
    let attempts = {
        let mut b = lock(&local.backoff);
        let entry = b.entry(m.queue_id.clone()).or_default();
        // A busy downstream is not the message's failure: its backoff does not grow.
        if !throttled || entry.attempts == 0 {
            entry.attempts += 1;
        }
        entry.retry_gen = m.retry_gen;
        let delay = retry_delay(config.retry_first, config.retry_max, entry.attempts);
        entry.next_at_ms = cluster.leader_now_ms() + delay.as_millis() as i64;
        tracing::info!(queue_id = %m.queue_id, attempts = entry.attempts, retry_in_ms = delay.as_millis() as u64, %why, "delivery deferred");
        entry.attempts
    };
    if attempts >= ownership::HAND_OFF_AFTER
        && !throttled
        && ownership::hand_off(cluster, m, config.lease.as_millis() as i64).await
    {
        lock(&local.backoff).remove(&m.queue_id);
    }
}

/// Bounces the failed recipients (a DSN to the sender, none for the null sender nor for a
/// sender that may be forged), then commits `SpoolDone` for the recipients that are finished.
async fn record(
    cluster: &Cluster,
    config: &DeliveryConfig,
    m: &SpooledMessage,
    mut result: AttemptResult,
    local: &Local,
) {
    for (outcome, n) in [
        (
            "delivered",
            result.done.len().saturating_sub(result.failed.len()),
        ),
        ("failed", result.failed.len()),
        ("deferred", result.retry.len()),
    ] {
        metrics::counter!(DELIVERY_ATTEMPTS, "result" => outcome).increment(n as u64);
    }
    tracked::record_attempt(cluster.tracking(), m, &result);
    if !result.failed.is_empty() {
        strike_refusals(config, m, &result.failed).await;
    }
    if !result.failed.is_empty() && !m.mail_from.is_empty() && !may_bounce_to(cluster, m) {
        // A DSN to an address anyone could have written is backscatter: the failure stays
        // in the log and the metrics.
        tracing::info!(queue_id = %m.queue_id, sender = %m.mail_from, failed = ?result.failed,
            "not bounced: the sender is neither proved by SPF or DKIM nor local");
        metrics::counter!(BOUNCES_WITHHELD).increment(result.failed.len() as u64);
    } else if !result.failed.is_empty() && !m.mail_from.is_empty() {
        match bounce(cluster, config, m, &result.failed).await {
            Ok(dsn_id) => {
                tracing::info!(queue_id = %m.queue_id, dsn = %dsn_id, "bounced to the sender")
            }
            Err(e) => {
                // No DSN, no SpoolDone: the failed recipients stay and are bounced later.
                tracing::warn!(queue_id = %m.queue_id, error = %e, "cannot queue the DSN yet");
                let failed: Vec<String> = result.failed.iter().map(|(r, _)| r.clone()).collect();
                result.done.retain(|r| !failed.contains(r));
            }
        }
    }
    if !result.done.is_empty() {
        tracing::info!(queue_id = %m.queue_id, rcpts = ?result.done, failed = ?result.failed, "delivered");
        let done = SpoolDone {
            queue_id: m.queue_id.clone(),
            rcpt_to: result.done,
        };
        local.ledger.note(&done);
        commit_done(cluster, done, local).await;
    }
}

/// Outgoing mail refused for good counts against its identity: recipients refused as
/// unknown (5.1.x) and other hard bounces, each kind on its own.
async fn strike_refusals(config: &DeliveryConfig, m: &SpooledMessage, failed: &[(String, String)]) {
    let Some((login, identity)) = submission::identity_in(&m.symbols) else {
        return;
    };
    let unknown = |why: &str| why.get(..12).is_some_and(|head| head.contains(" 5.1."));
    let (invalid, other): (Vec<_>, Vec<_>) = failed.iter().partition(|(_, why)| unknown(why));
    crate::ratelimit::note_invalid(config.spooler.cluster(), identity, invalid.len() as u64);
    for (kind, refused) in [
        (StrikeKind::InvalidRecipient, invalid),
        (StrikeKind::HardBounce, other),
    ] {
        let Some((_, why)) = refused.first() else {
            continue;
        };
        let evidence = Evidence {
            login,
            identity,
            queue_id: &m.queue_id,
            kind,
            why: why.clone(),
            count: refused.len() as u32,
        };
        config.locks.strike(&config.spooler, evidence).await;
    }
}

/// Whether a DSN to this message's sender cannot be backscatter: sender authentication
/// proved its domain when the message came in, or it is a mailbox of ours (a local domain
/// that takes any address, or one on its domain's recipient list).
fn may_bounce_to(cluster: &Cluster, m: &SpooledMessage) -> bool {
    if m.symbols.iter().any(|(name, _, _)| name == SENDER_PROVED) {
        return true;
    }
    let indexes = cluster.state().indexes();
    let domain = m.mail_from.rsplit_once('@').map_or("", |(_, d)| d);
    match indexes.verify_of(domain) {
        Some(Verify::None) => true,
        Some(Verify::List) => indexes.is_listed_recipient(&m.mail_from.to_lowercase()),
        Some(Verify::Callout) => {
            indexes.callout_answer(&m.mail_from.to_lowercase(), now_ms()) == Some(true)
        }
        None => false,
    }
}

/// Puts a DSN for the `failed` recipients in the spool, to the original sender.
async fn bounce(
    cluster: &Cluster,
    config: &DeliveryConfig,
    m: &SpooledMessage,
    failed: &[(String, String)],
) -> Result<String, String> {
    let body = body_of(cluster, m).await?;
    let helo = &config.downstream.helo_name;
    let dsn = dsn::build(
        helo,
        m,
        failed,
        &body,
        &peage_mail::smtp::trace::rfc2822_ms(now_ms()),
    );
    let new = NewMessage {
        mail_from: String::new(),
        rcpt_to: vec![m.mail_from.clone()],
        client_ip: "127.0.0.1".into(),
        helo: helo.clone(),
        body: dsn,
        verdict: "deliver",
        score_milli: 0,
        symbols: Vec::new(),
        digest: None,
    };
    config.spooler.enqueue(new).await.map_err(|e| e.to_string())
}

/// `SpoolDone`s whose delivery happened but whose commit failed (no quorum for now): the
/// next rounds retry the commit instead of the delivery. The ledger keeps them across a
/// process crash; lost with the machine, the message is delivered again (at-least-once).
#[derive(Clone, Default)]
struct Uncommitted(Arc<Mutex<HashMap<String, SpoolDone>>>);

impl Uncommitted {
    fn take(&self, queue_id: &str) -> Option<SpoolDone> {
        lock(&self.0).remove(queue_id)
    }

    fn holds(&self, queue_id: &str) -> bool {
        lock(&self.0).contains_key(queue_id)
    }

    fn keep(&self, done: SpoolDone) {
        let mut map = lock(&self.0);
        match map.get_mut(&done.queue_id) {
            Some(earlier) => earlier.rcpt_to.extend(done.rcpt_to),
            None => {
                map.insert(done.queue_id.clone(), done);
            }
        }
    }
}

async fn commit_done(cluster: &Cluster, done: SpoolDone, local: &Local) {
    // Nobody waits on it but this node's next round, which the ledger and `in_flight`
    // keep from delivering again: it rides in the next message's entry.
    match cluster
        .propose_when_convenient(command::Kind::SpoolDone(done.clone()))
        .await
    {
        Ok((index, _)) => {
            // The commit is known on the leader; until this replica has applied it, the
            // next round here would still see the message and send it again.
            cluster.wait_applied(index).await;
            local.ledger.settle(&done);
        }
        Err(e) => {
            tracing::warn!(queue_id = %done.queue_id, error = %e, "delivered; SpoolDone not committed yet");
            local.uncommitted.keep(done);
        }
    }
}

/// Proposes again, until each is committed, the `SpoolDone`s of deliveries made before a
/// crash (`ids`, held in `local.uncommitted`). A message one of them is in flight for is
/// marked so, so that no round starts a delivery of it meanwhile.
async fn settle_left(cluster: Cluster, local: Local, ids: Vec<String>, mut stop: Shutdown) {
    if ids.is_empty() {
        return;
    }
    tracing::info!(
        messages = ids.len(),
        "proposing the SpoolDone of deliveries made before a restart"
    );
    loop {
        for id in &ids {
            if !lock(&local.in_flight).insert(id.clone()) {
                continue;
            }
            if let Some(done) = local.uncommitted.take(id) {
                commit_done(&cluster, done, &local).await;
            }
            lock(&local.in_flight).remove(id);
        }
        if !ids.iter().any(|id| local.uncommitted.holds(id)) {
            return;
        }
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_secs(1)) => {}
            _ = stop.wait() => return,
        }
    }
}
