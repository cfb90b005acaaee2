//! Each rule that needs no learning, on a message that trips it and on a close ham that
//! must not: the ham is what a legitimate sender writes that looks most like the trick.

use super::{b64, mime_with_attachment, names, zip_with, Fixed};
use crate::filter::{judge, FilterInput, Knowledge, Policy, RULES_ALONE, SCORES};
use crate::lists::{EntryKind, ListEntry};

const FROM: &str = "From: Alice <alice@client.example>\r\nTo: bob@example.test\r\nDate: Wed, 25 Nov 2026 10:00:00 +0000\r\nMessage-ID: <1@client.example>\r\n";

/// A plain-text message with this Subject (and extra header lines, CRLF-ended) and body.
fn plain(extra: &str, subject: &str, body: &str) -> String {
    format!("{FROM}{extra}Subject: {subject}\r\n\r\n{body}\r\n")
}

/// A message that names this mail program in its X-Mailer header.
fn mailer(name: &str) -> String {
    plain(&format!("X-Mailer: {name}\r\n"), "hi", "x")
}

/// A message with this Date header (and no Received header to compare it with).
fn dated(date: &str) -> String {
    format!("From: a@client.example\r\nDate: {date}\r\nSubject: x\r\n\r\nx\r\n")
}

/// A message from a Hotmail address, with this Received header.
fn webmail(received: &str) -> String {
    format!("{received}From: Bob <bob.smith@hotmail.com>\r\nTo: carol@example.test\r\nDate: Wed, 25 Nov 2026 10:00:00 +0000\r\nMessage-ID: <2@hotmail.com>\r\nSubject: hello\r\n\r\nSee you soon.\r\n")
}

/// An HTML-only message.
fn html(html: &str) -> String {
    format!("{FROM}Subject: news\r\nContent-Type: text/html\r\n\r\n{html}\r\n")
}

/// The same HTML with a plain-text alternative.
fn alternative(html: &str) -> String {
    format!(
        "{FROM}Subject: news\r\nMIME-Version: 1.0\r\nContent-Type: multipart/alternative; boundary=\"b\"\r\n\r\n--b\r\nContent-Type: text/plain\r\n\r\nThe news in plain text.\r\n--b\r\nContent-Type: text/html\r\n\r\n{html}\r\n--b--\r\n"
    )
}

fn assert_rule(symbol: &str, trips: &str, close_ham: &str) {
    let lists = Fixed(Vec::new());
    let spam = names(trips.as_bytes(), &lists);
    assert!(
        spam.iter().any(|n| n == symbol),
        "{symbol} must fire on:\n{trips}\ngot {spam:?}"
    );
    let ham = names(close_ham.as_bytes(), &lists);
    assert!(
        !ham.iter().any(|n| n == symbol),
        "{symbol} must not fire on:\n{close_ham}\ngot {ham:?}"
    );
}

/// One `#[test]` per rule: its symbol, a message that trips it, a close ham.
macro_rules! rule_cases {
    ($($test:ident: $symbol:literal, $trips:expr, $ham:expr;)*) => {
        $(
            #[test]
            fn $test() {
                assert_rule($symbol, AsRef::<str>::as_ref(&$trips), AsRef::<str>::as_ref(&$ham));
            }
        )*
    };
}

const LONG_TEXT: &str = "Our quarterly report covers the new office, the team that moved in last spring, the budget for the coming year and the plans we discussed at the last meeting; please read it before Thursday and send your questions to the list. The minutes of that meeting are attached as well, with the figures the board asked for.";

rule_cases! {
    html_only: "HTML_ONLY",
        html("<p>Hello, here is the offer.</p>"), alternative("<p>Hello, here is the offer.</p>");
    hidden_text: "HTML_HIDDEN_TEXT",
        alternative("<div style=\"display: none\">cheap pills</div><p>hi</p>"),
        alternative("<div style=\"display: block\">agenda</div><p>hi</p>");
    tiny_text: "HTML_HIDDEN_TEXT",
        alternative("<span style=\"font-size:1px\">random words</span>"),
        alternative("<span style=\"font-size: 12px\">footer</span><span style=\"font-size:1em\">x</span>");
    shouting_font: "HTML_SHOUTING_FONT",
        alternative("<font color=\"#FF0000\" size=\"+4\">BUY</font>"),
        alternative("<font color=\"#FF0000\" size=\"2\">note</font>");
    mostly_images: "HTML_MOSTLY_IMAGES",
        html("<img src=\"http://img.example.test/offer.gif\"><p>Click</p>"),
        html(&format!("<img src=\"http://img.example.test/logo.gif\"><p>{LONG_TEXT}</p>"));
    words_split_by_comments: "OBFUSCATED_WORDS",
        alternative("<p>Buy vi<!-- xq -->agra now</p>"),
        alternative("<!-- header --><p>Minutes</p><!-- footer -->");
    letters_as_references: "OBFUSCATED_WORDS",
        alternative("<p>v&#105;agra and c&#105;alis, ch&#101;ap</p>"),
        alternative("<a href=\"&#109;&#97;&#105;&#108;&#116;&#111;&#58;a&#64;b.test\">write</a>");
    text_base64: "TEXT_BASE64",
        format!("{FROM}Subject: x\r\nContent-Type: text/plain\r\nContent-Transfer-Encoding: base64\r\n\r\n{}\r\n", b64(b"Hello friend")),
        format!("{FROM}Subject: x\r\nContent-Type: text/plain\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\nHello=20friend\r\n");
    body_mostly_caps: "BODY_MOSTLY_CAPS",
        plain("", "news", &LONG_TEXT.to_uppercase()), plain("", "news", &format!("NOTE: {LONG_TEXT} NASA, IBM, EU."));
    subject_all_caps: "SUBJECT_ALL_CAPS",
        plain("", "MAKE MONEY FAST", "x"), plain("", "Meeting about the NASA grant", "x");
    short_capitals_are_not_shouting: "SUBJECT_ALL_CAPS",
        plain("", "FREE OFFER INSIDE", "x"), plain("", "RE: OK", "x");
    subject_money: "SUBJECT_MONEY",
        plain("", "Only $19.95 today", "x"), plain("", "Invoice 1995: 19.95 EUR", "x");
    subject_trailing_id: "SUBJECT_TRAILING_ID",
        plain("", "Lower your rates                    XKQJZT", "x"),
        plain("", "Re: a very long subject that the mailer folded\r\n      onto2lines", "x");
    subject_ad_tag: "SUBJECT_AD_TAG",
        plain("", "ADV: printer ink", "x"), plain("", "Advice on printer ink", "x");
    to_undisclosed: "TO_UNDISCLOSED",
        "From: a@client.example\r\nTo: undisclosed-recipients:;\r\nSubject: x\r\n\r\nx\r\n",
        "From: a@client.example\r\nTo: Team <team@example.test>\r\nSubject: x\r\n\r\nx\r\n";
    priority_high: "PRIORITY_HIGH",
        plain("X-Priority: 1 (Highest)\r\n", "x", "x"), plain("X-Priority: 3 (Normal)\r\n", "x", "x");
    from_name_forged: "FROM_NAME_FORGED",
        "From: \"service@bank.test\" <alerts@evil.test>\r\nTo: b@example.test\r\nSubject: x\r\n\r\nx\r\n",
        "From: \"bob@example.test\" <bob@mail.example.test>\r\nTo: b@example.test\r\nSubject: x\r\n\r\nx\r\n";
    link_text_mismatch: "LINK_TEXT_MISMATCH",
        alternative("<a href=\"http://login.evil.test/x\">https://www.bank.test/</a>"),
        alternative("<a href=\"http://www.bank.test/login\">www.bank.test</a> <a href=\"http://click.news.test/1\">Read more</a>");
    url_userinfo: "URL_USERINFO",
        plain("", "x", "Log in at http://www.bank.test@198.51.100.9/login"),
        plain("", "x", "Log in at http://www.bank.test/login or write to help@bank.test");
    url_obfuscated_host: "URL_OBFUSCATED_HOST",
        plain("", "x", "See http://%77%77%77.evil.test/ and http://3512041827/"),
        plain("", "x", "See http://www.example.test/%7Euser/ and http://10.example.test/");
    url_shortener: "URL_SHORTENER",
        plain("", "x", "Your parcel: https://bit.ly/3xYz"), plain("", "x", "Your parcel: https://orbit.ly.example.test/3xYz");
    advance_fee: "ADVANCE_FEE",
        plain("", "x", "As next of kin of my late father you are the beneficiary of US$ 12 million."),
        plain("", "x", "Please pay the invoice to our bank account before Friday.");
    money_making: "MONEY_MAKING_4",
        plain("", "x", "Work from home, be your own boss and earn $5000 per month."),
        plain("", "x", "The job is an opportunity: the salary is paid per month.");
    pharmacy: "PHARMACY_3",
        plain("", "x", "Viagra and cialis without prescription."), plain("", "x", "My doctor changed my prescription.");
    loans: "LOANS_4",
        plain("", "x", "Refinance your mortgage: lowest rate, bad credit approved."),
        plain("", "x", "The bank approved the loan for the office.");
    adult: "ADULT_3",
        plain("", "x", "Hardcore xxx porn, live now."), plain("", "x", "Adult education in Sussex, adulthood studies.");
    sales_pitch: "SALES_PITCH_4",
        plain("", "x", "Special offer! Act now, click here: limited time."),
        plain("", "x", "The slides are online, click here to download them.");
    claims_not_spam: "CLAIMS_NOT_SPAM",
        plain("", "x", "This is not spam: you signed up."), plain("", "x", "Is this spam? The filter missed it.");
    removal_footer: "REMOVAL_FOOTER",
        plain("", "x", "To be removed from our list, reply with REMOVE in the subject."),
        plain("", "x", "The old server will be retired and removed next week.");
    impersonal_greeting: "IMPERSONAL_GREETING",
        plain("", "x", "Dear friend, I write to you in confidence."), plain("", "x", "Dear Alice, thanks for the friendly note.");
    program_under_another_name: "EXECUTABLE_DISGUISED",
        String::from_utf8(mime_with_attachment("report.pdf", &b64(&pe_program()))).unwrap(),
        String::from_utf8(mime_with_attachment("report.pdf", &b64(b"%PDF-1.4 MZ text"))).unwrap();
    program_in_an_archive_under_another_name: "ARCHIVE_WITH_EXECUTABLE",
        String::from_utf8(mime_with_attachment("photos.zip", &b64(&[zip_with("beach.jpg"), pe_program()].concat()))).unwrap(),
        String::from_utf8(mime_with_attachment("photos.zip", &b64(&[zip_with("beach.jpg"), b"\xff\xd8\xff\xe0JFIF".to_vec()].concat()))).unwrap();
    forged_webmail: "FORGED_WEBMAIL_RCVD",
        webmail("Received: from pc1.dsl.example.net ([203.0.113.9]) by mx.example.test; Wed, 25 Nov 2026 10:00:05 +0000\r\n"),
        webmail("Received: from mc4-f12.hotmail.com ([65.54.1.1]) by mx.example.test; Wed, 25 Nov 2026 10:00:05 +0000\r\n");
    date_in_future: "DATE_IN_FUTURE",
        plain("Received: from a.client.example by mx.example.test; Wed, 25 Nov 2026 05:00:00 +0000\r\n", "hi", "x"),
        plain("Received: from a.client.example by mx.example.test; Wed, 25 Nov 2026 08:30:00 +0000\r\n", "hi", "x");
    date_tz_absurd: "DATE_TZ_ABSURD",
        dated("Wed, 07 Oct 2020 23:01:36 -1900"),
        dated("Wed, 07 Oct 2020 23:01:36 -0930");
    forged_outlook_express: "FORGED_OUTLOOK",
        mailer("Microsoft Outlook Express 6.00.2600.0000"),
        mailer("Microsoft Outlook Express Macintosh Edition - 4.5 (0410)");
    forged_outlook_2002: "FORGED_OUTLOOK",
        mailer("Microsoft Outlook, Build 10.0.2627"),
        mailer("Microsoft Outlook 16.0");
    date_malformed: "DATE_MALFORMED",
        dated("Fri, 23 Aug 2002 22:46:34 GMT+1"),
        dated("Fri, 23 Aug 2002 22:46:34 +0100 (CET)");
}

/// The start of a Windows program: "MZ", and at 0x3c the offset of the "PE" signature.
fn pe_program() -> Vec<u8> {
    let mut p = vec![0u8; 0x48];
    p[..2].copy_from_slice(b"MZ");
    p[0x3c] = 0x40;
    p[0x40..0x44].copy_from_slice(b"PE\0\0");
    p
}

#[test]
fn every_rule_symbol_has_a_score() {
    let named = |set: &[(&str, i64)], n: &str| set.iter().any(|(s, _)| *s == n);
    for (name, _) in RULES_ALONE {
        assert!(named(SCORES, name), "{name} is in RULES_ALONE only");
    }
    for group in super::super::phrases::GROUPS {
        for (_, name) in group.levels {
            assert!(named(SCORES, name), "{name} has no score");
        }
    }
}

/// Speaks with a fixed probability, like a cluster that has learned enough.
struct Speaking;

impl Knowledge for Speaking {
    fn lookup(&self, _: EntryKind, _: &str) -> Vec<ListEntry> {
        Vec::new()
    }
    fn spam_probability(&self, _: &[u64]) -> Option<f64> {
        Some(0.5)
    }
}

#[test]
fn rules_weigh_more_while_the_classifiers_are_silent() {
    let msg = plain("", "MAKE MONEY FAST", "x");
    let input = FilterInput {
        client_ip: "198.51.100.7".parse().unwrap(),
        helo: "mail.client.example",
        mail_from: "alice@client.example",
        message: msg.as_bytes(),
        proved: &crate::trust::Authenticated::nothing(),
        recipients: &[],
    };
    let score = |k: &dyn Knowledge| {
        let j = judge(&input, k, &Policy::default());
        let s = j.symbols.iter().find(|s| s.name == "SUBJECT_ALL_CAPS");
        s.expect("the rule fires").score_milli
    };
    let of = |set: &[(&str, i64)]| {
        set.iter()
            .find(|(n, _)| *n == "SUBJECT_ALL_CAPS")
            .unwrap()
            .1
    };
    assert_eq!(score(&Fixed(Vec::new())), of(RULES_ALONE));
    assert_eq!(score(&Speaking), of(SCORES));
    assert!(of(RULES_ALONE) > of(SCORES));
}

#[test]
fn a_webmail_from_that_authentication_proved_is_not_forged() {
    let msg = webmail(
        "Received: from relay.example.net by mx.example.test; Wed, 25 Nov 2026 10:00:05 +0000\r\n",
    );
    let lists = Fixed(Vec::new());
    assert!(names(msg.as_bytes(), &lists).contains(&"FORGED_WEBMAIL_RCVD".to_owned()));
    let mut proved = crate::trust::Authenticated::nothing();
    proved.vouch("hotmail.com");
    let n = super::names_proved(msg.as_bytes(), &lists, &proved);
    assert!(!n.contains(&"FORGED_WEBMAIL_RCVD".to_owned()), "{n:?}");
}

#[test]
fn outlook_express_for_windows_with_its_mimeole_header_is_not_forged() {
    let msg = plain(
        "X-Mailer: Microsoft Outlook Express 6.00.2600.0000\r\nX-MimeOLE: Produced By Microsoft MimeOLE V6.00.2600.0000\r\n",
        "hi",
        "x",
    );
    let n = names(msg.as_bytes(), &Fixed(Vec::new()));
    assert!(!n.contains(&"FORGED_OUTLOOK".to_owned()), "{n:?}");
}

#[test]
fn dates_as_mail_programs_write_them_are_well_formed_and_others_are_not() {
    let judged = |date: &str| {
        let n = names(dated(date).as_bytes(), &Fixed(Vec::new()));
        n.iter()
            .any(|s| s == "DATE_MALFORMED" || s == "MISSING_DATE")
    };
    for written in [
        "Mon, 7 Dec 2026 10:00:00 +0100",
        "Mon, 07 Dec 2026 10:00 -0500 (EST)",
        "7 Dec 2026 10:00:00 GMT",
        "Mon, 7 Dec 26 10:00:00 PST",
        "Mon,\r\n 7 Dec 2026 10:00:00 (comment (nested)) +0000",
    ] {
        assert!(!judged(written), "{written:?} is well formed");
    }
    for made_up in [
        "Fri, 23 Aug 2002 19:27:52",
        "Thu, 29 Aug 2002 15:36:58 +-0500",
        "Fri, 30 Aug 02 21:48:08 Eastern Daylight Time",
        "Sun, 25 Aug 2002 19:21:44 01800",
        "Sat Sep 21 08:18:08 2002",
        "2002/09/14 Sat 02:29:32 CDT",
        "Mon, 7 Dec 2026 10:00:00 +0100 (unclosed",
        "Someday, 7 Dec 2026 10:00:00 +0100",
    ] {
        assert!(judged(made_up), "{made_up:?} is not well formed");
    }
}
