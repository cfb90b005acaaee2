//! Sending to the downstream: one attempt of every remaining recipient of a message, one
//! SMTP transaction (mail-send) per route, and each reply classed as done (2xx), failed for
//! good (5xx) or to retry (4xx, I/O, timeouts).

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use peage_mail::sync::lock;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use mail_send::smtp::message::Parameters;
use mail_send::SmtpClientBuilder;

use crate::cluster::Cluster;
use crate::metrics::DELIVERY_THROTTLED;
use crate::spool::bodies::body_of;
use crate::state::spool::SpooledMessage;

/// How this node introduces itself to downstreams, how long it waits for them, and how
/// many connections it opens to each at once.
#[derive(Clone)]
pub struct Downstream {
    /// Named in our EHLO to the downstream, and as the reporting MTA of DSNs.
    pub helo_name: String,
    pub connect_timeout: Duration,
    /// Where mail for domains outside the routing table goes (DSNs to remote senders):
    /// the outbound smarthost. None: such mail waits for a route.
    pub bounce_route: Option<String>,
    /// Connections open to each route at once: attempts past it wait for one to finish
    /// rather than meet the downstream's own per-client limit (a 421 and a backoff).
    pub per_route: RouteLimits,
}

/// One connection budget per route, made on first use.
#[derive(Clone)]
pub struct RouteLimits {
    max: usize,
    routes: Arc<Mutex<HashMap<String, Arc<Semaphore>>>>,
}

impl RouteLimits {
    pub fn new(max_per_route: usize) -> RouteLimits {
        RouteLimits {
            max: max_per_route,
            routes: Arc::default(),
        }
    }

    /// Waits for a connection slot to `route`; the slot is freed when the permit drops.
    async fn slot(&self, route: &str) -> Option<OwnedSemaphorePermit> {
        let budget = lock(&self.routes)
            .entry(route.to_owned())
            .or_insert_with(|| Arc::new(Semaphore::new(self.max)))
            .clone();
        budget.acquire_owned().await.ok()
    }
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
    /// The downstream said it was busy (`421`): the route wants fewer connections, the
    /// message is not to blame, and its backoff does not grow.
    pub throttled: bool,
}

impl AttemptResult {
    /// Every recipient failed for good with the same reason.
    pub fn all_failed(rcpts: &[String], why: &str) -> AttemptResult {
        AttemptResult {
            done: rcpts.to_vec(),
            failed: rcpts.iter().map(|r| (r.clone(), why.to_owned())).collect(),
            ..Default::default()
        }
    }

    /// Every recipient to retry with the same reason.
    fn all_retry(rcpts: &[String], why: &str) -> AttemptResult {
        AttemptResult {
            retry: rcpts.iter().map(|r| (r.clone(), why.to_owned())).collect(),
            ..Default::default()
        }
    }

    /// Every recipient as `e` says: failed for good on a 5xx, to retry otherwise.
    fn all_by_reply(rcpts: &[String], e: &mail_send::Error) -> AttemptResult {
        let mut r = AttemptResult::default();
        for rcpt in rcpts {
            r.by_reply(rcpt, e);
        }
        r
    }

    /// One recipient as `e` says.
    fn by_reply(&mut self, rcpt: &str, e: &mail_send::Error) {
        self.throttled |= is_busy(e);
        let (permanent, why) = classify(e);
        if permanent {
            self.done.push(rcpt.to_owned());
            self.failed.push((rcpt.to_owned(), why));
        } else {
            self.retry.push((rcpt.to_owned(), why));
        }
    }
}

/// One delivery attempt of every remaining recipient, one SMTP transaction per route.
pub async fn attempt(
    cluster: &Cluster,
    downstream: &Downstream,
    m: &SpooledMessage,
) -> AttemptResult {
    let mut result = AttemptResult::default();
    let body = match body_of(cluster, m).await {
        Ok(b) => b,
        Err(e) => return AttemptResult::all_retry(&m.rcpt_to, &e),
    };
    let mut by_route: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for rcpt in &m.rcpt_to {
        let domain = rcpt.rsplit_once('@').map_or("", |(_, d)| d);
        match cluster
            .state()
            .indexes()
            .route_for(&domain.to_ascii_lowercase())
            .or_else(|| downstream.bounce_route.clone())
        {
            Some(route) => by_route.entry(route).or_default().push(rcpt.clone()),
            None => result
                .retry
                .push((rcpt.clone(), format!("no route for {domain}"))),
        }
    }
    for (route, rcpts) in by_route {
        let r = send(downstream, &route, &m.mail_from, &rcpts, &body).await;
        result.done.extend(r.done);
        result.failed.extend(r.failed);
        result.retry.extend(r.retry);
    }
    result
}

/// One SMTP transaction to `route` (smtp://HOST:PORT).
pub async fn send(
    downstream: &Downstream,
    route: &str,
    mail_from: &str,
    rcpts: &[String],
    body: &[u8],
) -> AttemptResult {
    let mut result = AttemptResult::default();
    let all_retry = |why: String| AttemptResult::all_retry(rcpts, &why);
    let Some(_slot) = downstream.per_route.slot(route).await else {
        return all_retry(format!("{route}: no connection slot"));
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
        .helo_host(downstream.helo_name.clone())
        .timeout(downstream.connect_timeout)
        .connect_plain()
        .await
    {
        Ok(c) => c,
        Err(e) => {
            let mut r = all_retry(format!("{route}: {e}"));
            r.throttled = is_busy(&e);
            return r;
        }
    };
    let params = Parameters::default();
    if let Err(e) = client.mail_from(mail_from, &params).await {
        return AttemptResult::all_by_reply(rcpts, &e);
    }
    let mut accepted = Vec::new();
    for rcpt in rcpts {
        match client.rcpt_to(rcpt, &params).await {
            Ok(()) => accepted.push(rcpt.clone()),
            Err(e) => result.by_reply(rcpt, &e),
        }
    }
    if accepted.is_empty() {
        let _ = client.rset().await;
        return result;
    }
    match client.data(body).await {
        Ok(_) => result.done.extend(accepted),
        Err(e) => {
            for r in &accepted {
                result.by_reply(r, &e);
            }
        }
    }
    let _ = client.quit().await;
    result
}

/// Whether the downstream said it is busy (`421`, at the greeting or later); counted, so
/// that an operator sees a route that wants fewer connections.
fn is_busy(e: &mail_send::Error) -> bool {
    let busy = matches!(e, mail_send::Error::UnexpectedReply(r) if r.code() == 421);
    if busy {
        metrics::counter!(DELIVERY_THROTTLED).increment(1);
    }
    busy
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
