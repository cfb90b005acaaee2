//! Symbols and what they weigh: the names and scores (`SCORES`, data, not code), the
//! replicated thresholds (`Policy`), the verdict they give, and the `X-Peage-*` headers
//! that carry it.

/// The GTUBE test string (its Péage-neutral form, as used by every spam filter).
pub const GTUBE: &str = "XJS*C4JDBQADN1.NSBN3*2IDNEN*GTUBE-STANDARD-ANTI-UBE-TEST-EMAIL*C.34X";

/// Symbol names and their scores in milli-points (integers keep records deterministic).
pub const SCORES: &[(&str, i64)] = &[
    ("GTUBE", 1_000_000),
    ("BLOCKLIST_IP", 20_000),
    ("BLOCKLIST_HELO", 20_000),
    ("BLOCKLIST_SENDER", 20_000),
    ("BLOCKLIST_FROM_DOMAIN", 20_000),
    ("BLOCKLIST_URL", 12_000),
    ("ALLOWLIST", -20_000),
    // An allow-listed name the client claimed and authentication did not prove.
    ("ALLOWLIST_UNPROVED", 0),
    ("MISSING_FROM", 3_000),
    ("MALFORMED_FROM", 3_000),
    ("MISSING_DATE", 1_000),
    ("MISSING_MESSAGE_ID", 1_500),
    ("UNPARSABLE_MESSAGE", 3_000),
    ("EXECUTABLE_ATTACHMENT", 10_000),
    ("DOUBLE_EXTENSION", 3_000),
    ("ARCHIVE_WITH_EXECUTABLE", 10_000),
    ("MACRO_OFFICE_DOCUMENT", 6_000),
    ("EXECUTABLE_DISGUISED", 10_000),
    // Structure and phishing that need no learning (`filter::structure`); these and the
    // phrase groups weigh more while the classifiers are silent (`RULES_ALONE`).
    ("URL_IP_LITERAL", 1_500),
    ("URL_USERINFO", 5_250),
    ("URL_OBFUSCATED_HOST", 1_000),
    ("URL_SHORTENER", 500),
    ("LINK_TEXT_MISMATCH", 500),
    ("HTML_ONLY", 500),
    ("HTML_HIDDEN_TEXT", 1_750),
    ("HTML_SHOUTING_FONT", 750),
    ("HTML_MOSTLY_IMAGES", 1_000),
    ("OBFUSCATED_WORDS", 3_500),
    ("TEXT_BASE64", 500),
    ("BODY_MOSTLY_CAPS", 1_000),
    ("SUBJECT_ALL_CAPS", 1_000),
    ("SUBJECT_MONEY", 500),
    ("SUBJECT_TRAILING_ID", 2_500),
    ("SUBJECT_AD_TAG", 3_500),
    ("TO_UNDISCLOSED", 750),
    ("PRIORITY_HIGH", 500),
    ("FROM_NAME_FORGED", 1_750),
    // Header forgery (`filter::forgery`).
    ("FORGED_WEBMAIL_RCVD", 3_000),
    ("DATE_IN_FUTURE", 3_000),
    ("DATE_TZ_ABSURD", 2_500),
    ("DATE_MALFORMED", 2_000),
    ("FORGED_OUTLOOK", 5_000),
    // Phrase groups (`filter::phrases`): more distinct phrases of a group weigh more.
    ("ADVANCE_FEE", 5_250),
    ("MONEY_MAKING_2", 500),
    ("MONEY_MAKING_3", 1_000),
    ("MONEY_MAKING_4", 5_250),
    ("PHARMACY_2", 750),
    ("PHARMACY_3", 5_250),
    ("LOANS_2", 500),
    ("LOANS_3", 1_000),
    ("LOANS_4", 1_500),
    ("ADULT_3", 750),
    ("ADULT_4", 4_500),
    ("SALES_PITCH_2", 250),
    ("SALES_PITCH_3", 500),
    ("SALES_PITCH_4", 750),
    ("CLAIMS_NOT_SPAM", 4_500),
    ("REMOVAL_FOOTER", 750),
    ("IMPERSONAL_GREETING", 750),
    // The classifiers' symbols (`BAYES_*`, `LOGISTIC_*`) weigh what `CLASSIFIER_POINTS` says.
    // Sender authentication (the node's `auth`): failures count, passes say who it is.
    ("SPF_PASS", 0),
    ("SPF_FAIL", 2_000),
    ("SPF_SOFTFAIL", 1_000),
    ("SPF_NEUTRAL", 0),
    ("SPF_NONE", 0),
    ("SPF_TEMPERROR", 0),
    ("SPF_PERMERROR", 500),
    ("SPF_HELO_PASS", 0),
    ("SPF_HELO_FAIL", 1_000),
    ("SPF_HELO_SOFTFAIL", 500),
    ("SENDER_PROVED", 0),
    ("DKIM_VALID", 0),
    ("DKIM_INVALID", 1_000),
    ("DKIM_TEMPERROR", 0),
    ("DKIM_NONE", 0),
    ("ARC_VALID", 0),
    ("ARC_INVALID", 500),
    ("DMARC_PASS", -500),
    // A failing DMARC policy of reject or quarantine decides the verdict itself when the
    // node honours it (`dns.dmarc_policy`); these scores are what it weighs otherwise.
    ("DMARC_FAIL_REJECT", 6_000),
    ("DMARC_FAIL_QUARANTINE", 4_000),
    ("DMARC_FAIL_NONE", 1_000),
    ("AUTH_TEMPERROR", 0),
    // A DNS blocklist answered with an error code: reported, not scored. Listings carry the
    // symbols and points the node's `dns.blocklists` give them.
    ("DNS_BLOCKLIST_ERROR", 0),
    // Cluster-wide evidence (see `crate::evidence`).
    ("REPUTATION_BAD", 3_000),
    ("REPUTATION_POOR", 1_000),
    ("REPUTATION_GOOD", -1_000),
    ("BULK_SOME", 1_000),
    ("BULK_MANY", 2_500),
];

/// The score set while the classifiers are silent (a new cluster, too little learned): the
/// structure and phrase rules then decide alone, so they weigh more — as SpamAssassin keeps
/// a score set for running without Bayes. With the classifiers speaking, the same rules
/// weigh less (`SCORES`): the classifiers have learned most of what they say, and summed
/// on top they pushed newsletters over the threshold. Rules that no ham of the corpus trips
/// (the strongest phrase levels, tricks no legitimate sender uses) are not in this table:
/// they weigh the same either way. Both sets were chosen on `peage eval`'s scores over
/// `../shared/corpus/train` (BENCHMARKS.md).
pub const RULES_ALONE: &[(&str, i64)] = &[
    ("URL_IP_LITERAL", 2_500),
    ("URL_OBFUSCATED_HOST", 3_500),
    ("URL_SHORTENER", 1_750),
    ("LINK_TEXT_MISMATCH", 1_750),
    ("HTML_ONLY", 1_750),
    ("HTML_SHOUTING_FONT", 2_500),
    ("HTML_MOSTLY_IMAGES", 3_500),
    ("TEXT_BASE64", 1_750),
    ("BODY_MOSTLY_CAPS", 3_500),
    ("SUBJECT_ALL_CAPS", 3_500),
    ("SUBJECT_MONEY", 1_750),
    ("TO_UNDISCLOSED", 2_500),
    ("PRIORITY_HIGH", 1_750),
    ("MONEY_MAKING_2", 1_750),
    ("MONEY_MAKING_3", 3_500),
    ("PHARMACY_2", 2_500),
    ("LOANS_2", 1_750),
    ("LOANS_3", 3_500),
    ("LOANS_4", 5_250),
    ("ADULT_3", 2_500),
    ("SALES_PITCH_2", 1_000),
    ("SALES_PITCH_3", 1_750),
    ("SALES_PITCH_4", 2_500),
    ("REMOVAL_FOOTER", 2_500),
    ("IMPERSONAL_GREETING", 2_500),
    ("FORGED_WEBMAIL_RCVD", 4_500),
    ("DATE_IN_FUTURE", 4_500),
    ("DATE_TZ_ABSURD", 3_750),
    ("DATE_MALFORMED", 3_000),
    ("FORGED_OUTLOOK", 7_500),
];

/// How the two classifiers' spam probabilities become points: each adds its log-odds
/// ln(p / (1 − p)), kept within `spam_cap` on the spam side, plus `offset`, so that two
/// leaning the same way add up (summing log-odds is what a combiner of independent evidence
/// does) and neither quarantines alone (at most 4 points each). On the ham side a
/// classifier alone takes off at most `alone_ham_cap` (nothing, with the offset): mail
/// unlike anything learned looks like ham to both, whose vocabulary is the wider (a spam
/// testimonial in plain prose got Bayes 0.000), so one classifier's "ham" is weak evidence;
/// only when both are sure of ham (log-odds at most −`agreed_ham`, p ≤ 0.047 each) do they
/// take off up to `spam_cap` each: −4 points together, which still lets a released false
/// positive, once learned, outweigh the rules that held it. Chosen on `peage eval`'s scores
/// over the corpus, later mail (by date, learning the oldest 30, 50 and 70 %) weighing most
/// (BENCHMARKS.md): the ham-side limit caught 1–3.5 % more of that mail than the symmetric
/// ±3 cap, at the same false positives everywhere.
pub struct ClassifierPoints {
    pub spam_cap_milli: i64,
    pub alone_ham_cap_milli: i64,
    pub agreed_ham_milli: i64,
    pub offset_milli: i64,
}

pub const CLASSIFIER_POINTS: ClassifierPoints = ClassifierPoints {
    spam_cap_milli: 3_000,
    alone_ham_cap_milli: 1_000,
    agreed_ham_milli: 3_000,
    offset_milli: 1_000,
};

impl ClassifierPoints {
    /// The points of the Bayes and the logistic probabilities, in milli-points, in that
    /// order (the logistic classifier may not have spoken).
    pub fn of(&self, bayes: f64, logistic: Option<f64>) -> (i64, i64) {
        let bayes = log_odds_milli(bayes);
        let logistic = logistic.map(log_odds_milli);
        let agreed_ham = bayes <= -self.agreed_ham_milli
            && logistic.is_some_and(|l| l <= -self.agreed_ham_milli);
        let ham_cap = if agreed_ham {
            self.spam_cap_milli
        } else {
            self.alone_ham_cap_milli
        };
        let points =
            |log_odds: i64| log_odds.clamp(-ham_cap, self.spam_cap_milli) + self.offset_milli;
        (points(bayes), logistic.map_or(0, points))
    }
}

fn log_odds_milli(p: f64) -> i64 {
    let p = p.clamp(1e-9, 1.0 - 1e-9);
    ((p / (1.0 - p)).ln() * 1000.0).round() as i64
}

/// A classifier's probability bands, which name its symbol (the points are
/// `CLASSIFIER_POINTS`'s): the spam side from the top (at least this probability), the ham
/// side from the bottom (at most this), the middle between them.
struct Bands {
    whose: &'static str,
    spam: &'static [(f64, &'static str)],
    ham: &'static [(f64, &'static str)],
    middle: &'static str,
}

const BAYES_BANDS: Bands = Bands {
    whose: "the classifier's",
    spam: &[(0.99, "BAYES_99"), (0.90, "BAYES_90"), (0.70, "BAYES_70")],
    ham: &[(0.01, "BAYES_00"), (0.10, "BAYES_10")],
    middle: "BAYES_50",
};

/// Narrower towards the middle than the Bayes classifier's: trained to a thick threshold
/// of 0.95 / 0.05, it puts most learned-like mail just past those, not at the extremes.
const LOGISTIC_BANDS: Bands = Bands {
    whose: "the logistic classifier's",
    spam: &[
        (0.95, "LOGISTIC_95"),
        (0.80, "LOGISTIC_80"),
        (0.60, "LOGISTIC_60"),
    ],
    ham: &[(0.05, "LOGISTIC_05"), (0.20, "LOGISTIC_20")],
    middle: "LOGISTIC_50",
};

fn band_symbol(bands: &Bands, p: f64, score_milli: i64) -> Symbol {
    let name = bands
        .spam
        .iter()
        .find(|(at_least, _)| p >= *at_least)
        .or_else(|| bands.ham.iter().find(|(at_most, _)| p <= *at_most))
        .map_or(bands.middle, |(_, name)| name);
    Symbol {
        name: name.to_owned(),
        score_milli,
        reason: format!("{} spam probability is {p:.3}", bands.whose),
    }
}

/// The classifiers' spam probabilities as their symbols, weighed together
/// (`CLASSIFIER_POINTS`): the Bayes one's, and the logistic one's when it spoke.
pub(super) fn classifier_symbols(bayes: f64, logistic: Option<f64>) -> Vec<Symbol> {
    let (bayes_points, logistic_points) = CLASSIFIER_POINTS.of(bayes, logistic);
    let mut symbols = vec![band_symbol(&BAYES_BANDS, bayes, bayes_points)];
    if let Some(p) = logistic {
        symbols.push(band_symbol(&LOGISTIC_BANDS, p, logistic_points));
    }
    symbols
}

/// Gives the symbols in `RULES_ALONE` that set's scores: for a message the classifiers
/// said nothing about.
pub(super) fn score_rules_alone(symbols: &mut [Symbol]) {
    for s in symbols {
        if let Some((_, alone)) = RULES_ALONE.iter().find(|(n, _)| *n == s.name) {
            s.score_milli = *alone;
        }
    }
}

fn score_of(name: &str) -> i64 {
    SCORES
        .iter()
        .find(|(n, _)| *n == name)
        .map_or(0, |(_, s)| *s)
}

/// How far the cluster's evidence can move a message's score, in milli-points: by at most
/// one reputation symbol and one bulk symbol (`crate::evidence::reputation_symbols`,
/// `crate::evidence::bulk_symbol`). A verdict worked out without the cluster's evidence
/// (offline, or before any is counted) can become any verdict of a total in this range
/// around its own.
pub fn evidence_reach_milli() -> std::ops::RangeInclusive<i64> {
    let reach = |names: &[&str]| {
        let scores = names.iter().map(|n| score_of(n));
        (
            scores.clone().min().unwrap_or(0).min(0),
            scores.max().unwrap_or(0).max(0),
        )
    };
    let reputation = reach(&["REPUTATION_GOOD", "REPUTATION_POOR", "REPUTATION_BAD"]);
    let bulk = reach(&["BULK_SOME", "BULK_MANY"]);
    reputation.0 + bulk.0..=reputation.1 + bulk.1
}

/// One finding: a name from `SCORES`, its score, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Symbol {
    pub name: String,
    pub score_milli: i64,
    pub reason: String,
}

pub fn symbol(name: &str, reason: impl Into<String>) -> Symbol {
    Symbol {
        name: name.to_owned(),
        score_milli: score_of(name),
        reason: reason.into(),
    }
}

/// Ordered from the mildest to the strictest.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Verdict {
    Deliver,
    Quarantine,
    Reject,
}

impl Verdict {
    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::Deliver => "deliver",
            Verdict::Quarantine => "quarantine",
            Verdict::Reject => "reject",
        }
    }
}

/// Score thresholds, in milli-points; replicated policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Policy {
    pub quarantine_at_milli: i64,
    pub reject_at_milli: i64,
}

impl Default for Policy {
    fn default() -> Self {
        Policy {
            quarantine_at_milli: 6_000,
            reject_at_milli: 15_000,
        }
    }
}

/// The total score and what it means under `policy`.
pub fn verdict(symbols: &[Symbol], policy: &Policy) -> (Verdict, i64) {
    let total: i64 = symbols.iter().map(|s| s.score_milli).sum();
    (policy.verdict_at(total), total)
}

impl Policy {
    /// What a total score means under this policy.
    pub fn verdict_at(&self, total_milli: i64) -> Verdict {
        if total_milli >= self.reject_at_milli {
            Verdict::Reject
        } else if total_milli >= self.quarantine_at_milli {
            Verdict::Quarantine
        } else {
            Verdict::Deliver
        }
    }
}

/// Everything the filter concluded about one message.
#[derive(Debug, Clone)]
pub struct Judgement {
    pub symbols: Vec<Symbol>,
    pub verdict: Verdict,
    pub total_milli: i64,
    /// The reputation and bulk keys the verdict is to be counted under.
    pub evidence_keys: Vec<String>,
}

impl Judgement {
    /// The reason of the highest-scoring symbol: what a rejection says.
    pub fn main_reason(&self) -> String {
        self.main_symbol().map_or_else(
            || "policy".to_owned(),
            |s| format!("{} ({})", s.reason, s.name),
        )
    }

    /// The symbol that weighed most: what a rejection is counted under.
    pub fn main_symbol(&self) -> Option<&Symbol> {
        self.symbols.iter().max_by_key(|s| s.score_milli)
    }

    /// ham, spam or virus: how statistics count the message.
    pub fn class(&self) -> &'static str {
        match (self.verdict, self.carries_malware()) {
            (_, true) => "virus",
            (Verdict::Deliver, false) => "ham",
            _ => "spam",
        }
    }

    /// Whether the message carries a program or macros: on outbound mail, the sign of an
    /// infected customer rather than a spammer.
    pub fn carries_malware(&self) -> bool {
        self.symbols
            .iter()
            .any(|s| super::attachments::MALWARE.contains(&s.name.as_str()))
    }
}

/// Formats milli-points as points (`1500` → `1.5`).
pub fn points(milli: i64) -> String {
    let sign = if milli < 0 { "-" } else { "" };
    let m = milli.unsigned_abs();
    let (int, frac) = (m / 1000, m % 1000);
    if frac == 0 {
        format!("{sign}{int}")
    } else {
        let f = format!("{frac:03}");
        format!("{sign}{int}.{}", f.trim_end_matches('0'))
    }
}

/// The X-Peage headers that delivered and quarantined mail carries.
pub fn headers(verdict: Verdict, total: i64, symbols: &[Symbol]) -> String {
    let list: Vec<String> = symbols
        .iter()
        .map(|s| format!("{}({})", s.name, points(s.score_milli)))
        .collect();
    format!(
        "X-Peage-Verdict: {}\r\nX-Peage-Score: {}\r\nX-Peage-Symbols: {}\r\n",
        verdict.as_str(),
        points(total),
        if list.is_empty() {
            "none".into()
        } else {
            list.join(", ")
        }
    )
}
