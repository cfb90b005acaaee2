//! Statistics for operators and domain admins: every node's hourly roll-ups, asked for by the
//! contacted node, summed into hours or days, with the most frequent senders, recipients and
//! client networks across the nodes that answered.

use std::collections::{BTreeMap, HashMap};

use tonic::Status;

use peage_proto::v1::{StatsBucket, StatsQuery, StatsReply, StatsRows, TopCount};

use super::auth::Scope;
use super::service::AdminService;
use super::tracking::{ask_members, PEER_TIMEOUT};
use super::validate::invalid;
use crate::tracking::HOUR_MS;

const DAY_MS: i64 = 24 * HOUR_MS;
/// The most top keys of each kind a reply carries.
pub const MAX_TOP: u32 = 100;

/// The counts `q` asks for, within the caller's domains: a domain out of scope is refused,
/// and no domain at all means all of the caller's (the whole node for a token bound to none).
pub async fn stats(
    svc: &AdminService,
    scope: &Scope,
    mut q: StatsQuery,
) -> Result<StatsReply, Status> {
    for domain in &q.domains {
        scope.require_domain(domain.trim().trim_start_matches('@'))?;
    }
    q.scope = scope.domains().to_vec();
    let width = match q.by.as_str() {
        "" | "hour" => HOUR_MS,
        "day" => DAY_MS,
        other => return Err(invalid(format!("by: hour or day, not {other:?}"))),
    };
    if q.top > MAX_TOP {
        return Err(invalid(format!("top: at most {MAX_TOP}")));
    }
    if q.until_ms != 0 && q.since_ms > q.until_ms {
        return Err(invalid("since is after until"));
    }
    let top = match q.top {
        0 => 10,
        n => n as usize,
    };
    let searched = ask_members(
        svc,
        &q,
        |q| svc.cluster.tracking().stats(q),
        |addr, q| async move {
            let peers = svc.cluster.peers();
            peers.stats_search(&addr, q, PEER_TIMEOUT).await
        },
    );
    let (answers, unreachable) = searched.await;
    Ok(StatsReply {
        unreachable,
        ..merge(answers, width, top)
    })
}

/// Sums what the nodes counted into buckets `width` ms wide (aligned on UTC), and keeps the
/// `top` most frequent keys of each kind.
pub fn merge(answers: Vec<StatsRows>, width: i64, top: usize) -> StatsReply {
    let mut buckets: BTreeMap<i64, HashMap<String, i64>> = BTreeMap::new();
    let mut totals: HashMap<String, i64> = HashMap::new();
    let mut keys: HashMap<(String, String), i64> = HashMap::new();
    for answer in answers {
        for row in answer.rows {
            let start = row.hour_ms - row.hour_ms.rem_euclid(width);
            let bucket = buckets.entry(start).or_default();
            *bucket.entry(row.counter.clone()).or_default() += row.value;
            *totals.entry(row.counter).or_default() += row.value;
        }
        for t in answer.top {
            *keys.entry((t.kind, t.key)).or_default() += t.count;
        }
    }
    let mut ranked: Vec<TopCount> = keys
        .into_iter()
        .map(|((kind, key), count)| TopCount { kind, key, count })
        .collect();
    ranked.sort_by(|a, b| {
        (a.kind.as_str(), b.count, a.key.as_str()).cmp(&(b.kind.as_str(), a.count, b.key.as_str()))
    });
    let mut taken: HashMap<String, usize> = HashMap::new();
    ranked.retain(|t| {
        let n = taken.entry(t.kind.clone()).or_default();
        *n += 1;
        *n <= top
    });
    StatsReply {
        buckets: buckets
            .into_iter()
            .map(|(start_ms, counters)| StatsBucket {
                start_ms,
                counters: counters.into_iter().collect(),
            })
            .collect(),
        totals: totals.into_iter().collect(),
        top: ranked,
        unreachable: Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use peage_proto::v1::StatsRow;

    fn row(hour_ms: i64, counter: &str, value: i64) -> StatsRow {
        StatsRow {
            hour_ms,
            counter: counter.into(),
            value,
        }
    }

    fn key(kind: &str, key: &str, count: i64) -> TopCount {
        TopCount {
            kind: kind.into(),
            key: key.into(),
            count,
        }
    }

    #[test]
    fn nodes_are_summed_into_days_and_the_top_is_ranked_across_them() {
        let day = DAY_MS * 20_000;
        let paris = StatsRows {
            rows: vec![
                row(day, "received", 2),
                row(day + 5 * HOUR_MS, "received", 1),
            ],
            top: vec![key("sender", "a@x", 3), key("sender", "b@x", 2)],
        };
        let roubaix = StatsRows {
            rows: vec![row(day + DAY_MS, "received", 4), row(day, "spam", 1)],
            top: vec![key("sender", "b@x", 2), key("network", "192.0.2.0/24", 1)],
        };
        let reply = merge(vec![paris, roubaix], DAY_MS, 1);
        let starts: Vec<i64> = reply.buckets.iter().map(|b| b.start_ms).collect();
        assert_eq!(starts, vec![day, day + DAY_MS]);
        assert_eq!(reply.buckets[0].counters["received"], 3);
        assert_eq!(reply.buckets[0].counters["spam"], 1);
        assert_eq!(reply.totals["received"], 7);
        assert_eq!(
            reply.top,
            vec![key("network", "192.0.2.0/24", 1), key("sender", "b@x", 4)]
        );
        let by_hour = merge(vec![reply_rows()], HOUR_MS, 10);
        assert_eq!(by_hour.buckets.len(), 2);
    }

    fn reply_rows() -> StatsRows {
        StatsRows {
            rows: vec![row(0, "received", 1), row(HOUR_MS, "received", 1)],
            top: Vec::new(),
        }
    }
}
