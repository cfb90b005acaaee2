//! Outbound rate limits against real nodes, counted across the sites: messages per
//! identity spread over the three sites (at most the limit plus the documented overshoot),
//! recipients and distinct recipients per identity, messages per client address and per
//! sender domain, each refused `451 4.7.1`; `peagectl ratelimit show` and `reset`.

use std::time::Duration;

use peage_node::config::OutboundSection;
use peage_tests::{smtplib_send_with, wait_for, SmtpOptions, Tuning};

use super::submission::{message, submit_as_alice, submit_to, with_alice, PASSWORD};

/// Waits until at least 40 s are left in the current minute and 120 s in the UTC day, so
/// that no window a test counts in starts again under it.
async fn fresh_windows() {
    wait_for("fresh windows", Duration::from_secs(130), || async {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs();
        (now % 60 < 20 && now % 86_400 < 86_400 - 120).then_some(())
    })
    .await
    .unwrap();
}

fn refusal(step: &Option<(u16, String)>) -> String {
    match step {
        Some((451, text)) if text.starts_with("4.7.1") => text.clone(),
        other => panic!("expected 451 4.7.1, got {other:?}"),
    }
}

fn accepted(r: &peage_tests::SmtpResult) {
    assert_eq!(r.data.as_ref().map(|d| d.0), Some(250), "{r:?}");
}

#[tokio::test]
async fn a_rate_limit_holds_across_the_three_sites() {
    let limit = 10;
    let (c, _sink) = with_alice(Tuning {
        outbound: OutboundSection {
            max_messages_per_minute: limit,
            ..OutboundSection::default()
        },
        ..Tuning::default()
    })
    .await;
    // Not across a minute's end, where the window (and the count) starts again.
    fresh_windows().await;
    let alice = ("alice@shop.example", PASSWORD);
    let sent = 36;
    let started = std::time::Instant::now();
    let (mut accepted, mut refused) = (0u64, 0u64);
    for n in 0..sent {
        let body = message("alice@shop.example", &format!("rate-{n}"));
        let r = submit_to(
            &c,
            (n % 3, false),
            alice,
            "alice@shop.example",
            &["bob@elsewhere.example"],
            &body,
        );
        match r.mail.as_ref().map(|m| m.0) {
            Some(250) => accepted += 1,
            Some(451) => {
                assert!(r.mail.as_ref().unwrap().1.contains("4.7.1"), "{r:?}");
                refused += 1
            }
            _ => panic!("{r:?}"),
        }
    }
    // The documented bound: what the other two sites accept between two reports (the
    // interval, and as long again for a report to arrive).
    let rate = sent as f64 / started.elapsed().as_secs_f64();
    let others = rate * 2.0 / 3.0;
    let window = 2.0 * peage_node::ratelimit::SHARE_EVERY.as_secs_f64();
    let overshoot = (others * window).ceil() as u64;
    assert!(accepted >= limit, "{accepted} accepted");
    assert!(
        accepted <= limit + overshoot,
        "{accepted} accepted, limit {limit} + overshoot {overshoot} ({rate:.1} msg/s)"
    );
    assert_eq!(accepted + refused, sent as u64);
    eprintln!(
        "rate limit {limit}/min: {accepted} of {sent} accepted at {rate:.1} msg/s (bound {})",
        limit + overshoot
    );
}

#[tokio::test]
async fn recipients_and_distinct_recipients_are_limited_and_an_operator_resets_them() {
    let (c, _sink) = with_alice(Tuning {
        outbound: OutboundSection {
            max_recipients: [6, 0, 0],
            max_distinct_recipients_per_day: 4,
            ..OutboundSection::default()
        },
        ..Tuning::default()
    })
    .await;
    fresh_windows().await;
    let to = |names: &[&str]| -> Vec<String> {
        names
            .iter()
            .map(|n| format!("{n}@elsewhere.example"))
            .collect()
    };
    let send = |names: &[&str]| {
        let rcpts = to(names);
        let rcpts: Vec<&str> = rcpts.iter().map(String::as_str).collect();
        submit_as_alice(&c, 0, &rcpts, &message("alice@shop.example", "news"))
    };
    accepted(&send(&["a", "b", "c"]));
    // Two more people: five distinct today, past four.
    let why = refusal(&send(&["d", "e"]).data);
    assert!(
        why.contains("limit of 4 distinct recipients per day"),
        "{why}"
    );
    // The same three again: no one new, six recipients this minute ...
    accepted(&send(&["a", "b", "c"]));
    // ... and one more is past six.
    let why = refusal(&send(&["a"]).data);
    assert!(
        why.contains("rcpts alice@shop.example has reached its limit of 6 recipients per minute"),
        "{why}"
    );
    let shown = c.peagectl(0, &["ratelimit", "show", "alice@shop.example"]);
    let shown = String::from_utf8_lossy(&shown.stdout).into_owned();
    let row = |counter: &str| {
        shown
            .lines()
            .find(|l| l.starts_with(counter))
            .map(|l| l.split_whitespace().collect::<Vec<_>>())
            .unwrap_or_else(|| panic!("no {counter} row: {shown}"))
    };
    assert_eq!(row("rcpts")[2..], ["60s", "6", "6"], "{shown}");
    assert_eq!(row("distinct")[2..], ["86400s", "3", "4"], "{shown}");
    // An operator forgets alice's counts on every site: she sends again.
    let out = c.peagectl(1, &["ratelimit", "reset", "alice@shop.example"]);
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success() && text.contains("on every node"),
        "{out:?}"
    );
    accepted(&send(&["d", "e"]));
}

#[tokio::test]
async fn client_addresses_and_sender_domains_have_their_own_limits() {
    let (c, _sink) = with_alice(Tuning {
        outbound: OutboundSection {
            max_messages_per_client_ip: [2, 0, 0],
            max_messages_per_sender_domain: [3, 0, 0],
            ..OutboundSection::default()
        },
        ..Tuning::default()
    })
    .await;
    fresh_windows().await;
    let (host, _) = c.nodes[0].smtp_addr();
    let from = |source: &str, n: usize| {
        let options = SmtpOptions {
            starttls: true,
            login: Some(("alice@shop.example".into(), PASSWORD.into())),
            source: Some(source.to_owned()),
            ..SmtpOptions::default()
        };
        let body = message("alice@shop.example", &format!("m{n}"));
        smtplib_send_with(
            &host,
            587,
            "alice@shop.example",
            &["bob@elsewhere.example"],
            &body,
            &options,
        )
    };
    accepted(&from("127.0.0.5", 1));
    accepted(&from("127.0.0.5", 2));
    let why = refusal(&from("127.0.0.5", 3).mail);
    assert!(
        why.contains("ip 127.0.0.5 has reached its limit of 2 messages per minute"),
        "{why}"
    );
    // Another address may send, until the domain's three are gone.
    accepted(&from("127.0.0.6", 4));
    let why = refusal(&from("127.0.0.7", 5).mail);
    assert!(
        why.contains("domain shop.example has reached its limit of 3 messages per minute"),
        "{why}"
    );
}
