//! The portal in a real browser: headless Chromium, driven through ChromeDriver, opens a
//! link served by Roubaix, lands on the held-mail list with the link gone from the address
//! bar, opens the preview, releases the message; it reaches the sink with its original
//! content. Screenshots of the list and the preview are saved under the test's output
//! (`<target>/tmp/portal/`), to be looked at by eye (the README's picture is one of them).

use std::path::PathBuf;
use std::time::Duration;

use peage_tests::browser::Browser;
use peage_tests::ADMIN_TOKEN;

use super::portal::{portal_on, serving_the_portal};
use super::{json_as, quarantine, zip_with_exe};

#[tokio::test]
async fn a_browser_opens_a_link_previews_and_releases_the_held_message() {
    let c = serving_the_portal().await;
    portal_on(&c).await;
    let sink = c.start_sink().await.unwrap();
    let held = c
        .smtp_send(
            0,
            "alice@client.example",
            &["bob@example.test"],
            &zip_with_exe(),
        )
        .queue_id();
    peage_tests::wait_for("held at Roubaix", Duration::from_secs(20), || async {
        (quarantine(&c, 1).await.len() == 1).then_some(())
    })
    .await
    .unwrap();
    let made = json_as(&c, 0, ADMIN_TOKEN, &["portal", "link", "bob@example.test"]).unwrap();
    let url = made["url"].as_str().unwrap();
    let (roubaix, _) = c.nodes[1].smtp_addr();
    let path = &url[url.find("/open/").unwrap()..];
    let home = format!("https://{roubaix}:8443/");

    let browser = Browser::start().await.unwrap();
    browser
        .goto(&format!("https://{roubaix}:8443{path}"))
        .await
        .unwrap();
    assert_eq!(
        browser.url().await.unwrap(),
        home,
        "the link left the address bar"
    );
    let list = browser.source().await.unwrap();
    assert!(list.contains(&held) && list.contains("invoice"), "{list}");
    let out = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("portal");
    browser.screenshot(&out.join("list.png")).await.unwrap();

    browser
        .click(&format!("a[href='/message/{held}']"))
        .await
        .unwrap();
    let preview = browser.source().await.unwrap();
    assert!(
        preview.contains("see attached") && preview.contains("invoice.zip"),
        "{preview}"
    );
    browser.screenshot(&out.join("preview.png")).await.unwrap();

    browser
        .click("form[action$='/release'] button")
        .await
        .unwrap();
    let done = browser.source().await.unwrap();
    assert!(done.contains("was released"), "{done}");
    assert!(browser.url().await.unwrap().starts_with(&home));
    sink.wait_for_messages("bob@example.test", 1, "released", Duration::from_secs(30))
        .await;
    assert!(sink.messages("bob@example.test")[0].contains("<zip@client.example>"));
}
