//! What a drill is asked to do: the scenario, how sites are kept apart, the load, the
//! fault's site and timing.

use std::path::PathBuf;
use std::time::Duration;

use serde::Serialize;

/// The recipient every drill message goes to.
pub const RECIPIENT: &str = "drill@example.test";

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Scenario {
    /// SIGKILL every process of one site under load, restart it later.
    SiteLoss,
    /// Repeatedly SIGKILL whichever node leads, restarting each.
    LeaderLoss,
    /// Cut one site's links to the other two, then heal.
    Partition,
    /// The downstream server stops for a while, then returns.
    DownstreamOutage,
    /// Each site restarted in turn (SIGTERM, then start).
    RollingRestart,
}

impl Scenario {
    pub const ALL: [Scenario; 5] = [
        Scenario::SiteLoss,
        Scenario::LeaderLoss,
        Scenario::Partition,
        Scenario::DownstreamOutage,
        Scenario::RollingRestart,
    ];
}

/// How sites are kept apart.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Isolation {
    /// Network namespaces where the machine allows it, else loopback.
    Auto,
    /// One network namespace per site, joined by veth links to a bridge (root only).
    Netns,
    /// Loopback addresses; partitions are cut in the link proxies.
    Loopback,
}

#[derive(Debug, Clone)]
pub struct Options {
    pub scenario: Scenario,
    pub isolation: Isolation,
    /// How long the load runs; the fault starts at 30 % of it and heals at 60 %.
    pub duration: Duration,
    /// Messages per second over the three MX together.
    pub rate: f64,
    /// Stop after this many messages (0: no limit).
    pub max_messages: u64,
    /// One-way latency added to every link between sites.
    pub latency: Duration,
    /// The site hit by site-loss and partition (0 = paris, 1 = roubaix, 2 = ariege).
    pub site: usize,
    /// How long held mail gets to drain after the load stops.
    pub drain_timeout: Duration,
    /// The corpus; `None` finds it ([`crate::corpus::load_or_generated`]).
    pub corpus: Option<PathBuf>,
    /// Copy every node's log here at the end (`$PEAGE_DRILL_LOGS` in tests).
    pub logs: Option<PathBuf>,
}

impl Options {
    /// The short form CI runs.
    pub fn short(scenario: Scenario) -> Options {
        Options {
            scenario,
            isolation: Isolation::Auto,
            duration: Duration::from_secs(12),
            rate: 15.0,
            max_messages: 0,
            latency: Duration::from_millis(3),
            site: 2,
            drain_timeout: Duration::from_secs(60),
            corpus: None,
            logs: std::env::var_os("PEAGE_DRILL_LOGS").map(PathBuf::from),
        }
    }
}
