//! Outbound rate limits for the whole cluster: messages per identity (with overrides per
//! identity, principal or domain), per principal, per client address and per sender
//! domain; recipients and distinct recipients per identity; recipients the remote servers
//! refused as unknown per identity. Each node counts in fixed windows
//! (`cluster::shared_counts`) and shares its counts with the peers about once a second; a
//! message past a limit is refused `451 4.7.1`. A spammer who spreads a run over the three
//! sites meets one limit, overshot at most by what the other sites accept between two
//! reports (rate × interval × (nodes − 1)).

use std::collections::{BTreeMap, HashSet};
use std::net::IpAddr;
use std::time::Duration;

use peage_mail::shutdown::Shutdown;
use peage_mail::smtp::Reply;

use crate::clock::now_ms;
use crate::cluster::shared_counts::{window_start, CountKey};
use crate::cluster::Cluster;
use crate::config::OutboundSection;
use crate::state::domain_of;

/// How often a node reports its counts to its peers.
pub const SHARE_EVERY: Duration = Duration::from_secs(1);

/// The windows limits are counted in, in seconds: a minute, an hour, a day.
pub const WINDOWS: [u64; 3] = [60, 3600, 86_400];
const HOUR: u64 = 3600;
const DAY: u64 = 86_400;

/// What is counted, and under which name in a key (`identity:alice@shop.example:60`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Counter {
    /// Messages per identity.
    Identity,
    /// Messages per principal (a login, or a platform MTA's network).
    Login,
    ClientIp,
    SenderDomain,
    /// Recipients per identity.
    Recipients,
    /// Distinct recipients per identity and day (as each site saw them: one reached through
    /// two sites counts twice).
    Distinct,
    /// Recipients refused as unknown when an identity's mail was delivered, per hour.
    Invalid,
}

impl Counter {
    pub const ALL: [Counter; 7] = [
        Counter::Identity,
        Counter::Login,
        Counter::ClientIp,
        Counter::SenderDomain,
        Counter::Recipients,
        Counter::Distinct,
        Counter::Invalid,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Counter::Identity => "identity",
            Counter::Login => "login",
            Counter::ClientIp => "ip",
            Counter::SenderDomain => "domain",
            Counter::Recipients => "rcpts",
            Counter::Distinct => "distinct",
            Counter::Invalid => "invalid",
        }
    }

    fn parse(name: &str) -> Option<Counter> {
        Counter::ALL.into_iter().find(|c| c.as_str() == name)
    }

    /// What one count is, in a refusal.
    fn unit(self) -> &'static str {
        match self {
            Counter::Recipients => "recipients",
            Counter::Distinct => "distinct recipients",
            Counter::Invalid => "unknown recipients",
            _ => "messages",
        }
    }
}

/// Whom a message counts against.
pub struct Sender<'a> {
    pub identity: &'a str,
    pub login: &'a str,
    pub client_ip: IpAddr,
    /// The envelope sender's domain.
    pub domain: &'a str,
}

/// The limits (0: none) per minute, hour and day, and what each node remembers to count
/// distinct recipients.
#[derive(Clone, Debug, Default)]
pub struct RateLimits {
    /// Messages per identity.
    pub messages: [u64; 3],
    /// Other message limits by identity, principal or domain (the first found wins).
    pub overrides: BTreeMap<String, [u64; 3]>,
    pub per_login: [u64; 3],
    pub per_client_ip: [u64; 3],
    pub per_sender_domain: [u64; 3],
    /// Recipients per identity.
    pub recipients: [u64; 3],
    pub distinct_recipients_per_day: u64,
    pub invalid_recipients_per_hour: u64,
}

impl RateLimits {
    pub fn from_config(o: &OutboundSection) -> RateLimits {
        RateLimits {
            messages: [
                o.max_messages_per_minute,
                o.max_messages_per_hour,
                o.max_messages_per_day,
            ],
            overrides: o.limit_overrides.clone(),
            per_login: o.max_messages_per_login,
            per_client_ip: o.max_messages_per_client_ip,
            per_sender_domain: o.max_messages_per_sender_domain,
            recipients: o.max_recipients,
            distinct_recipients_per_day: o.max_distinct_recipients_per_day,
            invalid_recipients_per_hour: o.max_invalid_recipients_per_hour,
        }
    }

    /// The message limits of `identity` sending through `login`.
    pub fn messages_of(&self, identity: &str, login: &str) -> [u64; 3] {
        let domain = domain_of(identity).unwrap_or_default();
        [identity, login, domain.as_str()]
            .iter()
            .find_map(|name| self.overrides.get(*name))
            .copied()
            .unwrap_or(self.messages)
    }

    /// The limit on `counter` for `name` in the window of `secs` (0: none).
    pub fn limit(&self, counter: Counter, name: &str, secs: u64) -> u64 {
        let at = WINDOWS.iter().position(|w| *w == secs);
        let windowed = |limits: [u64; 3]| at.map_or(0, |i| limits[i]);
        match counter {
            Counter::Identity => windowed(self.messages_of(name, name)),
            Counter::Login => windowed(self.per_login),
            Counter::ClientIp => windowed(self.per_client_ip),
            Counter::SenderDomain => windowed(self.per_sender_domain),
            Counter::Recipients => windowed(self.recipients),
            Counter::Distinct if secs == DAY => self.distinct_recipients_per_day,
            Counter::Invalid if secs == HOUR => self.invalid_recipients_per_hour,
            _ => 0,
        }
    }

    /// Counts one more message from `who`, or refuses it when one of its windows is full
    /// (or its identity has had too many recipients refused as unknown this hour).
    pub fn admit(&self, cluster: &Cluster, who: &Sender<'_>) -> Result<(), Reply> {
        let now = now_ms();
        let (ip, domain) = (who.client_ip.to_string(), who.domain.to_ascii_lowercase());
        let messages = self.messages_of(who.identity, who.login);
        let mut counted = Vec::new();
        for (counter, name, limits) in [
            (Counter::Identity, who.identity, messages),
            (Counter::Login, who.login, self.per_login),
            (Counter::ClientIp, ip.as_str(), self.per_client_ip),
            (
                Counter::SenderDomain,
                domain.as_str(),
                self.per_sender_domain,
            ),
        ] {
            // A window without a limit is neither checked nor counted.
            for (secs, limit) in WINDOWS.into_iter().zip(limits).filter(|(_, l)| *l > 0) {
                counted.push((CountKey::new(counter.as_str(), name, secs), limit));
            }
        }
        let invalid = CountKey::new(Counter::Invalid.as_str(), who.identity, HOUR);
        let checked = [(invalid, self.invalid_recipients_per_hour)];
        for (key, limit) in counted.iter().chain(&checked) {
            full(cluster, key, *limit, 1, now)?;
        }
        for (key, _) in &counted {
            let start = window_start(now, key.window_ms());
            cluster.shared_counts().add(key, start, 1);
        }
        Ok(())
    }

    /// Counts a message's recipients against its identity, or refuses the message when
    /// they would pass a recipient limit.
    pub fn admit_recipients(
        &self,
        cluster: &Cluster,
        identity: &str,
        rcpts: &[String],
    ) -> Result<(), Reply> {
        let now = now_ms();
        let name = Counter::Recipients.as_str();
        let mut counted: Vec<(CountKey, u64, u64)> = WINDOWS
            .into_iter()
            .zip(self.recipients)
            .map(|(secs, limit)| {
                (
                    CountKey::new(name, identity, secs),
                    limit,
                    rcpts.len() as u64,
                )
            })
            .collect();
        let distinct = CountKey::new(Counter::Distinct.as_str(), identity, DAY);
        let day = window_start(now, distinct.window_ms());
        let hashes: HashSet<u64> = rcpts
            .iter()
            .map(|r| xxhash_rust::xxh3::xxh3_64(r.to_lowercase().as_bytes()))
            .collect();
        let fresh = cluster.shared_counts().unseen(&distinct, day, &hashes);
        counted.push((
            distinct.clone(),
            self.distinct_recipients_per_day,
            fresh.len() as u64,
        ));
        for (key, limit, n) in &counted {
            full(cluster, key, *limit, *n, now)?;
        }
        if self.distinct_recipients_per_day > 0 {
            cluster.shared_counts().see(&distinct, day, fresh);
        }
        for (key, limit, n) in &counted {
            if *limit > 0 && *n > 0 {
                cluster
                    .shared_counts()
                    .add(key, window_start(now, key.window_ms()), *n);
            }
        }
        Ok(())
    }

    /// Every count this node knows of in the windows open now, with its limit; only those
    /// of `name` when it is given.
    pub fn show(&self, cluster: &Cluster, name: Option<&str>) -> Vec<(CountKey, u64, u64)> {
        let now = now_ms();
        let counts = cluster.shared_counts();
        counts
            .open_keys(now)
            .into_iter()
            .filter(|key| name.is_none_or(|n| key.name == n))
            .map(|key| {
                let total = counts.total(&key, window_start(now, key.window_ms()));
                let limit =
                    Counter::parse(&key.counter).map_or(0, |c| self.limit(c, &key.name, key.secs));
                (key, total, limit)
            })
            .collect()
    }
}

/// `Err` (the reply) when adding `n` under `key` would pass `limit` (0: none).
fn full(cluster: &Cluster, key: &CountKey, limit: u64, n: u64, now: i64) -> Result<(), Reply> {
    if limit == 0 {
        return Ok(());
    }
    let total = cluster
        .shared_counts()
        .total(key, window_start(now, key.window_ms()));
    if total + n <= limit {
        return Ok(());
    }
    let unit = Counter::parse(&key.counter).map_or("messages", Counter::unit);
    let window = match key.secs {
        60 => "minute".to_owned(),
        HOUR => "hour".to_owned(),
        DAY => "day".to_owned(),
        secs => format!("{secs} s"),
    };
    Err(Reply::new(
        451,
        format!(
            "4.7.1 {} {} has reached its limit of {limit} {unit} per {window}; try again later",
            key.counter, key.name
        ),
    ))
}

/// Counts recipients the remote servers refused as unknown for `identity` (its mail is
/// refused for the rest of the hour past `invalid_recipients_per_hour`).
pub fn note_invalid(cluster: &Cluster, identity: &str, n: u64) {
    if n == 0 {
        return;
    }
    let key = CountKey::new(Counter::Invalid.as_str(), identity, HOUR);
    let start = window_start(now_ms(), key.window_ms());
    cluster.shared_counts().add(&key, start, n);
}

/// Sends this node's counts to every other member every `SHARE_EVERY`, until `shutdown`.
pub async fn share(cluster: Cluster, mut shutdown: Shutdown) {
    let mut tick = tokio::time::interval(SHARE_EVERY);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = shutdown.wait() => return,
        }
        let report = cluster.shared_counts().report(cluster.id(), now_ms());
        if report.counts.is_empty() {
            continue;
        }
        for addr in peer_addrs(&cluster) {
            let (cluster, report) = (cluster.clone(), report.clone());
            tokio::spawn(async move {
                let sent = cluster.peers().share_counts(&addr, report, SHARE_EVERY);
                if let Err(e) = sent.await {
                    tracing::debug!(peer = %addr, error = %e, "rate-limit counts not shared");
                }
            });
        }
    }
}

/// The peer addresses of every other member.
pub fn peer_addrs(cluster: &Cluster) -> Vec<String> {
    let metrics = cluster.metrics();
    let membership = metrics.membership_config.membership();
    membership
        .nodes()
        .filter(|(id, _)| **id != cluster.id())
        .map(|(_, node)| node.peer_addr.clone())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::{Counter, RateLimits};

    #[test]
    fn an_identity_s_own_limits_win_over_its_principal_s_over_its_domain_s() {
        let limits = RateLimits {
            messages: [60, 600, 3000],
            overrides: [
                ("shop.example".to_owned(), [100, 1000, 5000]),
                ("boss@shop.example".to_owned(), [0, 0, 0]),
                ("platform".to_owned(), [7, 70, 700]),
            ]
            .into(),
            distinct_recipients_per_day: 500,
            ..RateLimits::default()
        };
        assert_eq!(
            limits.messages_of("alice@other.example", "alice@other.example"),
            [60, 600, 3000]
        );
        assert_eq!(
            limits.messages_of("alice@shop.example", "alice@shop.example"),
            [100, 1000, 5000]
        );
        assert_eq!(
            limits.messages_of("boss@shop.example", "platform"),
            [0, 0, 0]
        );
        assert_eq!(
            limits.messages_of("carol@else.example", "platform"),
            [7, 70, 700]
        );
        assert_eq!(limits.limit(Counter::Identity, "shop.example", 3600), 1000);
        assert_eq!(limits.limit(Counter::Distinct, "x", 86_400), 500);
        assert_eq!(limits.limit(Counter::Distinct, "x", 60), 0);
    }
}
