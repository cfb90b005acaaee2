//! Phrase groups that need no learning: the wording of advance-fee fraud, money-making
//! schemes, pills, loans, adult offers, sales pitches, "this is not spam" claims, removal
//! footers and impersonal greetings. Each group is data: its phrases (in the form
//! `text::normalise` gives text: lower case, every digit `0`, one space between words)
//! and how many distinct ones give which symbol. One automaton finds them all in one pass.
//!
//! One phrase says little (ham talks about loans and money too); several distinct phrases
//! of one group in one message is what spam campaigns look like, so the levels start at
//! two or three phrases, except for the groups no legitimate sender writes.

use std::sync::LazyLock;

use aho_corasick::AhoCorasick;

/// A group of phrases and the symbol given for at least so many distinct ones of them.
pub(super) struct Group {
    /// What the phrases are, for the reason.
    pub what: &'static str,
    /// (at least this many distinct phrases, symbol), the most first.
    pub levels: &'static [(usize, &'static str)],
    pub phrases: &'static [&'static str],
}

/// The groups; their symbols' scores are in `scoring::SCORES` and `scoring::RULES_ALONE`.
pub(super) const GROUPS: &[Group] = &[
    Group {
        what: "advance-fee fraud",
        levels: &[(3, "ADVANCE_FEE")],
        phrases: &[
            "next of kin",
            "strictest confidence",
            "strict confidence",
            "beneficiary",
            "barrister",
            "foreign partner",
            "foreign account",
            "late father",
            "late husband",
            "government official",
            "modalities",
            "transfer of the fund",
            "transfer the fund",
            "million united states dollars",
            "million us dollars",
            "us$",
            "percent of the total",
            "% of the total",
            "confidential",
            "bank account",
            "security company",
            "diplomatic",
        ],
    },
    Group {
        what: "money-making",
        levels: &[
            (4, "MONEY_MAKING_4"),
            (3, "MONEY_MAKING_3"),
            (2, "MONEY_MAKING_2"),
        ],
        phrases: &[
            "earn $",
            "extra income",
            "work from home",
            "be your own boss",
            "financial freedom",
            "no investment",
            "home business",
            "make money",
            "residual income",
            "multi-level",
            "multi level",
            "network marketing",
            "opportunity",
            "guaranteed",
            "risk free",
            "risk-free",
            "no risk",
            "per month",
            "per week",
            "cash",
            "income",
        ],
    },
    Group {
        what: "pharmacy",
        levels: &[(3, "PHARMACY_3"), (2, "PHARMACY_2")],
        phrases: &[
            "viagra",
            "cialis",
            "prescription",
            "pharmacy",
            "erection",
            "weight loss",
            "lose weight",
            "diet",
            "herbal",
            "pills",
            "human growth hormone",
            "hgh",
            "penis",
            "enlargement",
            "anti-aging",
            "fat burning",
        ],
    },
    Group {
        what: "loans and debt",
        levels: &[(4, "LOANS_4"), (3, "LOANS_3"), (2, "LOANS_2")],
        phrases: &[
            "mortgage",
            "refinance",
            "interest rate",
            "interest rates",
            "debt",
            "credit card",
            "credit cards",
            "consolidate",
            "consolidation",
            "loan",
            "loans",
            "lowest rate",
            "credit report",
            "bad credit",
            "approved",
            "pre-approved",
            "homeowner",
            "homeowners",
        ],
    },
    Group {
        what: "adult",
        levels: &[(4, "ADULT_4"), (3, "ADULT_3")],
        phrases: &[
            "xxx",
            "porn",
            "adult",
            "sex",
            "nude",
            "nudes",
            "teen",
            "teens",
            "hardcore",
            "horny",
            "sexy",
            "live girls",
            "webcam",
        ],
    },
    Group {
        what: "sales-pitch",
        levels: &[
            (4, "SALES_PITCH_4"),
            (3, "SALES_PITCH_3"),
            (2, "SALES_PITCH_2"),
        ],
        phrases: &[
            "act now",
            "limited time",
            "order now",
            "call now",
            "special offer",
            "free gift",
            "000% free",
            "click below",
            "click here",
            "order today",
            "don't delay",
            "satisfaction guaranteed",
            "money back",
            "this offer",
            "offer expires",
            "you have been selected",
            "congratulations",
            "winner",
            "buy now",
            "free trial",
            "no cost",
            "lowest price",
            "save up to",
            "apply now",
            "once in a lifetime",
        ],
    },
    Group {
        what: "not-spam claim",
        levels: &[(1, "CLAIMS_NOT_SPAM")],
        phrases: &[
            "this is not spam",
            "this is not a spam",
            "this email is not spam",
            "this message is not spam",
            "not unsolicited",
            "is not considered spam",
            "cannot be considered spam",
            "s. 0000 title iii",
            "s.0000 title iii",
            "s 0000 title iii",
        ],
    },
    Group {
        what: "removal-footer",
        levels: &[(1, "REMOVAL_FOOTER")],
        phrases: &[
            "to be removed",
            "be removed from",
            "remove me",
            "removed from our",
            "removal instructions",
            "removal request",
            "for removal",
            "remove you from",
            "to remove yourself",
            "remove in the subject",
            "with remove in",
        ],
    },
    Group {
        what: "impersonal-greeting",
        levels: &[(1, "IMPERSONAL_GREETING")],
        phrases: &[
            "dear friend",
            "dear sir",
            "dear madam",
            "dear valued",
            "dear member",
            "dear customer",
            "dear account holder",
            "dear user",
        ],
    },
];

/// Phrases are looked for in this much normalised text at most.
pub(super) const MAX_TEXT: usize = 100_000;

/// Every group's phrases, in the order of `GROUPS`: pattern ids run group by group.
static AUTOMATON: LazyLock<AhoCorasick> = LazyLock::new(|| {
    let patterns = GROUPS.iter().flat_map(|g| g.phrases.iter().copied());
    // A DFA: the fastest overlapping search, and the phrases are few.
    AhoCorasick::builder()
        .kind(Some(aho_corasick::AhoCorasickKind::DFA))
        .build(patterns)
        .expect("the phrase automaton builds")
});

/// Whether `text[start..end]` stands as whole words (a phrase that starts or ends with a
/// letter must not be the middle of a longer word: "sex" is not in "sussex").
fn whole_words(text: &[u8], start: usize, end: usize) -> bool {
    let alnum = |i: Option<&u8>| i.is_some_and(|b| b.is_ascii_alphanumeric());
    let starts_word = alnum(text.get(start));
    let ends_word = end > 0 && alnum(text.get(end - 1));
    let cut_before = starts_word && start > 0 && alnum(text.get(start - 1));
    let cut_after = ends_word && alnum(text.get(end));
    !(cut_before || cut_after)
}

/// Reports each group's symbol for `normalised` text through `found(symbol_name, reason)`.
pub(super) fn check(normalised: &str, found: &mut dyn FnMut(&'static str, String)) {
    let mut end = normalised.len().min(MAX_TEXT);
    while !normalised.is_char_boundary(end) {
        end -= 1;
    }
    let text = &normalised[..end];
    let mut seen = vec![false; AUTOMATON.patterns_len()];
    for m in AUTOMATON.find_overlapping_iter(text) {
        if whole_words(text.as_bytes(), m.start(), m.end()) {
            seen[m.pattern().as_usize()] = true;
        }
    }
    let mut first = 0;
    for group in GROUPS {
        let phrases = &seen[first..first + group.phrases.len()];
        first += group.phrases.len();
        let hits: Vec<&str> = group
            .phrases
            .iter()
            .zip(phrases)
            .filter(|(_, hit)| **hit)
            .map(|(p, _)| *p)
            .collect();
        if let Some((_, name)) = group.levels.iter().find(|(n, _)| hits.len() >= *n) {
            let shown: Vec<&str> = hits.iter().take(4).copied().collect();
            found(
                name,
                format!(
                    "{} {} phrase{}: \"{}\"",
                    hits.len(),
                    group.what,
                    if hits.len() == 1 { "" } else { "s" },
                    shown.join("\", \"")
                ),
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_phrase_inside_a_longer_word_does_not_count() {
        let mut found = Vec::new();
        check(
            "sussex, essex: adulthood for teenagers; xxxl",
            &mut |n, _| found.push(n),
        );
        assert!(found.is_empty(), "{found:?}");
        check("sex, teens, adult: xxx", &mut |n, _| found.push(n));
        assert_eq!(found, ["ADULT_4"]);
        let text = b"us$ 5";
        assert!(
            whole_words(text, 0, 3),
            "a phrase ending in a sign ends where it ends"
        );
    }
}
