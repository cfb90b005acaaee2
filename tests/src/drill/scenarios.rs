//! The faults a drill injects under load, one scenario each: a site killed, the leader
//! killed again and again, a site cut off, the downstream stopped, every site restarted in
//! turn; and when each fault began and healed.

use std::time::{Duration, Instant};

use super::options::{Options, Scenario};
use super::stage::Stage;
use crate::cluster::{TestCluster, SITES};
use crate::http::http_get;
use crate::sink::SinkProcess;
use crate::wait::wait_for;

/// When the fault struck and healed, and what happened, for the report.
pub struct Faults {
    pub events: Vec<String>,
    /// Each time a fault struck (several for leader loss and rolling restarts).
    pub struck: Vec<Instant>,
    /// When the first fault struck.
    pub first: Instant,
    pub healed: Instant,
}

/// Runs `opts.scenario` from 30 % of the load's duration; heals it at 60 % (or once every
/// restart is done).
pub async fn inject(stage: &mut Stage, opts: &Options, started: Instant) -> anyhow::Result<Faults> {
    let at = |t: Duration| async move { tokio::time::sleep_until((started + t).into()).await };
    let heal_at = opts.duration.mul_f64(0.6);
    at(opts.duration.mul_f64(0.3)).await;
    let first = Instant::now();
    let mut f = Faults {
        events: Vec::new(),
        struck: Vec::new(),
        first,
        healed: first,
    };
    let event = |f: &mut Faults, what: String| {
        f.events
            .push(format!("{:.1} s: {what}", started.elapsed().as_secs_f64()))
    };
    let site = SITES[opts.site];
    match opts.scenario {
        Scenario::SiteLoss => {
            f.struck.push(Instant::now());
            stage.cluster.kill(opts.site);
            event(&mut f, format!("SIGKILL site {site}"));
            at(heal_at).await;
            stage.cluster.start_node(opts.site)?;
            event(&mut f, format!("site {site} restarted"));
        }
        Scenario::LeaderLoss => {
            while started.elapsed() < heal_at || f.struck.is_empty() {
                let leader = stage.cluster.wait_for_leader_everywhere().await?;
                f.struck.push(Instant::now());
                stage.cluster.kill(leader);
                event(&mut f, format!("SIGKILL leader {}", SITES[leader]));
                stage.cluster.wait_for_leader_everywhere().await?;
                stage.cluster.start_node(leader)?;
                wait_in_quorum(&stage.cluster, leader).await?;
                event(&mut f, format!("{} back in the quorum", SITES[leader]));
            }
        }
        Scenario::Partition => {
            f.struck.push(Instant::now());
            stage.cut_site(opts.site, true)?;
            event(&mut f, format!("site {site} cut off"));
            at(heal_at).await;
            stage.cut_site(opts.site, false)?;
            event(&mut f, "links healed".into());
        }
        Scenario::DownstreamOutage => {
            stage.sink.stop();
            event(&mut f, "downstream stopped".into());
            at(heal_at).await;
            let addr = stage.cluster.sink_addr();
            stage.sink = SinkProcess::start(&addr, stage.sink_dir.path()).await?;
            event(&mut f, "downstream back".into());
        }
        Scenario::RollingRestart => {
            for (i, site) in SITES.iter().enumerate().take(3) {
                f.struck.push(Instant::now());
                stage.cluster.stop(i, Duration::from_secs(15));
                event(&mut f, format!("{site} stopped (SIGTERM)"));
                stage.cluster.start_node(i)?;
                wait_in_quorum(&stage.cluster, i).await?;
                event(&mut f, format!("{site} back in the quorum"));
            }
        }
    }
    // The heal is when the last event above happened: the restart, the reconnection.
    f.healed = Instant::now();
    Ok(f)
}

/// Waits until node `i` says it is part of a working majority (`/healthz`).
async fn wait_in_quorum(c: &TestCluster, i: usize) -> anyhow::Result<()> {
    let addr = c.nodes[i].metrics_addr();
    wait_for(
        &format!("{} rejoins the quorum", SITES[i]),
        Duration::from_secs(60),
        || {
            let addr = addr.clone();
            async move {
                let (status, _) = http_get(&addr, "/healthz").await.ok()?;
                (status == 200).then_some(())
            }
        },
    )
    .await
}
