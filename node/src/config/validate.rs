//! Checks a parsed config before anything starts: every error names its key.

use std::collections::HashSet;
use std::net::SocketAddr;
use std::path::Path;

use super::{Config, ConfigError, Role};
use crate::state::routing::{normalize_domain, normalize_route};

/// Marks the values the example configs (ops/sites) leave for the operator to fill in.
const PLACEHOLDER: &str = "CHANGE-ME";
const UNREPLACED: &str =
    "still the example value (CHANGE-ME): generate one with `openssl rand -hex 32`";

/// The longest duration any key may hold. Durations are added to clocks in milliseconds
/// (lease ends, retention, expiries): a larger one overflows, and a lease or a retention
/// that ends before it began takes over or bounces every message at once.
const MAX_DURATION_MS: u128 = 10 * 365 * 86_400_000;

/// The units of the duration keys, by the suffix of their names, in milliseconds.
const DURATION_UNITS: [(&str, u128); 5] = [
    ("_ms", 1),
    ("_secs", 1_000),
    ("_minutes", 60_000),
    ("_hours", 3_600_000),
    ("_days", 86_400_000),
];

/// The key a check is about, and what is wrong with it.
struct Invalid(String, String);

/// Fails with `message` about `key` unless `ok`.
fn ensure(ok: bool, key: impl Into<String>, message: impl Into<String>) -> Result<(), Invalid> {
    if ok {
        Ok(())
    } else {
        Err(Invalid(key.into(), message.into()))
    }
}

impl Config {
    pub(super) fn validate(&self, path: &Path) -> Result<(), ConfigError> {
        self.check_node_and_cluster()
            .and_then(|()| self.check_raft())
            .and_then(|()| self.check_tokens())
            .and_then(|()| self.check_smtp())
            .and_then(|()| self.check_dns())
            .and_then(|()| self.check_spool_evidence_and_lists())
            .and_then(|()| self.check_durations())
            .map_err(|Invalid(key, message)| ConfigError::Invalid {
                path: path.to_owned(),
                key,
                message,
            })
    }

    fn check_dns(&self) -> Result<(), Invalid> {
        let dns = &self.dns;
        ensure(dns.timeout_ms != 0, "dns.timeout_ms", "must be > 0")?;
        ensure(dns.budget_ms != 0, "dns.budget_ms", "must be > 0")?;
        ensure(
            dns.authenticate || dns.blocklists.is_empty(),
            "dns.blocklists",
            "needs dns.authenticate = true (they share its resolvers and its budget)",
        )?;
        for (i, list) in dns.blocklists.iter().enumerate() {
            if let Some((key, message)) = list.invalid() {
                return Err(Invalid(format!("dns.blocklists[{i}].{key}"), message));
            }
        }
        Ok(())
    }

    fn check_node_and_cluster(&self) -> Result<(), Invalid> {
        ensure(self.node.id != 0, "node.id", "must be 1 or more")?;
        ensure(
            !self.node.site.trim().is_empty(),
            "node.site",
            "must not be empty",
        )?;
        let secret = &self.cluster.secret;
        ensure(
            secret.len() >= 16,
            "cluster.secret",
            "must be at least 16 characters",
        )?;
        ensure(!secret.contains(PLACEHOLDER), "cluster.secret", UNREPLACED)?;
        let mut ids = HashSet::new();
        for (i, m) in self.cluster.members.iter().enumerate() {
            let listed_once = ids.insert(m.id);
            let twice = format!("node id {} is listed twice", m.id);
            ensure(listed_once, format!("cluster.members[{i}].id"), twice)?;
            for (key, addr) in [("peer", &m.peer), ("admin", &m.admin)] {
                ensure(
                    addr.parse::<SocketAddr>().is_ok(),
                    format!("cluster.members[{i}].{key}"),
                    format!("`{addr}` is not an IP:port address"),
                )?;
            }
        }
        ensure(
            !self.cluster.bootstrap || ids.contains(&self.node.id),
            "cluster.bootstrap",
            format!(
                "this node (id {}) must be one of cluster.members to bootstrap",
                self.node.id
            ),
        )
    }

    fn check_raft(&self) -> Result<(), Invalid> {
        let r = &self.raft;
        ensure(
            r.heartbeat_interval_ms != 0,
            "raft.heartbeat_interval_ms",
            "must be > 0",
        )?;
        ensure(
            r.election_timeout_min_ms > r.heartbeat_interval_ms,
            "raft.election_timeout_min_ms",
            "must be greater than raft.heartbeat_interval_ms",
        )?;
        ensure(
            r.election_timeout_max_ms > r.election_timeout_min_ms,
            "raft.election_timeout_max_ms",
            "must be greater than raft.election_timeout_min_ms",
        )?;
        ensure(
            r.snapshot_after_entries != 0,
            "raft.snapshot_after_entries",
            "must be > 0",
        )
    }

    fn check_tokens(&self) -> Result<(), Invalid> {
        let mut names = HashSet::new();
        let mut secrets = HashSet::new();
        for (i, t) in self.admin.tokens.iter().enumerate() {
            let key = |field: &str| format!("admin.tokens[{i}]{field}");
            ensure(!t.name.trim().is_empty(), key(".name"), "must not be empty")?;
            let long_enough = t.token.len() >= 16;
            ensure(long_enough, key(".token"), "must be at least 16 characters")?;
            ensure(!t.token.contains(PLACEHOLDER), key(".token"), UNREPLACED)?;
            let unique = names.insert(&t.name) && secrets.insert(&t.token);
            ensure(unique, key(""), "names and tokens must be unique")?;
            let scoped = !t.domains.is_empty() || t.role != Role::DomainAdmin;
            ensure(
                scoped,
                key(".domains"),
                "a domain-admin token needs its domains",
            )?;
        }
        Ok(())
    }

    fn check_smtp(&self) -> Result<(), Invalid> {
        let smtp = &self.smtp;
        let over_tls = [
            (
                "listen.submission",
                self.listen.submission,
                "AUTH is offered",
            ),
            (
                "listen.submissions",
                self.listen.submissions,
                "AUTH is offered",
            ),
            ("listen.portal", self.listen.portal, "the portal is served"),
        ];
        for (key, addr, what) in over_tls {
            ensure(
                addr.is_none() || (smtp.tls_cert.is_some() && smtp.tls_key.is_some()),
                key,
                format!("needs smtp.tls_cert and smtp.tls_key: {what} only over TLS"),
            )?;
        }
        for (key, v) in [
            ("portal.session_minutes", self.portal.session_minutes),
            ("portal.link_days", self.portal.link_days),
            ("portal.digest_check_ms", self.portal.digest_check_ms),
        ] {
            ensure(v != 0, key, "must be > 0")?;
        }
        for (key, v) in [
            ("smtp.max_message_bytes", smtp.max_message_bytes),
            ("smtp.max_recipients", smtp.max_recipients),
            ("smtp.max_connections", smtp.max_connections),
            ("smtp.max_connections_per_ip", smtp.max_connections_per_ip),
            ("smtp.max_hops", smtp.max_hops),
        ] {
            ensure(v != 0, key, "must be > 0")?;
        }
        ensure(
            smtp.max_data_memory_mb.saturating_mul(1 << 20) >= smtp.max_message_bytes,
            "smtp.max_data_memory_mb",
            "must hold at least one message of smtp.max_message_bytes",
        )?;
        for (key, v) in [
            ("smtp.command_timeout_secs", smtp.command_timeout_secs),
            ("smtp.data_timeout_secs", smtp.data_timeout_secs),
            (
                "smtp.stress_command_timeout_secs",
                smtp.stress_command_timeout_secs,
            ),
            ("smtp.session_deadline_secs", smtp.session_deadline_secs),
            ("smtp.max_errors", u64::from(smtp.max_errors)),
        ] {
            ensure(v != 0, key, "must be > 0")?;
        }
        ensure(
            smtp.stress_connections
                .is_none_or(|n| n > 0 && n <= smtp.max_connections),
            "smtp.stress_connections",
            "must be > 0 and at most smtp.max_connections",
        )?;
        ensure(
            smtp.tls_cert.is_some() == smtp.tls_key.is_some(),
            "smtp.tls_cert",
            "smtp.tls_cert and smtp.tls_key go together",
        )
    }

    fn check_spool_evidence_and_lists(&self) -> Result<(), Invalid> {
        let (spool, e) = (&self.spool, &self.evidence);
        for (key, v) in [
            ("spool.lease_secs", spool.lease_secs),
            ("spool.connect_timeout_secs", spool.connect_timeout_secs),
            ("spool.command_timeout_secs", spool.command_timeout_secs),
            ("spool.data_timeout_secs", spool.data_timeout_secs),
        ] {
            ensure(v != 0, key, "must be > 0")?;
        }
        ensure(
            spool.max_connections_per_route != 0,
            "spool.max_connections_per_route",
            "must be > 0",
        )?;
        ensure(
            spool.delivery_tick_ms != 0 && spool.retry_first_ms != 0,
            "spool.delivery_tick_ms",
            "delivery tick and retry delay must be > 0",
        )?;
        if let Some(r) = &spool.bounce_route {
            normalize_route(r).map_err(|e| Invalid("spool.bounce_route".into(), e.to_string()))?;
        }
        ensure(
            e.flush_ms != 0 && e.decay_every_secs != 0,
            "evidence.flush_ms",
            "evidence.flush_ms and evidence.decay_every_secs must be > 0",
        )?;
        ensure(
            e.keep_per_mille <= 1000,
            "evidence.keep_per_mille",
            "must be at most 1000",
        )?;
        ensure(
            spool.retention_secs != 0,
            "spool.retention_secs",
            "must be > 0",
        )?;
        for (i, d) in spool.seed_domains.iter().enumerate() {
            let key = |field: &str| format!("spool.seed_domains[{i}].{field}");
            normalize_domain(&d.domain).map_err(|e| Invalid(key("domain"), e.to_string()))?;
            normalize_route(&d.route).map_err(|e| Invalid(key("route"), e.to_string()))?;
        }
        ensure(
            self.lists.sweep_interval_ms != 0,
            "lists.sweep_interval_ms",
            "must be > 0",
        )
    }

    /// Every duration key, wherever it is, holds at most ten years: one check over the
    /// serialized config, so a key added later is covered by its name alone.
    fn check_durations(&self) -> Result<(), Invalid> {
        let value = toml::Value::try_from(self)
            .map_err(|e| Invalid("config".into(), format!("cannot be re-read: {e}")))?;
        check_durations_in(&value, "")
    }
}

fn check_durations_in(value: &toml::Value, key: &str) -> Result<(), Invalid> {
    match value {
        toml::Value::Table(table) => table.iter().try_for_each(|(name, v)| {
            let key = if key.is_empty() {
                name.clone()
            } else {
                format!("{key}.{name}")
            };
            check_durations_in(v, &key)
        }),
        toml::Value::Array(items) => items
            .iter()
            .enumerate()
            .try_for_each(|(i, v)| check_durations_in(v, &format!("{key}[{i}]"))),
        toml::Value::Integer(n) => {
            let Some(unit) = DURATION_UNITS
                .iter()
                .find_map(|(suffix, unit)| key.ends_with(suffix).then_some(*unit))
            else {
                return Ok(());
            };
            let ms = u128::from(n.unsigned_abs()) * unit;
            ensure(
                ms <= MAX_DURATION_MS,
                key,
                format!("{n} is longer than ten years: a duration must be at most that"),
            )
        }
        _ => Ok(()),
    }
}
