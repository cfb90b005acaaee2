//! Statistics: the hourly roll-ups of what this node's tracking events counted, for the node
//! as a whole and per hosted domain, updated in the transaction that inserts the events and
//! read back summed over the domains a query asks for.
//!
//! An incoming message counts for each of its recipients' domains, an outgoing one for its
//! sender's. Messages are counted once per domain (`received`, `bytes`, `ham`, `spam`,
//! `virus`, `outbound`, `quarantined`, `rejected`, `rejected:REASON`, `released`); recipients
//! one by one (`refused`, `refused:CODE`, `delivered`, `deferred`, `bounced`).

use std::collections::HashMap;
use std::net::IpAddr;

use rusqlite::types::Value;
use rusqlite::{params, Connection, Transaction};

use peage_proto::v1::{StatsQuery, StatsRow, StatsRows, TopCount, TrackEvent};

pub const HOUR_MS: i64 = 3_600_000;

/// Top keys a node returns of each kind, more than asked so that merging across nodes
/// rarely misses one that is frequent overall but not on any single node.
const TOP_PER_NODE: u32 = 1000;

pub const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS hourly (
    -- Its labels in reverse order (`test.example.mail`), so that a domain and its
    -- subdomains are one range of the key; '' for the node's total.
    domain TEXT NOT NULL,
    -- The hour's start, in ms since the epoch (UTC).
    hour INTEGER NOT NULL,
    counter TEXT NOT NULL,
    value INTEGER NOT NULL,
    PRIMARY KEY (domain, hour, counter)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS hourly_top (
    domain TEXT NOT NULL,
    hour INTEGER NOT NULL,
    -- sender, recipient or network.
    kind TEXT NOT NULL,
    key TEXT NOT NULL,
    count INTEGER NOT NULL,
    PRIMARY KEY (domain, hour, kind, key)
) WITHOUT ROWID;
";

/// How much one event adds to a counter in one domain.
enum Amount {
    /// The same for every domain the event counts in.
    Each(i64),
    /// The event's recipients in that domain.
    Recipients,
}

/// The counters an event adds to.
fn counters(e: &TrackEvent) -> Vec<(String, Amount)> {
    let mut c = Vec::new();
    let reason = |e: &TrackEvent| match e.reason.is_empty() {
        true => "other".to_owned(),
        false => e.reason.clone(),
    };
    match e.kind.as_str() {
        "accepted" | "quarantined" | "rejected" => {
            c.push(("received".to_owned(), Amount::Each(1)));
            c.push(("bytes".to_owned(), Amount::Each(e.size as i64)));
            if !e.class.is_empty() {
                c.push((e.class.clone(), Amount::Each(1)));
            }
            if e.outbound {
                c.push(("outbound".to_owned(), Amount::Each(1)));
            }
            if e.kind != "accepted" {
                c.push((e.kind.clone(), Amount::Each(1)));
            }
            if e.kind == "rejected" {
                c.push((format!("rejected:{}", reason(e)), Amount::Each(1)));
            }
        }
        "refused" => {
            c.push(("refused".to_owned(), Amount::Recipients));
            c.push((format!("refused:{}", reason(e)), Amount::Recipients));
        }
        "released" | "expired" => c.push((e.kind.clone(), Amount::Each(1))),
        "delivered" | "deferred" | "bounced" => c.push((e.kind.clone(), Amount::Recipients)),
        _ => {}
    }
    c
}

/// An address's domain as the tables key it: lower-case, labels reversed.
fn domain_of(address: &str) -> String {
    reversed(address.rsplit_once('@').map_or("", |(_, d)| d))
}

/// `mail.example.test` → `test.example.mail`, lower-cased.
fn reversed(domain: &str) -> String {
    let labels: Vec<&str> = domain.split('.').rev().collect();
    labels.join(".").to_lowercase()
}

/// The domains an event counts for, each with the event's recipients there: the node's
/// total (`""`, all of them), then the recipients' domains, or the sender's for outgoing mail.
fn shares(e: &TrackEvent) -> Vec<(String, Vec<String>)> {
    let recipients: Vec<String> = e.recipients.iter().map(|r| r.to_lowercase()).collect();
    let mut shares = vec![(String::new(), recipients.clone())];
    if e.outbound {
        let domain = domain_of(&e.sender);
        if !domain.is_empty() {
            shares.push((domain, recipients));
        }
        return shares;
    }
    for rcpt in recipients {
        let domain = domain_of(&rcpt);
        match shares.iter_mut().skip(1).find(|(d, _)| *d == domain) {
            Some((_, there)) => there.push(rcpt),
            None => shares.push((domain, vec![rcpt])),
        }
    }
    shares
}

/// The client's network as counted: its /24 (IPv4) or /48 (IPv6).
fn network_of(client_ip: &str) -> Option<String> {
    match client_ip.parse::<IpAddr>().ok()? {
        IpAddr::V4(v4) => {
            let [a, b, c, _] = v4.octets();
            Some(format!("{a}.{b}.{c}.0/24"))
        }
        IpAddr::V6(v6) => {
            let s = v6.segments();
            Some(format!("{:x}:{:x}:{:x}::/48", s[0], s[1], s[2]))
        }
    }
}

/// Messages and recipients counted, by counter: the node's totals of `stats`.
pub const MAIL_COUNTED: &str = "peage_mail_counted_total";
/// Rejections by main symbol and refusals by status code.
pub const MAIL_REASONS: &str = "peage_mail_reasons_total";

/// Adds `e` to this node's Prometheus counters (the same numbers as its `stats` totals).
pub fn observe(e: &TrackEvent) {
    for (counter, amount) in counters(e) {
        let value = match amount {
            Amount::Each(n) => n,
            Amount::Recipients => e.recipients.len() as i64,
        };
        let value = value.max(0) as u64;
        match counter.split_once(':') {
            Some((what, why)) => metrics::counter!(
                MAIL_REASONS, "counter" => what.to_owned(), "reason" => why.to_owned()
            )
            .increment(value),
            None => metrics::counter!(MAIL_COUNTED, "counter" => counter).increment(value),
        }
    }
}

/// Sums of one batch, applied to the tables at once.
#[derive(Default)]
pub struct Rollup {
    counters: HashMap<(i64, String, String), i64>,
    top: HashMap<(i64, String, &'static str, String), i64>,
}

impl Rollup {
    pub fn add(&mut self, e: &TrackEvent) {
        let hour = e.at_ms - e.at_ms.rem_euclid(HOUR_MS);
        let counters = counters(e);
        if counters.is_empty() {
            return;
        }
        let seen = matches!(
            e.kind.as_str(),
            "accepted" | "quarantined" | "rejected" | "refused"
        );
        for (domain, recipients) in shares(e) {
            for (counter, amount) in &counters {
                let value = match amount {
                    Amount::Each(n) => *n,
                    Amount::Recipients => recipients.len() as i64,
                };
                *self
                    .counters
                    .entry((hour, domain.clone(), counter.clone()))
                    .or_default() += value;
            }
            if !seen {
                continue;
            }
            let sender = match e.sender.is_empty() {
                true => "<>".to_owned(),
                false => e.sender.to_lowercase(),
            };
            let keys = recipients
                .into_iter()
                .map(|r| ("recipient", r))
                .chain([("sender", sender)])
                .chain(network_of(&e.client_ip).map(|n| ("network", n)));
            for (kind, key) in keys {
                *self
                    .top
                    .entry((hour, domain.clone(), kind, key))
                    .or_default() += 1;
            }
        }
    }

    pub fn write(self, tx: &Transaction<'_>) -> rusqlite::Result<()> {
        let mut counter = tx.prepare_cached(
            "INSERT INTO hourly (hour, domain, counter, value) VALUES (?1, ?2, ?3, ?4)
             ON CONFLICT (domain, hour, counter) DO UPDATE SET value = value + excluded.value",
        )?;
        for ((hour, domain, name), value) in self.counters {
            counter.execute(params![hour, domain, name, value])?;
        }
        let mut top = tx.prepare_cached(
            "INSERT INTO hourly_top (hour, domain, kind, key, count) VALUES (?1, ?2, ?3, ?4, ?5)
             ON CONFLICT (domain, hour, kind, key) DO UPDATE SET count = count + excluded.count",
        )?;
        for ((hour, domain, kind, key), count) in self.top {
            top.execute(params![hour, domain, kind, key, count])?;
        }
        Ok(())
    }
}

/// The WHERE clause selecting the hours and domains `q` asks for, and its values.
fn selection(q: &StatsQuery) -> (String, Vec<Value>) {
    let mut clauses = vec!["hour >= ?".to_owned(), "hour <= ?".to_owned()];
    let since = q.since_ms - q.since_ms.rem_euclid(HOUR_MS);
    let until = match q.until_ms {
        0 => i64::MAX,
        ms => ms,
    };
    let mut values = vec![Value::Integer(since), Value::Integer(until)];
    let domains = match q.domains.is_empty() {
        true => &q.scope,
        false => &q.domains,
    };
    if domains.is_empty() {
        clauses.push("domain = ''".to_owned());
    } else {
        let mut any = Vec::new();
        for domain in domains {
            let key = reversed(domain.trim().trim_start_matches('@'));
            // The domain, then its subdomains: every key from `KEY.` up to `KEY/` ('/' is
            // the character after '.').
            any.push("domain = ? OR (domain > ? AND domain < ?)");
            values.push(Value::Text(key.clone()));
            values.push(Value::Text(format!("{key}.")));
            values.push(Value::Text(format!("{key}/")));
        }
        clauses.push(format!("({})", any.join(" OR ")));
    }
    (clauses.join(" AND "), values)
}

/// This node's counters and top keys that match `q`, summed over its domains.
pub fn search(conn: &Connection, q: &StatsQuery) -> rusqlite::Result<StatsRows> {
    let (filter, values) = selection(q);
    let mut stmt = conn.prepare(&format!(
        "SELECT hour, counter, SUM(value) FROM hourly WHERE {filter}
         GROUP BY hour, counter ORDER BY hour"
    ))?;
    let rows = stmt
        .query_map(rusqlite::params_from_iter(values.clone()), |r| {
            Ok(StatsRow {
                hour_ms: r.get(0)?,
                counter: r.get(1)?,
                value: r.get(2)?,
            })
        })?
        .collect::<rusqlite::Result<_>>()?;
    let mut stmt = conn.prepare(&format!(
        "SELECT kind, key, total FROM (
           SELECT kind, key, SUM(count) AS total,
             ROW_NUMBER() OVER (PARTITION BY kind ORDER BY SUM(count) DESC, key) AS rank
           FROM hourly_top WHERE {filter} GROUP BY kind, key)
         WHERE rank <= {TOP_PER_NODE}"
    ))?;
    let top = stmt
        .query_map(rusqlite::params_from_iter(values), |r| {
            Ok(TopCount {
                kind: r.get(0)?,
                key: r.get(1)?,
                count: r.get(2)?,
            })
        })?
        .collect::<rusqlite::Result<_>>()?;
    Ok(StatsRows { rows, top })
}

/// Deletes the hours that ended before `before_ms`; how many rows.
pub fn prune(conn: &Connection, before_ms: i64) -> rusqlite::Result<usize> {
    let last_gone = before_ms - HOUR_MS;
    Ok(
        conn.execute("DELETE FROM hourly WHERE hour <= ?1", [last_gone])?
            + conn.execute("DELETE FROM hourly_top WHERE hour <= ?1", [last_gone])?,
    )
}

#[cfg(test)]
mod tests;
