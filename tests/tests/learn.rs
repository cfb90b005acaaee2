//! The classifier learns as one cluster: `peagectl learn` through one node changes verdicts
//! on the others, learning is idempotent and survives restarts, and releasing a false
//! positive from quarantine teaches ham everywhere.

use std::path::Path;
use std::process::{Command, Output};
use std::time::Duration;

use peage_tests::v1::*;
use peage_tests::{bin, wait_for, TestCluster, Tuning};

// Words the phrase rules do not know: what moves the verdict here is what was learned.
const SPAM_WORDS: &[&str] = &[
    "cheap",
    "deal",
    "bargain",
    "casino",
    "reward",
    "prize",
    "stock",
    "crypto",
    "unsecured",
    "coins",
    "exclusive",
    "profits",
    "bonus",
    "jackpot",
    "lottery",
    "shop",
];
const HAM_WORDS: &[&str] = &[
    "meeting",
    "project",
    "thursday",
    "agenda",
    "review",
    "draft",
    "budget",
    "minutes",
    "team",
    "schedule",
    "release",
    "notes",
    "planning",
    "report",
    "lunch",
    "colleagues",
];

fn message(words: &[&str], n: usize, subject: &str) -> Vec<u8> {
    let body: Vec<&str> = (0..40).map(|i| words[(i * 7 + n) % words.len()]).collect();
    format!(
        "From: Someone <s{n}@sender.example>\r\nTo: bob@example.test\r\nSubject: {subject} {n}\r\nDate: Wed, 25 Nov 2026 10:00:00 +0000\r\nMessage-ID: <m{n}.{subject}@sender.example>\r\n\r\n{} number{n}\r\n",
        body.join(" ")
    )
    .into_bytes()
}

fn write_set(dir: &Path, words: &[&str], subject: &str, count: usize) {
    std::fs::create_dir_all(dir).unwrap();
    for n in 0..count {
        std::fs::write(dir.join(format!("{n:03}.eml")), message(words, n, subject)).unwrap();
    }
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

async fn verdict(c: &TestCluster, node: usize, message: &[u8]) -> CheckMessageReply {
    c.client(node)
        .await
        .unwrap()
        .check_message(CheckMessageRequest {
            message: message.to_vec(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
}

async fn quarantined(c: &TestCluster, node: usize) -> Vec<QueuedMessage> {
    c.client(node)
        .await
        .unwrap()
        .queue_list(QueueListRequest {
            quarantine: true,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .messages
}

async fn learned(c: &TestCluster, node: usize) -> (u64, u64, u64) {
    let s = c.status(node).await.unwrap();
    (s.learned_spam, s.learned_ham, s.learned_tokens)
}

#[tokio::test]
async fn learning_through_one_node_changes_verdicts_everywhere_once_and_survives_restarts() {
    let mut c = TestCluster::start(Tuning::default()).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let (spam_dir, ham_dir) = (dir.path().join("spam"), dir.path().join("ham"));
    write_set(&spam_dir, SPAM_WORDS, "offer", 60);
    write_set(&ham_dir, HAM_WORDS, "weekly", 60);
    let probe = message(SPAM_WORDS, 1000, "offer");

    // Nothing learned: the classifier is silent.
    let before = verdict(&c, 1, &probe).await;
    assert_eq!(before.verdict, "deliver");
    assert!(
        !before.symbols.iter().any(|s| s.name.starts_with("BAYES")),
        "{before:?}"
    );

    let o = c.peagectl(0, &["learn", "spam", spam_dir.to_str().unwrap()]);
    assert!(o.status.success(), "{}", text(&o));
    assert!(text(&o).contains("60 new"), "{}", text(&o));
    let o = c.peagectl(0, &["learn", "ham", ham_dir.to_str().unwrap()]);
    assert!(o.status.success(), "{}", text(&o));
    assert!(
        text(&o).contains("the cluster has learned 60 spam and 60 ham"),
        "{}",
        text(&o)
    );
    c.sync_all(0).await.unwrap();

    // The other two sites use what Paris learned.
    for node in [1, 2] {
        let after = verdict(&c, node, &probe).await;
        assert!(
            after.symbols.iter().any(|s| s.name == "BAYES_99"),
            "node {node}: {after:?}"
        );
        assert_eq!(after.verdict, "quarantine", "node {node}: {after:?}");
        let ham = verdict(&c, node, &message(HAM_WORDS, 1000, "weekly")).await;
        assert!(ham.symbols.iter().any(|s| s.name == "BAYES_00"), "{ham:?}");
        assert_eq!(ham.verdict, "deliver");
    }

    // Learning the same messages again changes nothing.
    let counts = learned(&c, 0).await;
    assert_eq!((counts.0, counts.1), (60, 60));
    let o = c.peagectl(2, &["learn", "spam", spam_dir.to_str().unwrap()]);
    assert!(o.status.success(), "{}", text(&o));
    assert!(
        text(&o).contains("0 new, 0 moved from the other class, 60 already known"),
        "{}",
        text(&o)
    );
    assert_eq!(learned(&c, 0).await, counts);

    // Learning one of them the other way moves it.
    let one = spam_dir.join("000.eml");
    let o = c.peagectl(1, &["learn", "ham", one.to_str().unwrap()]);
    assert!(text(&o).contains("1 moved"), "{}", text(&o));
    c.sync_all(1).await.unwrap();
    let moved = learned(&c, 0).await;
    assert_eq!((moved.0, moved.1), (59, 61));

    // A restarted node has the same counts and the same state.
    c.kill(2);
    c.start_node(2).unwrap();
    let digests = c.digests(0).await.unwrap();
    assert_eq!(learned(&c, 2).await, moved);
    assert!(digests.windows(2).all(|w| w[0] == w[1]), "{digests:?}");

    // Bad requests: an unknown class, an empty message.
    let mut a = c.client(0).await.unwrap();
    let e = a
        .learn(LearnRequest {
            message: probe.clone(),
            class: "eggs".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(e.code(), tonic::Code::InvalidArgument);
    let e = a
        .learn(LearnRequest {
            message: Vec::new(),
            class: "spam".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(e.code(), tonic::Code::InvalidArgument);
}

/// Asserts that every node holds the same state and gives `probe` the same verdict, with
/// the logistic classifier's symbol in it; returns the digest.
async fn same_model_everywhere(c: &TestCluster, probe: &[u8]) -> String {
    let digests = c.digests(0).await.unwrap();
    assert!(digests.windows(2).all(|w| w[0] == w[1]), "{digests:?}");
    let mut verdicts = Vec::new();
    for node in 0..3 {
        let v = verdict(c, node, probe).await;
        let names: Vec<String> = v.symbols.iter().map(|s| s.name.clone()).collect();
        verdicts.push((v.verdict, v.score_milli, names));
    }
    assert!(verdicts.windows(2).all(|w| w[0] == w[1]), "{verdicts:?}");
    assert!(
        verdicts[0]
            .2
            .iter()
            .any(|n| n == "LOGISTIC_80" || n == "LOGISTIC_95"),
        "the logistic classifier, taught all the spam then all the ham, still calls the \
         spam spam (rehearsal): {verdicts:?}"
    );
    digests[0].clone()
}

/// Both classifiers are trained at apply, in log order: nodes that learned the same
/// messages, proposed through different nodes, hold the same model bit for bit (the state
/// digest covers the logistic weights) and give the same verdict, also a node that caught
/// up from a snapshot and every node after a restart.
#[tokio::test]
async fn learning_through_different_nodes_gives_one_model_after_a_snapshot_install_and_restarts() {
    let mut c = TestCluster::start(Tuning {
        snapshot_after_entries: 20,
        keep_entries_after_snapshot: 0,
        ..Tuning::default()
    })
    .await
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let (spam_dir, ham_dir) = (dir.path().join("spam"), dir.path().join("ham"));
    write_set(&spam_dir, SPAM_WORDS, "offer", 60);
    write_set(&ham_dir, HAM_WORDS, "weekly", 60);
    c.kill(2);
    let leader = c.wait_for_leader_everywhere().await.unwrap();
    // One learning in flight at a time: each its own entry, so that the log passes the
    // snapshot threshold (in flight together, they share a few entries).
    for (node, class, dir) in [(0, "spam", &spam_dir), (1, "ham", &ham_dir)] {
        let o = c.peagectl(
            node,
            &["learn", class, dir.to_str().unwrap(), "--jobs", "1"],
        );
        assert!(o.status.success(), "{}", text(&o));
    }
    wait_for("the leader purges its log", Duration::from_secs(30), || {
        let c = &c;
        async move { (c.status(leader).await.ok()?.purged_index > 0).then_some(()) }
    })
    .await
    .unwrap();
    c.start_node(2).unwrap();
    c.wait_for_leader_everywhere().await.unwrap();
    c.sync_all(leader).await.unwrap();
    let s2 = c.status(2).await.unwrap();
    assert!(
        s2.snapshot_index > 0,
        "node 2 caught up from a snapshot: {s2:?}"
    );

    let probe = message(SPAM_WORDS, 1000, "offer");
    let before = same_model_everywhere(&c, &probe).await;
    for node in 0..3 {
        c.stop(node, Duration::from_secs(10));
        c.start_node(node).unwrap();
    }
    c.wait_for_leader_everywhere().await.unwrap();
    let after = same_model_everywhere(&c, &probe).await;
    assert_eq!(
        before, after,
        "nothing learned, nothing changed across the restarts"
    );
}

#[tokio::test]
async fn releasing_a_false_positive_teaches_ham_cluster_wide() {
    let c = TestCluster::start(Tuning::default()).await.unwrap();
    let sink = c.start_sink().await.unwrap();
    c.route_local_domain().await.unwrap();
    let mut a = c.client(0).await.unwrap();
    for n in 0..60 {
        for (words, subject, class) in [(SPAM_WORDS, "offer", "spam"), (HAM_WORDS, "weekly", "ham")]
        {
            a.learn(LearnRequest {
                message: message(words, n, subject),
                class: class.into(),
            })
            .await
            .unwrap();
        }
    }
    c.sync_all(0).await.unwrap();

    // A customer's legitimate offer looks like the spam learned so far: quarantined.
    let fp = message(SPAM_WORDS, 500, "offer");
    let r = c.smtp_send(1, "s500@sender.example", &["bob@example.test"], &fp);
    assert_eq!(r.data.as_ref().map(|d| d.0), Some(250), "{r:?}");
    let held = quarantined(&c, 1).await;
    assert_eq!(held.len(), 1, "{held:?}");
    assert!(
        held[0].symbols.iter().any(|s| s.name == "BAYES_99"),
        "{held:?}"
    );
    // Another one, held too, for a release that does not teach (below): once the first is
    // learned as ham, the logistic classifier no longer calls its like spam.
    let r = c.smtp_send(
        1,
        "s501@sender.example",
        &["bob@example.test"],
        &message(SPAM_WORDS, 501, "offer"),
    );
    assert_eq!(r.data.as_ref().map(|d| d.0), Some(250), "{r:?}");
    let both = quarantined(&c, 1).await;
    assert_eq!(both.len(), 2, "{both:?}");
    let second = both
        .iter()
        .find(|m| m.queue_id != held[0].queue_id)
        .map(|m| m.queue_id.clone())
        .unwrap();

    // Released at Ariège: delivered, and learned as ham for every site.
    let o = c.peagectl(2, &["quarantine", "release", &held[0].queue_id]);
    assert!(o.status.success(), "{}", text(&o));
    assert!(text(&o).contains("learned as ham (new)"), "{}", text(&o));
    sink.wait_for_messages(
        "bob@example.test",
        1,
        "the released message is delivered",
        Duration::from_secs(30),
    )
    .await;
    c.sync_all(2).await.unwrap();
    for node in 0..3 {
        assert_eq!(learned(&c, node).await.1, 61, "node {node}");
    }
    // Paris already knows it as ham: the same message learned there changes nothing.
    let r = a
        .learn(LearnRequest {
            message: fp.clone(),
            class: "ham".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(r.change, "unchanged");

    // The same offer again is delivered now: what a user released, the cluster learned.
    let r = c.smtp_send(
        1,
        "s502@sender.example",
        &["bob@example.test"],
        &message(SPAM_WORDS, 502, "offer"),
    );
    assert_eq!(r.data.as_ref().map(|d| d.0), Some(250), "{r:?}");
    sink.wait_for_messages(
        "bob@example.test",
        2,
        "a message like the released one is delivered",
        Duration::from_secs(30),
    )
    .await;

    // --no-learn releases without teaching.
    let o = c.peagectl(0, &["quarantine", "release", "--no-learn", &second]);
    assert!(o.status.success(), "{}", text(&o));
    assert!(!text(&o).contains("learned"), "{}", text(&o));
    c.sync_all(0).await.unwrap();
    assert_eq!(learned(&c, 0).await.1, 61);
}

/// `peage eval` cross-validates offline and reports the documented figures as JSON.
#[test]
fn peage_eval_cross_validates_and_reports_recall_and_false_positives() {
    let dir = tempfile::tempdir().unwrap();
    let (spam_dir, ham_dir) = (dir.path().join("spam"), dir.path().join("ham"));
    // 5 folds of 80: each fold trains on 64 of each class, above the classifier's minimum.
    write_set(&spam_dir, SPAM_WORDS, "offer", 80);
    write_set(&ham_dir, HAM_WORDS, "weekly", 80);
    let o = Command::new(bin("peage"))
        .args(["eval", "--json", "--spam"])
        .arg(&spam_dir)
        .arg("--ham")
        .arg(&ham_dir)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", text(&o));
    let r: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(r["plan"], "5-fold cross-validation");
    assert_eq!(
        (r["spam"].as_u64(), r["ham"].as_u64()),
        (Some(80), Some(80))
    );
    assert_eq!(r["spam_recall"].as_f64(), Some(1.0), "{r}");
    assert_eq!(r["ham_false_positive_rate"].as_f64(), Some(0.0), "{r}");
    for key in [
        "precision",
        "f1",
        "histogram",
        "probability_histogram",
        "by_threshold",
        "errors",
        "separation",
    ] {
        assert!(!r[key].is_null(), "{key} missing: {r}");
    }
    // A folder that does not exist is a clear error.
    let o = Command::new(bin("peage"))
        .args(["eval", "--spam", "/nonexistent/spam", "--ham"])
        .arg(&ham_dir)
        .output()
        .unwrap();
    assert!(!o.status.success());
    assert!(
        text(&o).contains("cannot read /nonexistent/spam"),
        "{}",
        text(&o)
    );
}
