//! Prometheus metrics and the health check: the names every module records under, the
//! gauges read from Raft and the spool at scrape time, and the HTTP endpoint serving
//! `/metrics` and `/healthz`.
//!
//! Counters and histograms are recorded where things happen (SMTP replies, verdicts,
//! delivery attempts, commits, snapshots) with the `metrics` macros; they cost nothing when
//! no recorder is installed (a node without `listen.metrics`, unit tests).

use std::sync::OnceLock;
use std::time::Duration;

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::get;
use axum::Router;
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::cluster::Cluster;

pub use peage_mail::smtp::{SMTP_REPLIES, SMTP_SESSIONS};
pub const VERDICTS: &str = "peage_filter_verdicts_total";
pub const DELIVERY_ATTEMPTS: &str = "peage_delivery_attempts_total";
pub const LEADER_CHANGES: &str = "peage_raft_leader_changes_total";
pub const COMMIT_SECONDS: &str = "peage_raft_commit_seconds";
pub const SNAPSHOT_BUILD_SECONDS: &str = "peage_snapshot_build_seconds";
pub const SNAPSHOT_BYTES: &str = "peage_snapshot_bytes";

static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();

/// Installs the process-wide recorder once; later calls return the same handle.
pub fn install() -> anyhow::Result<PrometheusHandle> {
    if let Some(h) = HANDLE.get() {
        return Ok(h.clone());
    }
    let seconds = [
        0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
    ];
    let handle = PrometheusBuilder::new()
        .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), &seconds)?
        .install_recorder()?;
    Ok(HANDLE.get_or_init(|| handle).clone())
}

#[derive(Clone)]
struct Scrape {
    cluster: Cluster,
    handle: PrometheusHandle,
}

/// Serves `/metrics` and `/healthz` until `stop` turns true.
pub async fn serve(
    listener: TcpListener,
    cluster: Cluster,
    handle: PrometheusHandle,
    mut stop: watch::Receiver<bool>,
) -> std::io::Result<()> {
    // Counters a dashboard plots from the start, before anything happened.
    for name in [SMTP_SESSIONS, LEADER_CHANGES] {
        metrics::counter!(name).absolute(0);
    }
    tokio::spawn(count_leader_changes(cluster.clone(), stop.clone()));
    let app = Router::new()
        .route("/metrics", get(metrics))
        .route("/healthz", get(healthz))
        .with_state(Scrape { cluster, handle });
    axum::serve(listener, app)
        .with_graceful_shutdown(async move {
            let _ = stop.wait_for(|s| *s).await;
        })
        .await
}

async fn metrics(State(s): State<Scrape>) -> (StatusCode, String) {
    record_gauges(&s.cluster).await;
    s.handle.run_upkeep();
    (StatusCode::OK, s.handle.render())
}

/// 200 when the node is part of a working majority, 503 otherwise; the body says why.
async fn healthz(State(s): State<Scrape>) -> (StatusCode, String) {
    let m = s.cluster.metrics();
    let f = s.cluster.freshness(true);
    let leader = m
        .current_leader
        .map_or_else(|| "none".to_owned(), |l| l.to_string());
    let contact = f
        .millis_since_leader_contact
        .map_or_else(|| "never".to_owned(), |ms| format!("{ms} ms ago"));
    if s.cluster.in_quorum() {
        (
            StatusCode::OK,
            format!("ok: in quorum, leader {leader}, last contact {contact}\n"),
        )
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            format!("no quorum: leader {leader}, last contact {contact}\n"),
        )
    }
}

/// Raft and spool figures are read when scraped rather than tracked on every change.
async fn record_gauges(cluster: &Cluster) {
    let m = cluster.metrics();
    let applied = cluster.state().applied_index();
    let last_log = m.last_log_index.unwrap_or(0);
    metrics::gauge!("peage_raft_term").set(m.current_term as f64);
    metrics::gauge!("peage_raft_is_leader")
        .set(f64::from(u8::from(m.current_leader == Some(cluster.id()))));
    metrics::gauge!("peage_raft_in_quorum").set(f64::from(u8::from(cluster.in_quorum())));
    metrics::gauge!("peage_raft_last_log_index").set(last_log as f64);
    metrics::gauge!("peage_raft_applied_index").set(applied as f64);
    metrics::gauge!("peage_raft_apply_lag").set(last_log.saturating_sub(applied) as f64);
    if let Some(s) = m.snapshot {
        metrics::gauge!("peage_snapshot_last_index").set(s.index as f64);
    }
    if let Ok(spooled) = cluster.state().spooled().await {
        let now = crate::admin::now_ms();
        let (quarantined, queued): (Vec<_>, Vec<_>) =
            spooled.iter().partition(|m| m.is_quarantined());
        metrics::gauge!("peage_spool_messages", "state" => "queued").set(queued.len() as f64);
        metrics::gauge!("peage_spool_messages", "state" => "quarantined")
            .set(quarantined.len() as f64);
        let oldest = queued.iter().map(|m| m.accepted_at_ms).min();
        metrics::gauge!("peage_spool_oldest_age_seconds")
            .set(oldest.map_or(0.0, |t| (now - t).max(0) as f64 / 1000.0));
    }
}

async fn count_leader_changes(cluster: Cluster, mut stop: watch::Receiver<bool>) {
    let mut raft = cluster.raft().metrics();
    let mut leader = raft.borrow().current_leader;
    loop {
        tokio::select! {
            changed = raft.changed() => if changed.is_err() { return },
            _ = stop.wait_for(|s| *s) => return,
        }
        let now = raft.borrow().current_leader;
        if now != leader && now.is_some() {
            metrics::counter!(LEADER_CHANGES).increment(1);
        }
        leader = now;
    }
}

/// Observes a duration under `name` (seconds).
pub fn observe(name: &'static str, took: Duration) {
    metrics::histogram!(name).record(took.as_secs_f64());
}
