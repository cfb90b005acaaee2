//! What the leader proposes on its own, on a timer: sweeping expired list entries, removing
//! quarantined messages past the policy's retention, and seeding the configured routes
//! into a fresh cluster. The leader writes the time into
//! each entry, so apply never reads a clock.

use std::time::Duration;

use peage_mail::shutdown::{Every, Shutdown};
use peage_proto::v1::{command, DomainSet, ListSweep, QuarantineExpire};

use crate::clock::now_ms;
use crate::cluster::Cluster;
use crate::config::SeedDomain;
use crate::state::routing::{normalize_domain, normalize_route};
use crate::tracking::event_of;

/// On the leader, each `every`: a sweep whenever some list entry has expired, and an expiry
/// whenever a quarantined message has outlived the policy's retention.
pub async fn sweep_expired(cluster: Cluster, every: Duration, stop: Shutdown) {
    let mut every = Every::new(every, stop);
    while every.tick().await {
        if !cluster.leads() {
            continue;
        }
        sweep_list_entries(&cluster).await;
        expire_quarantine(&cluster).await;
    }
}

async fn sweep_list_entries(cluster: &Cluster) {
    let now = now_ms();
    if !cluster.state().indexes().has_expired(now) {
        return;
    }
    let sweep = ListSweep { now_ms: now };
    match cluster.propose(command::Kind::ListSweep(sweep)).await {
        Ok((index, outcome)) => {
            tracing::info!(log_index = index, ?outcome, "expired list entries swept")
        }
        Err(e) => tracing::warn!(error = %e, "sweep of expired list entries failed"),
    }
}

async fn expire_quarantine(cluster: &Cluster) {
    let retention = cluster.state().indexes().policy().quarantine_retention_ms;
    let before = now_ms().saturating_sub(retention);
    let expiring = cluster.state().spool().quarantined_before(before);
    if expiring.is_empty() {
        return;
    }
    let expire = QuarantineExpire {
        accepted_before_ms: before,
    };
    match cluster
        .propose(command::Kind::QuarantineExpire(expire))
        .await
    {
        Ok((index, outcome)) => {
            tracing::info!(
                log_index = index,
                ?outcome,
                "quarantine past its retention removed"
            );
            let why = format!(
                "removed from quarantine after {} days",
                retention / 86_400_000
            );
            for m in expiring {
                let event = event_of(&m, "expired", m.rcpt_to.clone(), why.clone());
                cluster.tracking().record(event);
            }
        }
        Err(e) => tracing::warn!(error = %e, "quarantine expiry failed"),
    }
}

/// On the leader of a fresh cluster (empty routing table), proposes the configured seed
/// routes once; the local dev cluster uses it to route example.test to its sink.
pub async fn seed_domains(cluster: Cluster, seeds: Vec<SeedDomain>, mut stop: Shutdown) {
    if seeds.is_empty() {
        return;
    }
    let mut tick = tokio::time::interval(Duration::from_millis(500));
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = stop.wait() => return,
        }
        if !cluster.state().indexes().domains().is_empty() {
            return;
        }
        if !cluster.leads() {
            continue;
        }
        for seed in &seeds {
            let (Ok(domain), Ok(route)) =
                (normalize_domain(&seed.domain), normalize_route(&seed.route))
            else {
                continue;
            };
            let set = DomainSet {
                domain,
                route,
                author: "config".into(),
                created_at_ms: now_ms(),
                verify: String::new(),
                dmarc: String::new(),
                portal: seed.portal,
                digest_at: String::new(),
                digest_lang: String::new(),
            };
            if let Err(e) = cluster.propose(command::Kind::DomainSet(set)).await {
                tracing::warn!(error = %e, "seeding a route failed");
            }
        }
    }
}
