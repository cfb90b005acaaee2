//! Benchmarks of the cluster core on a local three-node cluster of real processes:
//! `admin` (write throughput and commit latency by number of concurrent writers) and
//! `failover` (SIGKILL the leader → first successful write). Results go to BENCHMARKS.md.

use std::time::{Duration, Instant};

use clap::{Parser, Subcommand};

use peage_tests::v1::*;
use peage_tests::{add_req, TestCluster, Tuning};

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
    /// Time from SIGKILL of the leader to the first successful write.
    Failover {
        #[arg(long, default_value_t = 10)]
        trials: usize,
    },
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
        let elapsed = started.elapsed().as_secs_f64();
        all.sort();
        println!(
            "| {w} | {:.0} | {:.1} | {:.1} | {errors} |",
            all.len() as f64 / elapsed,
            percentile(&all, 0.5).as_secs_f64() * 1000.0,
            percentile(&all, 0.99).as_secs_f64() * 1000.0,
        );
    }
    Ok(())
}

async fn failover_bench(trials: usize) -> anyhow::Result<()> {
    let mut c = TestCluster::start(Tuning::default()).await?;
    let mut times = Vec::new();
    for trial in 0..trials {
        let leader = c.wait_for_leader_everywhere().await?;
        let survivor = (leader + 1) % 3;
        let mut client = c.client(survivor).await?;
        c.kill(leader);
        let killed = Instant::now();
        let mut attempt = 0u64;
        loop {
            attempt += 1;
            let mut req = tonic::Request::new(add_req(
                EntryKind::Sender,
                &format!("t{trial}-{attempt}@failover.example"),
                "failover",
            ));
            req.set_timeout(Duration::from_secs(2));
            if client.list_add(req).await.is_ok() {
                break;
            }
            if killed.elapsed() > Duration::from_secs(60) {
                anyhow::bail!("no successful write 60 s after killing the leader");
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let t = killed.elapsed();
        println!(
            "trial {trial}: killed node {} → first write after {:.0} ms",
            c.nodes[leader].id,
            t.as_secs_f64() * 1000.0
        );
        times.push(t);
        c.start_node(leader)?;
        let target = c.status(survivor).await?.last_applied;
        c.wait_applied(leader, target).await?;
    }
    times.sort();
    println!(
        "failover over {trials} trials: median {:.0} ms, max {:.0} ms",
        percentile(&times, 0.5).as_secs_f64() * 1000.0,
        times.last().copied().unwrap_or_default().as_secs_f64() * 1000.0
    );
    Ok(())
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    match Cli::parse().cmd {
        Cmd::Admin { writers, seconds } => admin_bench(writers, seconds).await,
        Cmd::Failover { trials } => failover_bench(trials).await,
    }
}
