//! Recipient verification by list, driven with `peagectl` as an operator would: unknown
//! mailboxes refused at RCPT with `550 5.1.1` on every site, known ones accepted, changes
//! replicated, and a domain without a list still accepting any local part.

use super::{queue, with_local_domain, HAM};
use peage_tests::TestCluster;

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
