//! `peagectl probe` against a running cluster: every message followed to delivery, then,
//! with one site killed, that site's MX reported failing while the others deliver all.

use std::process::{Command, Output};

use peage_tests::{bin, TestCluster, Tuning, ADMIN_TOKEN};

/// The probe, following messages through the nodes `admin` given by `option`: `--admin`,
/// or `--addr` (the default, as an operator's `PEAGE_ADDR` of every site gives them).
fn probe(c: &TestCluster, option: &str, admin: &[usize]) -> (Output, serde_json::Value) {
    let mx: Vec<String> = c
        .nodes
        .iter()
        .map(|n| {
            let (h, p) = n.smtp_addr();
            format!("{h}:{p}")
        })
        .collect();
    let admin: Vec<String> = admin.iter().map(|&i| c.nodes[i].admin_url()).collect();
    let o = Command::new(bin("peagectl"))
        .env("PEAGE_TOKEN", ADMIN_TOKEN)
        .args(["probe", "--json", "--rate", "6", "--duration", "3s"])
        .args(["--follow-timeout", "30s", "--rcpt", "probe@example.test"])
        .arg("--mx")
        .arg(mx.join(","))
        .arg(option)
        .arg(admin.join(","))
        .output()
        .expect("run peagectl probe");
    let report = serde_json::from_slice(&o.stdout).unwrap_or_else(|e| {
        panic!(
            "probe --json: {e}\nstdout: {}\nstderr: {}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        )
    });
    (o, report)
}

fn mx_report<'a>(
    report: &'a serde_json::Value,
    c: &TestCluster,
    i: usize,
) -> &'a serde_json::Value {
    let (h, p) = c.nodes[i].smtp_addr();
    let mx = format!("{h}:{p}");
    report["mx"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["mx"] == mx.as_str())
        .unwrap_or_else(|| panic!("no line for {mx}: {report}"))
}

#[tokio::test]
async fn the_probe_follows_every_message_and_names_the_failing_site() {
    let mut c = TestCluster::start(Tuning::default()).await.unwrap();
    let sink = c.start_sink().await.unwrap();
    c.route_domain("example.test", &format!("smtp://{}", c.sink_addr()))
        .await
        .unwrap();

    let (o, report) = probe(&c, "--admin", &[0, 1, 2]);
    assert!(o.status.success(), "{report}");
    assert_eq!(report["healthy"], true, "{report}");
    let mut sent = 0;
    for i in 0..3 {
        let m = mx_report(&report, &c, i);
        assert!(m["sent"].as_u64().unwrap() >= 5, "{m}");
        assert_eq!(m["delivered"], m["sent"], "{m}");
        assert_eq!(m["failing"], false, "{m}");
        sent += m["sent"].as_u64().unwrap();
    }
    assert_eq!(sink.messages("probe@example.test").len() as u64, sent);

    // Ariège is lost: its MX fails; Paris and Roubaix still deliver everything.
    c.kill(2);
    // The probe measures the steady state with a site gone, after the election if Ariège led.
    c.wait_for_leader_everywhere().await.unwrap();
    let (o, report) = probe(&c, "--addr", &[2, 0, 1]);
    assert!(!o.status.success(), "{report}");
    assert_eq!(report["healthy"], false, "{report}");
    let dead = mx_report(&report, &c, 2);
    assert_eq!(dead["failing"], true, "{dead}");
    assert_eq!(dead["accepted"], 0, "{dead}");
    for i in 0..2 {
        let m = mx_report(&report, &c, i);
        assert_eq!(m["failing"], false, "{m}");
        assert_eq!(m["delivered"], m["sent"], "{m}");
    }
}
