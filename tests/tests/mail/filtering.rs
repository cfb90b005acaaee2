//! The filter on the mail path: rejected, quarantined and stamped as the policy says;
//! held messages dropped or retried by operators.

use std::time::Duration;

use peage_client::Admin;
use peage_tests::v1::*;
use peage_tests::{http_get, wait_for, SinkProcess, TestCluster, Tuning, READ_TOKEN};

use super::tracking::track_until;
use super::{
    ham, quarantine, queue, send_ham, with_local_domain, with_local_domain_tuned, zip_with_exe,
};

const GTUBE_MSG: &[u8] = b"From: s@spam.example\r\nTo: bob@example.test\r\nSubject: test\r\nDate: Wed, 25 Nov 2026 10:00:00 +0000\r\nMessage-ID: <g@spam.example>\r\n\r\nXJS*C4JDBQADN1.NSBN3*2IDNEN*GTUBE-STANDARD-ANTI-UBE-TEST-EMAIL*C.34X\r\n";

#[tokio::test]
async fn the_filter_rejects_quarantines_and_stamps_as_the_policy_says() {
    let c = with_local_domain().await;
    let sink = c.start_sink().await.unwrap();
    let mut a = c.client(0).await.unwrap();
    a.list_add(peage_tests::add_req(
        EntryKind::Domain,
        "blocked.example",
        "spam source",
    ))
    .await
    .unwrap();
    rejected_at_data_with_the_reason(&c);
    let held = quarantined_held_and_ham_stamped(&c, &sink).await;
    policy_replicated_and_check_stores_nothing(&c, &mut a).await;
    released_by_an_operator_and_checked_with_peagectl(&c, &sink, &held.queue_id).await;

    // Last: the client's own address on the block list; it is refused with the reason.
    a.list_add(peage_tests::add_req(
        EntryKind::Ip,
        "127.0.0.1",
        "compromised host",
    ))
    .await
    .unwrap();
    let r = c.smtp_send(0, "alice@client.example", &["bob@example.test"], &ham(4));
    let (code, text) = r.data.clone().unwrap();
    assert_eq!(code, 550, "{r:?}");
    assert!(text.contains("compromised host"), "{r:?}");
}

/// GTUBE and a block-listed sender domain are rejected at DATA, with the reason.
fn rejected_at_data_with_the_reason(c: &TestCluster) {
    let r = c.smtp_send(0, "s@spam.example", &["bob@example.test"], GTUBE_MSG);
    let (code, text) = r.data.clone().unwrap();
    assert_eq!(code, 550, "{r:?}");
    assert!(text.contains("GTUBE"), "{r:?}");
    let r = c.smtp_send(0, "x@mail.blocked.example", &["bob@example.test"], &ham(1));
    let (code, text) = r.data.clone().unwrap();
    assert_eq!(code, 550, "{r:?}");
    assert!(text.contains("spam source"), "{r:?}");
}

/// A ZIP holding an .exe is accepted but quarantined: held, never delivered; ham is
/// delivered, stamped with the verdict. Returns the held message.
async fn quarantined_held_and_ham_stamped(c: &TestCluster, sink: &SinkProcess) -> QueuedMessage {
    let r = c.smtp_send(
        0,
        "alice@client.example",
        &["bob@example.test"],
        &zip_with_exe(),
    );
    assert_eq!(r.data.as_ref().map(|d| d.0), Some(250), "{r:?}");

    send_ham(c, 1, 2);
    sink.wait_for_messages(
        "bob@example.test",
        1,
        "the ham reaches the sink",
        Duration::from_secs(30),
    )
    .await;
    let delivered = &sink.messages("bob@example.test")[0];
    assert!(delivered.starts_with("Received: from "), "{delivered}");
    assert!(
        delivered.contains(
            "\r\nX-Peage-Verdict: deliver\r\nX-Peage-Score: 0\r\nX-Peage-Symbols: none\r\n"
        ),
        "{delivered}"
    );
    // The sink has it before SpoolDone is committed: wait for the commit.
    wait_for(
        "nothing waits for delivery",
        Duration::from_secs(10),
        || async { queue(c, 2, false).await.is_empty().then_some(()) },
    )
    .await
    .unwrap();
    let q = quarantine(c, 2).await;
    assert_eq!(q.len(), 1, "only the quarantined message stays: {q:?}");
    assert_eq!(q[0].verdict, "quarantine");
    assert!(
        q[0].symbols
            .iter()
            .any(|s| s.name == "ARCHIVE_WITH_EXECUTABLE"),
        "{q:?}"
    );
    assert_eq!(
        sink.messages("bob@example.test").len(),
        1,
        "the quarantined message is not delivered"
    );
    q[0].clone()
}

/// The policy is replicated: raising the quarantine threshold above the ZIP's score lets
/// the next such message through; `check` explains without storing anything.
async fn policy_replicated_and_check_stores_nothing(c: &TestCluster, a: &mut Admin) {
    a.policy_set(PolicySetRequest {
        quarantine_at: 12.0,
        reject_at: 20.0,
        ..Default::default()
    })
    .await
    .unwrap();
    let mut b = c.client(2).await.unwrap();
    let p = b
        .policy_get(PolicyGetRequest { stale: false })
        .await
        .unwrap()
        .into_inner();
    assert_eq!((p.quarantine_at_milli, p.reject_at_milli), (12_000, 20_000));
    let e = a
        .policy_set(PolicySetRequest {
            quarantine_at: 30.0,
            reject_at: 20.0,
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(e.code(), tonic::Code::InvalidArgument);

    let r = b
        .check_message(CheckMessageRequest {
            message: GTUBE_MSG.to_vec(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(r.verdict, "reject");
    assert_eq!(r.symbols[0].name, "GTUBE");
    assert_eq!(quarantine(c, 0).await.len(), 1, "check stored nothing");
}

/// Operators see the held message on any site and release it with peagectl; `check` on a
/// directory gives one JSON line per message.
async fn released_by_an_operator_and_checked_with_peagectl(
    c: &TestCluster,
    sink: &SinkProcess,
    id: &str,
) {
    let o = c.peagectl(1, &["quarantine", "ls", "--json", "--recipient", "bob@"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["messages"][0]["queue_id"], id);
    // An auditor token (a dashboard's) sees the record, never the body.
    let o = c.peagectl_as(1, READ_TOKEN, &["quarantine", "show", id, "--raw"]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success() && o.stdout.is_empty(), "{err}");
    assert!(
        err.contains("permission denied") && err.contains("message body"),
        "{err}"
    );
    let o = c.peagectl(1, &["quarantine", "show", id, "--raw"]);
    let raw = String::from_utf8_lossy(&o.stdout);
    assert!(raw.starts_with("Received: from "), "{raw}");
    assert!(raw.contains("\r\nX-Peage-Verdict: quarantine\r\n"), "{raw}");
    let o = c.peagectl(1, &["quarantine", "release", id]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    sink.wait_for_messages(
        "bob@example.test",
        2,
        "the released message is delivered",
        Duration::from_secs(30),
    )
    .await;
    assert!(quarantine(c, 0).await.is_empty());
    wait_for(
        "its SpoolDone is committed",
        Duration::from_secs(10),
        || async { queue(c, 0, false).await.is_empty().then_some(()) },
    )
    .await
    .unwrap();
    let o = c.peagectl(0, &["quarantine", "rm", id]);
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("not found"));

    let files = tempfile::tempdir().unwrap();
    std::fs::write(files.path().join("a-gtube.eml"), GTUBE_MSG).unwrap();
    std::fs::write(files.path().join("b-zip.eml"), zip_with_exe()).unwrap();
    let dir = files.path().to_str().unwrap();
    let lines = check_json(c, 0, &["--json", dir]);
    assert_eq!(lines.len(), 2);
    assert_eq!(lines[0]["verdict"], "reject");
    assert_eq!(lines[0]["symbols"][0]["name"], "GTUBE");
    // Under the raised policy (quarantine at 12) the ZIP's 10 points now pass.
    assert_eq!(lines[1]["verdict"], "deliver");
    assert_eq!(lines[1]["symbols"][0]["name"], "ARCHIVE_WITH_EXECUTABLE");

    // Many in flight at once, the answers still come in the order of the files.
    for n in 0..20 {
        let body = if n % 2 == 0 {
            GTUBE_MSG.to_vec()
        } else {
            zip_with_exe()
        };
        std::fs::write(files.path().join(format!("c-{n:02}.eml")), body).unwrap();
    }
    let lines = check_json(c, 1, &["--json", "--jobs", "6", dir]);
    assert_eq!(lines.len(), 22);
    for (n, line) in lines[2..].iter().enumerate() {
        let file = line["file"].as_str().unwrap();
        assert!(file.ends_with(&format!("c-{n:02}.eml")), "{n}: {file}");
        let expected = if n % 2 == 0 { "reject" } else { "deliver" };
        assert_eq!(line["verdict"], expected, "{file}");
    }

    // A file over the size the node takes is named with the reason and skipped; the files
    // after it still get their verdicts, and the exit status says one was not checked.
    let mixed = tempfile::tempdir().unwrap();
    std::fs::write(mixed.path().join("a-gtube.eml"), GTUBE_MSG).unwrap();
    let huge = format!("Subject: huge\r\n\r\n{}", "a".repeat(27 << 20));
    std::fs::write(mixed.path().join("b-huge.eml"), huge).unwrap();
    std::fs::write(mixed.path().join("c-zip.eml"), zip_with_exe()).unwrap();
    let o = c.peagectl(0, &["check", "--json", mixed.path().to_str().unwrap()]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success(), "{err}");
    assert!(
        err.contains("1 of 3 message(s) could not be checked"),
        "{err}"
    );
    let lines: Vec<serde_json::Value> = String::from_utf8_lossy(&o.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 3, "{lines:?}");
    assert_eq!(lines[0]["verdict"], "reject");
    let why = lines[1]["error"].as_str().unwrap_or_default();
    assert!(why.contains("larger than the node takes"), "{lines:?}");
    assert_eq!(lines[2]["verdict"], "deliver");
}

/// `peagectl check ARGS` through `node`: one JSON value per line.
fn check_json(c: &TestCluster, node: usize, args: &[&str]) -> Vec<serde_json::Value> {
    let o = c.peagectl(node, &[&["check"], args].concat());
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    String::from_utf8_lossy(&o.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// `queue retry` makes the owner try now, not when its backoff says: with a first retry
/// two minutes after a failure, a message retried by its id, then the rest with `peagectl
/// queue retry --all` (as after a downstream's outage), are delivered within seconds of the
/// downstream's return. `queue drop` removes a held message everywhere, and with `--all`
/// those of one sender, never the whole queue without a filter; `domain rm` says what is
/// still queued for the domain.
#[tokio::test]
async fn queue_drop_removes_a_held_message_and_retry_is_accepted() {
    let c = with_local_domain_tuned(Tuning {
        retry_first_ms: 120_000,
        ..Tuning::default()
    })
    .await;
    let id = send_ham(&c, 0, 3);
    send_ham(&c, 0, 5);
    let metrics = c.nodes[0].metrics_addr();
    wait_for(
        "two failed attempts (no downstream)",
        Duration::from_secs(20),
        || {
            let metrics = metrics.clone();
            async move {
                let (_, m) = http_get(&metrics, "/metrics").await.ok()?;
                m.contains("peage_delivery_attempts_total{result=\"deferred\"} 2")
                    .then_some(())
            }
        },
    )
    .await
    .unwrap();
    let mut sink = c.start_sink().await.unwrap();
    let retried = std::time::Instant::now();
    let mut a = c.client(1).await.unwrap();
    a.message_retry(MessageRef {
        queue_id: id.clone(),
        ..Default::default()
    })
    .await
    .unwrap();
    sink.wait_for_messages(
        "bob@example.test",
        1,
        "the retried message is delivered",
        Duration::from_secs(20),
    )
    .await;
    let o = c.peagectl(1, &["queue", "retry", "--all", "--recipient", "bob@"]);
    let said = String::from_utf8_lossy(&o.stdout);
    assert!(
        o.status.success() && said.starts_with("retrying "),
        "{said}"
    );
    sink.wait_for_messages(
        "bob@example.test",
        2,
        "the rest is delivered after `queue retry --all`",
        Duration::from_secs(20),
    )
    .await;
    assert!(
        retried.elapsed() < Duration::from_secs(60),
        "delivered only when the backoff allowed it"
    );
    let o = c.peagectl(1, &["queue", "retry"]);
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("<QUEUE_ID|--all>"),
        "{o:?}"
    );

    sink.stop();
    let held = send_ham(&c, 2, 4);
    a.message_drop(MessageRef {
        queue_id: held.clone(),
        ..Default::default()
    })
    .await
    .unwrap();
    for node in 0..3 {
        let left = queue(&c, node, false).await;
        assert!(left.iter().all(|m| m.queue_id != held), "{left:?}");
    }
    let e = a
        .message_drop(MessageRef {
            queue_id: held,
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(e.code(), tonic::Code::NotFound);

    let kept = send_ham(&c, 0, 6);
    for n in [7, 8] {
        let r = c.smtp_send(
            0,
            "mallory@hijacked.example",
            &["bob@example.test"],
            &ham(n),
        );
        r.queue_id();
    }
    let o = c.peagectl(1, &["queue", "drop", "--all"]);
    let said = String::from_utf8_lossy(&o.stderr);
    assert!(
        !o.status.success() && said.contains("needs a filter"),
        "{o:?}"
    );
    assert_eq!(queue(&c, 0, false).await.len(), 3);
    let o = c.peagectl(1, &["queue", "drop", "--all", "--sender", "mallory@"]);
    let said = String::from_utf8_lossy(&o.stdout);
    assert!(o.status.success(), "{o:?}");
    assert!(said.contains("dropped 2 queued message(s)"), "{said}");
    for node in 0..3 {
        let left: Vec<String> = (queue(&c, node, false).await.into_iter())
            .map(|m| m.queue_id)
            .collect();
        assert_eq!(left, std::slice::from_ref(&kept), "node {node}");
    }
    // Removing the domain says that its mail is still queued, and how to drop it.
    let o = c.peagectl(1, &["domain", "rm", "example.test"]);
    let said = String::from_utf8_lossy(&o.stdout);
    assert!(o.status.success(), "{o:?}");
    assert!(
        said.contains("1 queued and 0 held message(s) are still for example.test")
            && said.contains("queue drop --all --recipient @example.test"),
        "{said}"
    );
}

/// Quarantine is kept as long as the replicated policy says, then removed from every node
/// by the leader's expiry, body included.
#[tokio::test]
async fn a_quarantined_message_past_its_retention_is_removed_everywhere() {
    let c = with_local_domain_tuned(Tuning {
        body_timeout_ms: 1000,
        ..Tuning::default()
    })
    .await;
    let mut a = c.client(0).await.unwrap();
    let p = a
        .policy_set(PolicySetRequest {
            quarantine_retention_secs: 3,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(p.quarantine_retention_secs, 3);
    assert_eq!(p.quarantine_at_milli, 6_000, "the thresholds are kept");
    let r = c.smtp_send(
        1,
        "alice@client.example",
        &["bob@example.test"],
        &zip_with_exe(),
    );
    assert_eq!(r.data.as_ref().map(|d| d.0), Some(250), "{r:?}");
    let id = r.queue_id();
    let removed = wait_for(
        "the quarantine is empty everywhere",
        Duration::from_secs(30),
        || async {
            for i in 0..3 {
                if !quarantine(&c, i).await.is_empty() {
                    return None;
                }
            }
            Some(())
        },
    )
    .await;
    assert!(removed.is_ok(), "{removed:?}");
    let expired =
        |events: &[serde_json::Value], _: &[String]| events.iter().any(|e| e["kind"] == "expired");
    let (events, _) = track_until(&c, 2, &["--queue-id", &id], expired).await;
    let expired = events.iter().find(|e| e["kind"] == "expired").unwrap();
    assert!(
        expired["detail"]
            .as_str()
            .unwrap()
            .contains("removed from quarantine"),
        "{events:?}"
    );
    let swept = wait_for("no body left", Duration::from_secs(60), || async {
        (0..3).all(|i| c.blob_files(i).is_empty()).then_some(())
    })
    .await;
    assert!(swept.is_ok(), "{swept:?}");
}

#[tokio::test]
async fn a_held_message_past_grpcs_4_mib_is_shown_whole_by_peagectl() {
    let c = with_local_domain().await;
    // The executable's archive, and 6 MB of attachment beside it (base64, 76 a line).
    let line = format!("{}\r\n", "A".repeat(76));
    let padding = format!(
        "--b\r\nContent-Type: application/octet-stream; name=\"scan.pdf\"\r\nContent-Transfer-Encoding: base64\r\n\r\n{}",
        line.repeat(6_000_000 / line.len())
    );
    let small = String::from_utf8(zip_with_exe()).unwrap();
    let big = small.replacen("--b--\r\n", &format!("{padding}--b--\r\n"), 1);
    let id = c
        .smtp_send(
            0,
            "alice@client.example",
            &["bob@example.test"],
            big.as_bytes(),
        )
        .queue_id();
    let o = c.peagectl(1, &["quarantine", "show", &id]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(String::from_utf8_lossy(&o.stdout).contains("ARCHIVE_WITH_EXECUTABLE"));
    let o = c.peagectl(1, &["quarantine", "show", &id, "--raw"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(o.stdout.len() > big.len(), "{} bytes", o.stdout.len());
    assert!(o.stdout.ends_with(big.as_bytes()));
}
