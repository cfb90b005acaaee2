//! `peagectl` and `peage` as an operator runs them: JSON status, list commands, and errors
//! that say what failed with a non-zero exit.

use std::process::{Command, Output};

use peage_tests::{bin, TestCluster, Tuning, ADMIN_TOKEN, READ_TOKEN};

fn peagectl(addr: &str, token: &str, args: &[&str]) -> Output {
    Command::new(bin("peagectl"))
        .arg("--addr")
        .arg(addr)
        .env("PEAGE_TOKEN", token)
        .args(args)
        .output()
        .expect("run peagectl")
}

fn text(o: &Output) -> String {
    format!(
        "status {:?}\nstdout:\n{}\nstderr:\n{}",
        o.status,
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

#[tokio::test]
async fn peagectl_status_lists_and_errors() {
    let c = TestCluster::start(Tuning::default()).await.unwrap();
    let addr = c.nodes[1].admin_url();

    status_as_json_and_as_a_table(&addr);

    empty_listings_say_so(&addr);

    // list add / check / ls, as in the README.
    let o = peagectl(
        &addr,
        ADMIN_TOKEN,
        &["list", "add", "ip", "203.0.113.0/24", "--reason", "botnet"],
    );
    assert!(o.status.success(), "{}", text(&o));
    let o = peagectl(
        &c.nodes[2].admin_url(),
        READ_TOKEN,
        &["list", "check", "ip", "203.0.113.7", "--json"],
    );
    assert!(o.status.success(), "{}", text(&o));
    let r: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(r["matches"][0]["value"], "203.0.113.0/24");
    assert_eq!(r["matches"][0]["reason"], "botnet");
    let o = peagectl(&addr, READ_TOKEN, &["--stale", "list", "ls", "--json"]);
    assert!(o.status.success(), "{}", text(&o));
    let r: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(r["entries"].as_array().unwrap().len(), 1);
    assert_eq!(r["read"]["stale"], true);

    // The routing table: add through one node, list through another, bad routes refused.
    let o = peagectl(
        &addr,
        ADMIN_TOKEN,
        &[
            "domain",
            "add",
            "Example.TEST",
            "--route",
            "smtp://127.0.0.1:2626",
        ],
    );
    assert!(o.status.success(), "{}", text(&o));
    let o = peagectl(
        &c.nodes[0].admin_url(),
        READ_TOKEN,
        &["domain", "ls", "--json"],
    );
    assert!(o.status.success(), "{}", text(&o));
    let r: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(r["domains"][0]["domain"], "example.test");
    assert_eq!(r["domains"][0]["route"], "smtp://127.0.0.1:2626");
    assert_eq!(r["domains"][0]["author"], "test-admin");
    let o = peagectl(
        &addr,
        ADMIN_TOKEN,
        &["domain", "add", "x.test", "--route", "127.0.0.1:25"],
    );
    assert!(!o.status.success());
    assert!(text(&o).contains("smtp://HOST:PORT"), "{}", text(&o));
    let o = peagectl(&addr, ADMIN_TOKEN, &["domain", "rm", "nope.test"]);
    assert!(!o.status.success());
    assert!(text(&o).contains("not a local domain"), "{}", text(&o));
    let o = peagectl(&addr, ADMIN_TOKEN, &["domain", "rm", "example.test"]);
    assert!(o.status.success(), "{}", text(&o));
    let o = peagectl(&addr, ADMIN_TOKEN, &["domain", "ls", "--json"]);
    let r: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(r["domains"].as_array().unwrap().len(), 0);

    // Errors name what failed and exit non-zero.
    let o = peagectl(&addr, ADMIN_TOKEN, &["list", "add", "ip", "203.0.113.7/24"]);
    assert!(!o.status.success());
    assert!(
        text(&o).contains("invalid argument") && text(&o).contains("203.0.113.0/24"),
        "{}",
        text(&o)
    );
    let o = peagectl(&addr, "wrong-token-xxxxxxxx", &["status"]);
    assert!(!o.status.success());
    assert!(text(&o).contains("authentication failed"), "{}", text(&o));
    let o = peagectl(&addr, READ_TOKEN, &["list", "add", "domain", "bad.example"]);
    assert!(!o.status.success());
    assert!(text(&o).contains("permission denied"), "{}", text(&o));
    let o = peagectl("http://127.0.0.1:1", ADMIN_TOKEN, &["status"]);
    assert!(!o.status.success());
    let said = text(&o);
    assert!(said.contains("cannot reach http://127.0.0.1:1"), "{said}");
    // Each cause once: "Connection refused", without hyper's wrapper repeating itself.
    assert!(said.contains("refused"), "{said}");
    assert!(!said.contains("connect error: tcp connect error"), "{said}");

    // Several endpoints (a site down): the first that answers serves; none answering names
    // each with its cause.
    let o = peagectl(
        &format!("http://127.0.0.1:1,{addr}"),
        ADMIN_TOKEN,
        &["status", "--json"],
    );
    assert!(o.status.success(), "{}", text(&o));
    let s: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(s["node_id"], 2);
    let o = peagectl(
        "http://127.0.0.1:1, http://127.0.0.1:2",
        ADMIN_TOKEN,
        &["status"],
    );
    assert!(!o.status.success());
    let said = text(&o);
    assert!(
        said.contains("cannot reach any of the nodes given"),
        "{said}"
    );
    assert!(
        said.contains("http://127.0.0.1:1: ") && said.contains("http://127.0.0.1:2: "),
        "{said}"
    );
}

/// Empty listings say so, as `mailq` does, rather than print a bare header.
fn empty_listings_say_so(addr: &str) {
    for (args, says) in [
        (&["queue", "ls"][..], "no queued message\n"),
        (
            &["quarantine", "ls", "--recipient", "bob@"][..],
            "no held message matches\n",
        ),
        (&["list", "ls"][..], "no entry\n"),
    ] {
        let o = peagectl(addr, READ_TOKEN, args);
        assert!(o.status.success(), "{}", text(&o));
        assert!(
            String::from_utf8_lossy(&o.stdout).starts_with(says),
            "{}",
            text(&o)
        );
    }
}

/// `status --json` is one object with the documented fields; the human table names every
/// site.
fn status_as_json_and_as_a_table(addr: &str) {
    // status --json: one object with the documented fields.
    let o = peagectl(addr, ADMIN_TOKEN, &["status", "--json"]);
    assert!(o.status.success(), "{}", text(&o));
    let s: serde_json::Value = serde_json::from_slice(&o.stdout).expect("status --json is JSON");
    for key in [
        "node_id",
        "site",
        "role",
        "leader_id",
        "term",
        "last_applied",
        "members",
    ] {
        assert!(s.get(key).is_some(), "missing {key}: {s}");
    }
    assert_eq!(s["node_id"], 2);
    assert_eq!(s["site"], "roubaix");
    assert!(["leader", "follower", "learner", "candidate"].contains(&s["role"].as_str().unwrap()));
    let members = s["members"].as_array().unwrap();
    assert_eq!(members.len(), 3);
    for m in members {
        for key in ["node_id", "site", "addr", "voter", "matched_index"] {
            assert!(m.get(key).is_some(), "member missing {key}: {m}");
        }
        assert_eq!(m["voter"], true);
    }

    // The human table names every site.
    let o = peagectl(addr, ADMIN_TOKEN, &["status"]);
    let out = String::from_utf8_lossy(&o.stdout);
    for site in ["paris", "roubaix", "ariege"] {
        assert!(out.contains(site), "{out}");
    }

    // Piped into a reader that stops early (`| head -1`), it stops quietly, as any Unix
    // tool does: no panic and no backtrace on the operator's terminal.
    let mut child = Command::new(bin("peagectl"))
        .args(["--addr", addr, "status"])
        .env("PEAGE_TOKEN", ADMIN_TOKEN)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("run peagectl");
    // Closed before peagectl has its reply from the node, so its first write finds no reader.
    drop(child.stdout.take());
    let o = child.wait_with_output().expect("wait for peagectl");
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(!stderr.contains("panicked"), "{stderr}");
}

#[test]
fn peage_run_reports_config_errors_by_key() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("bad.toml");
    std::fs::write(
        &cfg,
        "[node]\nid = 1\nsite = \"paris\"\n[listen]\nadmin = \"127.0.0.1:1\"\npeer = \"127.0.0.1:2\"\n[cluster]\nsecret = \"short\"\n",
    )
    .unwrap();
    let o = Command::new(bin("peage"))
        .args(["run", "--config"])
        .arg(&cfg)
        .arg("--data-dir")
        .arg(dir.path().join("d"))
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(text(&o).contains("cluster.secret"), "{}", text(&o));
}

#[test]
fn peage_cert_makes_a_ca_and_node_certificates_and_never_overwrites() {
    let dir = tempfile::tempdir().unwrap();
    let ca_dir = dir.path().join("ca");
    let peage = |args: &[&str]| {
        Command::new(bin("peage"))
            .arg("cert")
            .args(args)
            .output()
            .unwrap()
    };
    let ca = ca_dir.to_str().unwrap();
    let o = peage(&["ca", ca]);
    assert!(o.status.success(), "{}", text(&o));
    let o = peage(&["node", ca, "paris", "10.10.1.11", "mx-paris.example.net"]);
    assert!(o.status.success(), "{}", text(&o));
    for file in ["ca.pem", "ca.key", "paris.pem", "paris.key"] {
        assert!(ca_dir.join(file).exists(), "{file}");
    }
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(ca_dir.join("paris.key"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(
        mode & 0o077,
        0,
        "the key is readable by its owner only: {mode:o}"
    );
    // Again: refused, naming the file; nothing replaced.
    let before = std::fs::read(ca_dir.join("ca.key")).unwrap();
    let o = peage(&["ca", ca]);
    assert!(
        !o.status.success() && text(&o).contains("never overwritten"),
        "{}",
        text(&o)
    );
    assert_eq!(std::fs::read(ca_dir.join("ca.key")).unwrap(), before);
    // A node needs a host, and a CA to sign with.
    let o = peage(&["node", ca, "roubaix"]);
    assert!(!o.status.success(), "{}", text(&o));
    let elsewhere = dir.path().join("none");
    let o = peage(&["node", elsewhere.to_str().unwrap(), "roubaix", "10.10.2.11"]);
    assert!(
        !o.status.success() && text(&o).contains("peage cert ca"),
        "{}",
        text(&o)
    );
}
