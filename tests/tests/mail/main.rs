//! The mail path with a real SMTP client (Python's smtplib) against real nodes: relay
//! control, `250` only after the body is on a majority and the record is committed, and
//! `451` with nothing queued when the node cannot reach a majority; delivery, bounces and
//! the filter's verdicts.

mod acceptance;
mod auth;
mod blocklists;
mod body_copies;
mod delivery;
mod digest;
mod downstreams;
mod edge;
mod filtering;
mod handover;
mod outbound_abuse;
mod own_lists;
mod portal;
mod portal_browser;
mod ratelimits;
mod recipients;
mod relay;
mod roles;
mod sql;
mod stats;
mod submission;
mod tracking;

use std::time::Duration;

use peage_tests::v1::*;
use peage_tests::{wait_for, DnsServer, SinkProcess, TestCluster, Tuning, ADMIN_TOKEN};

pub const HAM: &[u8] = b"From: alice@client.example\r\nTo: bob@example.test\r\nSubject: hello\r\nDate: Wed, 25 Nov 2026 10:00:00 +0000\r\nMessage-ID: <1@client.example>\r\n\r\nHello Bob.\r\n";

pub async fn with_local_domain() -> TestCluster {
    with_local_domain_tuned(Tuning::default()).await
}

/// A cluster tuned as `tuning` whose DNS passes client.example's SPF from loopback, so
/// that mail from alice@client.example is proved (and may be bounced to).
pub async fn proving_client_example(tuning: Tuning) -> (TestCluster, DnsServer) {
    let spf = [("client.example", "v=spf1 ip4:127.0.0.0/8 -all")];
    TestCluster::start_authenticating(tuning, &spf)
        .await
        .unwrap()
}

pub async fn with_local_domain_tuned(tuning: Tuning) -> TestCluster {
    let c = TestCluster::start(tuning).await.unwrap();
    c.route_local_domain().await.unwrap();
    let _ = ADMIN_TOKEN;
    c
}

pub async fn queue(c: &TestCluster, i: usize, stale: bool) -> Vec<QueuedMessage> {
    list(c, i, stale, false).await
}

pub async fn quarantine(c: &TestCluster, i: usize) -> Vec<QueuedMessage> {
    list(c, i, false, true).await
}

/// The outbound quarantine: what hosted principals sent that was held.
pub async fn outbound_quarantine(c: &TestCluster, i: usize) -> Vec<QueuedMessage> {
    let mut a = c.client(i).await.unwrap();
    let request = QueueListRequest {
        quarantine: true,
        outbound: true,
        ..Default::default()
    };
    a.queue_list(request).await.unwrap().into_inner().messages
}

pub async fn list(c: &TestCluster, i: usize, stale: bool, quarantine: bool) -> Vec<QueuedMessage> {
    let mut a = c.client(i).await.unwrap();
    a.queue_list(QueueListRequest {
        stale,
        quarantine,
        ..Default::default()
    })
    .await
    .unwrap()
    .into_inner()
    .messages
}

/// A message with a ZIP attachment holding `setup.exe` (a stored local file header).
pub fn zip_with_exe() -> Vec<u8> {
    let mut zip = b"PK\x03\x04".to_vec();
    zip.extend_from_slice(&[20, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
    zip.extend_from_slice(&[0; 12]);
    zip.extend_from_slice(&9u16.to_le_bytes());
    zip.extend_from_slice(&0u16.to_le_bytes());
    zip.extend_from_slice(b"setup.exe");
    let b64 = {
        use base64::Engine;
        base64::engine::general_purpose::STANDARD.encode(&zip)
    };
    format!(
        "From: alice@client.example\r\nTo: bob@example.test\r\nSubject: invoice\r\nDate: Wed, 25 Nov 2026 10:00:00 +0000\r\nMessage-ID: <zip@client.example>\r\nMIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=\"b\"\r\n\r\n--b\r\nContent-Type: text/plain\r\n\r\nsee attached\r\n--b\r\nContent-Type: application/zip; name=\"invoice.zip\"\r\nContent-Disposition: attachment; filename=\"invoice.zip\"\r\nContent-Transfer-Encoding: base64\r\n\r\n{b64}\r\n--b--\r\n"
    )
    .into_bytes()
}

pub fn ham(n: usize) -> Vec<u8> {
    format!(
        "From: alice@client.example\r\nTo: bob@example.test\r\nSubject: ham {n}\r\nDate: Wed, 25 Nov 2026 10:00:00 +0000\r\nMessage-ID: <ham-{n}@client.example>\r\n\r\nHello Bob, number {n}.\r\n"
    )
    .into_bytes()
}

pub fn send_ham(c: &TestCluster, node: usize, n: usize) -> String {
    let r = c.smtp_send(node, "alice@client.example", &["bob@example.test"], &ham(n));
    r.queue_id()
}

pub async fn wait_delivered(c: &TestCluster, sink: &SinkProcess, n: usize, survivors: &[usize]) {
    wait_for(
        &format!("{n} messages in the sink and empty queues"),
        Duration::from_secs(60),
        || async {
            if sink.messages("bob@example.test").len() < n {
                return None;
            }
            for i in survivors {
                if !queue(c, *i, false).await.is_empty() {
                    return None;
                }
            }
            Some(())
        },
    )
    .await
    .unwrap();
}

/// The detail of the first `kind` event `peagectl track ARGS` finds through node `node`,
/// once the node has written it.
pub async fn tracked_detail(c: &TestCluster, node: usize, args: &[&str], kind: &str) -> String {
    let what = format!("a {kind} event from track {}", args.join(" "));
    wait_for(&what, Duration::from_secs(20), || async {
        let found = json_as(c, node, ADMIN_TOKEN, args).ok()?;
        let events = found["events"].as_array()?.clone();
        let event = events.iter().find(|e| e["kind"] == kind)?;
        event["detail"].as_str().map(str::to_owned)
    })
    .await
    .unwrap()
}

/// `peagectl --json ARGS` as `token` through node `node`: its JSON, or the failure's stderr.
pub fn json_as(
    c: &TestCluster,
    node: usize,
    token: &str,
    args: &[&str],
) -> Result<serde_json::Value, String> {
    let mut all = vec!["--json"];
    all.extend_from_slice(args);
    let out = c.peagectl_as(node, token, &all);
    match out.status.success() {
        true => Ok(serde_json::from_slice(&out.stdout).unwrap_or(serde_json::Value::Null)),
        false => Err(String::from_utf8_lossy(&out.stderr).into_owned()),
    }
}

/// A cluster with a.example and b.example routed to its sink, and a domain-admin token
/// `acme` for a.example: the cluster and acme's secret.
pub async fn two_domains_and_acme() -> (TestCluster, String) {
    let c = TestCluster::start(Default::default()).await.unwrap();
    let route = format!("smtp://{}", c.sink_addr());
    for domain in ["a.example", "b.example"] {
        c.route_domain(domain, &route).await.unwrap();
    }
    let acme = ["--role", "domain-admin", "--domain", "a.example"];
    let secret = token_add(&c, "acme", &acme);
    (c, secret)
}

/// `peagectl token add NAME ARGS` as the operator: the new token's secret.
pub fn token_add(c: &TestCluster, name: &str, args: &[&str]) -> String {
    let mut all = vec!["token", "add", name];
    all.extend_from_slice(args);
    let v = json_as(c, 0, peage_tests::ADMIN_TOKEN, &all).unwrap();
    v["secret"].as_str().unwrap().to_owned()
}
