//! Roles scoped to domains, with real processes and `peagectl`: tokens made through the API
//! work on every site; a domain admin for a.example sees nothing of b.example (quarantine,
//! tracking, accounts, domains) and is refused everything outside its scope; a helpdesk
//! releases but cannot change policy; an expired token is refused; the audit log shows
//! every write with its token's name, refused ones too; the replicas stay equal.

use std::time::Duration;

use peage_tests::v1::UserSetRequest;
use peage_tests::{wait_for, TestCluster};

use super::{json_as, quarantine, token_add, two_domains_and_acme, zip_with_exe};

/// Holds a ZIP with an .exe for `rcpts`: its queue id.
fn quarantined_for(c: &TestCluster, node: usize, rcpts: &[&str]) -> String {
    let r = c.smtp_send(node, "alice@client.example", rcpts, &zip_with_exe());
    r.queue_id()
}

fn ids(listing: &serde_json::Value) -> Vec<String> {
    let messages = listing["messages"].as_array().unwrap();
    messages
        .iter()
        .map(|m| m["queue_id"].as_str().unwrap().to_owned())
        .collect()
}

fn denied(result: Result<serde_json::Value, String>, what: &str) {
    let err = result.expect_err(what);
    assert!(err.contains("permission denied"), "{what}: {err}");
}

/// The three held messages: for a.example only, b.example only, and both.
struct Held {
    only_a: String,
    only_b: String,
    both: String,
}

#[tokio::test]
async fn a_domain_admin_sees_and_changes_only_its_domains_and_every_write_is_audited() {
    let (c, acme) = two_domains_and_acme().await;
    let desk = token_add(&c, "desk", &["--role", "helpdesk"]);
    let auditor = token_add(&c, "auditor", &["--role", "auditor"]);
    let temp = token_add(&c, "temp", &["--role", "auditor", "--expires-in", "1s"]);
    assert!(acme.starts_with("peage_") && acme != desk);
    let err = json_as(
        &c,
        0,
        peage_tests::ADMIN_TOKEN,
        &["token", "add", "x", "--role", "domain-admin"],
    );
    assert!(err.unwrap_err().contains("needs its domains"));

    let held = Held {
        only_a: quarantined_for(&c, 0, &["ann@a.example"]),
        only_b: quarantined_for(&c, 1, &["bea@b.example"]),
        both: quarantined_for(&c, 2, &["al@a.example", "bo@b.example"]),
    };
    wait_for("three held everywhere", Duration::from_secs(20), || async {
        let held = [quarantine(&c, 0).await, quarantine(&c, 2).await];
        held.iter().all(|q| q.len() == 3).then_some(())
    })
    .await
    .unwrap();

    a_domain_admin_sees_only_its_domains(&c, &acme, &held).await;
    a_domain_admin_is_refused_outside_them(&c, &acme).await;
    a_helpdesk_releases_and_sets_nothing(&c, &desk, &held);
    // The auditor reads; a token past its expiry is refused.
    json_as(&c, 2, &auditor, &["audit", "ls"]).unwrap();
    denied(
        json_as(&c, 2, &auditor, &["quarantine", "show", &held.both]),
        "auditor body",
    );
    let expired = || async {
        let refused = json_as(&c, 2, &temp, &["status"]).err();
        refused.filter(|e| e.contains("expired"))
    };
    wait_for("the short token expires", Duration::from_secs(20), expired)
        .await
        .unwrap();
    the_audit_log_shows_every_write(&c, &held);

    let removed = json_as(&c, 0, peage_tests::ADMIN_TOKEN, &["token", "rm", "acme"]);
    assert!(removed.is_ok(), "{removed:?}");
    wait_for(
        "the removed token refused",
        Duration::from_secs(20),
        || async {
            let err = json_as(&c, 2, &acme, &["quarantine", "ls"]).err();
            err.filter(|e| e.contains("authentication failed"))
        },
    )
    .await
    .unwrap();
    let digests = c.digests(0).await.unwrap();
    assert!(digests.windows(2).all(|w| w[0] == w[1]), "{digests:?}");
}

/// Through another site than the one that made its token: the quarantine, a body,
/// tracking and the routing table of a.example only, releases of a.example's own mail (or
/// part of it) only.
async fn a_domain_admin_sees_only_its_domains(c: &TestCluster, acme: &str, held: &Held) {
    let seen = json_as(c, 2, acme, &["quarantine", "ls"]).unwrap();
    let mut seen_ids = ids(&seen);
    seen_ids.sort();
    let mut expected = vec![held.only_a.clone(), held.both.clone()];
    expected.sort();
    assert_eq!(seen_ids, expected, "{seen}");
    assert!(!seen.to_string().contains("b.example"), "{seen}");
    let shown = c.peagectl_as(1, acme, &["quarantine", "show", "--raw", &held.only_a]);
    let body = String::from_utf8_lossy(&shown.stdout);
    assert!(body.contains("invoice.zip"), "{shown:?}");
    let err = json_as(c, 1, acme, &["quarantine", "show", &held.only_b]).unwrap_err();
    assert!(err.contains("not found"), "{err}");
    // Of a message also for b.example, a.example's part only: b.example's stays held.
    json_as(c, 1, acme, &["quarantine", "release", &held.both]).unwrap();
    c.sync_all(1).await.unwrap();
    let all = quarantine(c, 1).await;
    let both = all.iter().find(|m| m.queue_id == held.both).unwrap();
    assert_eq!(both.rcpt_to, ["bo@b.example"], "{all:?}");
    let err = json_as(c, 1, acme, &["quarantine", "release", &held.only_b]).unwrap_err();
    assert!(err.contains("not found"), "{err}");
    json_as(c, 1, acme, &["quarantine", "release", &held.only_a]).unwrap();
    let tracked = wait_for("acme's events", Duration::from_secs(20), || async {
        let found = json_as(c, 0, acme, &["track"]).unwrap();
        let events = found["events"].as_array().unwrap();
        let released = events.iter().any(|e| e["kind"] == "released");
        (released && events.len() >= 5).then_some(found)
    })
    .await
    .unwrap();
    assert!(!tracked.to_string().contains("b.example"), "{tracked}");
    let forced = json_as(c, 0, acme, &["track", "--domain", "b.example"]).unwrap();
    assert!(forced["events"].as_array().unwrap().is_empty(), "{forced}");
    let domains = json_as(c, 0, acme, &["domain", "ls"]).unwrap();
    assert!(!domains.to_string().contains("b.example"), "{domains}");
}

/// Its own accounts only; nothing cluster-wide, nothing of b.example.
async fn a_domain_admin_is_refused_outside_them(c: &TestCluster, acme: &str) {
    let mut as_acme = c.client_with(0, Some(acme)).await.unwrap();
    let account = |login: &str, domain: &str| UserSetRequest {
        login: login.into(),
        password: "correct horse battery".into(),
        domains: vec![domain.into()],
        ..Default::default()
    };
    let ann = account("ann@a.example", "a.example");
    as_acme.user_set(ann).await.unwrap();
    let refused = as_acme
        .user_set(account("eve@a.example", "b.example"))
        .await;
    assert_eq!(refused.unwrap_err().code(), tonic::Code::PermissionDenied);
    let users = json_as(c, 2, acme, &["user", "ls"]).unwrap();
    assert!(users.to_string().contains("ann@a.example"), "{users}");
    for outside in [
        vec!["policy", "set", "--quarantine", "7"],
        vec!["list", "add", "ip", "203.0.113.9"],
        vec!["list", "add", "ip", "203.0.113.9", "--scope", "b.example"],
        vec!["list", "ls", "--scope", "b.example"],
        vec!["sql", "SELECT 1"],
        vec!["status"],
        vec!["token", "ls"],
        vec!["audit", "ls"],
        vec!["domain", "users", "ls", "b.example"],
    ] {
        denied(json_as(c, 0, acme, &outside), &outside.join(" "));
    }
}

/// The helpdesk releases anyone's mail, and changes no setting and no account.
fn a_helpdesk_releases_and_sets_nothing(c: &TestCluster, desk: &str, held: &Held) {
    let release = ["quarantine", "release", "--no-learn", &held.only_b];
    json_as(c, 1, desk, &release).unwrap();
    let policy = json_as(c, 1, desk, &["policy", "set", "--quarantine", "7"]);
    denied(policy, "helpdesk policy");
    let account = json_as(c, 1, desk, &["user", "rm", "ann@a.example"]);
    denied(account, "helpdesk account");
    let left = json_as(c, 1, desk, &["quarantine", "ls"]).unwrap();
    assert_eq!(ids(&left), std::slice::from_ref(&held.both), "{left}");
}

/// Every write, refused ones too, with its token's name, role and client.
fn the_audit_log_shows_every_write(c: &TestCluster, held: &Held) {
    let audit = json_as(c, 1, peage_tests::ADMIN_TOKEN, &["audit", "ls"]).unwrap();
    let entries = audit["entries"].as_array().unwrap();
    let find = |token: &str, action: &str, ok: bool| {
        entries
            .iter()
            .any(|e| e["token"] == token && e["action"] == action && (e["outcome"] == "ok") == ok)
    };
    assert!(find("test-admin", "TokenAdd", true), "{audit}");
    assert!(find("acme", "MessageRelease", true), "{audit}");
    assert!(
        find("acme", "MessageRelease", false),
        "refused too: {audit}"
    );
    assert!(find("acme", "UserSet", true) && find("acme", "UserSet", false));
    assert!(find("desk", "MessageRelease", true), "{audit}");
    assert!(find("desk", "PolicySet", false), "{audit}");
    let release = entries
        .iter()
        .find(|e| e["token"] == "acme" && e["outcome"] == "ok" && e["action"] == "MessageRelease")
        .unwrap();
    assert_eq!(release["role"], "domain-admin");
    assert_eq!(release["target"], held.only_a.as_str());
    let client = release["client"].as_str().unwrap();
    assert!(client.starts_with("127."), "{release}");
    let by_desk = ["audit", "ls", "--failed", "--by", "desk"];
    let failed = json_as(c, 1, peage_tests::ADMIN_TOKEN, &by_desk).unwrap();
    let failed = failed["entries"].as_array().unwrap();
    assert!(!failed.is_empty());
    assert!(failed
        .iter()
        .all(|e| e["outcome"] != "ok" && e["token"] == "desk"));
}
