//! The `[outbound]` section: what the submission path does with the hosted accounts' and
//! the platform's outgoing mail — the thresholds of strikes that lock an identity, where
//! mail for the internet goes, and the rate limits counted across the sites.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// Mail the hosted principals send (submission): when strikes lock an identity and who hears
/// of it, where mail for the internet goes, and the rate limits.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct OutboundSection {
    /// Strikes against an identity within `strike_window_secs` that lock it, each kind
    /// counted on its own (0: that kind never locks): spam verdicts, messages with malware
    /// or dangerous attachments, recipients refused as unknown (5.1.x) and other hard
    /// bounces when its mail is delivered.
    pub lock_after_spam: u32,
    pub lock_after_malware: u32,
    pub lock_after_invalid_recipients: u32,
    pub lock_after_hard_bounces: u32,
    pub strike_window_secs: u64,
    /// How long an automatic lock lasts …
    pub lock_secs: u64,
    /// … for this many locks; after that only an operator unlocks the account.
    pub max_auto_unlocks: u32,
    /// Who else is told of a lock (the account's domains' postmaster always is).
    pub notify: Option<String>,
    /// Mail for domains outside the routing table goes to their MX (asked through
    /// `dns.servers`; needs `dns.authenticate`); where the DNS names no mail server, to
    /// `spool.bounce_route`. Off: everything outside the table goes to `bounce_route`.
    pub mx_lookup: bool,
    /// The port of the exchanges (25; a test points it elsewhere).
    pub mx_port: u16,
    /// Messages one identity may send per minute, hour and day, across all sites (0: no
    /// limit); past one, `451 4.7.1`.
    pub max_messages_per_minute: u64,
    pub max_messages_per_hour: u64,
    pub max_messages_per_day: u64,
    /// Other message limits for some identities, principals or whole domains: name →
    /// [per minute, per hour, per day] (0: no limit); the identity's own entry wins over
    /// its principal's, which wins over its domain's.
    pub limit_overrides: BTreeMap<String, [u64; 3]>,
    /// Messages per principal (all its identities together), per client address and per
    /// envelope sender domain: [per minute, per hour, per day] (0: no limit).
    pub max_messages_per_login: [u64; 3],
    pub max_messages_per_client_ip: [u64; 3],
    pub max_messages_per_sender_domain: [u64; 3],
    /// Recipients one identity may send to per minute, hour and day.
    pub max_recipients: [u64; 3],
    /// Distinct recipients one identity may send to per day (counted by each site: one
    /// reached through two sites counts twice).
    pub max_distinct_recipients_per_day: u64,
    /// Recipients the remote servers refused as unknown (5.1.x) per identity and hour;
    /// past it, the identity's mail is refused for the rest of the hour.
    pub max_invalid_recipients_per_hour: u64,
}

impl Default for OutboundSection {
    fn default() -> Self {
        OutboundSection {
            lock_after_spam: 5,
            lock_after_malware: 1,
            lock_after_invalid_recipients: 20,
            lock_after_hard_bounces: 20,
            strike_window_secs: 600,
            lock_secs: 3600,
            max_auto_unlocks: 3,
            notify: None,
            mx_lookup: true,
            mx_port: 25,
            max_messages_per_minute: 60,
            max_messages_per_hour: 600,
            max_messages_per_day: 3000,
            limit_overrides: BTreeMap::new(),
            max_messages_per_login: [0, 0, 0],
            max_messages_per_client_ip: [0, 0, 0],
            max_messages_per_sender_domain: [0, 0, 0],
            max_recipients: [300, 3000, 15_000],
            max_distinct_recipients_per_day: 1000,
            max_invalid_recipients_per_hour: 50,
        }
    }
}
