//! Sending to the downstream: one attempt of every remaining recipient of a message, one
//! SMTP transaction (mail-send) per route, and each reply classed as done (2xx), failed for
//! good (5xx) or to retry (4xx, I/O, timeouts).

use std::collections::BTreeMap;
use std::time::Duration;

use mail_send::smtp::message::Parameters;
use mail_send::{SmtpClient, SmtpClientBuilder};
use peage_mail::smtp::address::smtp_path;
use smtp_proto::EhloResponse;

use super::connections::{Connections, SmtpConnection};
use super::mx::{MxAnswer, MxResolver};
use super::stream::DownstreamStream;
use crate::cluster::Cluster;
use crate::metrics::{DELIVERY_CONNECTIONS, DELIVERY_THROTTLED};
use crate::spool::bodies::body_of;
use crate::state::spool::SpooledMessage;

/// How this node introduces itself to downstreams, how long it waits for them, and how
/// many connections it opens to each at once.
#[derive(Clone)]
pub struct Downstream {
    /// Named in our EHLO to the downstream, and as the reporting MTA of DSNs.
    pub helo_name: String,
    /// The TCP connect, the greeting and EHLO together (and STARTTLS with its EHLO).
    pub connect_timeout: Duration,
    /// Take STARTTLS when a downstream offers it.
    pub starttls: bool,
    /// Each later command's reply (MAIL, RCPT, RSET): Postfix waits 300 s.
    pub command_timeout: Duration,
    /// From DATA to the reply to the message's end, which a downstream may give only after
    /// scanning it: RFC 5321 asks for 10 minutes. A shorter wait retries a message the
    /// downstream then delivers: a duplicate each time.
    pub data_timeout: Duration,
    /// The source address of connections to downstreams; None: the OS chooses.
    pub bind_address: Option<std::net::IpAddr>,
    /// Where mail for domains outside the routing table goes (DSNs to remote senders):
    /// the outbound smarthost. None: such mail waits for a route.
    pub bounce_route: Option<String>,
    /// Domains outside the routing table go to their MX when this is set.
    pub mx: Option<MxResolver>,
    /// Connections open to each route at once (attempts past it wait for one to finish
    /// rather than meet the downstream's own per-client limit), and the idle ones reused.
    pub connections: Connections,
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
    /// The message's Message-ID, for tracking (empty when its body could not be read).
    pub message_id: String,
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
            self.fail(rcpt, why);
        } else {
            self.retry.push((rcpt.to_owned(), why));
        }
    }

    /// One recipient failed for good.
    fn fail(&mut self, rcpt: &str, why: String) {
        self.done.push(rcpt.to_owned());
        self.failed.push((rcpt.to_owned(), why));
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
    result.message_id = crate::tracking::message_id_of(&body);
    let mut by_route: BTreeMap<Vec<String>, Vec<String>> = BTreeMap::new();
    for rcpt in &m.rcpt_to {
        let domain = rcpt.rsplit_once('@').map_or("", |(_, d)| d);
        match routes_of(cluster, downstream, &domain.to_ascii_lowercase()).await {
            Ok(routes) => by_route.entry(routes).or_default().push(rcpt.clone()),
            Err((true, why)) => result.fail(rcpt, why),
            Err((false, why)) => result.retry.push((rcpt.clone(), why)),
        }
    }
    for (routes, rcpts) in by_route {
        // What one exchange could not take now (no connection, a 4xx) goes to the next
        // (RFC 5321 §5.1); what the last leaves is retried later.
        let mut left = rcpts;
        for (n, route) in routes.iter().enumerate() {
            let r = send(downstream, route, &m.mail_from, &left, &body).await;
            result.done.extend(r.done);
            result.failed.extend(r.failed);
            result.throttled |= r.throttled;
            if n + 1 == routes.len() || r.retry.is_empty() {
                result.retry.extend(r.retry);
                break;
            }
            tracing::info!(queue_id = %m.queue_id, %route, why = %r.retry[0].1, "trying the next exchange");
            left = r.retry.into_iter().map(|(rcpt, _)| rcpt).collect();
        }
    }
    result
}

/// Where mail for `domain` goes: the routing table's route, else its MX (when looked up),
/// else the bounce route; `Err((permanent, why))` when there is none now (or ever). Every
/// exchange, most preferred first, for an MX.
async fn routes_of(
    cluster: &Cluster,
    downstream: &Downstream,
    domain: &str,
) -> Result<Vec<String>, (bool, String)> {
    if let Some(route) = cluster.state().indexes().route_for(domain) {
        return Ok(vec![route]);
    }
    let answer = match &downstream.mx {
        Some(mx) => mx.routes(domain).await,
        None => MxAnswer::None,
    };
    match (answer, &downstream.bounce_route) {
        (MxAnswer::Routes(routes), _) => Ok(routes),
        (MxAnswer::TempFail(why), _) => Err((false, why)),
        (MxAnswer::None, Some(route)) => Ok(vec![route.clone()]),
        (MxAnswer::None, None) if downstream.mx.is_some() => {
            Err((true, format!("5.1.2 {domain} has no mail server")))
        }
        (MxAnswer::None, None) => Err((false, format!("no route for {domain}"))),
    }
}

/// One SMTP transaction to `route` (smtp://HOST:PORT), on a connection left open by an
/// earlier one when there is a live one, else on a new one.
pub async fn send(
    downstream: &Downstream,
    route: &str,
    mail_from: &str,
    rcpts: &[String],
    body: &[u8],
) -> AttemptResult {
    let all_retry = |why: String| AttemptResult::all_retry(rcpts, &why);
    let Some(checkout) = downstream.connections.checkout(route).await else {
        return all_retry(format!("{route}: no connection slot"));
    };
    let reused = match checkout.reuse() {
        // RSET both ends whatever state the last transaction left and shows the server
        // has not closed the connection meanwhile.
        Some(mut c) => c.client.rset().await.is_ok().then_some(c),
        None => None,
    };
    let mut client = match reused {
        Some(c) => c,
        None => match connect(downstream, route).await {
            Ok(c) => c,
            Err(refused) => {
                if refused.busy {
                    // The connections we keep idle hold the downstream's slots.
                    checkout.close_idle();
                }
                let mut r = all_retry(refused.why);
                r.throttled = refused.busy;
                return r;
            }
        },
    };
    let (result, clean) = transaction(downstream, &mut client, (mail_from, rcpts), body).await;
    if clean {
        checkout.keep(client);
    } else {
        let _ = client.client.quit().await;
    }
    result
}

/// Why a connection could not be made, and whether the downstream said it was busy.
pub(crate) struct NotConnected {
    pub(crate) why: String,
    busy: bool,
}

/// A new connection to `route`, greeted and EHLO'd; inside TLS when the downstream offers
/// STARTTLS (and `starttls` is on), in plain text when it does not or its handshake fails.
pub(crate) async fn connect(
    downstream: &Downstream,
    route: &str,
) -> Result<SmtpConnection, NotConnected> {
    let (host, port) = parse_route(route).ok_or_else(|| NotConnected {
        why: format!("bad route {route}"),
        busy: false,
    })?;
    // mail-send waits for the greeting without end: a silent downstream would hold the slot.
    let within = |opening| async move {
        tokio::time::timeout(downstream.connect_timeout, opening)
            .await
            .unwrap_or(Err(Refusal::Other(mail_send::Error::Timeout)))
    };
    let (opened, fell_back) = match within(open(downstream, host, port, downstream.starttls)).await
    {
        Err(Refusal::Tls(e)) => {
            // As Postfix's `may`: a downstream whose TLS fails still gets its mail.
            tracing::info!(%route, error = %e, "STARTTLS failed: delivering in plain text");
            (within(open(downstream, host, port, false)).await, true)
        }
        opened => (opened, false),
    };
    opened
        .map(|mut c| {
            let tls = match (c.client.stream.is_tls(), fell_back) {
                (true, _) => "starttls",
                (false, true) => "fallback",
                (false, false) => "plain",
            };
            metrics::counter!(DELIVERY_CONNECTIONS, "tls" => tls).increment(1);
            c.client.timeout = downstream.command_timeout;
            c
        })
        .map_err(|refusal| {
            let e = refusal.into_error();
            NotConnected {
                why: format!("{route}: {e}"),
                busy: is_busy(&e),
            }
        })
}

/// Why a connection was not opened: the TLS upgrade failed (try again in plain text), or
/// anything else.
enum Refusal {
    Tls(mail_send::Error),
    Other(mail_send::Error),
}

impl Refusal {
    fn into_error(self) -> mail_send::Error {
        match self {
            Refusal::Tls(e) | Refusal::Other(e) => e,
        }
    }
}

impl From<mail_send::Error> for Refusal {
    fn from(e: mail_send::Error) -> Refusal {
        Refusal::Other(e)
    }
}

/// Connects, reads the greeting, says EHLO; with `try_tls`, takes STARTTLS when offered and
/// says EHLO again inside it (RFC 3207 forgets what was said before).
async fn open(
    downstream: &Downstream,
    host: &str,
    port: u16,
    try_tls: bool,
) -> Result<SmtpConnection, Refusal> {
    let mut builder = SmtpClientBuilder::new_with_tls_connector(
        host.to_owned(),
        port,
        downstream.connections.tls(),
    );
    if let Some(ip) = downstream.bind_address {
        builder = builder.local_ip(ip);
    }
    let mut plain = builder
        .implicit_tls(false)
        .say_ehlo(false)
        .timeout(downstream.connect_timeout)
        .connect_plain()
        .await?;
    // Otherwise the end-of-data line waits for the downstream's delayed ACK of the body:
    // 40 ms per message on each connection.
    plain
        .stream
        .set_nodelay(true)
        .map_err(mail_send::Error::from)?;
    let helo = &downstream.helo_name;
    let offered = plain.capabilities(helo, false).await?;
    let timeout = plain.timeout;
    let connection = |stream, offered: EhloResponse<String>| SmtpConnection {
        client: SmtpClient { stream, timeout },
        smtputf8: offered.has_capability(smtp_proto::EXT_SMTP_UTF8),
    };
    if !(try_tls && offered.has_capability(smtp_proto::EXT_START_TLS)) {
        return Ok(connection(DownstreamStream::Plain(plain.stream), offered));
    }
    let mut tls =
        (plain.start_tls(&downstream.connections.tls(), host).await).map_err(Refusal::Tls)?;
    let offered = tls.capabilities(helo, false).await.map_err(Refusal::Tls)?;
    Ok(connection(
        DownstreamStream::Tls(Box::new(tls.stream)),
        offered,
    ))
}

/// HOST and PORT of `smtp://HOST:PORT` (HOST may be a bracketed IPv6 address).
fn parse_route(route: &str) -> Option<(&str, u16)> {
    let (host, port) = route.strip_prefix("smtp://")?.rsplit_once(':')?;
    let host = host.trim_start_matches('[').trim_end_matches(']');
    Some((host, port.parse().ok()?))
}

/// MAIL, RCPT for each recipient, DATA; and whether the session is clean for another
/// transaction (every reply arrived, none was a transport error or a closing 421).
async fn transaction(
    downstream: &Downstream,
    client: &mut SmtpConnection,
    (mail_from, rcpts): (&str, &[String]),
    body: &[u8],
) -> (AttemptResult, bool) {
    let mut result = AttemptResult::default();
    let params = client.mail_parameters(mail_from, rcpts.iter().map(String::as_str));
    let client = &mut client.client;
    // Written as RFC 5321 paths: a byte of an address can never end the path or add a
    // parameter downstream (the edge refuses such addresses; older spool entries may not).
    let Some(mail_from) = smtp_path(mail_from) else {
        let why = "the sender address cannot be written as an SMTP path";
        return (AttemptResult::all_failed(rcpts, why), true);
    };
    if let Err(e) = client.mail_from(&mail_from, &params).await {
        let clean = is_reply(&e);
        return (AttemptResult::all_by_reply(rcpts, &e), clean);
    }
    let mut accepted = Vec::new();
    let mut clean = true;
    for rcpt in rcpts {
        let Some(path) = smtp_path(rcpt) else {
            result.fail(rcpt, "the address cannot be written as an SMTP path".into());
            continue;
        };
        match client.rcpt_to(&path, &Parameters::default()).await {
            Ok(()) => accepted.push(rcpt.clone()),
            Err(e) => {
                clean &= is_reply(&e);
                result.by_reply(rcpt, &e);
            }
        }
    }
    if accepted.is_empty() {
        return (result, clean);
    }
    client.timeout = downstream.data_timeout;
    let sent = client.data(body).await;
    client.timeout = downstream.command_timeout;
    match sent {
        Ok(_) => result.done.extend(accepted),
        Err(e) => {
            clean &= is_reply(&e);
            for r in &accepted {
                result.by_reply(r, &e);
            }
        }
    }
    (result, clean)
}

/// Whether `e` is an ordinary reply after which the session goes on (not an I/O error, a
/// timeout, or a 421, which closes the session).
fn is_reply(e: &mail_send::Error) -> bool {
    matches!(e, mail_send::Error::UnexpectedReply(r) if r.code() != 421)
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
pub(crate) fn classify(e: &mail_send::Error) -> (bool, String) {
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

#[cfg(test)]
mod tests;
