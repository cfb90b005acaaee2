//! Every drill scenario in its short form: a real three-site cluster under SMTP load, the
//! fault, and the invariant checker's verdict (nothing lost, no 5xx caused by the fault,
//! held mail drained, states converged).

use peage_tests::drill::{run, Options, Scenario};

async fn drill(scenario: Scenario) {
    let report = run(&Options::short(scenario)).await.unwrap();
    report.print();
    let c = &report.counts;
    assert!(c.accepted_250 > 0, "no message was accepted at all");
    assert!(c.delivered > 0, "no message was delivered at all");
    assert_eq!(c.lost, 0, "{:?}", report.violations);
    assert_eq!(c.fault_5xx, 0, "{:?}", report.violations);
    assert!(report.converged, "{}", report.state_sha256);
    assert!(report.drained_ms.is_some(), "held mail did not drain");
    assert!(report.passed, "{:?}", report.violations);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn site_loss() {
    drill(Scenario::SiteLoss).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leader_loss() {
    drill(Scenario::LeaderLoss).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn partition() {
    drill(Scenario::Partition).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn downstream_outage() {
    drill(Scenario::DownstreamOutage).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rolling_restart() {
    drill(Scenario::RollingRestart).await;
}
