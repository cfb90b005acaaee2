//! A domain admin's own block and allow lists, with real processes and `peagectl`: a token
//! for a.example keeps entries scoped to its domain, which decide a.example's mail and no
//! one else's; it cannot touch the cluster's lists or another domain's, nor see them; an
//! operator keeps a mailbox's own entry; every write is audited; the replicas stay equal.

use std::time::Duration;

use peage_tests::{SinkProcess, TestCluster, ADMIN_TOKEN};

use super::{json_as, token_add, two_domains_and_acme};

const SPAMMER: &str = "promo@bulk.example";

fn message(to: &str) -> Vec<u8> {
    format!(
        "From: <{SPAMMER}>\r\nTo: <{to}>\r\nSubject: offer\r\nDate: Sat, 05 Dec 2026 10:00:00 +0000\r\n\
         Message-ID: <{to}@bulk.example>\r\n\r\nHello, a fine offer.\r\n"
    )
    .into_bytes()
}

fn denied(result: Result<serde_json::Value, String>, what: &str) {
    let err = result.expect_err(what);
    assert!(err.contains("permission denied"), "{what}: {err}");
}

/// The values of a `list ls --json` or `list check --json` answer, with their scopes.
fn scoped_values(answer: &serde_json::Value, field: &str) -> Vec<(String, String)> {
    let entries = answer[field].as_array().unwrap();
    entries
        .iter()
        .map(|e| {
            let text = |k: &str| e[k].as_str().unwrap().to_owned();
            (text("value"), text("scope"))
        })
        .collect()
}

/// `check`'s verdict and symbol names for the spammer's message to `rcpts`, through `node`.
fn verdict_for(c: &TestCluster, node: usize, rcpts: &[&str]) -> (String, Vec<String>) {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("m.eml");
    std::fs::write(&file, message(rcpts[0])).unwrap();
    let mut args = vec!["check", file.to_str().unwrap(), "--from", SPAMMER];
    for r in rcpts {
        args.extend(["--to", r]);
    }
    let v = json_as(c, node, ADMIN_TOKEN, &args).unwrap();
    let names = v["symbols"].as_array().unwrap();
    let names = names.iter().map(|s| s["name"].as_str().unwrap().to_owned());
    (v["verdict"].as_str().unwrap().to_owned(), names.collect())
}

#[tokio::test]
async fn a_domain_admin_keeps_lists_of_its_own_that_decide_only_its_mail() {
    let (c, acme) = two_domains_and_acme().await;
    let sink = c.start_sink().await.unwrap();
    let bco = token_add(
        &c,
        "bco",
        &["--role", "domain-admin", "--domain", "b.example"],
    );

    // Its own entry, for its domain; never the cluster's lists, never another domain's.
    let block = [
        "list",
        "add",
        "sender",
        SPAMMER,
        "--reason",
        "our customers hate it",
    ];
    let own = [&block[..], &["--scope", "a.example"]].concat();
    let added = json_as(&c, 1, &acme, &own).unwrap();
    assert_eq!(added["entry"]["scope"], "a.example", "{added}");
    assert_eq!(added["entry"]["author"], "acme", "{added}");
    denied(json_as(&c, 1, &acme, &block), "cluster-wide add");
    let theirs = [&block[..], &["--scope", "b.example"]].concat();
    denied(json_as(&c, 1, &acme, &theirs), "another domain's add");
    let rm_cluster = ["list", "rm", "sender", SPAMMER];
    denied(json_as(&c, 1, &acme, &rm_cluster), "cluster-wide rm");
    let unhosted = [&block[..], &["--scope", "elsewhere.example"]].concat();
    let err = json_as(&c, 1, ADMIN_TOKEN, &unhosted).unwrap_err();
    assert!(err.contains("not a hosted domain"), "{err}");
    let err = json_as(
        &c,
        1,
        &acme,
        &[&block[..], &["--scope", "not a domain"]].concat(),
    );
    assert!(err.unwrap_err().contains("scope"), "a bad scope is named");
    // The operator keeps one mailbox of b.example's own entry; and a cluster-wide one.
    let mailbox = [
        "list",
        "add",
        "sender",
        "x@noise.example",
        "--scope",
        "bo@b.example",
    ];
    json_as(&c, 0, ADMIN_TOKEN, &mailbox).unwrap();
    json_as(&c, 0, ADMIN_TOKEN, &["list", "add", "ip", "203.0.113.0/24"]).unwrap();

    // Each sees its own entries only; the operator sees all of them.
    let mine = json_as(&c, 2, &acme, &["list", "ls"]).unwrap();
    let a_entry = (SPAMMER.to_owned(), "a.example".to_owned());
    assert_eq!(
        scoped_values(&mine, "entries"),
        std::slice::from_ref(&a_entry),
        "{mine}"
    );
    let b_entry = ("x@noise.example".to_owned(), "bo@b.example".to_owned());
    let theirs = json_as(&c, 2, &bco, &["list", "ls"]).unwrap();
    assert_eq!(scoped_values(&theirs, "entries"), [b_entry], "{theirs}");
    denied(
        json_as(&c, 2, &bco, &["list", "ls", "--scope", "a.example"]),
        "ls other",
    );
    let check = ["list", "check", "sender", SPAMMER];
    let seen = json_as(&c, 2, &bco, &check).unwrap();
    assert!(scoped_values(&seen, "matches").is_empty(), "{seen}");
    let all = json_as(&c, 2, ADMIN_TOKEN, &["list", "ls"]).unwrap();
    assert_eq!(all["entries"].as_array().unwrap().len(), 3, "{all}");
    let of_a = json_as(&c, 2, ADMIN_TOKEN, &["list", "ls", "--scope", "a.example"]).unwrap();
    assert_eq!(scoped_values(&of_a, "entries"), [a_entry], "{of_a}");

    // a.example's entry rejects the spammer's mail to a.example, and to nobody else.
    c.sync_all(0).await.unwrap();
    let to_a = c.smtp_send(0, SPAMMER, &["ann@a.example"], &message("ann@a.example"));
    let (code, text) = to_a.data.clone().unwrap();
    assert_eq!(code, 550, "{to_a:?}");
    assert!(text.contains("block-listed"), "{text}");
    let to_b = c.smtp_send(1, SPAMMER, &["bea@b.example"], &message("bea@b.example"));
    assert_eq!(to_b.data.clone().unwrap().0, 250, "{to_b:?}");
    let wait = Duration::from_secs(30);
    sink.wait_for_messages("bea@b.example", 1, "b.example's mail delivered", wait)
        .await;
    for node in 0..3 {
        let (verdict, names) = verdict_for(&c, node, &["ann@a.example"]);
        assert_eq!(verdict, "reject", "node {node}: {names:?}");
        let (verdict, names) = verdict_for(&c, node, &["ann@a.example", "bea@b.example"]);
        assert_eq!(
            verdict, "deliver",
            "mixed recipients, node {node}: {names:?}"
        );
        assert!(!names.contains(&"BLOCKLIST_SENDER".to_owned()), "{names:?}");
    }

    // Removed by its owner: the next message to a.example goes through.
    let rm = ["list", "rm", "sender", SPAMMER, "--scope", "a.example"];
    denied(json_as(&c, 1, &bco, &rm), "another domain's rm");
    json_as(&c, 1, &acme, &rm).unwrap();
    c.sync_all(0).await.unwrap();
    let again = c.smtp_send(2, SPAMMER, &["ann@a.example"], &message("ann@a.example"));
    assert_eq!(again.data.clone().unwrap().0, 250, "{again:?}");
    sink.wait_for_messages("ann@a.example", 1, "a.example's mail delivered", wait)
        .await;

    a_mailbox_entry_decides_that_mailbox_only(&c, &sink).await;
    the_audit_log_names_each_list_write(&c);
    let digests = c.digests(0).await.unwrap();
    assert!(digests.iter().all(|d| *d == digests[0]), "{digests:?}");
}

/// The audit log names each list write with its token and scope, refused ones too.
fn the_audit_log_names_each_list_write(c: &TestCluster) {
    let audit = json_as(c, 0, ADMIN_TOKEN, &["audit", "ls", "--by", "acme"]).unwrap();
    let records = audit["entries"].as_array().unwrap();
    let logged = |action: &str, target_has: &str, ok: bool| {
        records.iter().any(|e| {
            e["action"] == action
                && e["target"].as_str().unwrap().contains(target_has)
                && (e["outcome"] == "ok") == ok
        })
    };
    assert!(logged("ListAdd", "for a.example", true), "{audit}");
    assert!(logged("ListAdd", "for b.example", false), "{audit}");
    assert!(logged("ListRemove", "for a.example", true), "{audit}");
}

/// bo@b.example's own block entry rejects the sender's mail to bo, and to bo alone.
async fn a_mailbox_entry_decides_that_mailbox_only(c: &TestCluster, sink: &SinkProcess) {
    let noise = "x@noise.example";
    let to_bo = c.smtp_send(0, noise, &["bo@b.example"], &message("bo@b.example"));
    assert_eq!(to_bo.data.clone().unwrap().0, 550, "{to_bo:?}");
    let to_bea = c.smtp_send(2, noise, &["bea@b.example"], &message("bea@b.example"));
    assert_eq!(to_bea.data.clone().unwrap().0, 250, "{to_bea:?}");
    let wait = Duration::from_secs(30);
    sink.wait_for_messages("bea@b.example", 2, "bea's second message", wait)
        .await;
    assert!(sink.messages("bo@b.example").is_empty());
}
