//! Péage node: a member of the mail-filter cluster. `run` starts one node: its storage, its
//! Raft membership, the peer and admin gRPC listeners, and its background tasks.

// openraft's storage traits require its `StorageError` (over 200 bytes) as the error type,
// and storage helpers return it unchanged rather than boxing and unboxing it.
#![allow(clippy::result_large_err)]

pub mod admin;
pub mod cluster;
pub mod config;
pub mod dev;
pub mod eval;
pub mod evidence;
pub mod metrics;
pub mod restore;
pub mod sink;
pub mod spool;
pub mod state;

pub use peage_mail::{filter, smtp};

use std::future::Future;
use std::path::Path;
use std::time::Duration;

use anyhow::Context;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio_stream::wrappers::TcpListenerStream;

use cluster::Cluster;
use config::Config;

/// Runs one node until `shutdown` completes, then stops its listeners and Raft.
pub async fn run(
    config: Config,
    data_dir: &Path,
    shutdown: impl Future<Output = ()>,
) -> anyhow::Result<()> {
    // TLS material and ports are checked before storage is touched.
    let smtp_tls = match (&config.smtp.tls_cert, &config.smtp.tls_key) {
        (Some(cert), Some(key)) => Some(smtp::tls::acceptor(cert, key)?),
        _ => None,
    };
    // Bind before anything else, so a taken port is reported before storage is touched.
    let l = &config.listen;
    let peer_listener = bind("listen.peer", l.peer).await?;
    let admin_listener = bind("listen.admin", l.admin).await?;
    let smtp_listener = match l.smtp {
        Some(addr) => Some(bind("listen.smtp", addr).await?),
        None => None,
    };
    let metrics_listener = match l.metrics {
        Some(addr) => Some(bind("listen.metrics", addr).await?),
        None => None,
    };

    let cluster = Cluster::start(&config, data_dir).await?;
    tracing::info!(
        node_id = config.node.id,
        site = %config.node.site,
        admin = %config.listen.admin,
        peer = %config.listen.peer,
        "node started"
    );

    // Two stages: the mail path stops first (sessions finish their replies, deliveries
    // their commits) while Raft and the peer service still run; then the rest.
    let (stop_tx, stop_rx) = watch::channel(false);
    let (stop_mail_tx, stop_mail_rx) = watch::channel(false);
    let stopped = |mut rx: watch::Receiver<bool>| async move {
        let _ = rx.wait_for(|s| *s).await;
    };

    let peer = tonic::transport::Server::builder()
        .add_service(cluster::peer_service::server(
            cluster.clone(),
            config.cluster.secret.clone(),
        ))
        .serve_with_incoming_shutdown(
            TcpListenerStream::new(peer_listener),
            stopped(stop_rx.clone()),
        );
    let reflection = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(peage_proto::FILE_DESCRIPTOR_SET)
        .build_v1()
        .context("cannot build the gRPC reflection service")?;
    let admin = tonic::transport::Server::builder()
        .add_service(
            peage_proto::v1::admin_server::AdminServer::new(admin::AdminService::new(
                cluster.clone(),
                &config,
            ))
            // `check` carries whole messages.
            .max_decoding_message_size(config.smtp.max_message_bytes + (1 << 20)),
        )
        .add_service(reflection)
        .serve_with_incoming_shutdown(
            TcpListenerStream::new(admin_listener),
            stopped(stop_rx.clone()),
        );
    let peer = tokio::spawn(peer);
    let admin = tokio::spawn(admin);
    let metrics_http = match metrics_listener {
        Some(listener) => Some(tokio::spawn(metrics::serve(
            listener,
            cluster.clone(),
            metrics::install()?,
            stop_rx.clone(),
        ))),
        None => None,
    };
    let spooler = spool::Spooler::new(
        cluster.clone(),
        Duration::from_secs(config.spool.lease_secs),
        Duration::from_millis(config.spool.body_timeout_ms),
    );
    let delivery = tokio::spawn(spool::delivery::run(
        cluster.clone(),
        spool::delivery::DeliveryConfig {
            tick: Duration::from_millis(config.spool.delivery_tick_ms),
            lease: Duration::from_secs(config.spool.lease_secs),
            retry_first: Duration::from_millis(config.spool.retry_first_ms),
            retry_max: Duration::from_secs(config.spool.retry_max_secs),
            connect_timeout: Duration::from_secs(config.spool.connect_timeout_secs),
            helo_name: config
                .smtp
                .hostname
                .clone()
                .unwrap_or_else(|| format!("{}.peage", config.node.site)),
            bounce_route: config
                .spool
                .bounce_route
                .as_deref()
                .and_then(|r| state::routing::normalize_route(r).ok()),
            retention: Duration::from_secs(config.spool.retention_secs),
            spooler: spooler.clone(),
        },
        stop_mail_rx.clone(),
    ));
    let recorder = evidence::Recorder::default();
    let counting = tokio::spawn(evidence::run(
        cluster.clone(),
        recorder.clone(),
        evidence::EvidenceConfig {
            flush: Duration::from_millis(config.evidence.flush_ms),
            decay_every: Duration::from_secs(config.evidence.decay_every_secs),
            keep_per_mille: config.evidence.keep_per_mille,
        },
        stop_mail_rx.clone(),
    ));
    let seeder = tokio::spawn(seed_domains(
        cluster.clone(),
        config.spool.seed_domains.clone(),
        stop_mail_rx.clone(),
    ));
    let sweeper = tokio::spawn(sweep_expired_entries(
        cluster.clone(),
        Duration::from_millis(config.lists.sweep_interval_ms),
        stop_mail_rx.clone(),
    ));

    let smtp = smtp_listener.map(|listener| {
        let s = &config.smtp;
        let session = smtp::SessionConfig {
            hostname: s
                .hostname
                .clone()
                .unwrap_or_else(|| format!("{}.peage", config.node.site)),
            banner: format!("ESMTP Péage node {} ({})", config.node.id, config.node.site),
            max_message_bytes: s.max_message_bytes,
            max_recipients: s.max_recipients,
            command_timeout: Duration::from_secs(s.command_timeout_secs),
            data_timeout: Duration::from_secs(s.data_timeout_secs),
            max_errors: 10,
        };
        let limits = smtp::ConnectionLimits {
            max_connections: s.max_connections,
            max_per_ip: s.max_connections_per_ip,
        };
        let acceptor = spool::NodeAcceptor::new(spooler.clone(), recorder.clone());
        tokio::spawn(smtp::serve(
            listener,
            std::sync::Arc::new(session),
            limits,
            std::sync::Arc::new(acceptor),
            smtp_tls,
            stop_mail_rx.clone(),
        ))
    });

    shutdown.await;
    tracing::info!("shutting down");
    let _ = stop_mail_tx.send(true);
    if let Some(smtp) = smtp {
        let _ = smtp.await;
    }
    let _ = delivery.await;
    let _ = counting.await;
    let _ = stop_tx.send(true);
    for task in [peer, admin] {
        match task.await {
            Ok(Err(e)) => tracing::warn!(error = %e, "listener stopped with an error"),
            Err(e) => tracing::warn!(error = %e, "listener task failed"),
            Ok(Ok(())) => {}
        }
    }
    let _ = sweeper.await;
    let _ = seeder.await;
    if let Some(http) = metrics_http {
        let _ = http.await;
    }
    cluster.shutdown().await;
    Ok(())
}

async fn bind(key: &str, addr: std::net::SocketAddr) -> anyhow::Result<TcpListener> {
    TcpListener::bind(addr)
        .await
        .with_context(|| format!("cannot listen on {key} {addr}"))
}

/// On the leader, proposes a sweep whenever some list entry has expired. The leader writes
/// the time into the entry, so apply never reads a clock.
async fn sweep_expired_entries(cluster: Cluster, every: Duration, mut stop: watch::Receiver<bool>) {
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = stop.wait_for(|s| *s) => return,
        }
        let now = admin::now_ms();
        if cluster.metrics().current_leader != Some(cluster.id())
            || !cluster.state().has_expired(now)
        {
            continue;
        }
        let sweep = peage_proto::v1::ListSweep { now_ms: now };
        match cluster
            .propose(peage_proto::v1::command::Kind::ListSweep(sweep))
            .await
        {
            Ok((index, outcome)) => {
                tracing::info!(log_index = index, ?outcome, "expired list entries swept")
            }
            Err(e) => tracing::warn!(error = %e, "sweep of expired list entries failed"),
        }
    }
}

/// On the leader of a fresh cluster (empty routing table), proposes the configured seed
/// routes once; the local dev cluster uses it to route example.test to its sink.
async fn seed_domains(
    cluster: Cluster,
    seeds: Vec<config::SeedDomain>,
    mut stop: watch::Receiver<bool>,
) {
    if seeds.is_empty() {
        return;
    }
    let mut tick = tokio::time::interval(Duration::from_millis(500));
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = smtp::session::stopped(&mut stop) => return,
        }
        if !cluster.state().domains().is_empty() {
            return;
        }
        if cluster.metrics().current_leader != Some(cluster.id()) {
            continue;
        }
        for seed in &seeds {
            let (Ok(domain), Ok(route)) = (
                state::routing::normalize_domain(&seed.domain),
                state::routing::normalize_route(&seed.route),
            ) else {
                continue;
            };
            let set = peage_proto::v1::DomainSet {
                domain,
                route,
                author: "config".into(),
                created_at_ms: admin::now_ms(),
            };
            if let Err(e) = cluster
                .propose(peage_proto::v1::command::Kind::DomainSet(set))
                .await
            {
                tracing::warn!(error = %e, "seeding a route failed");
            }
        }
    }
}

/// Completes on Ctrl-C or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(s) => s,
                Err(_) => {
                    let _ = ctrl_c.await;
                    return;
                }
            };
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
}
