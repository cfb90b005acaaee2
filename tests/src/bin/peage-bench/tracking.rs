//! Message tracking and statistics over a long history: `peage-bench tracking` writes
//! `events` synthetic events spread over `days` into each of the three nodes' tracking
//! stores (with their roll-ups, as the writer would have), starts the nodes and times
//! searches through one node, which fans each out to all three and merges the answers.

use std::time::{Duration, Instant};

use peage_tests::v1::*;
use peage_tests::{wait_for, TestCluster, Tuning};

const DAY_MS: i64 = 86_400_000;

/// A cheap deterministic generator (SplitMix64): the same history on every run.
fn mix(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^ (x >> 31)
}

/// Event `k` of node `node`: 1,000 hosted domains of 100 mailboxes, 10,000 senders,
/// 50,000 client addresses; most messages accepted then delivered, some rejected, refused,
/// deferred or quarantined. The oldest event of each node is to `needle@rare.example`.
fn event(node: u64, k: u64, events: u64, now_ms: i64, span_ms: i64) -> TrackEvent {
    let r = mix(node << 40 | k);
    // The oldest an hour inside the span, so that pruning at start leaves it.
    let span_ms = span_ms - 3_600_000;
    let at_ms = now_ms - span_ms + (k as i128 * span_ms as i128 / events as i128) as i64;
    let message = k / 2;
    let kind = match r % 100 {
        0..=39 => "accepted",
        40..=79 => "delivered",
        80..=84 => "deferred",
        85..=92 => "rejected",
        93..=97 => "refused",
        _ => "quarantined",
    };
    let user = r >> 8;
    let rcpt = match k {
        0 => "needle@rare.example".to_owned(),
        _ => format!("rcpt{}@domain{}.example", user % 100, (user >> 7) % 1000),
    };
    let client = (r >> 24) % 50_000;
    TrackEvent {
        at_ms,
        node_id: node,
        site: format!("site{node}"),
        kind: kind.into(),
        queue_id: format!("N{node}Q{message:010}"),
        message_id: format!("{message}.{node}@mua.example"),
        sender: format!(
            "user{}@sender{}.example",
            (r >> 32) % 10_000,
            (r >> 32) % 500
        ),
        recipients: vec![rcpt],
        client_ip: format!("198.18.{}.{}", client / 250, client % 250 + 1),
        helo: "mua.example".into(),
        verdict: match kind {
            "rejected" => "reject",
            "quarantined" => "quarantine",
            _ => "deliver",
        }
        .into(),
        score_milli: (r % 20_000) as i64 - 5_000,
        detail: "250 2.0.0 Ok: queued as 4F2A".into(),
        size: 2_000 + (r >> 16) % 50_000,
        class: if kind == "rejected" { "spam" } else { "ham" }.into(),
        reason: if kind == "rejected" { "BAYES_SPAM" } else { "" }.into(),
        ..TrackEvent::default()
    }
}

/// Runs `ask` `repeat` times: the middle and the longest time in ms, and what it counted.
async fn timed<F, Fut>(repeat: usize, mut ask: F) -> anyhow::Result<(f64, f64, usize)>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<usize>>,
{
    let mut times = Vec::new();
    let mut found = 0;
    for _ in 0..repeat {
        let started = Instant::now();
        found = ask().await?;
        times.push(started.elapsed().as_secs_f64() * 1000.0);
    }
    times.sort_by(f64::total_cmp);
    Ok((times[times.len() / 2], times[times.len() - 1], found))
}

fn searches(now_ms: i64, events: u64) -> Vec<(&'static str, TrackQuery)> {
    let q = TrackQuery::default;
    let message = events / 4;
    vec![
        ("latest 100, no filter", q()),
        (
            "queue id (indexed)",
            TrackQuery {
                queue_id: format!("N1Q{message:010}"),
                ..q()
            },
        ),
        (
            "Message-ID (indexed)",
            TrackQuery {
                message_id: format!("<{message}.2@mua.example>"),
                ..q()
            },
        ),
        (
            "client IP (indexed)",
            TrackQuery {
                client_ip: "198.18.7.7".into(),
                ..q()
            },
        ),
        (
            "one mailbox, 1 in 100,000 events (substring)",
            TrackQuery {
                recipient: "rcpt7@domain7.example".into(),
                ..q()
            },
        ),
        (
            "a domain, 100 newest",
            TrackQuery {
                domain: "domain7.example".into(),
                ..q()
            },
        ),
        (
            "rejections of the last day",
            TrackQuery {
                verdict: "reject".into(),
                since_ms: now_ms - DAY_MS,
                limit: 1000,
                ..q()
            },
        ),
        (
            "one day 10 days ago, 1000",
            TrackQuery {
                since_ms: now_ms - 11 * DAY_MS,
                until_ms: now_ms - 10 * DAY_MS,
                limit: 1000,
                ..q()
            },
        ),
        (
            "a recipient seen once, 32 days ago (whole scan)",
            TrackQuery {
                recipient: "needle@rare.example".into(),
                ..q()
            },
        ),
    ]
}

fn stats_queries(now_ms: i64) -> Vec<(&'static str, StatsQuery)> {
    vec![
        (
            "stats: whole cluster, 32 days by day, top 10",
            StatsQuery {
                since_ms: now_ms - 32 * DAY_MS,
                by: "day".into(),
                ..StatsQuery::default()
            },
        ),
        (
            "stats: whole cluster, last day by hour",
            StatsQuery {
                since_ms: now_ms - DAY_MS,
                ..StatsQuery::default()
            },
        ),
        (
            "stats: one domain, 32 days by day",
            StatsQuery {
                domains: vec!["domain7.example".into()],
                since_ms: now_ms - 32 * DAY_MS,
                by: "day".into(),
                ..StatsQuery::default()
            },
        ),
    ]
}

pub async fn tracking_bench(events: u64, days: i64, repeat: usize) -> anyhow::Result<()> {
    let mut c = TestCluster::start(Tuning::default()).await?;
    for i in 0..3 {
        c.stop(i, Duration::from_secs(10));
    }
    let now_ms = peage_node::clock::now_ms();
    let span_ms = days * DAY_MS;
    let started = Instant::now();
    let fills = (0..3).map(|i| {
        let dir = c.nodes[i].data_dir.clone();
        let node = c.nodes[i].id;
        std::thread::spawn(move || {
            let history = (0..events).map(|k| event(node, k, events, now_ms, span_ms));
            peage_node::tracking::write_history(&dir, history)
        })
    });
    for fill in fills.collect::<Vec<_>>() {
        fill.join()
            .map_err(|_| anyhow::anyhow!("a fill panicked"))??;
    }
    println!(
        "{events} events over {days} days written into each of the 3 stores in {:.0} s",
        started.elapsed().as_secs_f64()
    );
    for n in &c.nodes {
        let bytes = std::fs::metadata(n.data_dir.join("tracking.sqlite"))?.len();
        println!("{}: tracking.sqlite {:.0} MB", n.site, bytes as f64 / 1e6);
    }
    for i in 0..3 {
        c.start_node(i)?;
    }
    let mut admin = wait_for("all three nodes answering", Duration::from_secs(60), || {
        let c = &c;
        async move {
            let mut a = c.client(0).await.ok()?;
            let probe = TrackQuery {
                limit: 1,
                ..TrackQuery::default()
            };
            let r = a.track(probe).await.ok()?.into_inner();
            r.unreachable.is_empty().then_some(a)
        }
    })
    .await?;
    println!("\n| search through one node (3 stores) | events | p50 ms | max ms |");
    println!("|---|---:|---:|---:|");
    for (label, q) in searches(now_ms, events) {
        let a = &mut admin;
        let (p50, max, found) = timed(repeat, || {
            let q = q.clone();
            let mut a = a.clone();
            async move { Ok(a.track(q).await?.into_inner().events.len()) }
        })
        .await?;
        println!("| {label} | {found} | {p50:.1} | {max:.1} |");
    }
    for (label, q) in stats_queries(now_ms) {
        let a = &mut admin;
        let (p50, max, received) = timed(repeat, || {
            let q = q.clone();
            let mut a = a.clone();
            async move {
                let r = a.stats(q).await?.into_inner();
                Ok(r.totals.get("received").copied().unwrap_or(0) as usize)
            }
        })
        .await?;
        println!("| {label} | {received} received | {p50:.1} | {max:.1} |");
    }
    Ok(())
}
