//! Delivery: each node delivers the messages it owns while its lease lasts (renewing it in
//! one entry per round), retries with exponential backoff while the downstream refuses or is
//! down, and — on the leader — takes over messages whose owner's lease has lapsed.
//! At-least-once: `SpoolDone` is proposed only after the downstream's `250`.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use mail_send::smtp::message::Parameters;
use mail_send::SmtpClientBuilder;
use tokio::sync::watch;

use peage_proto::v1::{command, SpoolDone, SpoolRenew, SpoolTakeover};

use crate::admin::now_ms;
use crate::cluster::Cluster;
use crate::state::spool::SpooledMessage;

/// Delivery timing.
#[derive(Clone)]
pub struct DeliveryConfig {
    pub tick: Duration,
    pub lease: Duration,
    pub retry_first: Duration,
    pub retry_max: Duration,
    pub connect_timeout: Duration,
    /// Named in our EHLO to the downstream, and as the reporting MTA of DSNs.
    pub helo_name: String,
    /// Where mail for domains outside the routing table goes (DSNs to remote senders):
    /// the outbound smarthost. None: such mail waits for a route.
    pub bounce_route: Option<String>,
    /// Past this age, the remaining recipients are bounced.
    pub retention: Duration,
    /// Where DSNs are put.
    pub spooler: super::Spooler,
}

/// Per-message retry state, local to the owner (a new owner starts afresh).
#[derive(Default)]
struct Backoff {
    attempts: u32,
    next_at_ms: i64,
    /// The message's `retry_gen` when this was computed; a newer one means "retry now".
    retry_gen: i64,
}

/// What one attempt achieved for each recipient.
#[derive(Debug, Default)]
pub struct AttemptResult {
    /// Accepted by the downstream, or refused permanently (5xx): done either way.
    pub done: Vec<String>,
    /// Refused permanently, with the reply; subset of `done` (bounces will come from here).
    pub failed: Vec<(String, String)>,
    /// Still to try, with why.
    pub retry: Vec<(String, String)>,
}

/// How long a graceful stop waits for delivery attempts in progress.
const STOP_GRACE: Duration = Duration::from_secs(10);

/// Runs until `stop`: the delivery loop of this node.
pub async fn run(cluster: Cluster, config: DeliveryConfig, mut stop: watch::Receiver<bool>) {
    let backoff: Arc<Mutex<HashMap<String, Backoff>>> = Arc::default();
    let in_flight: Arc<Mutex<HashSet<String>>> = Arc::default();
    let uncommitted = Uncommitted::default();
    let repairing: Arc<Mutex<HashSet<String>>> = Arc::default();
    // Attempts in progress; a graceful stop lets them finish and commit, so that a restart
    // does not send again what the downstream already has.
    let mut attempts = tokio::task::JoinSet::new();
    let mut leading_since: Option<(u64, std::time::Instant)> = None;
    let mut tick = tokio::time::interval(config.tick);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = crate::smtp::session::stopped(&mut stop) => {
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
        let me = cluster.id();
        let now = now_ms();
        let lease_ms = config.lease.as_millis() as i64;
        let m = cluster.metrics();
        let leads = m.current_leader == Some(me);
        // A new leader waits one lease before taking anything over: while there was no
        // leader, live owners could not renew, and they get the time to do it now.
        if !leads {
            leading_since = None;
        } else if leading_since.is_none_or(|(term, _)| term != m.current_term) {
            leading_since = Some((m.current_term, std::time::Instant::now()));
        }
        let may_take_over = leading_since.is_some_and(|(_, t)| t.elapsed() >= config.lease);
        let mut renew = Vec::new();
        // Repair: every node keeps a copy of every body it has a record for, so that any
        // node can deliver or show it after holders are lost. One fetch at a time.
        if let Some(m) = messages
            .iter()
            .find(|m| !cluster.blobs().has(&m.body_sha256))
        {
            let busy = !repairing
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .insert(m.body_sha256.clone());
            if !busy {
                let (cluster, m, repairing) = (cluster.clone(), m.clone(), repairing.clone());
                tokio::spawn(async move {
                    if let Err(e) = body_of(&cluster, &m).await {
                        tracing::debug!(queue_id = %m.queue_id, error = %e, "body repair failed");
                    }
                    repairing
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .remove(&m.body_sha256);
                });
            }
        }
        // Quarantined messages wait for an operator, not for a delivery.
        for m in messages.into_iter().filter(|m| !m.is_quarantined()) {
            if m.owner == me {
                if m.lease_until_ms <= now {
                    // Our lease lapsed (we were cut off, or paused): the message may be
                    // another node's by now, so do not deliver until renewed.
                    renew.push(m.queue_id.clone());
                    continue;
                }
                if m.lease_until_ms - now < lease_ms / 2 {
                    renew.push(m.queue_id.clone());
                }
                if now - m.accepted_at_ms > config.retention.as_millis() as i64 {
                    let expired = in_flight
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .insert(m.queue_id.clone());
                    if expired {
                        let (cluster, config, in_flight, uncommitted) = (
                            cluster.clone(),
                            config.clone(),
                            in_flight.clone(),
                            uncommitted.clone(),
                        );
                        attempts.spawn(async move {
                            let id = m.queue_id.clone();
                            let why = "4.4.7 Delivery time expired: the message was held past the retention limit";
                            let result = AttemptResult {
                                done: m.rcpt_to.clone(),
                                failed: m
                                    .rcpt_to
                                    .iter()
                                    .map(|r| (r.clone(), why.to_owned()))
                                    .collect(),
                                retry: Vec::new(),
                            };
                            record(&cluster, &config, &m, result, &uncommitted).await;
                            in_flight
                                .lock()
                                .unwrap_or_else(|p| p.into_inner())
                                .remove(&id);
                        });
                    }
                    continue;
                }
                let ready = {
                    let b = backoff.lock().unwrap_or_else(|p| p.into_inner());
                    b.get(&m.queue_id)
                        .is_none_or(|b| b.next_at_ms <= now || b.retry_gen != m.retry_gen)
                };
                let started = ready
                    && in_flight
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .insert(m.queue_id.clone());
                if started {
                    let (cluster, config, backoff, in_flight, uncommitted) = (
                        cluster.clone(),
                        config.clone(),
                        backoff.clone(),
                        in_flight.clone(),
                        uncommitted.clone(),
                    );
                    attempts.spawn(async move {
                        let id = m.queue_id.clone();
                        // This round's list may predate a delivery that finished since:
                        // look again, now that no other attempt can start.
                        if let Some(done) = uncommitted.take(&id) {
                            // Delivered already; only the commit is missing.
                            commit_done(&cluster, done, &uncommitted).await;
                        } else if let Some(current) = still_ours(&cluster, &config, &id).await {
                            deliver_and_record(&cluster, &config, current, &backoff, &uncommitted)
                                .await;
                        }
                        in_flight
                            .lock()
                            .unwrap_or_else(|p| p.into_inner())
                            .remove(&id);
                    });
                }
            } else if may_take_over && m.lease_until_ms <= now {
                let takeover = SpoolTakeover {
                    queue_id: m.queue_id.clone(),
                    from_owner: m.owner,
                    to_owner: me,
                    lease_until_ms: now + lease_ms,
                    now_ms: now,
                };
                match cluster
                    .propose(command::Kind::SpoolTakeover(takeover))
                    .await
                {
                    Ok(_) => {
                        tracing::info!(queue_id = %m.queue_id, from = m.owner, "took over delivery")
                    }
                    Err(e) => tracing::warn!(queue_id = %m.queue_id, error = %e, "takeover failed"),
                }
            }
        }
        if !renew.is_empty() {
            let r = SpoolRenew {
                owner: me,
                queue_ids: renew,
                lease_until_ms: now + lease_ms,
            };
            if let Err(e) = cluster.propose(command::Kind::SpoolRenew(r)).await {
                tracing::debug!(error = %e, "lease renewal failed");
            }
        }
    }
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
    backoff: &Mutex<HashMap<String, Backoff>>,
    uncommitted: &Uncommitted,
) {
    let result = attempt(cluster, config, &m).await;
    let retry = !result.retry.is_empty();
    record(cluster, config, &m, result, uncommitted).await;
    let mut b = backoff.lock().unwrap_or_else(|p| p.into_inner());
    if !retry {
        b.remove(&m.queue_id);
    } else {
        let entry = b.entry(m.queue_id.clone()).or_default();
        entry.attempts += 1;
        entry.retry_gen = m.retry_gen;
        let delay = config
            .retry_first
            .saturating_mul(1u32 << entry.attempts.min(16).saturating_sub(1))
            .min(config.retry_max);
        entry.next_at_ms = now_ms() + delay.as_millis() as i64;
        tracing::info!(queue_id = %m.queue_id, attempts = entry.attempts, retry_in_ms = delay.as_millis() as u64, "delivery deferred");
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
        metrics::counter!(crate::metrics::DELIVERY_ATTEMPTS, "result" => outcome)
            .increment(n as u64);
    }
    if !result.failed.is_empty() && !m.mail_from.is_empty() {
        let bounced = match body_of(cluster, m).await {
            Ok(body) => {
                let dsn = super::dsn::build(
                    &config.helo_name,
                    m,
                    &result.failed,
                    &body,
                    &super::dsn::rfc2822_ms(now_ms()),
                );
                let new = super::NewMessage {
                    mail_from: String::new(),
                    rcpt_to: vec![m.mail_from.clone()],
                    client_ip: "127.0.0.1".into(),
                    helo: config.helo_name.clone(),
                    body: dsn,
                    verdict: "deliver",
                    score_milli: 0,
                    symbols: Vec::new(),
                };
                config.spooler.enqueue(new).await.map_err(|e| e.to_string())
            }
            Err(e) => Err(e),
        };
        match bounced {
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

/// `SpoolDone`s whose delivery happened but whose commit failed (no quorum for now): the
/// next rounds retry the commit instead of the delivery. Lost if the node dies, and then
/// the message is delivered again (at-least-once).
#[derive(Clone, Default)]
struct Uncommitted(Arc<Mutex<HashMap<String, SpoolDone>>>);

impl Uncommitted {
    fn take(&self, queue_id: &str) -> Option<SpoolDone> {
        self.0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(queue_id)
    }

    fn keep(&self, done: SpoolDone) {
        let mut map = self.0.lock().unwrap_or_else(|p| p.into_inner());
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

/// The body, from this node's blob store or, failing that, from a holder (kept here then).
pub async fn body_of(cluster: &Cluster, m: &SpooledMessage) -> Result<Vec<u8>, String> {
    if let Ok(Some(b)) = cluster.blobs().get(&m.body_sha256).await {
        return Ok(b);
    }
    let metrics = cluster.metrics();
    let membership = metrics.membership_config.membership();
    for h in &m.holders {
        let Some(node) = membership.get_node(h) else {
            continue;
        };
        if let Ok(b) = cluster
            .peers()
            .get_blob(&node.peer_addr, &m.body_sha256, Duration::from_secs(30))
            .await
        {
            if crate::state::blobs::sha256_hex(&b) == m.body_sha256 {
                let _ = cluster
                    .blobs()
                    .put(m.body_sha256.clone(), Arc::new(b.clone()))
                    .await;
                return Ok(b);
            }
        }
    }
    Err(format!("no holder of body {} reachable", m.body_sha256))
}

/// One delivery attempt of every remaining recipient, one SMTP transaction per route.
async fn attempt(cluster: &Cluster, config: &DeliveryConfig, m: &SpooledMessage) -> AttemptResult {
    let mut result = AttemptResult::default();
    let body = match body_of(cluster, m).await {
        Ok(b) => b,
        Err(e) => {
            result.retry = m.rcpt_to.iter().map(|r| (r.clone(), e.clone())).collect();
            return result;
        }
    };
    let mut by_route: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for rcpt in &m.rcpt_to {
        let domain = rcpt.rsplit_once('@').map_or("", |(_, d)| d);
        match cluster
            .state()
            .route_for(&domain.to_ascii_lowercase())
            .or_else(|| config.bounce_route.clone())
        {
            Some(route) => by_route.entry(route).or_default().push(rcpt.clone()),
            None => result
                .retry
                .push((rcpt.clone(), format!("no route for {domain}"))),
        }
    }
    for (route, rcpts) in by_route {
        let r = send(config, &route, &m.mail_from, &rcpts, &body).await;
        result.done.extend(r.done);
        result.failed.extend(r.failed);
        result.retry.extend(r.retry);
    }
    result
}

/// One SMTP transaction to `route` (smtp://HOST:PORT).
pub async fn send(
    config: &DeliveryConfig,
    route: &str,
    mail_from: &str,
    rcpts: &[String],
    body: &[u8],
) -> AttemptResult {
    let mut result = AttemptResult::default();
    let all_retry = |why: String| AttemptResult {
        retry: rcpts.iter().map(|r| (r.clone(), why.clone())).collect(),
        ..Default::default()
    };
    let Some(hostport) = route.strip_prefix("smtp://") else {
        return all_retry(format!("bad route {route}"));
    };
    let Some((host, port)) = hostport.rsplit_once(':') else {
        return all_retry(format!("bad route {route}"));
    };
    let host = host.trim_start_matches('[').trim_end_matches(']');
    let Ok(port) = port.parse::<u16>() else {
        return all_retry(format!("bad route {route}"));
    };
    let builder = match SmtpClientBuilder::new(host.to_owned(), port) {
        Ok(b) => b,
        Err(e) => return all_retry(format!("{route}: {e}")),
    };
    let mut client = match builder
        .implicit_tls(false)
        .helo_host(config.helo_name.clone())
        .timeout(config.connect_timeout)
        .connect_plain()
        .await
    {
        Ok(c) => c,
        Err(e) => return all_retry(format!("{route}: {e}")),
    };
    let params = Parameters::default();
    if let Err(e) = client.mail_from(mail_from, &params).await {
        return classify_all(rcpts, e);
    }
    let mut accepted = Vec::new();
    for rcpt in rcpts {
        match client.rcpt_to(rcpt, &params).await {
            Ok(()) => accepted.push(rcpt.clone()),
            Err(e) => {
                let (permanent, why) = classify(&e);
                if permanent {
                    result.done.push(rcpt.clone());
                    result.failed.push((rcpt.clone(), why));
                } else {
                    result.retry.push((rcpt.clone(), why));
                }
            }
        }
    }
    if accepted.is_empty() {
        let _ = client.rset().await;
        return result;
    }
    match client.data(body).await {
        Ok(_) => result.done.extend(accepted),
        Err(e) => {
            let (permanent, why) = classify(&e);
            for r in accepted {
                if permanent {
                    result.done.push(r.clone());
                    result.failed.push((r, why.clone()));
                } else {
                    result.retry.push((r, why.clone()));
                }
            }
        }
    }
    let _ = client.quit().await;
    result
}

/// A 5xx reply is permanent; everything else (4xx, I/O, timeouts) is retried.
fn classify(e: &mail_send::Error) -> (bool, String) {
    match e {
        mail_send::Error::UnexpectedReply(r) => {
            // Keep the enhanced status code (e.g. 5.1.1): DSNs report it.
            let esc = if r.esc[0] > 0 {
                format!(" {}.{}.{}", r.esc[0], r.esc[1], r.esc[2])
            } else {
                String::new()
            };
            (
                r.code() >= 500,
                format!("{}{esc} {}", r.code(), r.message()),
            )
        }
        other => (false, other.to_string()),
    }
}

fn classify_all(rcpts: &[String], e: mail_send::Error) -> AttemptResult {
    let (permanent, why) = classify(&e);
    let mut r = AttemptResult::default();
    for rcpt in rcpts {
        if permanent {
            r.done.push(rcpt.clone());
            r.failed.push((rcpt.clone(), why.clone()));
        } else {
            r.retry.push((rcpt.clone(), why.clone()));
        }
    }
    r
}
