//! Benchmarks on a local three-node cluster of real processes: `admin` (write throughput
//! and commit latency by number of concurrent writers), `failover` (SIGKILL the leader →
//! first 250 at another site), `smtp` (time to 250), `submit` (the outbound path: AUTH,
//! filter, DKIM), `filter`, `memory`, `soak` and `tracking` (searches over a long history).
//! Results go to BENCHMARKS.md.

use std::time::{Duration, Instant};

use clap::{Parser, Subcommand};

mod filter;
mod memory;
mod soak;
mod submit;
mod tracking;

use peage_tests::drill::stage::Stage;
use peage_tests::v1::*;
use peage_tests::{add_req, mta, TestCluster, Tuning};

/// The node's allocator, with its settings (`peage_node::allocator`), so that what runs in
/// process here (the filter) costs what it costs in a node.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(about = "Péage cluster benchmarks (start their own local cluster)")]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Admin write throughput and p50/p99 commit latency.
    Admin {
        /// Concurrent writer counts to measure, comma-separated.
        #[arg(long, default_value = "1,16,64", value_delimiter = ',')]
        writers: Vec<usize>,
        /// Seconds per writer count.
        #[arg(long, default_value_t = 10)]
        seconds: u64,
    },
    /// Time from SIGKILL of the leader to the first `250` at another site.
    Failover {
        #[arg(long, default_value_t = 10)]
        trials: usize,
        /// Sites a WAN apart: ops/sites' Raft timing and 15 ms between sites.
        #[arg(long)]
        wan: bool,
    },
    /// End to end: SMTP clients send corpus messages to the three MX; accepted messages/s
    /// and time-to-250 (body on a majority, record committed).
    Smtp {
        #[arg(long, default_value = "1,16,64", value_delimiter = ',')]
        clients: Vec<usize>,
        #[arg(long, default_value_t = 10)]
        seconds: u64,
        /// Directory of .eml files (searched recursively one level: ham/, spam/).
        #[arg(long, default_value = "../shared/corpus/train")]
        corpus: std::path::PathBuf,
        /// Authenticate senders (SPF for HELO and MAIL FROM, DKIM, ARC, DMARC) and ask a
        /// DNSBL and a URI blocklist zone (nothing listed) against a DNS server on loopback
        /// that publishes the bench sender's SPF and DMARC records.
        #[arg(long)]
        auth: bool,
    },
    /// The outbound path: clients log in on 587 (STARTTLS, AUTH) and send as a hosted
    /// account whose domain signs with RSA-2048; accepted messages/s and time to 250.
    Submit {
        #[arg(long, default_value = "1,16", value_delimiter = ',')]
        clients: Vec<usize>,
        #[arg(long, default_value_t = 10)]
        seconds: u64,
    },
    /// The filter alone over the corpus: in-process on one core, then through the admin API.
    Filter {
        #[arg(long, default_value = "../shared/corpus/train")]
        corpus: std::path::PathBuf,
        /// Passes over the corpus in process; the fastest is reported (more passes, less
        /// of a busy machine's noise).
        #[arg(long, default_value_t = 3)]
        passes: usize,
    },
    /// A long run: many messages over the three MX, then the drain; throughput by tenth,
    /// node memory, and disk before and after.
    Soak {
        #[arg(long, default_value_t = 200_000)]
        messages: u64,
        #[arg(long, default_value_t = 32)]
        clients: u64,
        /// Bytes per message.
        #[arg(long, default_value_t = 5000)]
        size: usize,
    },
    /// Message tracking and statistics: writes a history into each node's store, then times
    /// searches through one node (merged across the three).
    Tracking {
        /// Events per node.
        #[arg(long, default_value_t = 1_000_000)]
        events: u64,
        /// Days the history spans (the default retention is 32).
        #[arg(long, default_value_t = 32)]
        days: i64,
        /// Times each search runs.
        #[arg(long, default_value_t = 7)]
        repeat: usize,
    },
    /// Node memory: learns the corpus, then writes list entries through the admin API and
    /// prints each node's resident memory (VmRSS) as they grow.
    Memory {
        /// List entries to write.
        #[arg(long, default_value_t = 1_000_000)]
        entries: u64,
        /// Concurrent writers (spread over the three nodes).
        #[arg(long, default_value_t = 128)]
        writers: u64,
        #[arg(long, default_value = "../shared/corpus/train")]
        corpus: std::path::PathBuf,
    },
}

/// Every .eml under `dir` (and its subdirectories one level down), with CRLF line ends as
/// SMTP carries them.
async fn smtp_bench(
    clients: Vec<usize>,
    seconds: u64,
    corpus: std::path::PathBuf,
    auth: bool,
) -> anyhow::Result<()> {
    let messages = std::sync::Arc::new(peage_tests::corpus::load(&corpus)?);
    let dns = if auth {
        Some(peage_tests::DnsServer::start(
            "127.0.0.1",
            &[
                ("bench.example", "v=spf1 ip4:127.0.0.0/8 -all"),
                ("_dmarc.bench.example", "v=DMARC1; p=none"),
            ],
        )?)
    } else {
        None
    };
    let blocklists = if auth {
        #[derive(serde::Deserialize)]
        struct Zones {
            blocklists: Vec<peage_node::blocklists::Blocklist>,
        }
        let zones = "[[blocklists]]\nzone = \"zen.bench\"\nchecks = \"ip\"\nsymbol = \"ZEN\"\nscore = 4.0\n\
                     [[blocklists]]\nzone = \"dbl.bench\"\nchecks = \"uri\"\nsymbol = \"DBL\"\nscore = 4.0\n";
        toml::from_str::<Zones>(zones)?.blocklists
    } else {
        Vec::new()
    };
    let c = TestCluster::start(Tuning {
        snapshot_after_entries: 20_000,
        dns_server: dns.as_ref().map(|d| d.addr),
        blocklists,
        ..Tuning::default()
    })
    .await?;
    let sink_dir = tempfile::tempdir()?;
    let _sink = peage_tests::SinkProcess::start(&c.sink_addr(), sink_dir.path()).await?;
    c.route_local_domain().await?;
    println!(
        "corpus: {} messages from {}",
        messages.len(),
        corpus.display()
    );
    println!("| clients | accepted/s | p50 ms | p99 ms | 250 | 4xx | 5xx |");
    println!("|---:|---:|---:|---:|---:|---:|---:|");
    for n in clients {
        let deadline = Instant::now() + Duration::from_secs(seconds);
        let mut tasks = Vec::new();
        for t in 0..n {
            let (host, port) = c.nodes[t % 3].smtp_addr();
            let messages = messages.clone();
            // Each client from its own address, as from many MTAs: the per-IP connection
            // limit is not what is measured here.
            let source: std::net::IpAddr = format!("{}.{}", c.net, 100 + t % 100).parse()?;
            tasks.push(tokio::spawn(async move {
                let mut lat = Vec::new();
                let (mut soft, mut hard) = (0u64, 0u64);
                let mut i = t * 7919;
                while Instant::now() < deadline {
                    let connecting = mta::connect(
                        &host,
                        port,
                        source,
                        "bench.example",
                        Duration::from_secs(60),
                    );
                    let Ok(mut client) = connecting.await else {
                        soft += 1;
                        continue;
                    };
                    // A few messages per connection, as an MTA would send them.
                    for _ in 0..10 {
                        if Instant::now() >= deadline {
                            break;
                        }
                        let body = &messages[i % messages.len()];
                        i += 1;
                        let msg = mail_send::smtp::message::Message::new(
                            "sender@bench.example",
                            ["bob@example.test"],
                            body.as_slice(),
                        );
                        let start = Instant::now();
                        match client.send(msg).await {
                            Ok(_) => lat.push(start.elapsed()),
                            Err(mail_send::Error::UnexpectedReply(r)) if r.code() >= 500 => {
                                hard += 1;
                                let _ = client.rset().await;
                            }
                            Err(_) => {
                                soft += 1;
                                break;
                            }
                        }
                    }
                    let _ = client.quit().await;
                }
                (lat, soft, hard)
            }));
        }
        let started = Instant::now();
        let (mut all, mut soft, mut hard) = (Vec::new(), 0, 0);
        for t in tasks {
            let (l, s, h) = t.await?;
            all.extend(l);
            soft += s;
            hard += h;
        }
        let (rate, p50, p99) = rate_and_percentiles(&mut all, started.elapsed());
        println!(
            "| {n} | {rate:.1} | {p50:.1} | {p99:.1} | {} | {soft} | {hard} |",
            all.len()
        );
    }
    Ok(())
}

/// Operations per second over `elapsed`, and the p50 and p99 latencies in ms (sorts `all`).
fn rate_and_percentiles(all: &mut [Duration], elapsed: Duration) -> (f64, f64, f64) {
    all.sort();
    let ms = |p| percentile(all, p).as_secs_f64() * 1000.0;
    (all.len() as f64 / elapsed.as_secs_f64(), ms(0.5), ms(0.99))
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i]
}

async fn admin_bench(writers: Vec<usize>, seconds: u64) -> anyhow::Result<()> {
    let c = TestCluster::start(Tuning {
        snapshot_after_entries: 20_000,
        ..Tuning::default()
    })
    .await?;
    println!("| writers | writes/s | p50 ms | p99 ms | errors |");
    println!("|---:|---:|---:|---:|---:|");
    for (round, w) in writers.into_iter().enumerate() {
        let deadline = Instant::now() + Duration::from_secs(seconds);
        let mut tasks = Vec::new();
        for t in 0..w {
            // Writers are spread over the three nodes: two thirds of them are forwarded.
            let mut client = c.client(t % 3).await?;
            tasks.push(tokio::spawn(async move {
                let mut lat = Vec::new();
                let mut errors = 0u64;
                let mut n = 0u64;
                while Instant::now() < deadline {
                    let v = format!("u{round}-{t}-{n}@bench.example");
                    n += 1;
                    let start = Instant::now();
                    match client
                        .list_add(add_req(EntryKind::Sender, &v, "bench"))
                        .await
                    {
                        Ok(_) => lat.push(start.elapsed()),
                        Err(_) => errors += 1,
                    }
                }
                (lat, errors)
            }));
        }
        let started = Instant::now();
        let mut all = Vec::new();
        let mut errors = 0;
        for t in tasks {
            let (lat, e) = t.await?;
            all.extend(lat);
            errors += e;
        }
        let (rate, p50, p99) = rate_and_percentiles(&mut all, started.elapsed());
        println!("| {w} | {rate:.0} | {p50:.1} | {p99:.1} | {errors} |");
    }
    Ok(())
}

async fn failover_bench(trials: usize, wan: bool) -> anyhow::Result<()> {
    // WAN: the Raft timing of ops/sites and 15 ms between sites (7.5 ms each way, through
    // the drill's link proxies); loopback: the timing of ops/local.
    let (mut stage, mut plain) = (None, None);
    let c: &mut TestCluster = if wan {
        &mut stage
            .insert(Stage::start(Duration::from_micros(7500), false).await?)
            .cluster
    } else {
        let c = TestCluster::start(Tuning::default()).await?;
        c.route_local_domain().await?;
        plain.insert(c)
    };
    let body =
        b"From: a@client.example\r\nTo: bob@example.test\r\nSubject: failover\r\n\r\nHello.\r\n";
    let mut times = Vec::new();
    for trial in 0..trials {
        let leader = c.wait_for_leader_everywhere().await?;
        let survivor = (leader + 1) % 3;
        let dead_id = c.nodes[leader].id;
        let mut watcher = c.client(survivor).await?;
        c.kill(leader);
        let killed = Instant::now();
        // When the survivor first names a new leader: the election's share of the outage.
        let elected = tokio::spawn(async move {
            loop {
                if let Ok(s) = watcher.status(StatusRequest::default()).await {
                    if s.into_inner().leader_id.is_some_and(|l| l != dead_id) {
                        return killed.elapsed();
                    }
                }
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        });
        let mut refusals = 0u64;
        while let Err(e) = c
            .send_all(
                survivor,
                "a@client.example",
                "bob@example.test",
                vec![body.to_vec()],
                1,
            )
            .await
        {
            refusals += 1;
            if killed.elapsed() > Duration::from_secs(60) {
                anyhow::bail!("no 250 at another site 60 s after killing the leader: {e}");
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let t = killed.elapsed();
        let elected = elected.await?;
        println!(
            "trial {trial}: killed node {dead_id} → new leader known at node {} after {:.0} ms, first 250 there after {:.0} ms ({refusals} tries refused)",
            c.nodes[survivor].id,
            elected.as_secs_f64() * 1000.0,
            t.as_secs_f64() * 1000.0
        );
        times.push(t);
        c.start_node(leader)?;
        let target = c.status(survivor).await?.last_applied;
        c.wait_applied(leader, target).await?;
    }
    times.sort();
    println!(
        "failover ({} timing) over {trials} trials: median {:.0} ms, max {:.0} ms",
        if wan { "WAN" } else { "loopback" },
        percentile(&times, 0.5).as_secs_f64() * 1000.0,
        times.last().copied().unwrap_or_default().as_secs_f64() * 1000.0
    );
    Ok(())
}

fn main() -> anyhow::Result<()> {
    peage_node::allocator::settle();
    let cli = Cli::parse();
    tokio::runtime::Runtime::new()?.block_on(run(cli))
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.cmd {
        Cmd::Admin { writers, seconds } => admin_bench(writers, seconds).await,
        Cmd::Failover { trials, wan } => failover_bench(trials, wan).await,
        Cmd::Smtp {
            clients,
            seconds,
            corpus,
            auth,
        } => smtp_bench(clients, seconds, corpus, auth).await,
        Cmd::Submit { clients, seconds } => submit::submit_bench(clients, seconds).await,
        Cmd::Filter { corpus, passes } => filter::filter_bench(corpus, passes).await,
        Cmd::Memory {
            entries,
            writers,
            corpus,
        } => memory::memory_bench(entries, writers, corpus).await,
        Cmd::Soak {
            messages,
            clients,
            size,
        } => soak::soak_bench(messages, clients, size).await,
        Cmd::Tracking {
            events,
            days,
            repeat,
        } => tracking::tracking_bench(events, days, repeat).await,
    }
}
