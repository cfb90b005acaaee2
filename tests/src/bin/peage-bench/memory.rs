//! Node memory as list entries grow: `peage-bench memory`.

use std::time::Instant;

use peage_tests::v1::*;
use peage_tests::{add_req, TestCluster, Tuning};

/// Each node's VmRSS in MB, and the time so far.
pub fn print_rss(c: &TestCluster, what: &str, started: Instant) {
    let rss: Vec<String> = (c.nodes.iter())
        .map(|n| {
            n.rss_bytes()
                .map_or("-".into(), |b| format!("{:.0}", b as f64 / 1e6))
        })
        .collect();
    println!(
        "| {what} | {} | {:.0} s |",
        rss.join(" | "),
        started.elapsed().as_secs_f64()
    );
}

pub async fn memory_bench(
    entries: u64,
    writers: u64,
    corpus: std::path::PathBuf,
) -> anyhow::Result<()> {
    let c = TestCluster::start(Tuning {
        snapshot_after_entries: 20_000,
        ..Tuning::default()
    })
    .await?;
    let started = Instant::now();
    println!("| after | node 1 MB | node 2 MB | node 3 MB | time |");
    println!("|---|---:|---:|---:|---:|");
    print_rss(&c, "start", started);
    let mut learner = c.client(0).await?;
    for class in ["spam", "ham"] {
        for message in peage_tests::corpus::load(&corpus.join(class))? {
            let req = LearnRequest {
                message,
                class: class.into(),
            };
            learner.learn(req).await?;
        }
    }
    print_rss(&c, "learning the corpus", started);
    let step = (entries / 10).max(1);
    let mut written = 0;
    while written < entries {
        let batch = step.min(entries - written);
        let mut tasks = tokio::task::JoinSet::new();
        for w in 0..writers {
            let mut client = c.client((w % 3) as usize).await?;
            let first = written;
            tasks.spawn(async move {
                let mut n = w;
                while n < batch {
                    let v = format!("u{}@memory{}.example", first + n, (first + n) % 1000);
                    client
                        .list_add(add_req(EntryKind::Sender, &v, "memory bench"))
                        .await?;
                    n += writers;
                }
                anyhow::Ok(())
            });
        }
        while let Some(done) = tasks.join_next().await {
            done??;
        }
        written += batch;
        print_rss(&c, &format!("{written} list entries"), started);
    }
    Ok(())
}
