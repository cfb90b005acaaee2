//! `peagectl probe`: a canary for drills on a real deployment. It sends marked test
//! messages to every MX at a steady rate, follows each through the admin API until it is
//! delivered (gone from the spool) or quarantined, and reports loss and latency per MX.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use serde_json::json;

use peage_client::v1::*;
use peage_client::{connect_with, endpoints, parse_duration_secs, Access, Admin, ClientError};

use super::context::Ctx;
use crate::cli::ProbeArgs;

struct ProbeOptions {
    pub mx: Vec<String>,
    pub admin: Vec<String>,
    pub access: Access,
    pub rate: f64,
    pub duration: Duration,
    pub rcpt: String,
    pub sender_domain: String,
    /// How long a message that got `250` has to be delivered or quarantined.
    pub follow_timeout: Duration,
    pub json: bool,
}

#[derive(Debug)]
enum Fate {
    /// No `250`: what the MX (or the network) said instead.
    NotAccepted(String),
    Delivered(Duration),
    Quarantined(Duration),
    /// Accepted, and still in the spool when the follow timeout passed.
    Pending,
}

struct Probe {
    mx: String,
    accepted_in: Option<Duration>,
    fate: Fate,
}

#[derive(Default)]
struct MxStats {
    sent: usize,
    accepted: usize,
    not_accepted: BTreeMap<String, usize>,
    delivered: usize,
    quarantined: usize,
    pending: usize,
    to_250: Vec<Duration>,
    to_delivery: Vec<Duration>,
}

/// `peagectl probe`: fails (exit 1) unless every MX accepted every message and every
/// accepted one was delivered or quarantined.
pub async fn run(ctx: &Ctx, args: ProbeArgs) -> Result<(), ClientError> {
    let secs = |d: &str| parse_duration_secs(d).map_err(ClientError::InvalidArgument);
    let options = ProbeOptions {
        mx: args.mx,
        admin: if args.admin.is_empty() {
            endpoints(&ctx.addr).map(str::to_owned).collect()
        } else {
            args.admin
        },
        access: ctx.access.clone(),
        rate: args.rate,
        duration: Duration::from_secs(secs(&args.duration)?),
        rcpt: args.rcpt,
        sender_domain: args.sender_domain,
        follow_timeout: Duration::from_secs(secs(&args.follow_timeout)?),
        json: ctx.json,
    };
    match probe(options).await? {
        true => Ok(()),
        false => Err(ClientError::ProbeFailed),
    }
}

/// Runs the probe; `Ok(true)` when every MX accepted every message and every accepted one
/// was delivered or quarantined.
async fn probe(o: ProbeOptions) -> Result<bool, ClientError> {
    if o.mx.is_empty() {
        return Err(ClientError::InvalidArgument(
            "--mx needs at least one HOST:PORT".into(),
        ));
    }
    if o.rate.is_nan() || o.rate <= 0.0 {
        return Err(ClientError::InvalidArgument(
            "--rate must be above 0".into(),
        ));
    }
    let run_id = format!("{:08x}", rand_u32());
    let started = Instant::now();
    let mut tick = tokio::time::interval(Duration::from_secs_f64(1.0 / o.rate));
    let mut tasks = Vec::new();
    let mut n = 0usize;
    while started.elapsed() < o.duration {
        tick.tick().await;
        let mx = o.mx[n % o.mx.len()].clone();
        n += 1;
        let sender = format!("probe-{run_id}-{n}@{}", o.sender_domain);
        let (rcpt, admin, access, timeout) = (
            o.rcpt.clone(),
            o.admin.clone(),
            o.access.clone(),
            o.follow_timeout,
        );
        let body = message(&run_id, n, &sender, &rcpt);
        tasks.push(tokio::spawn(async move {
            let sent_at = Instant::now();
            match send(&mx, &sender, &rcpt, body).await {
                Err(why) => Probe {
                    mx,
                    accepted_in: None,
                    fate: Fate::NotAccepted(why),
                },
                Ok(queue_id) => {
                    let accepted_in = sent_at.elapsed();
                    let fate = follow(&admin, &access, &queue_id, sent_at, timeout).await;
                    Probe {
                        mx,
                        accepted_in: Some(accepted_in),
                        fate,
                    }
                }
            }
        }));
    }
    let mut per_mx: BTreeMap<String, MxStats> =
        o.mx.iter()
            .map(|m| (m.clone(), MxStats::default()))
            .collect();
    for t in tasks {
        let Ok(p) = t.await else { continue };
        let s = per_mx.entry(p.mx.clone()).or_default();
        s.sent += 1;
        if let Some(d) = p.accepted_in {
            s.accepted += 1;
            s.to_250.push(d);
        }
        match p.fate {
            Fate::NotAccepted(why) => *s.not_accepted.entry(why).or_default() += 1,
            Fate::Delivered(d) => {
                s.delivered += 1;
                s.to_delivery.push(d);
            }
            Fate::Quarantined(d) => {
                s.quarantined += 1;
                s.to_delivery.push(d);
            }
            Fate::Pending => s.pending += 1,
        }
    }
    let healthy = per_mx
        .values()
        .all(|s| s.accepted == s.sent && s.pending == 0);
    print_report(&o, &run_id, &mut per_mx, healthy);
    Ok(healthy)
}

fn print_report(
    o: &ProbeOptions,
    run_id: &str,
    per_mx: &mut BTreeMap<String, MxStats>,
    healthy: bool,
) {
    let ms = |d: Option<Duration>| d.map(|d| d.as_secs_f64() * 1000.0);
    if o.json {
        let sites: Vec<_> = per_mx
            .iter_mut()
            .map(|(mx, s)| {
                s.to_250.sort();
                s.to_delivery.sort();
                json!({
                    "mx": mx, "sent": s.sent, "accepted": s.accepted,
                    "not_accepted": s.not_accepted, "delivered": s.delivered,
                    "quarantined": s.quarantined, "lost_or_pending": s.pending,
                    "failing": s.accepted < s.sent || s.pending > 0,
                    "p50_250_ms": ms(percentile(&s.to_250, 0.5)),
                    "p99_250_ms": ms(percentile(&s.to_250, 0.99)),
                    "p50_delivery_ms": ms(percentile(&s.to_delivery, 0.5)),
                    "p99_delivery_ms": ms(percentile(&s.to_delivery, 0.99)),
                })
            })
            .collect();
        println!(
            "{}",
            json!({"run": run_id, "healthy": healthy, "mx": sites})
        );
        return;
    }
    println!(
        "probe run {run_id}: {}",
        if healthy {
            "every message delivered"
        } else {
            "FAILURES"
        }
    );
    println!(
        "{:<22} {:>5} {:>5} {:>9} {:>6} {:>8} {:>9} {:>9}  STATE",
        "MX", "SENT", "250", "DELIVERED", "QUAR", "PENDING", "P50 250", "P50 DELIV"
    );
    for (mx, s) in per_mx.iter_mut() {
        s.to_250.sort();
        s.to_delivery.sort();
        let fmt = |d: Option<f64>| d.map_or_else(|| "-".to_owned(), |v| format!("{v:.0} ms"));
        let failing = s.accepted < s.sent || s.pending > 0;
        println!(
            "{:<22} {:>5} {:>5} {:>9} {:>6} {:>8} {:>9} {:>9}  {}",
            mx,
            s.sent,
            s.accepted,
            s.delivered,
            s.quarantined,
            s.pending,
            fmt(ms(percentile(&s.to_250, 0.5))),
            fmt(ms(percentile(&s.to_delivery, 0.5))),
            if failing { "FAILING" } else { "ok" }
        );
        for (why, n) in &s.not_accepted {
            println!("    {n}× not accepted: {why}");
        }
    }
}

fn percentile(sorted: &[Duration], p: f64) -> Option<Duration> {
    if sorted.is_empty() {
        return None;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    Some(sorted[i.min(sorted.len() - 1)])
}

fn rand_u32() -> u32 {
    // Enough to tell runs apart: the clock's nanoseconds mixed with the pid.
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    nanos ^ std::process::id().rotate_left(16)
}

fn message(run_id: &str, n: usize, sender: &str, rcpt: &str) -> Vec<u8> {
    // RFC 5322 accepts the "GMT" zone this writes.
    let date = httpdate::fmt_http_date(std::time::SystemTime::now());
    format!(
        "From: Péage probe <{sender}>\r\nTo: <{rcpt}>\r\nSubject: Peage probe {run_id} #{n}\r\nDate: {date}\r\nMessage-ID: <probe-{run_id}-{n}@peage-probe>\r\nMIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nThis is a delivery probe sent by peagectl probe (run {run_id}, message {n}).\r\nIt can be deleted.\r\n"
    )
    .into_bytes()
}

/// Sends one message; the queue id from the `250`, or what went wrong.
async fn send(mx: &str, sender: &str, rcpt: &str, body: Vec<u8>) -> Result<String, String> {
    let (host, port) = mx
        .rsplit_once(':')
        .and_then(|(h, p)| Some((h.to_owned(), p.parse::<u16>().ok()?)))
        .ok_or_else(|| format!("`{mx}` is not HOST:PORT"))?;
    let mut client = mail_send::SmtpClientBuilder::new(host, port)
        .map_err(|e| e.to_string())?
        .implicit_tls(false)
        .helo_host("peage-probe")
        .timeout(Duration::from_secs(60))
        .connect_plain()
        .await
        .map_err(describe)?;
    // The probe times its message: without this the end of data waits for a delayed ACK.
    client.stream.set_nodelay(true).map_err(|e| e.to_string())?;
    let msg = mail_send::smtp::message::Message::new(sender, [rcpt], body.as_slice());
    let reply = client.send(msg).await.map_err(describe)?;
    let _ = client.quit().await;
    reply
        .message
        .split_whitespace()
        .last()
        .map(str::to_owned)
        .ok_or_else(|| "250 without a queue id".to_owned())
}

fn describe(e: mail_send::Error) -> String {
    match e {
        mail_send::Error::UnexpectedReply(r) => {
            let [a, b, c] = r.esc;
            format!("{} {a}.{b}.{c} {}", r.code, r.message)
        }
        other => other.to_string(),
    }
}

/// Polls the admin API (each endpoint in turn) until the message leaves the spool or is
/// seen quarantined.
async fn follow(
    admin: &[String],
    access: &Access,
    queue_id: &str,
    sent_at: Instant,
    timeout: Duration,
) -> Fate {
    let deadline = sent_at + timeout;
    let mut clients: Vec<Option<Admin>> = admin.iter().map(|_| None).collect();
    while Instant::now() < deadline {
        for (i, addr) in admin.iter().enumerate() {
            if clients[i].is_none() {
                clients[i] = connect_with(addr, access).await.ok();
            }
            let Some(c) = clients[i].as_mut() else {
                continue;
            };
            let r = c
                .message_show(MessageRef {
                    queue_id: queue_id.to_owned(),
                    ..Default::default()
                })
                .await;
            match r {
                Err(s) if s.code() == tonic::Code::NotFound => {
                    return Fate::Delivered(sent_at.elapsed());
                }
                Ok(r) => {
                    let quarantined = r
                        .into_inner()
                        .message
                        .is_some_and(|m| m.verdict == "quarantine");
                    if quarantined {
                        return Fate::Quarantined(sent_at.elapsed());
                    }
                    break;
                }
                Err(_) => {
                    // Unreachable or out of the quorum: ask the next endpoint.
                    clients[i] = None;
                }
            }
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    Fate::Pending
}
