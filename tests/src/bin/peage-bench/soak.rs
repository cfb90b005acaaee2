//! A long run through the mail path, `peage-bench soak`: many messages over the three MX to
//! a `peage sink`, then the drain; throughput by tenth of the load, each node's memory, and
//! each node's disk (data directory, blobs, state database) before and after.

use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use peage_tests::v1::*;
use peage_tests::{mta, wait_for, TestCluster, Tuning};

use super::memory::print_rss;

/// Bytes under `dir`, recursively.
fn disk_bytes(dir: &Path) -> u64 {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    entries
        .flatten()
        .map(|e| match e.metadata() {
            Ok(m) if m.is_dir() => disk_bytes(&e.path()),
            Ok(m) => m.len(),
            Err(_) => 0,
        })
        .sum()
}

fn print_disk(c: &TestCluster, what: &str) {
    for n in &c.nodes {
        let mb = |p: &Path| disk_bytes(p) as f64 / 1e6;
        let file = |name: &str| {
            let path = n.data_dir.join(name);
            // SQLite's write-ahead file holds part of the data between checkpoints.
            let wal = n.data_dir.join(format!("{name}-wal"));
            [path, wal]
                .iter()
                .map(|p| std::fs::metadata(p).map_or(0, |m| m.len()))
                .sum::<u64>() as f64
                / 1e6
        };
        println!(
            "disk {what}, node {}: data dir {:.1} MB (raft-log {:.1}, blobs {:.1}, state.sqlite {:.1}, \
             tracking.sqlite {:.1}: the message history, kept `tracking.retention_days`)",
            n.id,
            mb(&n.data_dir),
            mb(&n.data_dir.join("raft-log")),
            mb(&n.data_dir.join("blobs")),
            file("state.sqlite"),
            file("tracking.sqlite"),
        );
    }
}

/// A message of about `size` bytes, unique by `n`.
fn message(n: u64, size: usize) -> Vec<u8> {
    let head = format!(
        "From: alice@client.example\r\nTo: bob@example.test\r\nSubject: soak {n}\r\nMessage-ID: <soak-{n}@client.example>\r\n\r\n"
    );
    let line = "The quick brown fox jumps over the lazy dog, again and again.\r\n";
    let mut body = head.into_bytes();
    while body.len() < size {
        body.extend_from_slice(line.as_bytes());
    }
    body
}

/// The times at which each tenth of the messages had been accepted.
struct Progress {
    accepted: AtomicU64,
    tenth: u64,
    marks: Mutex<Vec<Instant>>,
    deferred: AtomicU64,
}

impl Progress {
    fn accepted_one(&self) {
        let n = self.accepted.fetch_add(1, Ordering::Relaxed) + 1;
        if n.is_multiple_of(self.tenth) {
            if let Ok(mut marks) = self.marks.lock() {
                marks.push(Instant::now());
            }
        }
    }
}

/// One client: messages taken from `next` until `total`, ten per connection, each retried
/// after a `4xx` (as a sending MTA would).
async fn client(
    c: Arc<TestCluster>,
    k: u64,
    next: Arc<AtomicU64>,
    total: u64,
    size: usize,
    p: Arc<Progress>,
) -> anyhow::Result<()> {
    let (host, port) = c.nodes[(k % 3) as usize].smtp_addr();
    let source = c.client_source(k).parse()?;
    let timeout = Duration::from_secs(30);
    let mut pending: Option<u64> = None;
    loop {
        let mut session = mta::connect(&host, port, source, "mta.soak.example", timeout).await?;
        for _ in 0..10 {
            let n = match pending.take() {
                Some(n) => n,
                None => next.fetch_add(1, Ordering::Relaxed),
            };
            if n >= total {
                let _ = session.quit().await;
                return Ok(());
            }
            let body = message(n, size);
            let m = mail_send::smtp::message::Message::new(
                "alice@client.example",
                ["bob@example.test"],
                body.as_slice(),
            );
            match session.send(m).await {
                Ok(_) => p.accepted_one(),
                Err(_) => {
                    p.deferred.fetch_add(1, Ordering::Relaxed);
                    pending = Some(n);
                    break;
                }
            }
        }
    }
}

pub async fn soak_bench(messages: u64, clients: u64, size: usize) -> anyhow::Result<()> {
    let c = Arc::new(TestCluster::start(Tuning::default()).await?);
    let sink_dir = tempfile::tempdir()?;
    let sink = peage_tests::SinkProcess::start(&c.sink_addr(), sink_dir.path()).await?;
    c.route_local_domain().await?;
    print_disk(&c, "at the start");
    let started = Instant::now();
    println!("| after | node 1 MB | node 2 MB | node 3 MB | time |");
    println!("|---|---:|---:|---:|---:|");
    print_rss(&c, "start", started);
    let progress = Arc::new(Progress {
        accepted: AtomicU64::new(0),
        tenth: (messages / 10).max(1),
        marks: Mutex::new(vec![Instant::now()]),
        deferred: AtomicU64::new(0),
    });
    let next = Arc::new(AtomicU64::new(0));
    let mut tasks = tokio::task::JoinSet::new();
    for k in 0..clients {
        let (c, next, p) = (c.clone(), next.clone(), progress.clone());
        tasks.spawn(client(c, k, next, messages, size, p));
    }
    let mut reported = 0;
    while !tasks.is_empty() {
        tokio::select! {
            done = tasks.join_next() => { if let Some(done) = done { done??; } }
            _ = tokio::time::sleep(Duration::from_secs(1)) => {}
        }
        let tenths = progress.accepted.load(Ordering::Relaxed) / progress.tenth;
        if tenths > reported {
            reported = tenths;
            print_rss(
                &c,
                &format!("{} accepted", tenths * progress.tenth),
                started,
            );
        }
    }
    let sent_in = started.elapsed();
    let drained = wait_for("the queues drain", Duration::from_secs(600), || {
        let c = &c;
        async move {
            for i in 0..3 {
                let left = c
                    .metric(i, "peage_spool_messages{state=\"queued\"}")
                    .await?;
                if left > 0.0 {
                    return None;
                }
            }
            Some(())
        }
    })
    .await;
    let drained_in = started.elapsed();
    print_rss(&c, "the drain", started);
    let delivered = sink.messages("bob@example.test").len();
    let marks = progress.marks.lock().map(|m| m.clone()).unwrap_or_default();
    let rate = |a: usize, b: usize| {
        progress.tenth as f64 / marks[b].duration_since(marks[a]).as_secs_f64()
    };
    println!(
        "{messages} messages of {size} bytes from {clients} clients over the three MX: accepted in {:.0} s ({:.0}/s), drained after {:.0} s; delivered {delivered}; {} deferrals retried; drain {}",
        sent_in.as_secs_f64(),
        messages as f64 / sent_in.as_secs_f64(),
        drained_in.as_secs_f64(),
        progress.deferred.load(Ordering::Relaxed),
        if drained.is_ok() { "complete" } else { "NOT complete within 600 s" },
    );
    if marks.len() >= 11 {
        println!(
            "accepted/s in the first tenth {:.0}, in the last tenth {:.0} ({:+.1} %)",
            rate(0, 1),
            rate(9, 10),
            (rate(9, 10) / rate(0, 1) - 1.0) * 100.0
        );
    }
    // Bodies are swept once unreferenced for the grace period; then each node snapshots so
    // that the Raft log behind it is purged.
    let swept = wait_for("every body is swept", Duration::from_secs(300), || async {
        (0..3).all(|i| c.blob_files(i).is_empty()).then_some(())
    })
    .await;
    for i in 0..3 {
        let mut admin = c.client(i).await?;
        let at = admin
            .trigger_snapshot(TriggerSnapshotRequest {})
            .await?
            .into_inner()
            .snapshot_index;
        let keep = c.tuning.keep_entries_after_snapshot;
        wait_for(
            "the log behind the snapshot is purged",
            Duration::from_secs(60),
            || async {
                let s = c.status(i).await.ok()?;
                (s.purged_index + keep + 1 >= at).then_some(())
            },
        )
        .await?;
    }
    println!(
        "bodies swept: {}",
        if swept.is_ok() {
            "all"
        } else {
            "NOT all within 300 s"
        }
    );
    print_disk(&c, "after the drain, the sweep and a snapshot");
    print_rss(&c, "the sweep", started);
    Ok(())
}
