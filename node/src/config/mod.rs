//! The node's configuration: one TOML file, parsed into typed sections and validated
//! (`validate`) before any port is bound. Every error names the key it is about; unknown
//! keys are errors. The types serialise too, so tests write configs from them.

mod derived;
mod outbound;
mod spool;
mod validate;

pub use outbound::OutboundSection;
pub use spool::{SeedDomain, SpoolSection};

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::blocklists::Blocklist;
pub use crate::state::tokens::Role;

/// Why a configuration could not be used. Each message names the file and the key.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("invalid config {path}: {message}")]
    Parse { path: PathBuf, message: String },
    #[error("invalid config {path}: `{key}`: {message}")]
    Invalid {
        path: PathBuf,
        key: String,
        message: String,
    },
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    pub node: NodeSection,
    pub listen: ListenSection,
    pub cluster: ClusterSection,
    #[serde(default)]
    pub raft: RaftSection,
    #[serde(default)]
    pub admin: AdminSection,
    #[serde(default)]
    pub lists: ListsSection,
    #[serde(default)]
    pub smtp: SmtpSection,
    #[serde(default)]
    pub spool: SpoolSection,
    #[serde(default)]
    pub evidence: EvidenceSection,
    #[serde(default)]
    pub outbound: OutboundSection,
    /// TLS for the peer and admin gRPC services; both in clear without it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls: Option<TlsSection>,
    #[serde(default)]
    pub dns: DnsSection,
    #[serde(default)]
    pub tracking: TrackingSection,
    #[serde(default)]
    pub portal: PortalSection,
}

/// The end users' quarantine portal (served on `listen.portal`).
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct PortalSection {
    /// How long a session lasts once a link was opened.
    pub session_minutes: u64,
    /// How long a link stays good.
    pub link_days: u64,
    /// The portal's address as users reach it (links start with it); default
    /// `https://<listen.portal>`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub public_url: Option<String>,
    /// How often the leader looks for domains whose daily digest is due.
    pub digest_check_ms: u64,
    /// The pause after each digest sent, so that a large domain's digests reach its
    /// downstream over a while rather than in one burst.
    pub digest_pause_ms: u64,
}

impl Default for PortalSection {
    fn default() -> Self {
        PortalSection {
            session_minutes: 60,
            link_days: 14,
            public_url: None,
            digest_check_ms: 30_000,
            digest_pause_ms: 10,
        }
    }
}

/// Message tracking: how long this node keeps the events it recorded.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct TrackingSection {
    pub retention_days: u64,
}

impl Default for TrackingSection {
    fn default() -> Self {
        TrackingSection { retention_days: 32 }
    }
}

/// The cluster CA and this node's certificate (`peage cert` makes them): mutual TLS between
/// nodes, server TLS for the admin API.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct TlsSection {
    /// PEM: the CA that signed every node's certificate; a peer presenting anything else is
    /// refused.
    pub ca: PathBuf,
    /// PEM: this node's certificate, naming the IPs (or names) of its peer and admin addresses.
    pub cert: PathBuf,
    /// PEM: its private key.
    pub key: PathBuf,
}

/// Sender authentication (SPF, DKIM, DMARC, ARC), DNS blocklists, and the resolvers they ask.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct DnsSection {
    /// Whether accepted mail is authenticated at all (no `Authentication-Results` when not).
    pub authenticate: bool,
    /// Resolvers as `IP:PORT`; the system's (`/etc/resolv.conf`) when empty.
    pub servers: Vec<SocketAddr>,
    /// One query's timeout.
    pub timeout_ms: u64,
    /// All of one message's lookups together: past it, what is unanswered is `temperror`.
    pub budget_ms: u64,
    /// What a failing DMARC policy of reject or quarantine does: `honour` (reject with
    /// `550 5.7.1`, or quarantine) or `score` (its symbol's points only).
    pub dmarc_policy: DmarcPolicy,
    /// DNSBL and URI blocklist zones (`[[dns.blocklists]]`), asked within the same budget;
    /// none by default (most zones need an agreement for a provider's volume).
    pub blocklists: Vec<Blocklist>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum DmarcPolicy {
    Honour,
    Score,
}

impl Default for DnsSection {
    fn default() -> Self {
        DnsSection {
            authenticate: true,
            servers: Vec::new(),
            timeout_ms: 2000,
            budget_ms: 4000,
            dmarc_policy: DmarcPolicy::Honour,
            blocklists: Vec::new(),
        }
    }
}

/// Reputation and bulk counting (`peage_mail::evidence`).
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct EvidenceSection {
    /// How often a node sends what it counted through Raft (one entry each time).
    pub flush_ms: u64,
    /// How often the leader scales every count down.
    pub decay_every_secs: u64,
    /// What a decay step keeps, per mille (900: counts lose a tenth per step).
    pub keep_per_mille: u32,
}

impl Default for EvidenceSection {
    fn default() -> Self {
        EvidenceSection {
            flush_ms: 1000,
            decay_every_secs: 3600,
            keep_per_mille: 900,
        }
    }
}

/// The SMTP listener (`listen.smtp`): identity and limits.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct SmtpSection {
    /// Named in the banner and EHLO reply; defaults to `<site>.peage`.
    pub hostname: Option<String>,
    pub max_message_bytes: usize,
    pub max_recipients: usize,
    pub command_timeout_secs: u64,
    pub data_timeout_secs: u64,
    pub max_connections: usize,
    /// Per IPv4 address or IPv6 /64.
    pub max_connections_per_ip: usize,
    /// Open sessions from which the listener is under stress (idle timeout cut to
    /// `stress_command_timeout_secs`, a pause before the banner); default ¾ of the maximum.
    pub stress_connections: Option<usize>,
    pub stress_command_timeout_secs: u64,
    /// No session lasts longer.
    pub session_deadline_secs: u64,
    /// A message slower than this (after its first minute) is cut with `421 4.4.2`.
    pub min_data_rate_bytes_per_sec: u64,
    /// Error replies before the session is closed (each one after the tenth waits 1 s).
    pub max_errors: u32,
    /// `Received` headers past which a message is refused as a mail loop (`554 5.4.6`).
    pub max_hops: usize,
    /// Incoming message bytes the node holds in memory over all its sessions; a message
    /// that would pass it is answered `452 4.3.1` (try later).
    pub max_data_memory_mb: usize,
    /// PEM certificate chain and private key; with both, STARTTLS is offered.
    pub tls_cert: Option<PathBuf>,
    pub tls_key: Option<PathBuf>,
}

impl Default for SmtpSection {
    fn default() -> Self {
        SmtpSection {
            hostname: None,
            max_message_bytes: 25 * 1024 * 1024,
            max_recipients: 100,
            command_timeout_secs: 300,
            data_timeout_secs: 600,
            max_connections: 1000,
            max_connections_per_ip: 20,
            stress_connections: None,
            stress_command_timeout_secs: 10,
            session_deadline_secs: 3600,
            min_data_rate_bytes_per_sec: 4096,
            max_errors: 20,
            max_hops: 50,
            max_data_memory_mb: 1024,
            tls_cert: None,
            tls_key: None,
        }
    }
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct NodeSection {
    /// Raft node id, unique in the cluster, never reused for another machine.
    pub id: u64,
    /// The site (data centre) this node runs in; used to warn about unsafe placement.
    pub site: String,
    /// Where the Raft log, the state database and snapshots live; `--data-dir` overrides it.
    pub data_dir: Option<PathBuf>,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ListenSection {
    /// The admin gRPC API (peagectl).
    pub admin: SocketAddr,
    /// The peer gRPC service (Raft RPCs between nodes).
    pub peer: SocketAddr,
    /// SMTP, the MX.
    pub smtp: Option<SocketAddr>,
    /// Submission with STARTTLS (587): SMTP AUTH for the hosted accounts, then relaying
    /// anywhere. Needs `smtp.tls_cert` and `smtp.tls_key`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub submission: Option<SocketAddr>,
    /// Submission over implicit TLS (465), the same otherwise.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub submissions: Option<SocketAddr>,
    /// HTTP: `/metrics` (Prometheus text format) and `/healthz`.
    pub metrics: Option<SocketAddr>,
    /// HTTPS: the end users' quarantine portal (with `smtp.tls_cert` and `smtp.tls_key`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub portal: Option<SocketAddr>,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ClusterSection {
    /// Shared by every node; peer calls without it are refused.
    pub secret: String,
    /// When true and the node's storage is empty, the node initialises the cluster with
    /// `members`. Every initial member may do so: they all write the same first entry.
    #[serde(default)]
    pub bootstrap: bool,
    /// The initial voters. A node that joins later (as a learner) lists none.
    #[serde(default)]
    pub members: Vec<MemberConfig>,
    /// Dial a peer through another address: `{ "PEER-ADDR" = "VIA-ADDR" }`, keyed by the
    /// peer address the membership records. For NAT, and for the drill's fault-injecting
    /// proxies between sites.
    #[serde(default)]
    pub peer_via: BTreeMap<String, String>,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct MemberConfig {
    pub id: u64,
    pub site: String,
    pub peer: String,
    pub admin: String,
}

/// Raft timing. Defaults suit loopback; a WAN wants an election timeout of at least 20 RTT
/// and a heartbeat of at least 100 ms (see ops/README.md).
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct RaftSection {
    pub heartbeat_interval_ms: u64,
    pub election_timeout_min_ms: u64,
    pub election_timeout_max_ms: u64,
    /// Build a snapshot (and purge the log it covers) after this many applied entries.
    pub snapshot_after_entries: u64,
    /// Entries kept in the log behind a snapshot, so lagging followers need no snapshot.
    /// Each is a batch of up to 256 commands: 200 is a lot of mail, and the disk a drained
    /// node keeps (about 11 KB per entry under load).
    pub keep_entries_after_snapshot: u64,
    pub snapshot_chunk_bytes: u64,
    /// Per-chunk timeout of snapshot transfer; openraft's 200 ms default loops forever on big
    /// snapshots over a WAN.
    pub install_snapshot_timeout_ms: u64,
    /// How long a write waits for its commit before the client gets UNAVAILABLE.
    pub commit_timeout_ms: u64,
    /// A leader that has not heard from a majority for this long refuses writes at once
    /// (openraft 0.9 has no check-quorum, so an isolated leader still believes it leads).
    pub quorum_lost_after_ms: u64,
}

impl Default for RaftSection {
    fn default() -> Self {
        RaftSection {
            heartbeat_interval_ms: 50,
            election_timeout_min_ms: 300,
            election_timeout_max_ms: 400,
            snapshot_after_entries: 5000,
            keep_entries_after_snapshot: 200,
            snapshot_chunk_bytes: 1 << 20,
            install_snapshot_timeout_ms: 5000,
            commit_timeout_ms: 5000,
            quorum_lost_after_ms: 1000,
        }
    }
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct AdminSection {
    pub tokens: Vec<TokenConfig>,
    /// How long the audit log keeps each record of an admin write.
    pub audit_retention_days: u64,
}

impl Default for AdminSection {
    fn default() -> Self {
        AdminSection {
            tokens: Vec::new(),
            audit_retention_days: 400,
        }
    }
}

/// A token of this node's own (not replicated: the first operator's, or one a deployment
/// tool writes); tokens made through the API (`peagectl token add`) are replicated instead.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct TokenConfig {
    /// Recorded as the author of the writes made with this token.
    pub name: String,
    pub token: String,
    pub role: Role,
    /// The domains the token is bound to; empty: every domain (a domain admin needs some).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub domains: Vec<String>,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct ListsSection {
    /// How often the leader looks for expired list entries to sweep.
    pub sweep_interval_ms: u64,
    /// Longest accepted `reason`, in bytes.
    pub max_reason_bytes: usize,
}

impl Default for ListsSection {
    fn default() -> Self {
        ListsSection {
            sweep_interval_ms: 1000,
            max_reason_bytes: 1024,
        }
    }
}

impl Config {
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        Config::parse(&text, path)
    }

    /// Parses and validates; `path` only names the source in errors.
    pub fn parse(text: &str, path: &Path) -> Result<Config, ConfigError> {
        let config: Config = toml::from_str(text).map_err(|e| ConfigError::Parse {
            path: path.to_owned(),
            message: e.to_string(),
        })?;
        config.validate(path)?;
        Ok(config)
    }
}

#[cfg(test)]
mod tests;
