//! `peagectl sql` against a real node: the tables listed and a join over the spool
//! answered from the replicated state; a write, ATTACH, a PRAGMA write, a second statement,
//! a runaway query and one returning too many rows or too many bytes refused with clear
//! errors, the state digest unchanged; an auditor (read-only) token refused.

use peage_tests::{TestCluster, READ_TOKEN};

use super::{queue, send_ham, with_local_domain};

/// `peagectl --json sql QUERY` through Roubaix: its rows, as objects by column.
fn rows(c: &TestCluster, query: &str) -> Vec<serde_json::Value> {
    let out = c.peagectl(1, &["--json", "sql", query]);
    assert!(out.status.success(), "{query}: {out:?}");
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    v["rows"].as_array().unwrap().clone()
}

/// The error `peagectl sql QUERY` prints, failing.
fn refusal(c: &TestCluster, args: &[&str]) -> String {
    let mut all = vec!["sql"];
    all.extend_from_slice(args);
    let out = c.peagectl(1, &all);
    assert!(!out.status.success(), "{args:?}: {out:?}");
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[tokio::test]
async fn sql_reads_the_replicated_state_and_refuses_everything_else() {
    let c = with_local_domain().await;
    let tables = rows(
        &c,
        "SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name",
    );
    assert!(tables.iter().any(|t| t["name"] == "spool"), "{tables:?}");
    let before = c.digests(0).await.unwrap();
    for refused in [
        "DELETE FROM domains",
        "UPDATE domains SET route = 'smtp://192.0.2.1:25'",
        "ATTACH DATABASE '/tmp/x.sqlite' AS x",
        "PRAGMA writable_schema = 1",
        "SELECT 1; DELETE FROM domains",
    ] {
        let err = refusal(&c, &[refused]);
        assert!(err.contains("refused"), "{refused}: {err}");
    }
    let forever =
        "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n) SELECT count(*) FROM n";
    assert!(refusal(&c, &[forever]).contains("time limit"));
    let many =
        "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n LIMIT 20) SELECT i FROM n";
    let err = refusal(&c, &["--max-rows", "10", many]);
    assert!(err.contains("more than 10 rows"), "{err}");
    // Memory: a reply past 3 MiB, or one value past 16 MiB, is refused, not built (the first
    // took 3.7 GB of the node's memory before its time limit stopped it).
    let big_rows = "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n LIMIT 10000)
        SELECT i, printf('%.1000000c', 'a') FROM n";
    let err = refusal(&c, &["--max-rows", "10000", big_rows]);
    assert!(err.contains("would pass 3 MiB"), "{err}");
    let err = refusal(&c, &["SELECT length(printf('%.100000000c', 'a'))"]);
    assert!(err.contains("too big"), "{err}");
    assert_eq!(c.digests(0).await.unwrap(), before, "nothing written");
    assert!(!c
        .peagectl_as(1, READ_TOKEN, &["sql", "SELECT 1"])
        .status
        .success());
    // A queued message (no downstream yet), joined with its domain's route.
    let id = send_ham(&c, 0, 44);
    super::wait_for(
        "the message queued at Roubaix",
        std::time::Duration::from_secs(10),
        || async { (!queue(&c, 1, true).await.is_empty()).then_some(()) },
    )
    .await
    .unwrap();
    let joined = rows(
        &c,
        "SELECT s.queue_id, d.domain, d.route FROM spool s JOIN domains d
           ON s.rcpt_to LIKE '%@' || d.domain || '\"%'",
    );
    assert_eq!(joined.len(), 1, "{joined:?}");
    assert_eq!(joined[0]["queue_id"], id.as_str());
    assert_eq!(joined[0]["domain"], "example.test");
}
