//! The node's HTTP endpoint: `/metrics` (Prometheus text, with the Raft, spool and disk
//! gauges read when scraped) and `/healthz` (200 in a working majority, 503 otherwise).

use std::sync::Arc;

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::get;
use axum::Router;
use metrics_exporter_prometheus::PrometheusHandle;
use peage_mail::shutdown::Shutdown;
use tokio::net::TcpListener;

use crate::clock::now_ms;
use crate::cluster::Cluster;
use crate::metrics::{
    BODY_JOURNAL_BODIES, BODY_JOURNAL_PENDING_BYTES, BODY_JOURNAL_SYNCS, CLOCK_OFFSET_MS,
    CLOCK_OFFSET_UNCERTAINTY_MS, DATA_FREE_BYTES, DATA_MIN_FREE_BYTES, LEADER_CHANGES,
    SMTP_EVICTED, SMTP_SESSIONS, SPOOL_MESSAGES, SPOOL_OLDEST_AGE_SECONDS,
};
use crate::spool::room::Room;

#[derive(Clone)]
struct Scrape {
    cluster: Cluster,
    handle: PrometheusHandle,
    room: Arc<Room>,
}

/// Serves `/metrics` and `/healthz` until `stop` fires.
pub async fn serve(
    listener: TcpListener,
    (cluster, room): (Cluster, Arc<Room>),
    handle: PrometheusHandle,
    mut stop: Shutdown,
) -> std::io::Result<()> {
    // Counters a dashboard plots from the start, before anything happened.
    for name in [SMTP_SESSIONS, SMTP_EVICTED, LEADER_CHANGES] {
        metrics::counter!(name).absolute(0);
    }
    tokio::spawn(count_leader_changes(cluster.clone(), stop.clone()));
    let app = Router::new()
        .route("/metrics", get(metrics))
        .route("/healthz", get(healthz))
        .with_state(Scrape {
            cluster,
            handle,
            room,
        });
    axum::serve(listener, app)
        .with_graceful_shutdown(async move { stop.wait().await })
        .await
}

async fn metrics(State(s): State<Scrape>) -> (StatusCode, String) {
    record_gauges(&s.cluster).await;
    if let Ok(free) = s.room.free_bytes() {
        metrics::gauge!(DATA_FREE_BYTES).set(free as f64);
    }
    metrics::gauge!(DATA_MIN_FREE_BYTES).set(s.room.floor_bytes() as f64);
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
    if let Err(fatal) = &m.running_state {
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            format!("raft stopped: {fatal}; the node is stopping\n"),
        );
    }
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
    let spool = cluster.state().spool().counts();
    metrics::gauge!(SPOOL_MESSAGES, "state" => "queued").set(spool.queued as f64);
    metrics::gauge!(SPOOL_MESSAGES, "state" => "quarantined").set(spool.quarantined as f64);
    let age_ms = spool
        .oldest_queued_at_ms
        .map_or(0, |t| (now_ms() - t).max(0));
    metrics::gauge!(SPOOL_OLDEST_AGE_SECONDS).set(age_ms as f64 / 1000.0);
    let (syncs, bodies) = cluster.blobs().journal_totals();
    metrics::counter!(BODY_JOURNAL_SYNCS).absolute(syncs);
    metrics::counter!(BODY_JOURNAL_BODIES).absolute(bodies);
    let pending = cluster.blobs().journal_pending_bytes();
    metrics::gauge!(BODY_JOURNAL_PENDING_BYTES).set(pending as f64);
    metrics::gauge!(CLOCK_OFFSET_MS).set(cluster.leader_clock_offset_ms() as f64);
    metrics::gauge!(CLOCK_OFFSET_UNCERTAINTY_MS).set(cluster.leader_clock_uncertainty_ms() as f64);
}

async fn count_leader_changes(cluster: Cluster, mut stop: Shutdown) {
    let mut raft = cluster.raft().metrics();
    let mut leader = raft.borrow().current_leader;
    loop {
        tokio::select! {
            changed = raft.changed() => if changed.is_err() { return },
            _ = stop.wait() => return,
        }
        let now = raft.borrow().current_leader;
        if now != leader && now.is_some() {
            metrics::counter!(LEADER_CHANGES).increment(1);
        }
        leader = now;
    }
}
