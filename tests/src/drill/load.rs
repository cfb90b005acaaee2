//! The drill's SMTP load: corpus messages, each marked with its drill id (in a header and
//! in the envelope sender), sent at a steady rate round-robin over the three MX, one
//! connection per message, recording what each client was told.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use peage_mail::sync::lock;

use super::check::{SendOutcome, Sent};
use crate::cluster::TestCluster;

/// Outside our own `X-Peage-` namespace: the edge removes those from incoming mail.
const ID_HEADER: &str = "X-Drill-Id";
/// A client gives up on a message after this long without a final reply.
const SEND_TIMEOUT: Duration = Duration::from_secs(60);

/// A corpus message and the filter's verdict on it.
pub struct Prepared {
    body: Vec<u8>,
    expected: crate::corpus::ExpectedVerdict,
}

/// Computes each message's verdict once, with the marking header in place.
pub fn prepare(messages: Vec<Vec<u8>>) -> Vec<Prepared> {
    messages
        .into_iter()
        .map(|body| {
            let expected = crate::corpus::expected_verdict(&marked(0, &body), &sender(0));
            Prepared { body, expected }
        })
        .collect()
}

fn marked(id: u64, body: &[u8]) -> Vec<u8> {
    let mut out = format!("{ID_HEADER}: {id}\r\n").into_bytes();
    out.extend_from_slice(body);
    out
}

fn sender(id: u64) -> String {
    format!("drill-{id}@load.example")
}

/// The drill id of an envelope sender written by [`sender`].
pub fn sender_id(mail_from: &str) -> Option<u64> {
    mail_from
        .strip_prefix("drill-")?
        .strip_suffix("@load.example")?
        .parse()
        .ok()
}

/// The drill id in a delivered copy's header.
pub fn drill_id(message: &str) -> Option<u64> {
    let headers = message.split("\r\n\r\n").next()?;
    headers.lines().find_map(|l| {
        let (name, value) = l.split_once(':')?;
        name.eq_ignore_ascii_case(ID_HEADER)
            .then(|| value.trim().parse().ok())
            .flatten()
    })
}

/// One message's record, with when it was sent and answered.
#[derive(Debug, Clone)]
pub struct SendRecord {
    pub sent: Sent,
    pub started: Instant,
    pub finished: Instant,
}

pub struct Load {
    pacer: tokio::task::JoinHandle<Vec<tokio::task::JoinHandle<()>>>,
    records: Arc<Mutex<Vec<SendRecord>>>,
}

impl Load {
    /// Starts sending `rate` messages/s for `duration` (at most `max` messages, 0 = no limit).
    pub fn start(
        cluster: &TestCluster,
        messages: Arc<Vec<Prepared>>,
        rate: f64,
        duration: Duration,
        max: u64,
    ) -> Load {
        let targets: Vec<(String, u16)> = cluster.nodes.iter().map(|n| n.smtp_addr()).collect();
        let sources: Vec<String> = (0..100).map(|n| cluster.client_source(n)).collect();
        let records: Arc<Mutex<Vec<SendRecord>>> = Arc::default();
        let out = records.clone();
        let pacer = tokio::spawn(async move {
            let mut tasks = Vec::new();
            let mut tick = tokio::time::interval(Duration::from_secs_f64(1.0 / rate.max(0.01)));
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
            let end = Instant::now() + duration;
            let mut id = 0u64;
            while Instant::now() < end && (max == 0 || id < max) {
                tick.tick().await;
                id += 1;
                let (host, port) = targets[id as usize % targets.len()].clone();
                let source = sources[id as usize % sources.len()].clone();
                let (messages, out) = (messages.clone(), out.clone());
                tasks.push(tokio::spawn(async move {
                    let m = &messages[id as usize % messages.len()];
                    let started = Instant::now();
                    let outcome =
                        tokio::time::timeout(SEND_TIMEOUT, send(&host, port, &source, id, &m.body))
                            .await
                            .unwrap_or_else(|_| {
                                SendOutcome::Unreachable("no reply in time".into())
                            });
                    let record = SendRecord {
                        sent: Sent {
                            id,
                            expected: m.expected,
                            outcome,
                        },
                        started,
                        finished: Instant::now(),
                    };
                    lock(&out).push(record);
                }));
            }
            tasks
        });
        Load { pacer, records }
    }

    /// Waits for the pacing to end and every message to be answered.
    pub async fn finish(self) -> Vec<SendRecord> {
        if let Ok(tasks) = self.pacer.await {
            for t in tasks {
                let _ = t.await;
            }
        }
        let mut records = std::mem::take(&mut *lock(&self.records));
        records.sort_by_key(|r| r.sent.id);
        records
    }
}

async fn send(host: &str, port: u16, source: &str, id: u64, body: &[u8]) -> SendOutcome {
    let Ok(source) = source.parse() else {
        return SendOutcome::Unreachable(format!("bad source address {source}"));
    };
    let client = crate::mta::connect(host, port, source, "mail.load.example", SEND_TIMEOUT).await;
    let mut client = match client {
        Ok(c) => c,
        Err(e) => return classify(e),
    };
    let rcpt = [super::options::RECIPIENT.to_owned()];
    let body = marked(id, body);
    let message = mail_send::smtp::message::Message::new(sender(id), rcpt, body.as_slice());
    let outcome = match client.send(message).await {
        Ok(_) => SendOutcome::Accepted,
        Err(e) => classify(e),
    };
    let _ = client.quit().await;
    outcome
}

fn classify(e: mail_send::Error) -> SendOutcome {
    match e {
        mail_send::Error::UnexpectedReply(r) => {
            let [a, b, c] = r.esc;
            let text = format!("{a}.{b}.{c} {}", r.message);
            if r.code >= 500 {
                SendOutcome::Refused(r.code, text)
            } else {
                SendOutcome::Deferred(r.code, text)
            }
        }
        other => SendOutcome::Unreachable(other.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_drill_id_is_found_in_the_header_and_in_the_sender() {
        let copy =
            String::from_utf8(marked(42, b"Subject: x\r\n\r\nbody\r\nX-Drill-Id: 7\r\n")).unwrap();
        let delivered = format!("X-Peage-Verdict: deliver\r\n{copy}");
        assert_eq!(drill_id(&delivered), Some(42));
        assert_eq!(drill_id("Subject: none\r\n\r\nX-Drill-Id: 7\r\n"), None);
        assert_eq!(sender_id(&sender(42)), Some(42));
        assert_eq!(sender_id("someone@load.example"), None);
    }
}
