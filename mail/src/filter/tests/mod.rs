//! Filter behaviour on constructed messages: each must (and must not) get given symbols.

use super::*;
use crate::lists::{ListEntry, ListName};
use crate::trust::Authenticated;

/// One test per structure, phrase and attachment rule.
mod rules;

/// A list lookup over a fixed set of entries.
struct Fixed(Vec<ListEntry>);

impl Knowledge for Fixed {
    fn lookup(&self, kind: EntryKind, value: &str) -> Vec<ListEntry> {
        let v = value.to_ascii_lowercase();
        self.0
            .iter()
            .filter(|e| {
                e.kind == kind
                    && match kind {
                        EntryKind::Domain => v == e.value || v.ends_with(&format!(".{}", e.value)),
                        EntryKind::Ip => v == e.value.trim_end_matches("/32"),
                        _ => v == e.value,
                    }
            })
            .cloned()
            .collect()
    }
}

fn entry(list: ListName, kind: EntryKind, value: &str) -> ListEntry {
    ListEntry {
        id: 1,
        list,
        kind,
        value: value.into(),
        reason: "test".into(),
        author: "t".into(),
        created_at_ms: 0,
        expires_at_ms: None,
        scope: String::new(),
    }
}

const GOOD_HEADERS: &str = "From: Alice <alice@client.example>\r\nTo: bob@example.test\r\nDate: Wed, 25 Nov 2026 10:00:00 +0000\r\nMessage-ID: <1@client.example>\r\nSubject: hi\r\n";

fn names(message: &[u8], lists: &Fixed) -> Vec<String> {
    names_proved(message, lists, &Authenticated::nothing())
}

/// The symbol names for `message` from alice@client.example, with `proved` authenticated.
fn names_proved(message: &[u8], lists: &Fixed, proved: &Authenticated) -> Vec<String> {
    names_to(message, lists, proved, &["bob@example.test".into()])
}

/// The symbol names for `message` from alice@client.example to `recipients`.
fn names_to(
    message: &[u8],
    lists: &Fixed,
    proved: &Authenticated,
    recipients: &[String],
) -> Vec<String> {
    let input = FilterInput {
        client_ip: "198.51.100.7".parse().unwrap(),
        helo: "mail.client.example",
        mail_from: "alice@client.example",
        message,
        proved,
        recipients,
    };
    judge(&input, lists, &Policy::default())
        .symbols
        .into_iter()
        .map(|s| s.name)
        .collect()
}

fn mime_with_attachment(name: &str, content_b64: &str) -> Vec<u8> {
    format!(
        "{GOOD_HEADERS}MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=\"b\"\r\n\r\n--b\r\nContent-Type: text/plain\r\n\r\nsee attached\r\n--b\r\nContent-Type: application/octet-stream; name=\"{name}\"\r\nContent-Disposition: attachment; filename=\"{name}\"\r\nContent-Transfer-Encoding: base64\r\n\r\n{content_b64}\r\n--b--\r\n"
    )
    .into_bytes()
}

/// A minimal ZIP holding one stored file (enough for a local file header).
fn zip_with(inner: &str) -> Vec<u8> {
    let mut z = b"PK\x03\x04".to_vec();
    z.extend_from_slice(&[20, 0, 0, 0, 0, 0, 0, 0, 0, 0]); // version, flags, method, time, date
    z.extend_from_slice(&[0; 12]); // crc, sizes
    z.extend_from_slice(&(inner.len() as u16).to_le_bytes());
    z.extend_from_slice(&0u16.to_le_bytes());
    z.extend_from_slice(inner.as_bytes());
    z
}

fn b64(data: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(data)
}

#[test]
fn clean_ham_gets_no_symbol_and_is_delivered() {
    let msg = format!("{GOOD_HEADERS}\r\nHello, see https://www.example.org/page\r\n");
    let n = names(msg.as_bytes(), &Fixed(vec![]));
    assert!(n.is_empty(), "{n:?}");
    let (v, total) = verdict(&[], &Policy::default());
    assert_eq!((v, total), (Verdict::Deliver, 0));
}

#[test]
fn gtube_is_rejected() {
    let msg = format!("{GOOD_HEADERS}\r\n{GTUBE}\r\n");
    let input = FilterInput {
        client_ip: "198.51.100.7".parse().unwrap(),
        helo: "x",
        mail_from: "",
        message: msg.as_bytes(),
        proved: &Authenticated::nothing(),
        recipients: &[],
    };
    let s = judge(&input, &Fixed(vec![]), &Policy::default()).symbols;
    assert_eq!(s[0].name, "GTUBE");
    assert_eq!(verdict(&s, &Policy::default()).0, Verdict::Reject);
}

#[test]
fn lists_apply_to_ip_helo_sender_from_and_url_hosts() {
    let msg = format!("{GOOD_HEADERS}\r\nclick http://Evil.Example/login now\r\n");
    for (e, expect) in [
        (
            entry(ListName::Block, EntryKind::Ip, "198.51.100.7/32"),
            "BLOCKLIST_IP",
        ),
        (
            entry(ListName::Block, EntryKind::Domain, "client.example"),
            "BLOCKLIST_HELO",
        ),
        (
            entry(ListName::Block, EntryKind::Sender, "alice@client.example"),
            "BLOCKLIST_SENDER",
        ),
        (
            entry(ListName::Block, EntryKind::Url, "evil.example"),
            "BLOCKLIST_URL",
        ),
    ] {
        let n = names(msg.as_bytes(), &Fixed(vec![e]));
        assert!(n.contains(&expect.to_owned()), "{expect}: {n:?}");
    }
    // An allow-list entry offsets a block.
    let n = names(
        msg.as_bytes(),
        &Fixed(vec![
            entry(ListName::Block, EntryKind::Ip, "198.51.100.7/32"),
            entry(ListName::Allow, EntryKind::Ip, "198.51.100.7/32"),
        ]),
    );
    assert!(
        n.contains(&"ALLOWLIST".to_owned()) && n.contains(&"BLOCKLIST_IP".to_owned()),
        "{n:?}"
    );
}

#[test]
fn a_scoped_entry_counts_only_when_every_recipient_is_within_its_scope() {
    let msg = format!("{GOOD_HEADERS}\r\nhello\r\n");
    let scoped = |scope: &str| {
        let mut e = entry(ListName::Block, EntryKind::Sender, "alice@client.example");
        e.scope = scope.into();
        Fixed(vec![e])
    };
    let to = |rs: &[&str]| rs.iter().map(|r| r.to_string()).collect::<Vec<String>>();
    let blocked = |lists: &Fixed, rcpts: &[&str]| {
        names_to(msg.as_bytes(), lists, &Authenticated::nothing(), &to(rcpts))
            .contains(&"BLOCKLIST_SENDER".to_owned())
    };
    let domain = scoped("a.example");
    assert!(blocked(&domain, &["x@a.example", "y@sub.a.example"]));
    assert!(!blocked(&domain, &["x@b.example"]), "another domain's mail");
    assert!(!blocked(&domain, &["x@a.example", "y@b.example"]), "mixed");
    let mailbox = scoped("bob@a.example");
    assert!(blocked(&mailbox, &["bob@a.example"]));
    assert!(!blocked(&mailbox, &["eve@a.example"]), "another mailbox");
    assert!(blocked(&scoped(""), &["x@b.example"]), "cluster-wide");
}

#[test]
fn an_allow_listed_name_counts_only_when_authentication_proved_it() {
    let msg = format!("{GOOD_HEADERS}\r\nSee https://partner.example/offer\r\n");
    let allowed = |kind, value: &str| Fixed(vec![entry(ListName::Allow, kind, value)]);
    let mut proved = Authenticated::nothing();
    proved.vouch("client.example");
    for lists in [
        allowed(EntryKind::Sender, "alice@client.example"),
        allowed(EntryKind::Domain, "client.example"),
    ] {
        // Forged (nothing proved): reported, no points.
        let n = names(msg.as_bytes(), &lists);
        assert!(n.contains(&"ALLOWLIST_UNPROVED".to_owned()), "{n:?}");
        assert!(!n.contains(&"ALLOWLIST".to_owned()), "{n:?}");
        // SPF or DKIM aligned with client.example: it counts.
        let n = names_proved(msg.as_bytes(), &lists, &proved);
        assert!(n.contains(&"ALLOWLIST".to_owned()), "{n:?}");
    }
    // Proving another domain does not help a forged one.
    let mut other = Authenticated::nothing();
    other.vouch("elsewhere.example");
    let lists = allowed(EntryKind::Domain, "client.example");
    let n = names_proved(msg.as_bytes(), &lists, &other);
    assert!(!n.contains(&"ALLOWLIST".to_owned()), "{n:?}");
    // A link's host is never allow-listed, proved or not.
    for kind in [EntryKind::Url, EntryKind::Domain] {
        let lists = allowed(kind, "partner.example");
        let n = names_proved(msg.as_bytes(), &lists, &proved);
        assert!(
            !n.iter().any(|s| s.starts_with("ALLOWLIST")),
            "{kind:?}: {n:?}"
        );
    }
}

#[test]
fn header_sanity() {
    let n = names(b"Subject: x\r\n\r\nbody\r\n", &Fixed(vec![]));
    for s in ["MISSING_FROM", "MISSING_DATE", "MISSING_MESSAGE_ID"] {
        assert!(n.contains(&s.to_owned()), "{s}: {n:?}");
    }
    let n = names(b"From: not an address\r\n\r\nbody\r\n", &Fixed(vec![]));
    assert!(n.contains(&"MALFORMED_FROM".to_owned()), "{n:?}");
}

#[test]
fn dangerous_attachments_are_quarantined() {
    let p = Policy::default();
    let cases = [
        (
            mime_with_attachment("run.exe", &b64(b"MZ")),
            "EXECUTABLE_ATTACHMENT",
        ),
        (
            mime_with_attachment("invoice.pdf.exe", &b64(b"MZ")),
            "DOUBLE_EXTENSION",
        ),
        (
            mime_with_attachment("payload.zip", &b64(&zip_with("x/setup.js"))),
            "ARCHIVE_WITH_EXECUTABLE",
        ),
        (
            mime_with_attachment("report.docm", &b64(b"PK")),
            "MACRO_OFFICE_DOCUMENT",
        ),
    ];
    for (msg, expect) in cases {
        let input = FilterInput {
            client_ip: "198.51.100.7".parse().unwrap(),
            helo: "x",
            mail_from: "a@client.example",
            message: &msg,
            proved: &Authenticated::nothing(),
            recipients: &[],
        };
        let s = judge(&input, &Fixed(vec![]), &Policy::default()).symbols;
        assert!(s.iter().any(|x| x.name == expect), "{expect}: {s:?}");
        assert_eq!(verdict(&s, &p).0, Verdict::Quarantine, "{expect}: {s:?}");
    }
    // A harmless archive and a PDF are not flagged.
    let msg = mime_with_attachment("photos.zip", &b64(&zip_with("a.jpg")));
    let n = names(&msg, &Fixed(vec![]));
    assert!(n.is_empty(), "{n:?}");
}

#[test]
fn garbage_never_panics() {
    let mut seed = 1u64;
    for len in [0usize, 1, 7, 100, 5000] {
        let mut bytes = Vec::with_capacity(len);
        for _ in 0..len {
            seed = seed
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            bytes.push((seed >> 33) as u8);
        }
        names(&bytes, &Fixed(vec![]));
    }
    for evil in [
        &b"Content-Type: multipart/mixed; boundary=\"\"\r\n\r\n--\r\n--\r\n"[..],
        b"PK\x03\x04\xff\xff",
        b"From: \"\xff\xfe <@>\r\n\r\n",
    ] {
        names(evil, &Fixed(vec![]));
    }
    // Multi-byte characters wherever the structure rules cut text: after a Subject's last
    // space, around comments, character references, tags and link text.
    let wide = "\u{3000}é\u{2003}";
    let subjects = [
        format!("x{wide}{wide}{wide}id"),
        format!("x      {wide}"),
        format!("{wide}      é"),
    ];
    for subject in subjects {
        let html = format!(
            "<a href=\"http://é{wide}\">{wide}</a><a href=http://x.test/>www.{wide}.test</a>é<!--{wide}-->é&#x{wide};&#{wide}<font size=\"+{wide}\" color>{wide}<img{wide}font-size:{wide}"
        );
        let msg = format!("Subject: {subject}\r\nFrom: \"{wide}@{wide}\" <a@b.test>\r\nContent-Type: text/html; charset=utf-8\r\n\r\n{html}\r\n");
        names(msg.as_bytes(), &Fixed(vec![]));
    }
    assert!(attachments::zip_entries(b"PK\x03\x04\x00").is_empty());
}

#[test]
fn headers_and_points() {
    assert_eq!(points(1500), "1.5");
    assert_eq!(points(-20000), "-20");
    let s = vec![symbol("MISSING_DATE", "x")];
    assert_eq!(
        headers(Verdict::Deliver, 1000, &s),
        "X-Peage-Verdict: deliver\r\nX-Peage-Score: 1\r\nX-Peage-Symbols: MISSING_DATE(1)\r\n"
    );
}

#[test]
fn a_link_to_a_bare_ip_address_is_suspicious_an_ip_elsewhere_is_not() {
    let lists = Fixed(Vec::new());
    let spam = format!(
        "{GOOD_HEADERS}Content-Type: text/html\r\n\r\n<a href=\"http://192.0.2.77/claim.php\">Claim your prize</a>\r\n"
    );
    assert!(names(spam.as_bytes(), &lists).contains(&"URL_IP_LITERAL".to_owned()));
    // The same address in a path, or as plain text in a ham about a server, is no link to it.
    let ham = format!(
        "{GOOD_HEADERS}\r\nThe new server is 192.0.2.77, see https://wiki.example/hosts/192.0.2.77 for its setup.\r\n"
    );
    assert!(!names(ham.as_bytes(), &lists).contains(&"URL_IP_LITERAL".to_owned()));
}

/// Classifiers that say fixed probabilities.
struct Classifiers(f64, f64);

impl Knowledge for Classifiers {
    fn lookup(&self, _: EntryKind, _: &str) -> Vec<ListEntry> {
        Vec::new()
    }
    fn spam_probability(&self, _: &[u64]) -> Option<f64> {
        Some(self.0)
    }
    fn logistic_probability(&self, _: &Features) -> Option<f64> {
        Some(self.1)
    }
}

#[test]
fn the_classifiers_log_odds_add_up_and_neither_decides_alone() {
    let msg = format!("{GOOD_HEADERS}\r\nHello, see https://www.example.org/page\r\n");
    let judged = |bayes: f64, logistic: f64| {
        let input = FilterInput {
            client_ip: [198, 51, 100, 1].into(),
            helo: "mail.example.org",
            mail_from: "a@example.org",
            message: msg.as_bytes(),
            proved: &Authenticated::nothing(),
            recipients: &[],
        };
        let j = judge(&input, &Classifiers(bayes, logistic), &Policy::default());
        let names: Vec<String> = j.symbols.iter().map(|s| s.name.clone()).collect();
        (j.verdict, j.total_milli, names)
    };
    // Unsure: each classifier's offset alone, under its middle band's name.
    assert_eq!(
        judged(0.5, 0.5),
        (
            Verdict::Deliver,
            2_000,
            vec!["BAYES_50".into(), "LOGISTIC_50".into()]
        )
    );
    // One sure of spam, the other unsure: capped, not quarantined.
    assert_eq!(judged(1.0, 0.5).0, Verdict::Deliver);
    assert_eq!(judged(1.0, 0.5).1, 5_000);
    // One sure of spam and the other of ham: one classifier's "ham" alone takes nothing off
    // (its offset neither), the spam side stays capped: delivered.
    assert_eq!(judged(0.9999, 0.0001).1, 4_000);
    assert_eq!(judged(0.9999, 0.0001).0, Verdict::Deliver);
    // One sure of ham, the other unsure: only the unsure one's offset.
    assert_eq!(judged(0.0, 0.5).1, 1_000);
    // Both leaning to ham but not sure (0.1 each: ln 1/9 = −2.197 points): each alone's
    // limit of −1, with the offset nothing.
    assert_eq!(judged(0.1, 0.1).1, 0);
    // Both leaning to spam (0.8 each: ln 4 = 1.386 points and the offset) stay under 6 …
    assert_eq!(judged(0.8, 0.8).1, 2 * (1_386 + 1_000));
    // … both fairly sure (0.9 each) quarantine.
    assert_eq!(judged(0.9, 0.9).0, Verdict::Quarantine);
    assert_eq!(judged(0.9, 0.9).1, 2 * (2_197 + 1_000));
    // Both sure of ham (0.04 each: ln 1/24 = −3.178, past −3): −4 points, as when certain.
    assert_eq!(judged(0.04, 0.04).1, -4_000);
    assert_eq!(judged(0.0, 0.0).1, -4_000);
}

#[test]
fn evidence_reach_covers_every_pair_of_symbols_evidence_can_add() {
    let reach = evidence_reach_milli();
    let scored = |name: Option<&str>| name.map_or(0, |n| symbol(n, "").score_milli);
    let reputation = [
        None,
        Some("REPUTATION_GOOD"),
        Some("REPUTATION_POOR"),
        Some("REPUTATION_BAD"),
    ];
    for r in reputation {
        for b in [None, Some("BULK_SOME"), Some("BULK_MANY")] {
            let added = scored(r) + scored(b);
            assert!(
                reach.contains(&added),
                "{r:?} + {b:?} = {added}, not in {reach:?}"
            );
        }
    }
    // The ends are reached: the range is no wider than what evidence can do.
    assert_eq!(*reach.start(), scored(Some("REPUTATION_GOOD")));
    assert_eq!(
        *reach.end(),
        scored(Some("REPUTATION_BAD")) + scored(Some("BULK_MANY"))
    );
}
