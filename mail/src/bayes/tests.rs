//! The Bayes classifier on constructed messages: its tokens, and the probabilities its counts give.

use super::*;

fn msg(subject: &str, body: &str) -> Vec<u8> {
    format!(
        "From: Someone <a@example.org>\r\nSubject: {subject}\r\nDate: Wed, 25 Nov 2026 10:00:00 +0000\r\nMessage-ID: <x@example.org>\r\n\r\n{body}\r\n"
    )
    .into_bytes()
}

#[test]
fn features_are_decoded_words_headers_and_url_domains() {
    let m = b"From: =?utf-8?q?Caf=C3=A9?= <a@Example.ORG>\r\nSubject: =?utf-8?b?V2luIEJJRyBub3c=?=\r\nContent-Type: text/html\r\n\r\n<p>Click <a href=\"http://www.cheap.pills.example/x\">HERE</a></p>\r\n";
    let t = tokens(m).unwrap();
    let has = |prefix: &str, w: &str| {
        t.0.contains(&xxhash_rust::xxh3::xxh3_64(
            format!("{prefix}{w}").as_bytes(),
        ))
    };
    assert!(
        has("subject:", "win") && has("subject:", "big"),
        "decoded subject"
    );
    assert!(has("from-name:", "café"));
    assert!(has("from-domain:", "example.org"));
    assert!(
        has("", "click") && has("", "here"),
        "HTML text, lower-cased"
    );
    assert!(has("url:", "www.cheap.pills.example"));
    assert!(has("url-domain:", "pills.example"));
    assert!(!has("", "p"), "markup is not text");
}

#[test]
fn the_fingerprint_ignores_headers_that_are_not_features() {
    let m = msg("hello", "the same body");
    let mut stamped = b"X-Peage-Verdict: deliver\r\nX-Peage-Score: 0\r\n".to_vec();
    stamped.extend_from_slice(&m);
    assert_eq!(
        tokens(&m).unwrap().fingerprint(),
        tokens(&stamped).unwrap().fingerprint()
    );
    assert_ne!(
        tokens(&m).unwrap().fingerprint(),
        tokens(&msg("hello", "another body")).unwrap().fingerprint()
    );
}

fn trained() -> TokenTable {
    let mut t = TokenTable::default();
    for i in 0..60 {
        let spam = tokens(&msg(
            "cheap pills",
            &format!("buy viagra now cheap pills offer {i}"),
        ))
        .unwrap();
        t.apply(&spam.0, Class::Spam, 1);
        let ham = tokens(&msg(
            "meeting notes",
            &format!("the project meeting is moved to thursday {i}"),
        ))
        .unwrap();
        t.apply(&ham.0, Class::Ham, 1);
    }
    t
}

#[test]
fn silent_until_both_classes_are_learned_enough() {
    let mut t = TokenTable::default();
    let spam = tokens(&msg("cheap pills", "buy viagra now")).unwrap();
    for _ in 0..MIN_LEARNED_PER_CLASS {
        t.apply(&spam.0, Class::Spam, 1);
    }
    assert_eq!(t.spam_probability(&spam.0), None);
}

#[test]
fn clear_spam_and_ham_land_at_the_extremes_and_mixed_evidence_in_the_middle() {
    let t = trained();
    let spam = tokens(&msg("cheap pills", "buy viagra now, cheap pills")).unwrap();
    let ham = tokens(&msg("meeting notes", "the project meeting is on thursday")).unwrap();
    let mixed = tokens(&msg(
        "meeting notes",
        "project meeting thursday: buy viagra cheap pills",
    ))
    .unwrap();
    let unknown = tokens(&msg("zzz", "qqq xxx yyy")).unwrap();
    assert!(t.spam_probability(&spam.0).unwrap() > 0.99);
    assert!(t.spam_probability(&ham.0).unwrap() < 0.01);
    let m = t.spam_probability(&mixed.0).unwrap();
    assert!((0.2..0.8).contains(&m), "mixed evidence is unsure: {m}");
    assert_eq!(t.spam_probability(&unknown.0), Some(0.5));
}

#[test]
fn unlearning_restores_the_counts() {
    let mut t = trained();
    let before = (t.len(), t.spam_messages, t.ham_messages);
    let m = tokens(&msg("new", "something never seen before here")).unwrap();
    t.apply(&m.0, Class::Spam, 1);
    t.apply(&m.0, Class::Spam, -1);
    assert_eq!((t.len(), t.spam_messages, t.ham_messages), before);
}
