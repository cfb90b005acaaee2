//! `peagectl sql` against a real node: a read is answered from the replicated state; a
//! write, ATTACH or PRAGMA is refused and changes nothing; a runaway query stops at the time
//! limit; a read-only token is refused.

use peage_tests::READ_TOKEN;

use super::with_local_domain;

#[tokio::test]
async fn sql_reads_the_replicated_state_and_refuses_everything_else() {
    let c = with_local_domain().await;
    let out = c.peagectl(
        1,
        &[
            "--json",
            "sql",
            "SELECT domain FROM domains ORDER BY domain",
        ],
    );
    assert!(out.status.success(), "{out:?}");
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["rows"][0]["domain"], "example.test", "{v}");
    for refused in [
        "DELETE FROM domains",
        "UPDATE domains SET route = 'smtp://192.0.2.1:25'",
        "ATTACH DATABASE '/tmp/x.sqlite' AS x",
        "PRAGMA writable_schema = 1",
        "SELECT 1; DELETE FROM domains",
    ] {
        let out = c.peagectl(1, &["sql", refused]);
        let err = String::from_utf8_lossy(&out.stderr).into_owned();
        assert!(!out.status.success(), "{refused}: {out:?}");
        assert!(
            err.contains("refused") || err.contains("not authorized"),
            "{refused}: {err}"
        );
    }
    let out = c.peagectl(1, &["--json", "sql", "SELECT count(*) AS n FROM domains"]);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["rows"][0]["n"], "1", "nothing was removed: {v}");
    // A query that would run for ever stops at the time limit.
    let forever =
        "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n) SELECT count(*) FROM n";
    let out = c.peagectl(1, &["sql", forever]);
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(
        !out.status.success() && err.contains("time limit"),
        "{out:?}"
    );
    let out = c.peagectl_as(1, READ_TOKEN, &["sql", "SELECT 1"]);
    assert!(!out.status.success(), "{out:?}");
}
