//! The portal in a real browser: headless Chromium, driven through ChromeDriver, opens the
//! link of bob's digest (sent through Paris, read at the sink) at Roubaix, lands on the
//! message's preview with the link gone from the address bar, goes to the held-mail list,
//! releases the message; it reaches the sink with its original content. A form posted
//! without the session's CSRF token, an altered link and an expired one show why they are
//! refused. With Paris killed, the same flow (a digest sent, its link opened, the message
//! released) works through Ariège; and the first digest's link, opened 15 days later by
//! Roubaix's clock, has expired. Screenshots of the list and the preview, and of the digest
//! as a mail client shows it, are saved under the test's output (`<target>/tmp/portal/`),
//! to be looked at by eye (the README's pictures are two of them).

use std::path::PathBuf;
use std::time::Duration;

use base64::Engine;
use peage_tests::browser::Browser;
use peage_tests::{wait_for, TestCluster, ADMIN_TOKEN};

use super::portal::{portal_on, serving_the_portal};
use super::{json_as, quarantine, zip_with_exe};

const BOB: &str = "bob@example.test";

/// Node `i`'s portal, as a browser addresses it.
fn portal_home(c: &TestCluster, i: usize) -> String {
    let (ip, _) = c.nodes[i].smtp_addr();
    format!("https://{ip}:8443/")
}

/// A link to bob's held mail made through node `i`, good for `valid`, to open at node `at`.
fn link(c: &TestCluster, i: usize, valid: &str, at: usize) -> String {
    let args = ["portal", "link", BOB, "--valid", valid];
    let made = json_as(c, i, ADMIN_TOKEN, &args).unwrap();
    let url = made["url"].as_str().unwrap();
    let path = &url[url.find("/open/").unwrap() + 1..];
    format!("{}{path}", portal_home(c, at))
}

/// Holds a ZIP with an .exe for bob, sent through node `i`: its queue id.
fn hold(c: &TestCluster, i: usize) -> String {
    c.smtp_send(i, "alice@client.example", &[BOB], &zip_with_exe())
        .queue_id()
}

#[tokio::test]
async fn a_browser_opens_a_link_previews_and_releases_the_held_message() {
    let mut c = serving_the_portal().await;
    portal_on(&c).await;
    let sink = c.start_sink().await.unwrap();
    let held = hold(&c, 0);
    wait_for("held at Roubaix", Duration::from_secs(20), || async {
        (quarantine(&c, 1).await.len() == 1).then_some(())
    })
    .await
    .unwrap();
    let home = portal_home(&c, 1);
    let wait = Duration::from_secs(30);
    json_as(&c, 0, ADMIN_TOKEN, &["digest", "send", "--recipient", BOB]).unwrap();
    sink.wait_for_messages(BOB, 1, "bob's digest", wait).await;
    let good = digest_link(&sink.messages(BOB), &held, &home);

    let browser = Browser::start().await.unwrap();
    let out = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("portal");
    // The digest's HTML part as a mail client would show it.
    let raw = sink.messages(BOB).remove(0);
    let digest = mail_parser::MessageParser::default()
        .parse(raw.as_bytes())
        .unwrap();
    let html = digest.body_html(0).unwrap().into_owned();
    let encoded = base64::engine::general_purpose::STANDARD.encode(html);
    browser
        .goto(&format!("data:text/html;base64,{encoded}"))
        .await
        .unwrap();
    browser.page_with("1 message held for").await.unwrap();
    browser.screenshot(&out.join("digest.png")).await.unwrap();

    browser.goto(&good).await.unwrap();
    let url = browser.url().await.unwrap();
    assert_eq!(
        url,
        format!("{home}message/{held}"),
        "the link left the address bar"
    );
    let preview = browser.page_with("see attached").await.unwrap();
    let shown = preview.contains("see attached") && preview.contains("invoice.zip");
    assert!(shown, "{preview}");
    browser.screenshot(&out.join("preview.png")).await.unwrap();

    browser.click("a[href='/']").await.unwrap();
    let list = browser.page_with("Held mail for").await.unwrap();
    assert!(list.contains(&held) && list.contains("invoice"), "{list}");
    browser.screenshot(&out.join("list.png")).await.unwrap();

    // A form posted without the session's CSRF token is refused.
    let strip = "document.querySelectorAll('input[name=csrf]').forEach(i => i.remove())";
    browser.run_script(strip).await.unwrap();
    let release = "form[action$='/release'] button";
    browser.click(release).await.unwrap();
    browser.page_with("out of date").await.unwrap();
    browser
        .goto(&format!("{home}message/{held}"))
        .await
        .unwrap();

    browser.click(release).await.unwrap();
    browser.page_with("was released").await.unwrap();
    assert!(browser.url().await.unwrap().starts_with(&home));
    sink.wait_for_messages(BOB, 2, "released", wait).await;
    let released = sink.messages(BOB);
    assert!(released.iter().any(|m| m.contains("<zip@client.example>")));

    refused_links_say_why(&c, &browser, &good).await;

    // Paris killed: a message held through Ariège, its digest sent there, the digest's link
    // opened and the message released there.
    c.kill(0);
    let late = hold(&c, 2);
    json_as(&c, 2, ADMIN_TOKEN, &["digest", "send", "--recipient", BOB]).unwrap();
    sink.wait_for_messages(BOB, 3, "the digest sent through Ariège", wait)
        .await;
    let second = digest_link(&sink.messages(BOB), &late, &portal_home(&c, 2));
    browser.goto(&second).await.unwrap();
    browser.page_with(&late).await.unwrap();
    browser.click(release).await.unwrap();
    browser.page_with("was released").await.unwrap();
    sink.wait_for_messages(BOB, 4, "released at Ariège", wait)
        .await;

    // The digest's link 15 days later by Roubaix's clock (libfaketime): past its 14 days.
    c.kill(1);
    c.nodes[1].clock_offset = Some("+15d".into());
    c.start_node(1).unwrap();
    wait_for("the digest's link expired", wait, || async {
        browser.goto(&good).await.ok()?;
        let page = browser.source().await.ok()?;
        page.contains("has expired").then_some(())
    })
    .await
    .unwrap();
}

/// The link a digest among `delivered` gives for message `queue_id`, rebased on `home`
/// (another site's portal: any site opens any site's link).
fn digest_link(delivered: &[String], queue_id: &str, home: &str) -> String {
    let end = format!("?m={queue_id}");
    let texts: Vec<String> = delivered
        .iter()
        .filter_map(|raw| mail_parser::MessageParser::default().parse(raw.as_bytes()))
        .filter_map(|m| m.body_text(0).map(|t| t.into_owned()))
        .collect();
    let line = texts
        .iter()
        .flat_map(|t| t.lines())
        .find(|l| l.contains("/open/") && l.ends_with(&end))
        .unwrap_or_else(|| panic!("no digest links to {queue_id}: {texts:?}"));
    let path = &line[line.find("/open/").unwrap() + 1..];
    format!("{home}{path}")
}

/// An altered link and an expired one land on a page that says why.
async fn refused_links_say_why(c: &TestCluster, browser: &Browser, good: &str) {
    // The expiry moved on by a day: the signature no longer matches.
    let (head, tail) = good.rsplit_once('.').unwrap();
    let (start, expiry) = head.rsplit_once('.').unwrap();
    let later = expiry.parse::<i64>().unwrap() + 86_400_000;
    browser
        .goto(&format!("{start}.{later}.{tail}"))
        .await
        .unwrap();
    let page = browser.source().await.unwrap();
    assert!(page.contains("altered"), "{page}");
    let short = link(c, 1, "1s", 1);
    wait_for("the 1 s link expires", Duration::from_secs(10), || async {
        browser.goto(&short).await.ok()?;
        let page = browser.source().await.ok()?;
        page.contains("has expired").then_some(())
    })
    .await
    .unwrap();
}
