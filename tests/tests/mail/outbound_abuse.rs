//! Outbound abuse beyond spam runs, against real nodes: the replicated outbound hold
//! threshold, one message with malware locking its identity at once, and a message whose
//! recipients the remote server refuses as unknown locking it too; held mail kept in the
//! outbound quarantine, apart from the incoming one.

use std::time::Duration;

use peage_tests::{wait_for, TestCluster, READ_TOKEN};

use super::submission::{message, submit_as_alice, with_alice};

/// `outbound identity ls` on node `node`, once it lists `identity`.
async fn lock_listed(c: &TestCluster, node: usize, identity: &str) -> String {
    wait_for("the lock", Duration::from_secs(10), || {
        let out = c.peagectl(node, &["--stale", "outbound", "identity", "ls"]);
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        async move { text.contains(identity).then_some(text) }
    })
    .await
    .unwrap()
}

#[tokio::test]
async fn malware_and_unknown_recipients_lock_the_identity_and_the_hold_threshold_is_policy() {
    let (c, sink) = with_alice(Default::default()).await;
    // Missing Date and Message-ID: 2.5 points, under the default hold of 6 ...
    let sloppy = b"From: <alice@shop.example>\r\nTo: <bob@elsewhere.example>\r\nSubject: sloppy\r\n\r\nHello Bob.\r\n";
    let r = submit_as_alice(&c, 0, &["bob@elsewhere.example"], sloppy);
    assert_eq!(r.data.as_ref().map(|d| d.0), Some(250), "{r:?}");
    sink.wait_for_messages(
        "bob@elsewhere.example",
        1,
        "the sloppy message",
        Duration::from_secs(30),
    )
    .await;
    // ... held once the operators hold outgoing mail from 2 points, at every site.
    let out = c.peagectl(1, &["policy", "set", "--outbound-hold", "2"]);
    assert!(out.status.success(), "{out:?}");
    let shown = c.peagectl(2, &["policy", "show"]);
    assert!(
        String::from_utf8_lossy(&shown.stdout).contains("outgoing mail held at score >= 2"),
        "{shown:?}"
    );
    let r = submit_as_alice(&c, 2, &["bob@elsewhere.example"], sloppy);
    assert_eq!(r.data.as_ref().map(|d| d.0), Some(250), "{r:?}");
    wait_for(
        "the sloppy message held",
        Duration::from_secs(10),
        || async { (super::outbound_quarantine(&c, 2).await.len() == 1).then_some(()) },
    )
    .await
    .unwrap();
    assert!(
        super::quarantine(&c, 2).await.is_empty(),
        "the incoming quarantine is apart"
    );
    // Customers' outgoing mail is the operators' only.
    let held_id = super::outbound_quarantine(&c, 2).await[0].queue_id.clone();
    let read_only = c.peagectl_as(2, READ_TOKEN, &["quarantine", "ls", "--outbound"]);
    let refused = String::from_utf8_lossy(&read_only.stderr).into_owned();
    assert!(
        !read_only.status.success() && refused.contains("outgoing mail"),
        "{read_only:?}"
    );
    let shown = c.peagectl(2, &["quarantine", "show", &held_id]);
    assert!(shown.status.success(), "{shown:?}");

    // One program attached: locked at once (one malware verdict), on every site.
    let mut infected = message("alice@shop.example", "invoice");
    infected.truncate(infected.len() - "Hello Bob, about invoice.\r\n".len());
    let boundary = "b0undary";
    let headers_end = infected.windows(4).position(|w| w == b"\r\n\r\n").unwrap();
    infected.truncate(headers_end + 2);
    infected.extend_from_slice(
        format!(
            "MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=\"{boundary}\"\r\n\r\n\
             --{boundary}\r\nContent-Type: text/plain\r\n\r\nThe invoice.\r\n\
             --{boundary}\r\nContent-Type: application/octet-stream; name=\"invoice.exe\"\r\n\
             Content-Disposition: attachment; filename=\"invoice.exe\"\r\n\
             Content-Transfer-Encoding: base64\r\n\r\nTVqQAAMAAAAEAAAA//8AALgAAAAAAAAAQAAAAAAAAAAA\r\n\
             --{boundary}--\r\n"
        )
        .as_bytes(),
    );
    let r = submit_as_alice(&c, 1, &["bob@elsewhere.example"], &infected);
    assert_eq!(
        r.data.as_ref().map(|d| d.0),
        Some(250),
        "held, not refused: {r:?}"
    );
    for node in 0..3 {
        let listed = lock_listed(&c, node, "alice@shop.example").await;
        assert!(listed.contains("malware"), "{listed}");
    }
    let r = submit_as_alice(
        &c,
        0,
        &["bob@elsewhere.example"],
        &message("alice@shop.example", "x"),
    );
    assert_eq!(r.mail.as_ref().map(|m| m.0), Some(550), "{r:?}");

    // Unlocked: twenty recipients the remote server does not know lock it again.
    let out = c.peagectl(0, &["outbound", "identity", "unlock", "alice@shop.example"]);
    assert!(out.status.success(), "{out:?}");
    let unknown: Vec<String> = (0..20)
        .map(|n| format!("reject-{n}@elsewhere.example"))
        .collect();
    let mut rcpts: Vec<&str> = unknown.iter().map(String::as_str).collect();
    rcpts.push("carol@elsewhere.example");
    let r = submit_as_alice(&c, 0, &rcpts, &message("alice@shop.example", "harvest"));
    assert_eq!(r.data.as_ref().map(|d| d.0), Some(250), "{r:?}");
    let listed = lock_listed(&c, 2, "alice@shop.example").await;
    assert!(
        listed.contains("20 recipients refused as unknown"),
        "{listed}"
    );
    sink.wait_for_messages(
        "carol@elsewhere.example",
        1,
        "the known recipient's copy",
        Duration::from_secs(30),
    )
    .await;
}
