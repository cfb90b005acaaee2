//! One node's life: bind every listener (so a taken port is reported before storage is
//! touched), start the cluster, serve the peer and admin APIs, run the mail path and the
//! background tasks, and stop in two stages on the shutdown signal (or when Raft fails).

use std::future::Future;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tonic::transport::server::TcpIncoming;

use peage_mail::shutdown::{Shutdown, Trigger};
use peage_mail::smtp::{self, ConnectionLimits, DataMemory, SessionConfig};
use peage_proto::v1::admin_server::AdminServer;
use peage_proto::v1::SpoolDone;

use crate::admin::{digest, AdminService};
use crate::auth::Authenticator;
use crate::cluster::{leader_clock, network, peer_service, Cluster};
use crate::config::{Config, DmarcPolicy};
use crate::evidence::{self, EvidenceConfig, Recorder};
use crate::grpc_tls::GrpcTls;
use crate::logins::Logins;
use crate::portal::{self, Portal};
use crate::ratelimit::{self, RateLimits};
use crate::spool::acceptor::NodeAcceptor;
use crate::spool::callout::Callout;
use crate::spool::delivery::connections::Connections;
use crate::spool::delivery::ledger::{Ledger, LEDGER_FILE};
use crate::spool::delivery::mx::MxResolver;
use crate::spool::delivery::send::Downstream;
use crate::spool::delivery::{self, DeliveryConfig};
use crate::spool::janitor::{self, JanitorConfig};
use crate::spool::room::Room;
use crate::spool::strikes::LockPolicy;
use crate::spool::submission::Submission;
use crate::spool::Spooler;
use crate::state::routing::normalize_route;
use crate::{health, housekeeping, metrics, tracking};
use listeners::Listeners;
use tonic::transport::Server;

mod listeners;

/// How often a follower measures its offset from the leader's clock.
const LEADER_CLOCK_EVERY: Duration = Duration::from_secs(5);
/// How often the tracking events past their retention are deleted.
const TRACKING_PRUNE_EVERY: Duration = Duration::from_secs(3600);

/// What the SMTP edge is made of: its listeners (the MX, submission with STARTTLS and with
/// implicit TLS; each optional), TLS, sender authentication, and the disk space it checks.
struct Edge {
    listeners: [Option<TcpListener>; 3],
    tls: Option<smtp::tls::TlsAcceptor>,
    auth: Option<Arc<Authenticator>>,
    /// The data directory's free space, which new mail needs.
    room: Arc<Room>,
}

/// The SMTP listeners over one acceptor: the MX, and submission (AUTH over TLS).
fn serve_smtp(
    config: &Config,
    edge: Edge,
    acceptor: NodeAcceptor,
    stop: &Shutdown,
) -> Vec<JoinHandle<()>> {
    let s = &config.smtp;
    let mx = SessionConfig {
        hostname: config.hostname(),
        banner: format!("ESMTP Péage node {} ({})", config.node.id, config.node.site),
        max_message_bytes: s.max_message_bytes,
        max_recipients: s.max_recipients,
        command_timeout: Duration::from_secs(s.command_timeout_secs),
        data_timeout: Duration::from_secs(s.data_timeout_secs),
        stress_command_timeout: Duration::from_secs(s.stress_command_timeout_secs),
        session_deadline: Duration::from_secs(s.session_deadline_secs),
        min_data_rate: s.min_data_rate_bytes_per_sec,
        max_errors: s.max_errors,
        max_hops: s.max_hops,
        data_memory: DataMemory::new(s.max_data_memory_mb.saturating_mul(1 << 20)),
        ..SessionConfig::default()
    };
    let limits = ConnectionLimits {
        max_connections: s.max_connections,
        max_per_ip: s.max_connections_per_ip,
        stress_at: s
            .stress_connections
            .unwrap_or(s.max_connections * 3 / 4)
            .max(1),
    };
    let acceptor = Arc::new(acceptor);
    // (submission, implicit TLS) of each listener, in `Edge::listeners` order.
    let kinds = [(false, false), (true, false), (true, true)];
    edge.listeners
        .into_iter()
        .zip(kinds)
        .filter_map(|(listener, (submission, implicit_tls))| {
            let session = SessionConfig {
                submission,
                implicit_tls,
                ..mx.clone()
            };
            Some(tokio::spawn(smtp::serve(
                listener?,
                Arc::new(session),
                limits,
                acceptor.clone(),
                edge.tls.clone(),
                stop.clone(),
            )))
        })
        .collect()
}

/// Sender authentication as `dns` configures it (none when turned off), shared by the SMTP
/// edge and the admin `check`.
fn authenticator(config: &Config) -> anyhow::Result<Option<Arc<Authenticator>>> {
    let dns = &config.dns;
    if !dns.authenticate {
        return Ok(None);
    }
    let auth = Authenticator::new(
        &dns.servers,
        (
            Duration::from_millis(dns.timeout_ms),
            Duration::from_millis(dns.budget_ms),
        ),
        config.hostname(),
        (
            dns.dmarc_policy == DmarcPolicy::Honour,
            dns.blocklists.clone(),
        ),
    )
    .context("cannot set up the DNS resolver for sender authentication (dns.servers)")?;
    Ok(Some(Arc::new(auth)))
}

/// Runs one node until `shutdown` completes, then stops its listeners and Raft; an error
/// when its Raft core stopped by itself first (the node stopped all the same).
pub async fn run(
    config: Config,
    data_dir: &Path,
    shutdown: impl Future<Output = ()>,
) -> anyhow::Result<()> {
    // First, so that what loading the TLS material reports (its expiry) is recorded.
    let prometheus = metrics::install()?;
    // TLS material and ports are checked before storage is touched.
    let smtp_tls = match (&config.smtp.tls_cert, &config.smtp.tls_key) {
        (Some(cert), Some(key)) => Some(smtp::tls::acceptor(cert, key)?),
        _ => None,
    };
    let grpc_tls = match &config.tls {
        Some(t) => Some(GrpcTls::load(&t.ca, &t.cert, &t.key)?),
        None => {
            tracing::warn!("no [tls] section: peer and admin gRPC run in clear, tokens and the cluster secret readable on the wire; make certificates with `peage cert`");
            None
        }
    };
    let listeners = Listeners::bind(&config).await?;
    let cluster = Cluster::start(&config, data_dir, grpc_tls.clone()).await?;
    let ledger_path = data_dir.join(LEDGER_FILE);
    let (ledger, left) = Ledger::open(&ledger_path)
        .with_context(|| format!("opening the delivered ledger {}", ledger_path.display()))?;
    tracing::info!(
        node_id = config.node.id,
        site = %config.node.site,
        admin = %config.listen.admin,
        peer = %config.listen.peer,
        "node started"
    );

    // Two stages: the mail path stops first (sessions finish their replies, deliveries
    // their commits) while Raft and the peer service still run; then the rest.
    let (stop_core, core) = Trigger::new();
    let (stop_mail, mail) = Trigger::new();
    let auth = authenticator(&config)?;
    let apis = serve_apis(
        &cluster,
        &config,
        (listeners.peer, listeners.admin),
        (auth.clone(), grpc_tls),
        &core,
    )?;
    let room = Arc::new(Room::new(data_dir.to_path_buf(), config.min_free_bytes()));
    let metrics_http = listeners.metrics.map(|listener| {
        let scraped = (cluster.clone(), room.clone());
        tokio::spawn(health::serve(listener, scraped, prometheus, core.clone()))
    });
    // The portal writes through the cluster: it stops with the mail path.
    let portal = match (listeners.portal, &smtp_tls) {
        (Some(listener), Some(tls)) => {
            let admin = AdminService::new(cluster.clone(), &config, auth.clone());
            let session = Duration::from_secs(config.portal.session_minutes * 60);
            let portal = Portal::new(Arc::new(admin), session);
            Some(tokio::spawn(portal::serve(
                listener,
                tls.clone(),
                portal,
                mail.clone(),
            )))
        }
        _ => None,
    };
    let digests = AdminService::new(cluster.clone(), &config, auth.clone());
    let ledger = (Arc::new(ledger), left);
    let [submission, submissions] = listeners.submission;
    let edge = Edge {
        listeners: [listeners.smtp, submission, submissions],
        tls: smtp_tls,
        auth,
        room,
    };
    let mail_path = start_mail_path(&cluster, &config, edge, ledger, &mail);
    let leader_tasks = start_leader_tasks(&cluster, &config, digests, &mail);

    let raft_failure = until_stopped(shutdown, &cluster).await;
    tracing::info!("shutting down");
    stop_mail.fire();
    for task in mail_path {
        let _ = task.await;
    }
    if let Some(portal) = portal {
        let _ = portal.await;
    }
    // Raft stops before the peer listener closes: a node that no longer hears its leader
    // would otherwise call an election on its way out and take the leadership with it.
    cluster.shutdown().await;
    stop_core.fire();
    for task in apis {
        drain(task).await;
    }
    for task in leader_tasks {
        let _ = task.await;
    }
    if let Some(http) = metrics_http {
        let _ = http.await;
    }
    match raft_failure {
        Some(cause) => anyhow::bail!("the Raft core stopped: {cause}"),
        None => Ok(()),
    }
}

/// Waits for the shutdown signal, or for the Raft core to stop by itself (its cause then).
/// Such a core stops the node too, with a failure exit for its supervisor (systemd restarts
/// it): a replica that no longer applies would go on filtering by stale lists and serving
/// stale reads while it says it is healthy.
async fn until_stopped(shutdown: impl Future<Output = ()>, cluster: &Cluster) -> Option<String> {
    tokio::select! {
        () = shutdown => None,
        cause = cluster.raft_stopped() => {
            tracing::error!(%cause, "the Raft core stopped: the node stops (free the disk or replace it, then start the node again)");
            Some(cause)
        }
    }
}

/// The tasks only the leader acts in (each waits for its turn): seeding the routes of a
/// fresh cluster, the expiry sweep of lists, the daily digests.
fn start_leader_tasks(
    cluster: &Cluster,
    config: &Config,
    digests: AdminService,
    stop: &Shutdown,
) -> [JoinHandle<()>; 3] {
    [
        tokio::spawn(housekeeping::seed_domains(
            cluster.clone(),
            config.spool.seed_domains.clone(),
            stop.clone(),
        )),
        tokio::spawn(housekeeping::sweep_expired(
            cluster.clone(),
            Duration::from_millis(config.lists.sweep_interval_ms),
            stop.clone(),
        )),
        tokio::spawn(digest::send_daily(
            Arc::new(digests),
            Duration::from_millis(config.portal.digest_check_ms),
            stop.clone(),
        )),
    ]
}

type ApiTask = JoinHandle<Result<(), tonic::transport::Error>>;

/// How long the peer and admin servers get to finish their calls once Raft has stopped:
/// peers keep their connections open, and a stop must not wait for them to let go.
const API_DRAIN: Duration = Duration::from_secs(2);

async fn drain(mut task: ApiTask) {
    match tokio::time::timeout(API_DRAIN, &mut task).await {
        Ok(Ok(Err(e))) => tracing::warn!(error = %e, "listener stopped with an error"),
        Ok(Err(e)) => tracing::warn!(error = %e, "listener task failed"),
        Ok(Ok(Ok(()))) => {}
        Err(_) => task.abort(),
    }
}

/// The peer service (Raft RPCs, forwarded writes, bodies; mutual TLS with `tls`) and the
/// admin API with gRPC reflection (server TLS with `tls`; its `check` authenticating senders
/// as the edge does), until `stop`.
fn serve_apis(
    cluster: &Cluster,
    config: &Config,
    (peer, admin): (TcpListener, TcpListener),
    (auth, tls): (Option<Arc<Authenticator>>, Option<GrpcTls>),
    stop: &Shutdown,
) -> anyhow::Result<[ApiTask; 2]> {
    let (mut peer_server, mut admin_server) = (Server::builder(), Server::builder());
    if let Some(tls) = &tls {
        peer_server = peer_server
            .tls_config(tls.peer_server())
            .context("tls: cannot set up the peer service's TLS")?;
        admin_server = admin_server
            .tls_config(tls.admin_server())
            .context("tls: cannot set up the admin API's TLS")?;
    }
    let peer = peer_server
        // The callers are this cluster's nodes. Their cancelled calls (openraft drops an append
        // that outlives the heartbeat interval; a write's caller gives up at its deadline) pile
        // up as reset streams when the node is busy, and h2's default of 20 then closes the
        // whole connection, failing every call on it; likewise its lifetime count of late
        // frames for streams it no longer remembers.
        .http2_max_pending_accept_reset_streams(Some(network::MAX_RESET_STREAMS))
        .http2_max_local_error_reset_streams(None)
        .add_service(peer_service::server(
            cluster.clone(),
            config.cluster.secret.clone(),
        ))
        .serve_with_incoming_shutdown(no_delay(peer), stop.clone().until_fired());
    let reflection = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(peage_proto::FILE_DESCRIPTOR_SET)
        .build_v1()
        .context("cannot build the gRPC reflection service")?;
    let admin_service = AdminServer::new(AdminService::new(cluster.clone(), config, auth))
        // `check` carries whole messages.
        .max_decoding_message_size(config.smtp.max_message_bytes + (1 << 20));
    let admin = admin_server
        .add_service(admin_service)
        .add_service(reflection)
        .serve_with_incoming_shutdown(no_delay(admin), stop.clone().until_fired());
    Ok([tokio::spawn(peer), tokio::spawn(admin)])
}

/// The connections `listener` accepts, with Nagle's algorithm off: a reply written in two
/// segments otherwise waits for the client's delayed ACK (40 ms on Linux), which was most of
/// a message's time to 250 whenever a peer's reply took that path.
fn no_delay(listener: TcpListener) -> TcpIncoming {
    TcpIncoming::from(listener).with_nodelay(Some(true))
}

/// SMTP, delivery, body cleanup and evidence counting, until `stop`; their tasks, in the order they
/// are to be awaited when stopping (sessions first, so their replies are committed).
fn start_mail_path(
    cluster: &Cluster,
    config: &Config,
    edge: Edge,
    ledger: (Arc<Ledger>, Vec<SpoolDone>),
    stop: &Shutdown,
) -> Vec<JoinHandle<()>> {
    let spool = &config.spool;
    let spooler = Spooler::configured(cluster.clone(), spool);
    let recorder = Recorder::default();
    let mut tasks = Vec::new();
    let downstream = Downstream {
        helo_name: config.hostname(),
        connect_timeout: Duration::from_secs(spool.connect_timeout_secs),
        starttls: spool.starttls,
        command_timeout: Duration::from_secs(spool.command_timeout_secs),
        data_timeout: Duration::from_secs(spool.data_timeout_secs),
        bind_address: spool.bind_address,
        connections: Connections::new(spool.max_connections_per_route),
        bounce_route: spool
            .bounce_route
            .as_deref()
            .and_then(|r| normalize_route(r).ok()),
        mx: edge
            .auth
            .as_ref()
            .filter(|_| config.outbound.mx_lookup)
            .map(|auth| MxResolver::new(auth.resolver(), config.outbound.mx_port)),
    };
    let callout = Callout {
        downstream: downstream.clone(),
        timeout: Duration::from_secs(spool.callout_timeout_secs),
        valid_for: Duration::from_secs(spool.callout_valid_secs),
        invalid_for: Duration::from_secs(spool.callout_invalid_secs),
    };
    let o = &config.outbound;
    let locks = LockPolicy {
        after_spam: o.lock_after_spam,
        after_malware: o.lock_after_malware,
        after_invalid_recipients: o.lock_after_invalid_recipients,
        after_hard_bounces: o.lock_after_hard_bounces,
        window: Duration::from_secs(o.strike_window_secs),
        lock_for: Duration::from_secs(o.lock_secs),
        max_auto_unlocks: o.max_auto_unlocks,
        notify: o.notify.clone(),
    };
    let submission = Submission {
        logins: Logins::new(cluster.state().clone()),
        locks: locks.clone(),
        limits: RateLimits::from_config(o),
    };
    tasks.push(tokio::spawn(ratelimit::share(
        cluster.clone(),
        stop.clone(),
    )));
    tasks.push(tokio::spawn(tracking::prune_every(
        cluster.tracking().clone(),
        TRACKING_PRUNE_EVERY,
        stop.clone(),
    )));
    let acceptor = NodeAcceptor::new(
        spooler.clone(),
        recorder.clone(),
        config.hostname(),
        (edge.auth.clone(), callout, submission),
        edge.room.clone(),
    );
    tasks.extend(serve_smtp(config, edge, acceptor, stop));
    let delivery = DeliveryConfig {
        tick: Duration::from_millis(spool.delivery_tick_ms),
        lease: Duration::from_secs(spool.lease_secs),
        retry_first: Duration::from_millis(spool.retry_first_ms),
        retry_max: Duration::from_secs(spool.retry_max_secs),
        downstream,
        retention: Duration::from_secs(spool.retention_secs),
        spooler,
        locks,
    };
    tasks.push(tokio::spawn(delivery::run(
        cluster.clone(),
        delivery,
        ledger,
        stop.clone(),
    )));
    tasks.push(tokio::spawn(leader_clock::watch(
        cluster.clone(),
        LEADER_CLOCK_EVERY,
        stop.clone(),
    )));
    let janitor = JanitorConfig {
        every: Duration::from_secs(spool.body_sweep_secs),
        grace: Duration::from_secs(spool.body_grace_secs),
    };
    tasks.push(tokio::spawn(janitor::run(
        cluster.clone(),
        janitor,
        stop.clone(),
    )));
    let e = &config.evidence;
    let counting = EvidenceConfig {
        flush: Duration::from_millis(e.flush_ms),
        decay_every: Duration::from_secs(e.decay_every_secs),
        keep_per_mille: e.keep_per_mille,
    };
    tasks.push(tokio::spawn(evidence::run(
        cluster.clone(),
        recorder,
        counting,
        stop.clone(),
    )));
    tasks
}
