//! What a test may tune in its cluster: Raft timing, list sweeps, spool timeouts, TLS, DNS,
//! the outbound section and the digests' pace.

/// Raft and list settings for a test cluster.
#[derive(Clone)]
pub struct Tuning {
    pub snapshot_after_entries: u64,
    pub keep_entries_after_snapshot: u64,
    pub sweep_interval_ms: u64,
    pub commit_timeout_ms: u64,
    pub lease_secs: u64,
    /// How long an undeliverable message is held before it is bounced.
    pub retention_secs: u64,
    /// Raft timing: heartbeat (also openraft's per-RPC timeout), election timeout (a third
    /// more at most, as in ops/local and ops/sites), and how long a leader may go without a
    /// majority.
    pub heartbeat_ms: u64,
    pub election_timeout_ms: u64,
    pub quorum_lost_after_ms: u64,
    /// Dial every peer through a per-link address ([`TestCluster::link_addr`]) where a
    /// proxy (the drill's) adds latency or cuts the link; nothing listens there otherwise.
    pub proxied_peers: bool,
    /// Offer STARTTLS with a freshly generated self-signed certificate.
    pub tls: bool,
    /// How long peers get to fsync a body.
    pub body_timeout_ms: u64,
    /// How long an unreferenced body is kept (None: the least the config allows).
    pub body_grace_secs: Option<u64>,
    /// The first wait after a failed delivery (it doubles, up to 2 s or this if longer).
    pub retry_first_ms: u64,
    /// Connections each node opens to one downstream at once.
    pub max_connections_per_route: usize,
    /// Authenticate senders through this DNS server (the test's own); no authentication
    /// when `None`, as nothing outside answers DNS here.
    pub dns_server: Option<std::net::SocketAddr>,
    /// `dns.blocklists` (needs `dns_server`).
    pub blocklists: Vec<peage_node::blocklists::Blocklist>,
    /// Mutual TLS between nodes and TLS on the admin API, with certificates of its own.
    pub grpc_tls: bool,
    /// The nodes' `[outbound]` section (the harness sets `notify` and `mx_port`).
    pub outbound: peage_node::config::OutboundSection,
    /// `portal.digest_pause_ms`: the leader's pause after each digest it sends.
    pub digest_pause_ms: u64,
}

impl Default for Tuning {
    fn default() -> Self {
        Tuning {
            snapshot_after_entries: 5000,
            keep_entries_after_snapshot: 200,
            sweep_interval_ms: 200,
            commit_timeout_ms: 3000,
            lease_secs: 2,
            retention_secs: 5 * 86_400,
            heartbeat_ms: 50,
            election_timeout_ms: 300,
            quorum_lost_after_ms: 1000,
            proxied_peers: false,
            tls: false,
            body_timeout_ms: 5000,
            body_grace_secs: None,
            retry_first_ms: 200,
            max_connections_per_route: 20,
            dns_server: None,
            blocklists: Vec::new(),
            grpc_tls: false,
            outbound: Default::default(),
            digest_pause_ms: 0,
        }
    }
}
