//! Offline evaluation of the whole filter, classifier included: k-fold cross-validation
//! over a spam and a ham directory (train on k-1 folds, judge the held-out one, for each
//! fold), and the figures thresholds are chosen by.

use std::path::Path;
use std::time::Instant;

use crate::bayes::{tokens, Class, TokenTable, Tokens};
use crate::filter::{judge, FilterInput, Knowledge, Policy, Verdict};
use crate::lists::{EntryKind, ListEntry};

/// Every file under `dir` (and one level of subdirectories), sorted by path, with bare LF
/// made CRLF and NUL bytes dropped, as an MTA would send them.
pub fn load_dir(dir: &Path) -> std::io::Result<Vec<Vec<u8>>> {
    Ok(load_named(dir)?.into_iter().map(|(_, m)| m).collect())
}

/// As [`load_dir`], with each message's file name.
pub fn load_named(dir: &Path) -> std::io::Result<Vec<(String, Vec<u8>)>> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        let p = entry?.path();
        if p.is_dir() {
            for e in std::fs::read_dir(&p)? {
                files.push(e?.path());
            }
        } else {
            files.push(p);
        }
    }
    files.sort();
    let mut out = Vec::with_capacity(files.len());
    for f in files {
        out.push((f.display().to_string(), as_smtp(&std::fs::read(&f)?)));
    }
    Ok(out)
}

fn as_smtp(raw: &[u8]) -> Vec<u8> {
    let mut crlf = Vec::with_capacity(raw.len() + raw.len() / 40);
    let mut prev = 0u8;
    for &b in raw {
        if b == b'\n' && prev != b'\r' {
            crlf.push(b'\r');
        }
        if b != 0 {
            crlf.push(b);
        }
        prev = b;
    }
    crlf
}

/// No lists, and the learned table of one fold.
struct Learned<'a>(&'a TokenTable);

impl Knowledge for Learned<'_> {
    fn lookup(&self, _: EntryKind, _: &str) -> Vec<ListEntry> {
        Vec::new()
    }
    fn spam_probability(&self, tokens: &[u64]) -> Option<f64> {
        self.0.spam_probability(tokens)
    }
}

/// One held-out message's outcome.
#[derive(Debug, Clone, Copy)]
pub struct Scored {
    /// Index in its class's list.
    pub index: usize,
    pub spam: bool,
    /// The classifier's probability (`None` while it was silent).
    pub probability: Option<f64>,
    pub total_milli: i64,
    pub verdict: Verdict,
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct Rates {
    /// Quarantine threshold, points.
    pub quarantine_at: f64,
    pub spam_recall: f64,
    pub ham_false_positive_rate: f64,
}

/// The evaluation's figures. "Caught" means not delivered (quarantined or rejected).
#[derive(Debug, Clone, serde::Serialize)]
pub struct Report {
    pub folds: usize,
    pub spam: usize,
    pub ham: usize,
    pub spam_caught: usize,
    pub ham_caught: usize,
    pub spam_rejected: usize,
    pub spam_recall: f64,
    pub ham_false_positive_rate: f64,
    pub precision: f64,
    pub f1: f64,
    /// Score histogram: (lower bound in points, spam count, ham count), 2-point buckets.
    pub histogram: Vec<(i64, usize, usize)>,
    /// The classifier's probability: (band, spam count, ham count).
    pub probability_histogram: Vec<(String, usize, usize)>,
    /// Recall and false positives at other quarantine thresholds, for choosing one.
    pub by_threshold: Vec<Rates>,
    /// The held-out messages judged wrongly: (class, index in its class, score in points,
    /// classifier probability).
    pub errors: Vec<(String, usize, f64, Option<f64>)>,
    /// Tokens and approximate bytes of a table trained on every message.
    pub table_tokens: usize,
    pub table_bytes: usize,
    pub judged_per_second: f64,
}

/// Cross-validates over `folds` folds (message `i` of each class in fold `i % folds`).
pub fn cross_validate(spam: &[Vec<u8>], ham: &[Vec<u8>], folds: usize, policy: &Policy) -> Report {
    let folds = folds.max(2);
    let features = |set: &[Vec<u8>]| -> Vec<Tokens> {
        set.iter().map(|m| tokens(m).unwrap_or_default()).collect()
    };
    let (spam_tokens, ham_tokens) = (features(spam), features(ham));
    let mut scored = Vec::with_capacity(spam.len() + ham.len());
    let started = Instant::now();
    for fold in 0..folds {
        let mut table = TokenTable::default();
        for (set, class) in [(&spam_tokens, Class::Spam), (&ham_tokens, Class::Ham)] {
            for (i, t) in set.iter().enumerate() {
                if i % folds != fold {
                    table.apply(&t.0, class, 1);
                }
            }
        }
        let knowledge = Learned(&table);
        for (set, is_spam) in [(spam, true), (ham, false)] {
            let features = if is_spam { &spam_tokens } else { &ham_tokens };
            for (i, m) in set.iter().enumerate().filter(|(i, _)| i % folds == fold) {
                let input = FilterInput {
                    client_ip: [198, 51, 100, 1].into(),
                    helo: "mail.eval.example",
                    mail_from: "sender@eval.example",
                    message: m,
                };
                let j = judge(&input, &knowledge, policy);
                scored.push(Scored {
                    index: i,
                    spam: is_spam,
                    probability: table.spam_probability(&features[i].0),
                    total_milli: j.total_milli,
                    verdict: j.verdict,
                });
            }
        }
    }
    let judged_per_second = scored.len() as f64 / started.elapsed().as_secs_f64().max(1e-9);
    let mut full = TokenTable::default();
    for t in &spam_tokens {
        full.apply(&t.0, Class::Spam, 1);
    }
    for t in &ham_tokens {
        full.apply(&t.0, Class::Ham, 1);
    }
    summarize(
        &scored,
        folds,
        full.len(),
        full.approximate_bytes(),
        judged_per_second,
    )
}

fn summarize(
    scored: &[Scored],
    folds: usize,
    table_tokens: usize,
    table_bytes: usize,
    judged_per_second: f64,
) -> Report {
    let count = |f: &dyn Fn(&Scored) -> bool| scored.iter().filter(|s| f(s)).count();
    let spam = count(&|s| s.spam);
    let ham = scored.len() - spam;
    let spam_caught = count(&|s| s.spam && s.verdict != Verdict::Deliver);
    let ham_caught = count(&|s| !s.spam && s.verdict != Verdict::Deliver);
    let spam_rejected = count(&|s| s.spam && s.verdict == Verdict::Reject);
    let ratio = |a: usize, b: usize| if b == 0 { 0.0 } else { a as f64 / b as f64 };
    let recall = ratio(spam_caught, spam);
    let precision = ratio(spam_caught, spam_caught + ham_caught);
    let f1 = if recall + precision == 0.0 {
        0.0
    } else {
        2.0 * recall * precision / (recall + precision)
    };
    let mut buckets = std::collections::BTreeMap::<i64, (usize, usize)>::new();
    for s in scored {
        let lo = (s.total_milli as f64 / 1000.0 / 2.0).floor() as i64 * 2;
        let b = buckets.entry(lo.clamp(-20, 40)).or_default();
        if s.spam {
            b.0 += 1;
        } else {
            b.1 += 1;
        }
    }
    let by_threshold = [2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 10.0]
        .into_iter()
        .map(|t: f64| {
            let at = (t * 1000.0) as i64;
            Rates {
                quarantine_at: t,
                spam_recall: ratio(count(&|s| s.spam && s.total_milli >= at), spam),
                ham_false_positive_rate: ratio(count(&|s| !s.spam && s.total_milli >= at), ham),
            }
        })
        .collect();
    const BANDS: [(f64, &str); 9] = [
        (0.01, "< 0.01"),
        (0.10, "0.01–0.10"),
        (0.30, "0.10–0.30"),
        (0.50, "0.30–0.50"),
        (0.70, "0.50–0.70"),
        (0.90, "0.70–0.90"),
        (0.95, "0.90–0.95"),
        (0.99, "0.95–0.99"),
        (f64::INFINITY, ">= 0.99"),
    ];
    let probability_histogram = BANDS
        .iter()
        .enumerate()
        .map(|(b, (hi, name))| {
            let lo = if b == 0 {
                f64::NEG_INFINITY
            } else {
                BANDS[b - 1].0
            };
            let inside = |s: &Scored| s.probability.is_some_and(|p| p >= lo && p < *hi);
            (
                (*name).to_owned(),
                count(&|s| s.spam && inside(s)),
                count(&|s| !s.spam && inside(s)),
            )
        })
        .collect();
    let errors = scored
        .iter()
        .filter(|s| s.spam == (s.verdict == Verdict::Deliver))
        .map(|s| {
            let class = if s.spam { "spam" } else { "ham" };
            (
                class.to_owned(),
                s.index,
                s.total_milli as f64 / 1000.0,
                s.probability,
            )
        })
        .collect();
    Report {
        errors,
        probability_histogram,
        folds,
        spam,
        ham,
        spam_caught,
        ham_caught,
        spam_rejected,
        spam_recall: recall,
        ham_false_positive_rate: ratio(ham_caught, ham),
        precision,
        f1,
        histogram: buckets.into_iter().map(|(lo, (s, h))| (lo, s, h)).collect(),
        by_threshold,
        table_tokens,
        table_bytes,
        judged_per_second,
    }
}
