//! Delivery: each node delivers the messages it owns while its lease lasts (renewing it in
//! one entry per round), retries with exponential backoff while the downstream refuses or is
//! down, and — on the leader — takes over messages whose owner's lease has lapsed.
//! At-least-once: `SpoolDone` is proposed only after the downstream's `250`.
//!
//! Each round reads the spool, lets `plan` decide, and carries the decisions out here;
//! `send` talks to the downstream over `connections`.

pub mod connections;
pub mod plan;
pub mod send;

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::task::JoinSet;

use peage_mail::shutdown::Shutdown;
use peage_mail::sync::lock;
use peage_proto::v1::{command, SpoolDone, SpoolRenew, SpoolTakeover};

use crate::clock::now_ms;
use crate::cluster::Cluster;
use crate::metrics::DELIVERY_ATTEMPTS;
use crate::spool::bodies::body_of;
use crate::spool::{dsn, NewMessage, Spooler};
use crate::state::spool::SpooledMessage;
use plan::{plan, retry_delay, Backoff, Round, TakeoverGate, View};
use send::{attempt, AttemptResult, Downstream};

/// Delivery timing and where bounces go.
#[derive(Clone)]
pub struct DeliveryConfig {
    pub tick: Duration,
    pub lease: Duration,
    pub retry_first: Duration,
    pub retry_max: Duration,
    pub downstream: Downstream,
    /// Past this age, the remaining recipients are bounced.
    pub retention: Duration,
    /// Where DSNs are put.
    pub spooler: Spooler,
}

/// How long a graceful stop waits for delivery attempts in progress.
const STOP_GRACE: Duration = Duration::from_secs(10);

/// The state a node's delivery keeps between rounds, shared with its attempts.
#[derive(Clone, Default)]
struct Local {
    backoff: Arc<Mutex<HashMap<String, Backoff>>>,
    in_flight: Arc<Mutex<HashSet<String>>>,
    uncommitted: Uncommitted,
    /// Bodies being fetched from a holder.
    repairing: Arc<Mutex<HashSet<String>>>,
}

/// Runs until `stop`: the delivery loop of this node.
pub async fn run(cluster: Cluster, config: DeliveryConfig, mut stop: Shutdown) {
    let local = Local::default();
    // Attempts in progress; a graceful stop lets them finish and commit, so that a restart
    // does not send again what the downstream already has.
    let mut attempts = JoinSet::new();
    let mut gate = TakeoverGate::default();
    let mut tick = tokio::time::interval(config.tick);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = stop.wait() => {
                let finish = async { while attempts.join_next().await.is_some() {} };
                if tokio::time::timeout(STOP_GRACE, finish).await.is_err() {
                    tracing::warn!("stopping with delivery attempts still in progress");
                }
                return;
            }
        }
        while attempts.try_join_next().is_some() {}
        let Ok(messages) = cluster.state().spooled().await else {
            continue;
        };
        let m = cluster.metrics();
        let leads = m.current_leader == Some(cluster.id());
        let may_take_over = gate.may_take_over(leads, m.current_term, Instant::now(), config.lease);
        repair_one_body(&cluster, &messages, &local);
        let now = now_ms();
        let round = {
            let (backoff, in_flight) = (lock(&local.backoff), lock(&local.in_flight));
            let view = View {
                me: cluster.id(),
                now_ms: now,
                lease_ms: config.lease.as_millis() as i64,
                retention_ms: config.retention.as_millis() as i64,
                may_take_over,
                backoff: &backoff,
                in_flight: &in_flight,
            };
            plan(messages, &view)
        };
        carry_out(&cluster, &config, &local, round, &mut attempts).await;
    }
}

/// Every node keeps a copy of every body it has a record for, so that any node can deliver
/// or show it after holders are lost: one missing body is fetched at a time.
fn repair_one_body(cluster: &Cluster, messages: &[SpooledMessage], local: &Local) {
    let Some(m) = messages
        .iter()
        .find(|m| !cluster.blobs().has(&m.body_sha256))
    else {
        return;
    };
    if !lock(&local.repairing).insert(m.body_sha256.clone()) {
        return;
    }
    let (cluster, m, repairing) = (cluster.clone(), m.clone(), local.repairing.clone());
    tokio::spawn(async move {
        if let Err(e) = body_of(&cluster, &m).await {
            tracing::debug!(queue_id = %m.queue_id, error = %e, "body repair failed");
        }
        lock(&repairing).remove(&m.body_sha256);
    });
}

/// Starts the round's bounces and attempts, proposes its takeovers and renewals.
async fn carry_out(
    cluster: &Cluster,
    config: &DeliveryConfig,
    local: &Local,
    round: Round,
    attempts: &mut JoinSet<()>,
) {
    let (me, now) = (cluster.id(), now_ms());
    for m in round.expire {
        let why = "4.4.7 Delivery time expired: the message was held past the retention limit";
        let result = AttemptResult::all_failed(&m.rcpt_to, why);
        spawn_tracked(attempts, local, m.queue_id.clone(), {
            let (cluster, config, local) = (cluster.clone(), config.clone(), local.clone());
            async move { record(&cluster, &config, &m, result, &local.uncommitted).await }
        });
    }
    for m in round.attempt {
        let id = m.queue_id;
        spawn_tracked(attempts, local, id.clone(), {
            let (cluster, config, local) = (cluster.clone(), config.clone(), local.clone());
            async move {
                // This round's list may predate a delivery that finished since: look
                // again, now that no other attempt can start.
                if let Some(done) = local.uncommitted.take(&id) {
                    // Delivered already; only the commit is missing.
                    commit_done(&cluster, done, &local.uncommitted).await;
                } else if let Some(current) = still_ours(&cluster, &config, &id).await {
                    deliver_and_record(&cluster, &config, current, &local).await;
                }
            }
        });
    }
    for m in round.take_over {
        let takeover = SpoolTakeover {
            queue_id: m.queue_id.clone(),
            from_owner: m.owner,
            to_owner: me,
            lease_until_ms: now + config.lease.as_millis() as i64,
            now_ms: now,
        };
        match cluster
            .propose(command::Kind::SpoolTakeover(takeover))
            .await
        {
            Ok(_) => tracing::info!(queue_id = %m.queue_id, from = m.owner, "took over delivery"),
            Err(e) => tracing::warn!(queue_id = %m.queue_id, error = %e, "takeover failed"),
        }
    }
    if !round.renew.is_empty() {
        let r = SpoolRenew {
            owner: me,
            queue_ids: round.renew,
            lease_until_ms: now + config.lease.as_millis() as i64,
        };
        if let Err(e) = cluster.propose(command::Kind::SpoolRenew(r)).await {
            tracing::debug!(error = %e, "lease renewal failed");
        }
    }
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
/// left to start an attempt (a renewal comes first otherwise).
async fn still_ours(
    cluster: &Cluster,
    config: &DeliveryConfig,
    id: &str,
) -> Option<SpooledMessage> {
    let m = cluster.state().spooled_message(id).await.ok()??;
    let left = m.lease_until_ms - now_ms();
    (m.owner == cluster.id() && !m.is_quarantined() && left >= config.lease.as_millis() as i64 / 4)
        .then_some(m)
}

async fn deliver_and_record(
    cluster: &Cluster,
    config: &DeliveryConfig,
    m: SpooledMessage,
    local: &Local,
) {
    let result = attempt(cluster, &config.downstream, &m).await;
    let throttled = result.throttled;
    let why = result.retry.first().map(|(_, why)| why.clone());
    record(cluster, config, &m, result, &local.uncommitted).await;
    let mut b = lock(&local.backoff);
    if let Some(why) = why {
        let entry = b.entry(m.queue_id.clone()).or_default();
        // A busy downstream is not the message's failure: its backoff does not grow.
        if !throttled || entry.attempts == 0 {
            entry.attempts += 1;
        }
        entry.retry_gen = m.retry_gen;
        let delay = retry_delay(config.retry_first, config.retry_max, entry.attempts);
        entry.next_at_ms = now_ms() + delay.as_millis() as i64;
        tracing::info!(queue_id = %m.queue_id, attempts = entry.attempts, retry_in_ms = delay.as_millis() as u64, %why, "delivery deferred");
    } else {
        b.remove(&m.queue_id);
    }
}

/// Bounces the failed recipients (a DSN to the sender, none for the null sender), then
/// commits `SpoolDone` for the recipients that are finished.
async fn record(
    cluster: &Cluster,
    config: &DeliveryConfig,
    m: &SpooledMessage,
    mut result: AttemptResult,
    uncommitted: &Uncommitted,
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
    if !result.failed.is_empty() && !m.mail_from.is_empty() {
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
        commit_done(cluster, done, uncommitted).await;
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
    let dsn = dsn::build(helo, m, failed, &body, &dsn::rfc2822_ms(now_ms()));
    let new = NewMessage {
        mail_from: String::new(),
        rcpt_to: vec![m.mail_from.clone()],
        client_ip: "127.0.0.1".into(),
        helo: helo.clone(),
        body: dsn,
        verdict: "deliver",
        score_milli: 0,
        symbols: Vec::new(),
    };
    config.spooler.enqueue(new).await.map_err(|e| e.to_string())
}

/// `SpoolDone`s whose delivery happened but whose commit failed (no quorum for now): the
/// next rounds retry the commit instead of the delivery. Lost if the node dies, and then
/// the message is delivered again (at-least-once).
#[derive(Clone, Default)]
struct Uncommitted(Arc<Mutex<HashMap<String, SpoolDone>>>);

impl Uncommitted {
    fn take(&self, queue_id: &str) -> Option<SpoolDone> {
        lock(&self.0).remove(queue_id)
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

async fn commit_done(cluster: &Cluster, done: SpoolDone, uncommitted: &Uncommitted) {
    match cluster
        .propose(command::Kind::SpoolDone(done.clone()))
        .await
    {
        Ok((index, _)) => {
            // The commit is known on the leader; until this replica has applied it, the
            // next round here would still see the message and send it again.
            cluster.wait_applied(index).await;
        }
        Err(e) => {
            tracing::warn!(queue_id = %done.queue_id, error = %e, "delivered; SpoolDone not committed yet");
            uncommitted.keep(done);
        }
    }
}
