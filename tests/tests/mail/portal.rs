//! The end users' quarantine portal, with real processes over HTTPS: an operator's link,
//! opened at Roubaix, becomes a session cookie and leaves the address bar; the list shows
//! the held mail; a POST without the session's CSRF token, or without a session, is
//! refused; a release delivers the original message to the sink and is audited under the
//! mailbox's name; of a message also addressed to someone else, only the mailbox's part is
//! released; a forged or altered link and an expired one are refused; with Paris killed the
//! same flow works through Ariège. A sender blocked or allowed from the portal changes the
//! next verdict for that mailbox only.

use std::path::PathBuf;
use std::time::Duration;

use peage_tests::{https, wait_for, HttpsReply, SinkProcess, TestCluster, Tuning, ADMIN_TOKEN};

use super::{json_as, proving_client_example, quarantine, tracked_detail, zip_with_exe};

const BOB: &str = "bob@example.test";

/// A cluster whose nodes serve the portal (HTTPS with their SMTP certificates).
pub async fn serving_the_portal() -> TestCluster {
    serving_the_portal_tuned(Tuning::default()).await
}

/// As `serving_the_portal`, tuned otherwise as `tuning` says.
pub async fn serving_the_portal_tuned(tuning: Tuning) -> TestCluster {
    let tuning = Tuning {
        tls: true,
        ..tuning
    };
    TestCluster::start(tuning).await.unwrap()
}

/// Routes example.test to the sink with the portal on, known to every node.
pub async fn portal_on(c: &TestCluster) {
    let route = format!("smtp://{}", c.sink_addr());
    let on = ["domain", "add", "example.test", "--route", &route];
    json_as(c, 0, ADMIN_TOKEN, &[&on[..], &["--portal", "on"]].concat()).unwrap();
    c.sync_all(0).await.unwrap();
}

/// Node `i`'s portal: its address and the certificate it presents.
fn portal(c: &TestCluster, i: usize) -> (String, PathBuf) {
    let (ip, _) = c.nodes[i].smtp_addr();
    let cert = c.data_dir().join(format!("cert{}.pem", c.nodes[i].id));
    (format!("{ip}:8443"), cert)
}

pub async fn get(c: &TestCluster, i: usize, path: &str, cookie: Option<&str>) -> HttpsReply {
    let (addr, cert) = portal(c, i);
    https(&addr, &cert, "GET", path, cookie, None)
        .await
        .unwrap()
}

async fn post(
    c: &TestCluster,
    i: usize,
    path: &str,
    cookie: Option<&str>,
    form: &str,
) -> HttpsReply {
    let (addr, cert) = portal(c, i);
    https(&addr, &cert, "POST", path, cookie, Some(form))
        .await
        .unwrap()
}

/// A link to bob's held mail made through node `i`: its path (`/open/…`).
fn link(c: &TestCluster, i: usize, valid: &str) -> String {
    let made = json_as(
        c,
        i,
        ADMIN_TOKEN,
        &["portal", "link", BOB, "--valid", valid],
    )
    .unwrap();
    let url = made["url"].as_str().unwrap();
    url[url.find("/open/").unwrap()..].to_owned()
}

/// Opens `path` at node `i`: the session cookie it sets (`name=value`).
async fn open(c: &TestCluster, i: usize, path: &str) -> String {
    let r = get(c, i, path, None).await;
    assert_eq!((r.status, r.header("location")), (303, Some("/")), "{r:?}");
    let set = r.header("set-cookie").unwrap();
    assert!(set.contains("HttpOnly") && set.contains("Secure"), "{set}");
    set.split(';').next().unwrap().to_owned()
}

/// The list page's CSRF token.
fn csrf_of(page: &str) -> String {
    let at = page.find("name=\"csrf\" value=\"").expect("a form") + 19;
    page[at..at + page[at..].find('"').unwrap()].to_owned()
}

/// Holds a ZIP with an .exe from `from` for `rcpts`, sent through node `i`; its queue id.
fn hold_from(c: &TestCluster, i: usize, from: &str, rcpts: &[&str]) -> String {
    c.smtp_send(i, from, rcpts, &zip_with_exe()).queue_id()
}

fn hold(c: &TestCluster, i: usize, rcpts: &[&str]) -> String {
    hold_from(c, i, "alice@client.example", rcpts)
}

async fn held_everywhere(c: &TestCluster, nodes: &[usize], n: usize) {
    wait_for("held on every node", Duration::from_secs(20), || async {
        for &i in nodes {
            if quarantine(c, i).await.len() != n {
                return None;
            }
        }
        Some(())
    })
    .await
    .unwrap();
}

#[tokio::test]
async fn a_mailbox_owner_releases_its_held_mail_through_any_site() {
    let mut c = serving_the_portal().await;
    c.route_local_domain().await.unwrap();
    let sink = c.start_sink().await.unwrap();
    // The portal is off for a domain until an operator turns it on.
    let off = json_as(&c, 0, ADMIN_TOKEN, &["portal", "link", BOB]).unwrap_err();
    assert!(off.contains("portal is off for example.test"), "{off}");
    portal_on(&c).await;
    let mine = hold(&c, 0, &[BOB]);
    let shared = hold(&c, 1, &[BOB, "carol@example.test"]);
    held_everywhere(&c, &[0, 1, 2], 2).await;

    // The link becomes a cookie at Roubaix; the list shows both messages.
    let cookie = open(&c, 1, &link(&c, 0, "1h")).await;
    let page = get(&c, 1, "/", Some(&cookie)).await;
    assert_eq!(page.status, 200, "{page:?}");
    assert!(
        page.body.contains(&mine) && page.body.contains(&shared),
        "{}",
        page.body
    );
    assert!(
        page.body.contains("invoice"),
        "the subject is shown: {}",
        page.body
    );
    let csrf = csrf_of(&page.body);
    let preview = get(&c, 1, &format!("/message/{mine}"), Some(&cookie)).await;
    assert!(preview.body.contains("see attached"), "{}", preview.body);

    // Refused: no CSRF token, a wrong one, no session; another mailbox's message too.
    let release = format!("/message/{mine}/release");
    let refusals = [
        (post(&c, 1, &release, Some(&cookie), "").await, 403),
        (
            post(&c, 1, &release, Some(&cookie), "csrf=forged").await,
            403,
        ),
        (
            post(&c, 1, &release, None, &format!("csrf={csrf}")).await,
            401,
        ),
    ];
    for (reply, status) in refusals {
        assert_eq!(reply.status, status, "{reply:?}");
    }
    // Released: the original reaches the sink, once, and the audit log names the mailbox.
    let r = post(&c, 1, &release, Some(&cookie), &format!("csrf={csrf}")).await;
    assert_eq!(
        (r.status, r.header("location")),
        (303, Some("/?done=release")),
        "{r:?}"
    );
    delivered_once(&sink, "<zip@client.example>").await;
    let audit = json_as(
        &c,
        2,
        ADMIN_TOKEN,
        &["audit", "ls", "--by", "mailbox:bob@example.test"],
    );
    let audit = audit.unwrap().to_string();
    assert!(audit.contains(&format!("release {mine}")), "{audit}");
    only_bob_s_part_of_a_shared_message_is_released(&c, &sink, &cookie, &csrf, &shared).await;

    links_that_are_not_good_are_refused(&c).await;
    blocking_a_sender_refuses_its_mail_to_this_mailbox_only(&c, &cookie, &csrf).await;

    // Paris killed: a new link, opened at Ariège, releases through Ariège.
    c.kill(0);
    let late = hold(&c, 2, &[BOB]);
    held_everywhere(&c, &[1, 2], 2).await;
    let cookie = open(&c, 2, &link(&c, 2, "1h")).await;
    let page = get(&c, 2, "/", Some(&cookie)).await;
    assert!(page.body.contains(&late), "{}", page.body);
    let form = format!("csrf={}", csrf_of(&page.body));
    let r = post(
        &c,
        2,
        &format!("/message/{late}/release"),
        Some(&cookie),
        &form,
    )
    .await;
    assert_eq!(r.status, 303, "{r:?}");
    sink.wait_for_messages(
        BOB,
        3,
        "the late message delivered",
        Duration::from_secs(30),
    )
    .await;
}

/// Bob releases a message held for him and carol: he gets it, carol's part stays held.
async fn only_bob_s_part_of_a_shared_message_is_released(
    c: &TestCluster,
    sink: &SinkProcess,
    cookie: &str,
    csrf: &str,
    shared: &str,
) {
    let release = format!("/message/{shared}/release");
    let r = post(c, 1, &release, Some(cookie), &format!("csrf={csrf}")).await;
    assert_eq!(r.status, 303, "{r:?}");
    let wait = Duration::from_secs(30);
    sink.wait_for_messages(BOB, 2, "bob's part delivered", wait)
        .await;
    held_everywhere(c, &[0, 1, 2], 1).await;
    for i in 0..3 {
        let held = quarantine(c, i).await;
        assert_eq!(held[0].queue_id, shared, "{held:?}");
        assert_eq!(held[0].rcpt_to, ["carol@example.test"], "{held:?}");
    }
    assert!(sink.messages("carol@example.test").is_empty());
    // Tracking names the part's own queue id.
    let track = ["track", "--queue-id", shared];
    let detail = tracked_detail(c, 1, &track, "released").await;
    assert!(
        detail.starts_with("released by mailbox:bob@example.test as "),
        "{detail}"
    );
}

/// "Block sender" on a held message: the sender's next mail to bob is refused, to carol
/// not; "Delete" takes the held message away.
async fn blocking_a_sender_refuses_its_mail_to_this_mailbox_only(
    c: &TestCluster,
    cookie: &str,
    csrf: &str,
) {
    let spammer = "promo@bulk.example";
    let spam = hold_from(c, 1, spammer, &[BOB]);
    held_everywhere(c, &[1], 2).await;
    let form = format!("csrf={csrf}");
    for action in ["block-sender", "delete"] {
        let r = post(
            c,
            1,
            &format!("/message/{spam}/{action}"),
            Some(cookie),
            &form,
        )
        .await;
        assert_eq!(r.status, 303, "{action}: {r:?}");
    }
    held_everywhere(c, &[1], 1).await;
    c.sync_all(1).await.unwrap();
    let hello = b"From: promo@bulk.example\r\nSubject: again\r\n\r\nhi\r\n";
    let to_bob = c.smtp_send(2, spammer, &[BOB], hello);
    assert_eq!(to_bob.data.clone().unwrap().0, 550, "{to_bob:?}");
    let to_carol = c.smtp_send(2, spammer, &["carol@example.test"], hello);
    assert_eq!(to_carol.data.clone().unwrap().0, 250, "{to_carol:?}");
}

/// The sink holds exactly one copy of the message with `message_id`, as it was sent.
async fn delivered_once(sink: &SinkProcess, message_id: &str) {
    sink.wait_for_messages(
        BOB,
        1,
        "the released message delivered",
        Duration::from_secs(30),
    )
    .await;
    let got = sink.messages(BOB);
    assert!(
        got[0].contains(message_id) && got[0].contains("see attached"),
        "{}",
        got[0]
    );
}

/// A link for another mailbox made from a real one, a link with its expiry moved, and an
/// expired link are refused, saying why.
async fn links_that_are_not_good_are_refused(c: &TestCluster) {
    use base64::Engine;
    let good = link(c, 1, "1h");
    let token = good.trim_start_matches("/open/");
    let (_, rest) = token.split_once('.').unwrap();
    let eve = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode("eve@example.test");
    let (expiry, _) = rest.split_once('.').unwrap();
    let later: i64 = expiry.parse::<i64>().unwrap() + 86_400_000;
    for forged in [
        format!("/open/{eve}.{rest}"),
        good.replace(expiry, &later.to_string()),
    ] {
        let r = get(c, 2, &forged, None).await;
        assert_eq!(r.status, 403, "{forged}: {r:?}");
        assert!(r.body.contains("altered"), "{}", r.body);
        assert!(r.header("set-cookie").is_none());
    }
    let short = link(c, 1, "1s");
    wait_for("the 1 s link expires", Duration::from_secs(10), || async {
        let r = get(c, 1, &short, None).await;
        (r.status == 403 && r.body.contains("expired")).then_some(())
    })
    .await
    .unwrap();
}

/// "Always allow sender" on a held message from a sender SPF proves: the sender's next
/// message to bob is delivered, the same message to carol is still held.
#[tokio::test]
async fn allowing_a_sender_delivers_its_next_mail_to_this_mailbox_only() {
    let tuning = Tuning {
        tls: true,
        ..Default::default()
    };
    let (c, _dns) = proving_client_example(tuning).await;
    portal_on(&c).await;
    let sink = c.start_sink().await.unwrap();
    let first = hold(&c, 0, &[BOB]);
    held_everywhere(&c, &[0, 1, 2], 1).await;
    let cookie = open(&c, 1, &link(&c, 0, "1h")).await;
    let csrf = csrf_of(&get(&c, 1, "/", Some(&cookie)).await.body);
    let allow = format!("/message/{first}/allow-sender");
    let r = post(&c, 1, &allow, Some(&cookie), &format!("csrf={csrf}")).await;
    assert_eq!(r.status, 303, "{r:?}");
    c.sync_all(1).await.unwrap();

    let to_bob = c.smtp_send(2, "alice@client.example", &[BOB], &zip_with_exe());
    assert_eq!(to_bob.data.clone().unwrap().0, 250, "{to_bob:?}");
    let wait = Duration::from_secs(30);
    sink.wait_for_messages(BOB, 1, "the allowed sender's next message", wait)
        .await;
    assert!(sink.messages(BOB)[0].contains("<zip@client.example>"));
    let to_carol = hold(&c, 2, &["carol@example.test"]);
    held_everywhere(&c, &[0, 1, 2], 2).await;
    let held: Vec<String> = quarantine(&c, 0)
        .await
        .into_iter()
        .map(|m| m.queue_id)
        .collect();
    assert!(
        held.contains(&first) && held.contains(&to_carol),
        "{held:?}"
    );
}
