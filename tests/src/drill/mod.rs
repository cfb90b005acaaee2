//! Failover drills: a local three-site cluster with fault-injecting links between sites, a
//! downstream sink and a steady SMTP load of corpus messages over the three MX (`stage`,
//! `load`); a scenario (site loss, leader loss, partition, downstream outage, rolling
//! restart) runs under that load (`scenarios`), then the invariant checker (`check`) says
//! whether anything was lost (`report`).

pub mod check;
mod load;
mod options;
mod report;
mod scenarios;
pub mod stage;

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::time::{Instant, SystemTime};

use crate::cluster::TestCluster;
use crate::wait::wait_for;
use check::{Findings, Holdings, SendOutcome};
use load::SendRecord;
pub use options::{Isolation, Options, Scenario, RECIPIENT};
pub use report::Report;
use stage::Stage;

/// Runs one scenario from a fresh cluster to its report.
pub async fn run(opts: &Options) -> anyhow::Result<Report> {
    let (corpus_name, messages) = match &opts.corpus {
        Some(dir) => (dir.display().to_string(), crate::corpus::load(dir)?),
        None => crate::corpus::load_or_generated()?,
    };
    let namespaces = match opts.isolation {
        Isolation::Netns => true,
        Isolation::Loopback => false,
        Isolation::Auto => crate::netns::available(),
    };
    let mut stage = Stage::start(opts.latency, namespaces).await?;
    let started = Instant::now();
    let load = load::Load::start(
        &stage.cluster,
        Arc::new(load::prepare(messages)),
        opts.rate,
        opts.duration,
        opts.max_messages,
    );
    let faults = scenarios::inject(&mut stage, opts, started).await?;
    let mut events = faults.events;
    let sent = load.finish().await;
    let duration_secs = started.elapsed().as_secs_f64();

    // Drained: nothing left to deliver on any node.
    let drained = wait_for("held mail drains", opts.drain_timeout, || async {
        stage.queued(false).await.ok()?.is_empty().then_some(())
    })
    .await
    .is_ok();
    if !drained {
        events.push(format!(
            "queue not empty {} s after the load stopped",
            opts.drain_timeout.as_secs()
        ));
    }
    let (converged, state_sha256) = stage.converge().await;
    let quarantined = stage
        .queued(true)
        .await?
        .iter()
        .filter_map(|m| load::sender_id(&m.mail_from))
        .collect();
    let (delivered, delivered_at) = stage.holdings_in_sink();
    // Held mail: what was accepted before the heal; drained when its last copy arrived.
    let drained_ms = drained.then(|| last_delivery_after(&sent, &delivered_at, faults.healed));
    let held_delivered_ms =
        drained.then(|| last_delivery_after(&sent, &delivered_at, faults.first));
    if let Some(dir) = &opts.logs {
        save_logs(
            &stage.cluster,
            &dir.join(format!("{:?}", opts.scenario).to_lowercase()),
        )?;
    }
    let sent_records: Vec<check::Sent> = sent.iter().map(|s| s.sent.clone()).collect();
    let held = Holdings {
        delivered,
        quarantined,
    };
    let Findings {
        counts,
        mut violations,
        duplicated_ids,
    } = check::check(&sent_records, &held);
    if !converged {
        violations.push(format!("states did not converge: {state_sha256}"));
    }
    if drained_ms.is_none() {
        violations.push("held mail did not drain".into());
    }
    Ok(Report {
        scenario: opts.scenario,
        mode: stage::mode(namespaces, opts.latency, &stage.latency_source),
        corpus: corpus_name,
        duration_secs,
        rate: opts.rate,
        passed: violations.is_empty(),
        counts,
        writes_resumed_ms: writes_resumed_ms(&faults.struck, &sent),
        drained_ms,
        held_delivered_ms,
        converged,
        state_sha256,
        events,
        violations,
        duplicated_ids,
        refusals: refusals(&sent),
    })
}

/// Every node's log, copied into `dir`.
fn save_logs(cluster: &TestCluster, dir: &Path) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir)?;
    for (i, n) in cluster.nodes.iter().enumerate() {
        std::fs::write(dir.join(format!("{}.log", n.site)), cluster.node_log(i))?;
    }
    Ok(())
}

/// What clients were told instead of `250`, with how often.
fn refusals(sent: &[SendRecord]) -> BTreeMap<String, usize> {
    let mut out = BTreeMap::new();
    for s in sent {
        let why = match &s.sent.outcome {
            SendOutcome::Accepted => continue,
            SendOutcome::Deferred(code, text) | SendOutcome::Refused(code, text) => {
                format!("{code} {text}")
            }
            SendOutcome::Unreachable(e) => format!("no reply: {e}"),
        };
        *out.entry(why.chars().take(120).collect()).or_insert(0) += 1;
    }
    out
}

/// The longest wait, over the faults, from a fault to the next `250`.
fn writes_resumed_ms(struck: &[Instant], sent: &[SendRecord]) -> Option<u64> {
    struck
        .iter()
        .map(|&f| {
            sent.iter()
                .filter(|s| s.started >= f && s.sent.outcome == SendOutcome::Accepted)
                .map(|s| s.finished.duration_since(f).as_millis() as u64)
                .min()
        })
        .collect::<Option<Vec<u64>>>()
        .and_then(|v| v.into_iter().max())
}

/// How long after `moment` the last message accepted before it was delivered (0 if all were
/// delivered by then).
fn last_delivery_after(
    sent: &[SendRecord],
    delivered_at: &BTreeMap<u64, SystemTime>,
    moment: Instant,
) -> u64 {
    let wall = SystemTime::now() - moment.elapsed();
    sent.iter()
        .filter(|s| s.finished <= moment && s.sent.outcome == SendOutcome::Accepted)
        .filter_map(|s| delivered_at.get(&s.sent.id))
        .filter_map(|at| at.duration_since(wall).ok())
        .max()
        .map_or(0, |d| d.as_millis() as u64)
}
