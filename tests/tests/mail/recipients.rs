//! Recipient verification by list, driven with `peagectl` as an operator would: unknown
//! mailboxes refused at RCPT with `550 5.1.1` on every site, known ones accepted, changes
//! replicated, and a domain without a list still accepting any local part.

use std::time::Duration;

use super::{queue, with_local_domain, HAM};
use peage_tests::{wait_for, TestCluster};

fn run_ok(c: &TestCluster, node: usize, args: &[&str]) -> String {
    let o = c.peagectl(node, args);
    let out = format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(o.status.success(), "peagectl {args:?}: {out}");
    out
}

/// Routes example.test to `route` with its recipients verified as `verify` says.
fn set_verify(c: &TestCluster, route: &str, verify: &str) {
    let args = [
        "domain",
        "add",
        "example.test",
        "--route",
        route,
        "--verify",
        verify,
    ];
    run_ok(c, 0, &args);
}

/// The RCPT reply at `node`, once its replica has applied every write made so far (a
/// linearizable read waits for that).
fn rcpt_code(c: &TestCluster, node: usize, rcpt: &str) -> (u16, String) {
    run_ok(c, node, &["domain", "ls"]);
    let r = c.smtp_send(node, "alice@client.example", &[rcpt], HAM);
    r.rcpt.first().cloned().unwrap_or_default()
}

#[tokio::test]
async fn unknown_mailboxes_get_550_5_1_1_at_rcpt_on_every_site() {
    let c = with_local_domain().await;
    let dir = tempfile::tempdir().unwrap();
    let list = dir.path().join("users.txt");
    std::fs::write(
        &list,
        "# the mailboxes of example.test\nBob@Example.test\ncarol@example.test\n\n",
    )
    .unwrap();
    let route = format!("smtp://{}", c.sink_addr());
    set_verify(&c, &route, "list");
    let out = run_ok(
        &c,
        1,
        &["domain", "users", "import", list.to_str().unwrap()],
    );
    assert!(out.contains("2 mailbox(es) added"), "{out}");
    let out = run_ok(
        &c,
        2,
        &[
            "domain",
            "users",
            "add",
            "dave@example.test",
            "bob@example.test",
        ],
    );
    assert!(
        out.contains("1 mailbox(es) added"),
        "bob was there already: {out}"
    );

    for node in 0..3 {
        // Written through one site, known at every other once replicated.
        let ls = run_ok(
            &c,
            node,
            &["--json", "domain", "users", "ls", "example.test"],
        );
        let v: serde_json::Value = serde_json::from_str(&ls).unwrap();
        assert_eq!(
            v["addresses"],
            serde_json::json!([
                "bob@example.test",
                "carol@example.test",
                "dave@example.test"
            ])
        );
        let (code, text) = rcpt_code(&c, node, "mallory@example.test");
        assert_eq!(code, 550, "node {node}: {text}");
        assert!(text.starts_with("5.1.1"), "node {node}: {text}");
        assert_eq!(
            rcpt_code(&c, node, "Carol@EXAMPLE.test").0,
            250,
            "node {node}"
        );
    }
    assert_eq!(
        queue(&c, 0, false).await.len(),
        3,
        "one message per site, none for mallory"
    );

    run_ok(&c, 0, &["domain", "users", "rm", "carol@example.test"]);
    let (code, _) = rcpt_code(&c, 0, "carol@example.test");
    assert_eq!(code, 550, "removed mailboxes are refused");

    // Re-routing without --verify keeps the list; --verify none accepts any local part.
    let out = run_ok(&c, 0, &["domain", "add", "example.test", "--route", &route]);
    assert!(out.contains("recipients verified: list"), "{out}");
    set_verify(&c, &route, "none");
    assert_eq!(rcpt_code(&c, 0, "mallory@example.test").0, 250);

    // Bad input: a clear refusal, nothing written.
    for bad in [
        vec!["domain", "users", "add", "x@not-local.example"],
        vec!["domain", "users", "add", "a b@example.test"],
        vec![
            "domain",
            "add",
            "example.test",
            "--route",
            &route,
            "--verify",
            "callback",
        ],
    ] {
        let o = c.peagectl(0, &bad);
        assert!(!o.status.success(), "{bad:?}");
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(!err.is_empty(), "{bad:?} says why");
    }
}

/// The callout answers node `i` has applied, read from its state database.
fn cached_callouts(c: &TestCluster, i: usize) -> Vec<(String, bool)> {
    let path = c.nodes[i].data_dir.join("state.sqlite");
    let flags = rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY;
    let db = rusqlite::Connection::open_with_flags(&path, flags).unwrap();
    let mut q = db
        .prepare("SELECT address, valid FROM callouts ORDER BY address")
        .unwrap();
    q.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .unwrap()
        .map(Result::unwrap)
        .collect()
}

#[tokio::test]
async fn a_domain_verified_by_callout_asks_its_server_once_for_every_site() {
    let c = with_local_domain().await;
    let mut sink = c.start_sink().await.unwrap();
    let route = format!("smtp://{}", c.sink_addr());
    set_verify(&c, &route, "callout");

    // The sink takes bob and refuses reject-* (550 5.1.1): so does Paris, at RCPT.
    let (code, text) = rcpt_code(&c, 0, "bob@example.test");
    assert_eq!(code, 250, "{text}");
    let (code, text) = rcpt_code(&c, 0, "Reject-Me@example.test");
    assert_eq!(code, 550, "{text}");
    assert!(
        text.contains("5.1.1") && text.contains("reject-me@example.test"),
        "{text}"
    );

    // Both answers are cached on every site …
    let expected = vec![
        ("bob@example.test".to_owned(), true),
        ("reject-me@example.test".to_owned(), false),
    ];
    for i in 0..3 {
        wait_for(
            "the callout answers replicated",
            Duration::from_secs(20),
            || {
                let cached = cached_callouts(&c, i) == expected;
                async move { cached.then_some(()) }
            },
        )
        .await
        .unwrap();
    }
    // … so with the server gone, Ariège still answers from the cache; a mailbox nobody
    // asked about is taken unverified (the message waits in the spool like any other).
    sink.stop();
    let (code, text) = rcpt_code(&c, 2, "reject-me@example.test");
    assert_eq!(code, 550, "{text}");
    let r = c.smtp_send(
        2,
        "alice@client.example",
        &["bob@example.test", "never-asked@example.test"],
        HAM,
    );
    assert_eq!(
        r.rcpt.iter().map(|r| r.0).collect::<Vec<_>>(),
        [250, 250],
        "{r:?}"
    );
    assert_eq!(r.data.as_ref().map(|d| d.0), Some(250), "{r:?}");
}
