//! The `[spool]` section: leases, retries, the downstream connections' timeouts, TLS and
//! budgets, bounces, retention, body housekeeping, callouts and the free-space floor.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct SpoolSection {
    /// How long the accepting node owns a delivery before another may take it over.
    pub lease_secs: u64,
    /// How long a peer gets to fsync a message body.
    pub body_timeout_ms: u64,
    /// How often each node looks at the spool for deliveries, renewals and takeovers.
    pub delivery_tick_ms: u64,
    /// First retry delay after a temporary failure; it doubles up to `retry_max_secs`.
    pub retry_first_ms: u64,
    pub retry_max_secs: u64,
    pub connect_timeout_secs: u64,
    /// The downstream's reply to each later command, and from DATA to the reply to the
    /// message's end (Postfix: 300 s, 600 s).
    pub command_timeout_secs: u64,
    pub data_timeout_secs: u64,
    /// STARTTLS to a downstream that offers it, unverified, plain text if it fails (as
    /// Postfix's `smtp_tls_security_level = may`).
    pub starttls: bool,
    /// Connections each node opens to one route at once (Postfix's default: 20).
    pub max_connections_per_route: usize,
    /// smtp://HOST:PORT for mail to domains outside the routing table (DSNs to remote
    /// senders): the outbound smarthost. Unset: such mail waits until a route exists.
    pub bounce_route: Option<String>,
    /// The source address of connections to downstreams (Postfix's `smtp_bind_address`);
    /// unset: the OS chooses. Downstreams count their per-client limits by this address.
    pub bind_address: Option<std::net::IpAddr>,
    /// Messages still undelivered after this long are bounced.
    pub retention_secs: u64,
    /// Routes proposed by the leader while the routing table is empty (a fresh cluster).
    pub seed_domains: Vec<SeedDomain>,
    /// How often each node removes the bodies no record references any more.
    pub body_sweep_secs: u64,
    /// How long such a body is kept after it was last written: at least twice
    /// `body_timeout_ms` plus `raft.commit_timeout_ms`, the time a new message's body may
    /// wait for its record.
    pub body_grace_secs: u64,
    /// A `RCPT` callout (domains verified by callout): the whole exchange with the
    /// downstream; past it the mailbox is taken unverified.
    pub callout_timeout_secs: u64,
    /// How long a downstream's "valid" holds in the cluster's cache.
    pub callout_valid_secs: u64,
    /// How long its refusal holds (short: a new mailbox must work soon).
    pub callout_invalid_secs: u64,
    /// Free space the data directory's filesystem keeps: below it, new mail is refused at
    /// MAIL FROM with `452 4.3.1`. Unset: twice `smtp.max_message_bytes` (Postfix refuses
    /// under 1.5 times its message size limit).
    pub min_free_mb: Option<u64>,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct SeedDomain {
    pub domain: String,
    pub route: String,
    /// Its mailbox owners may use the quarantine portal.
    #[serde(default)]
    pub portal: bool,
}

impl Default for SpoolSection {
    fn default() -> Self {
        SpoolSection {
            lease_secs: 60,
            body_timeout_ms: 5000,
            delivery_tick_ms: 500,
            retry_first_ms: 5000,
            retry_max_secs: 900,
            connect_timeout_secs: 30,
            command_timeout_secs: 300,
            data_timeout_secs: 600,
            starttls: true,
            max_connections_per_route: 20,
            seed_domains: Vec::new(),
            bounce_route: None,
            bind_address: None,
            retention_secs: 5 * 86_400,
            body_sweep_secs: 60,
            body_grace_secs: 600,
            callout_timeout_secs: 10,
            callout_valid_secs: 7 * 86_400,
            callout_invalid_secs: 3_600,
            min_free_mb: None,
        }
    }
}
