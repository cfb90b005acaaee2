//! `peage-drill`: failover drills on a local three-site cluster under SMTP load, with a
//! report and a non-zero exit when an invariant breaks. The documented entry point is
//! `ops/drill`, which builds and runs this.

use std::time::Duration;

use clap::Parser;
use peage_tests::drill::{self, Isolation, Options, Scenario};

/// Runs failover drills: a local three-site cluster, a downstream sink and a steady SMTP
/// load of corpus messages over the three MX; the scenario runs under load; the report
/// counts sent, 250, 4xx, 5xx, delivered, quarantined, lost and duplicated messages.
/// Exits 1 when an invariant breaks (lost > 0, a 5xx caused by the fault, states that do
/// not converge, held mail that does not drain).
#[derive(Parser)]
#[command(name = "peage-drill")]
struct Cli {
    /// The scenario, or `all` for each in turn (each on a fresh cluster).
    #[arg(value_parser = parse_scenarios)]
    scenario: ScenarioSet,
    /// How sites are kept apart: network namespaces (root), loopback addresses, or auto
    /// (namespaces where the machine allows them).
    #[arg(long, value_enum, default_value = "auto")]
    isolation: Isolation,
    /// How long the load runs, in seconds; the fault starts at 30 % and heals at 60 %.
    #[arg(long, default_value_t = 30)]
    duration: u64,
    /// Messages per second over the three MX together.
    #[arg(long, default_value_t = 20.0)]
    rate: f64,
    /// Stop the load after this many messages (0: no limit).
    #[arg(long, default_value_t = 0)]
    messages: u64,
    /// One-way latency between sites, in milliseconds.
    #[arg(long, default_value_t = 3)]
    latency_ms: u64,
    /// The site hit by site-loss and partition.
    #[arg(long, default_value = "ariege", value_parser = ["paris", "roubaix", "ariege"])]
    site: String,
    /// Seconds held mail gets to drain after the load stops.
    #[arg(long, default_value_t = 120)]
    drain_timeout: u64,
    /// The corpus directory (default: $PEAGE_CORPUS, else ../shared/corpus/train).
    #[arg(long)]
    corpus: Option<std::path::PathBuf>,
    /// Copy every node's log under this directory (one subdirectory per scenario).
    #[arg(long)]
    logs: Option<std::path::PathBuf>,
    /// One JSON report per line instead of text.
    #[arg(long)]
    json: bool,
}

#[derive(Clone)]
struct ScenarioSet(Vec<Scenario>);

fn parse_scenarios(s: &str) -> Result<ScenarioSet, String> {
    use clap::ValueEnum;
    if s == "all" {
        return Ok(ScenarioSet(Scenario::ALL.to_vec()));
    }
    Scenario::from_str(s, true)
        .map(|one| ScenarioSet(vec![one]))
        .map_err(|_| {
            "expected site-loss, leader-loss, partition, downstream-outage, rolling-restart or all"
                .to_owned()
        })
}

#[tokio::main]
async fn main() {
    if let Err(e) = drills(Cli::parse()).await {
        eprintln!("peage-drill: {e:#}");
        std::process::exit(2);
    }
}

async fn drills(cli: Cli) -> anyhow::Result<()> {
    anyhow::ensure!(cli.rate > 0.0, "--rate must be above 0");
    anyhow::ensure!(cli.duration > 0, "--duration must be above 0");
    let site = ["paris", "roubaix", "ariege"]
        .iter()
        .position(|s| *s == cli.site)
        .unwrap_or(2);
    let mut failed = false;
    for scenario in cli.scenario.0 {
        let opts = Options {
            scenario,
            isolation: cli.isolation,
            duration: Duration::from_secs(cli.duration),
            rate: cli.rate,
            max_messages: cli.messages,
            latency: Duration::from_millis(cli.latency_ms),
            site,
            drain_timeout: Duration::from_secs(cli.drain_timeout),
            corpus: cli.corpus.clone(),
            logs: cli.logs.clone(),
        };
        // Ctrl-C or SIGTERM drops the drill: its nodes are killed, its namespaces removed.
        let report = tokio::select! {
            r = drill::run(&opts) => r?,
            _ = interrupted() => anyhow::bail!("interrupted; the drill's cluster was stopped"),
        };
        if cli.json {
            println!("{}", serde_json::to_string(&report)?);
        } else {
            report.print();
        }
        failed |= !report.passed;
    }
    if failed {
        std::process::exit(1);
    }
    Ok(())
}

async fn interrupted() {
    use tokio::signal::unix::{signal, SignalKind};
    match signal(SignalKind::terminate()) {
        Ok(mut term) => tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
        },
        Err(_) => {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}
