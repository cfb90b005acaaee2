//! The daily digest of held mail, with real processes: three messages held for two
//! mailboxes make exactly two digests — in the domain's language, each listing its
//! mailbox's messages with links into the portal — even though the leader is SIGKILLed
//! between the two (it pauses after each digest it sends): the new leader redoes the day's
//! round, skips the one sent and sends the other; a mailbox whose held mail was already in
//! a digest gets none. An operator's `digest send` sends one now, and says when there is
//! nothing new; bad requests are refused saying why.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use mail_parser::MessageParser;

use peage_tests::v1::QueuedMessage;
use peage_tests::{wait_for, TestCluster, Tuning, ADMIN_TOKEN};

use super::portal::{get, portal_on, serving_the_portal_tuned};
use super::{json_as, quarantine, queue, tracked_detail, zip_with_exe};

const BOB: &str = "bob@example.test";
const CAROL: &str = "carol@example.test";
const DAVE: &str = "dave@example.test";

/// Holds a ZIP with an .exe for `rcpt`, sent through node `i`: its queue id.
fn hold(c: &TestCluster, i: usize, rcpt: &str) -> String {
    c.smtp_send(i, "alice@client.example", &[rcpt], &zip_with_exe())
        .queue_id()
}

/// The digests in node `i`'s queue (sent by us, from the null sender), as it has applied
/// them (no read barrier: right after the leader's death there is none to be had).
async fn queued_digests(c: &TestCluster, i: usize) -> Vec<QueuedMessage> {
    let queued = queue(c, i, true).await;
    queued
        .into_iter()
        .filter(|m| m.mail_from.is_empty())
        .collect()
}

/// The queue ids of the daily digests among `digests` (bob's and carol's).
fn daily(digests: &[QueuedMessage]) -> Vec<String> {
    digests
        .iter()
        .filter(|m| m.rcpt_to.iter().any(|r| r == BOB || r == CAROL))
        .map(|m| m.queue_id.clone())
        .collect()
}

/// The UTC time of day `ahead` from now, as `HH:MM:SS`; waits past midnight first when the
/// time would fall on the next day (today's would then be long gone).
async fn time_of_day_in(ahead: Duration) -> String {
    let second_of_day = || {
        let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap();
        (now + ahead).as_secs() % 86_400
    };
    let after_midnight = Duration::from_secs(120);
    wait_for("a time of day before midnight", after_midnight, || async {
        (second_of_day() >= ahead.as_secs()).then_some(())
    })
    .await
    .unwrap();
    let s = second_of_day();
    format!("{:02}:{:02}:{:02}", s / 3600, s % 3600 / 60, s % 60)
}

/// `rcpt`'s digests at the sink, parsed: (subject, text part, HTML part).
fn digests_at(sink: &peage_tests::SinkProcess, rcpt: &str) -> Vec<(String, String, String)> {
    sink.messages(rcpt)
        .iter()
        .filter_map(|raw| MessageParser::default().parse(raw.as_bytes()))
        .filter(|m| m.header_raw("Auto-Submitted").is_some())
        .map(|m| {
            let part = |t: Option<std::borrow::Cow<'_, str>>| t.unwrap_or_default().into_owned();
            let subject = m.subject().unwrap_or_default().to_owned();
            (subject, part(m.body_text(0)), part(m.body_html(0)))
        })
        .collect()
}

#[tokio::test]
async fn held_mail_for_two_mailboxes_makes_two_digests_once_across_a_leader_kill() {
    let tuning = Tuning {
        digest_pause_ms: 3_000,
        ..Tuning::default()
    };
    let mut c = serving_the_portal_tuned(tuning).await;
    c.route_local_domain().await.unwrap();
    bad_digest_requests_say_what_is_wrong(&c);
    portal_on(&c).await;
    digest_now_for_dave(&c).await;

    // Three messages held for two mailboxes, through all three sites.
    // One of them as its sender wrote it: one mailbox whatever the case.
    let bobs = [hold(&c, 0, BOB), hold(&c, 1, "Bob@Example.test")];
    let carols = hold(&c, 2, CAROL);
    wait_for(
        "four held on every node",
        Duration::from_secs(20),
        || async {
            for i in 0..3 {
                if quarantine(&c, i).await.len() != 4 {
                    return None;
                }
            }
            Some(())
        },
    )
    .await
    .unwrap();
    let (leader, new) = daily_digests_across_a_leader_kill(&mut c).await;
    let survivors: Vec<usize> = (0..3).filter(|i| *i != leader).collect();
    for &i in &survivors {
        let digests = queued_digests(&c, i).await;
        let mut to: Vec<String> = digests.iter().flat_map(|m| m.rcpt_to.clone()).collect();
        to.sort();
        assert_eq!(to, [BOB, CAROL, DAVE, DAVE], "node {i}: {digests:?}");
    }

    // Delivered: one digest each, in French, listing each mailbox's own messages.
    let sink = c.start_sink().await.unwrap();
    wait_for("the digests delivered", Duration::from_secs(60), || async {
        for &i in &survivors {
            if !queued_digests(&c, i).await.is_empty() {
                return None;
            }
        }
        Some(())
    })
    .await
    .unwrap();
    let bob = digests_at(&sink, BOB);
    assert_eq!(bob.len(), 1, "{bob:?}");
    let (subject, text, html) = &bob[0];
    assert_eq!(subject, "2 messages retenus pour bob@example.test");
    for id in &bobs {
        assert!(
            text.contains("/open/") && text.contains(&format!("?m={id}")),
            "{text}"
        );
        assert!(html.contains(&format!("?m={id}\"")), "{html}");
    }
    assert!(!text.contains(&carols), "{text}");
    the_portal_speaks_the_domain_s_language(&c, new, text, &bobs[0]).await;
    assert!(text.contains("Expéditeur: alice@client.example") && text.contains("invoice"));
    let carol = digests_at(&sink, CAROL);
    assert_eq!(carol.len(), 1, "{carol:?}");
    assert!(
        carol[0].0.starts_with("1 message retenu pour carol"),
        "{carol:?}"
    );
    assert!(carol[0].1.contains(&format!("?m={carols}")));
    // Dave's only held message was in the digests he was sent: nothing new, no daily one.
    let dave = digests_at(&sink, DAVE);
    assert_eq!(dave.len(), 2, "{dave:?}");
    // Operators find a digest in the tracking log (carol's: the new leader sent it).
    let track = ["track", "--recipient", CAROL];
    let detail = tracked_detail(&c, new, &track, "digest").await;
    assert!(
        detail.starts_with("digest of 1 held message(s)"),
        "{detail}"
    );
    assert!(dave[0].0.starts_with("1 message held for dave"), "{dave:?}");

    // The killed leader comes back with the same record of what was sent.
    c.start_node(leader).unwrap();
    c.sync_all(new).await.unwrap();
    let sent = json_as(
        &c,
        leader,
        ADMIN_TOKEN,
        &["sql", "SELECT key FROM digests_sent ORDER BY key"],
    );
    let sent = sent.unwrap().to_string();
    let day = "daily:bob@example.test:";
    assert!(
        sent.contains(day) && sent.contains("daily:carol@example.test:"),
        "{sent}"
    );
    assert!(
        sent.contains("now:dave@example.test:") && !sent.contains("daily:dave"),
        "{sent}"
    );
    let digests = c.digests(new).await.unwrap();
    assert!(digests.windows(2).all(|w| w[0] == w[1]), "{digests:?}");
}

/// Bob's (French) digest link opened at node `i` lands on the message's preview, in
/// French like the digest.
async fn the_portal_speaks_the_domain_s_language(c: &TestCluster, i: usize, text: &str, id: &str) {
    let end = format!("?m={id}");
    let line = text.lines().find(|l| l.ends_with(&end)).unwrap();
    let link = &line[line.find("/open/").unwrap()..];
    let opened = get(c, i, link, None).await;
    let to = format!("/message/{id}");
    assert_eq!(
        (opened.status, opened.header("location")),
        (303, Some(to.as_str()))
    );
    let cookie = opened
        .header("set-cookie")
        .unwrap()
        .split(';')
        .next()
        .unwrap();
    let page = get(c, i, &to, Some(cookie)).await;
    assert_eq!(page.status, 200, "{page:?}");
    for french in [
        "lang=\"fr\"",
        "Courrier retenu pour bob@example.test",
        ">Débloquer<",
    ] {
        assert!(page.body.contains(french), "{french}: {}", page.body);
    }
}

/// A digest needs the portal, a time of day and a language it has; a recipient of a local
/// domain. Each refusal says what to do.
fn bad_digest_requests_say_what_is_wrong(c: &TestCluster) {
    let route = format!("smtp://{}", c.sink_addr());
    let add = |extra: &[&str]| {
        let args = [
            &["domain", "add", "example.test", "--route", &route][..],
            extra,
        ]
        .concat();
        json_as(c, 0, ADMIN_TOKEN, &args).unwrap_err()
    };
    let refusals = [
        (
            add(&["--digest-at", "07:30"]),
            "turn the portal on for example.test",
        ),
        (
            add(&["--portal", "on", "--digest-at", "7:30"]),
            "expected HH:MM",
        ),
        (
            add(&["--portal", "on", "--digest-at", "24:00"]),
            "expected HH:MM",
        ),
        (add(&["--lang", "de"]), "possible values: en, fr"),
    ];
    for (said, expected) in refusals {
        assert!(said.contains(expected), "{expected}: {said}");
    }
    let send = |rcpt: &str| {
        json_as(c, 1, ADMIN_TOKEN, &["digest", "send", "--recipient", rcpt]).unwrap_err()
    };
    let not_local = send("bob@other.example");
    assert!(
        not_local.contains("other.example is not a local domain"),
        "{not_local}"
    );
    let off = send(BOB);
    assert!(
        off.contains("quarantine portal is off for example.test"),
        "{off}"
    );
    let bad = send("not an address");
    assert!(bad.contains("is not a mailbox address"), "{bad}");
}

/// Dave's held message goes out in a digest an operator asks for now; asking again finds
/// nothing new, unless for everything held.
async fn digest_now_for_dave(c: &TestCluster) {
    hold(c, 0, DAVE);
    wait_for("dave's message held", Duration::from_secs(20), || async {
        (quarantine(c, 0).await.len() == 1).then_some(())
    })
    .await
    .unwrap();
    let now = json_as(c, 1, ADMIN_TOKEN, &["digest", "send", "--recipient", DAVE]).unwrap();
    assert_eq!(now["messages"], 1, "{now}");
    let again = json_as(c, 1, ADMIN_TOKEN, &["digest", "send", "--recipient", DAVE]);
    let nothing = again.unwrap_err();
    assert!(
        nothing.contains("nothing was held for dave@example.test since its last digest"),
        "{nothing}"
    );
    let all = ["digest", "send", "--recipient", DAVE, "--all"];
    let everything = json_as(c, 2, ADMIN_TOKEN, &all).unwrap();
    assert_eq!(everything["messages"], 1, "{everything}");
}

/// The daily digest, in French, set for a second from now: the leader sends it once its
/// grace (commit timeout and clock margin) has passed, and is SIGKILLed during its pause
/// after the first one; the new leader sends the other. The old and the new leader.
async fn daily_digests_across_a_leader_kill(c: &mut TestCluster) -> (usize, usize) {
    let at = time_of_day_in(Duration::from_secs(1)).await;
    let route = format!("smtp://{}", c.sink_addr());
    let schedule = [
        "domain",
        "add",
        "example.test",
        "--route",
        &route,
        "--digest-at",
        &at,
        "--lang",
        "fr",
    ];
    let set = json_as(c, 0, ADMIN_TOKEN, &schedule);
    assert!(set.is_ok(), "{set:?}");
    let leader = c.wait_for_leader_everywhere().await.unwrap();
    let follower = (leader + 1) % 3;
    wait_for(
        "the first digest committed",
        Duration::from_secs(30),
        || async { (queued_digests(c, follower).await.len() > 2).then_some(()) },
    )
    .await
    .unwrap();
    c.kill(leader);
    let sent_before = daily(&queued_digests(c, follower).await);
    assert_eq!(sent_before.len(), 1, "the old leader sent one, then paused");

    // The new leader goes through the day's round again: it must not send a second one.
    let new = c.wait_for_leader_everywhere().await.unwrap();
    wait_for(
        "two rounds on the new leader",
        Duration::from_secs(30),
        || async {
            let rounds = c.metric(new, "peage_digest_rounds_total").await?;
            (rounds >= 2.0).then_some(())
        },
    )
    .await
    .unwrap();
    c.sync_all(new).await.unwrap();
    let both = daily(&queued_digests(c, new).await);
    assert_eq!(both.len(), 2, "{both:?}");
    assert!(
        both.contains(&sent_before[0]),
        "{both:?} after {sent_before:?}"
    );
    (leader, new)
}
