//! The figures of an evaluation: recall and false positives at the policy's thresholds and
//! at others, recall at a fixed number of false positives, ROC area, histograms.

use crate::filter::Verdict;

/// One held-out message's outcome.
#[derive(Debug, Clone)]
pub struct Scored {
    /// Index in its class's list.
    pub index: usize,
    pub spam: bool,
    /// The Bayes classifier's probability (`None` while it was silent).
    pub probability: Option<f64>,
    /// The logistic classifier's probability (`None` while it was silent).
    pub logistic: Option<f64>,
    pub total_milli: i64,
    pub verdict: Verdict,
    /// The symbols the filter gave it.
    pub symbols: Vec<String>,
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
    /// How the messages were split between learning and judging.
    pub plan: String,
    /// Every judged message, in the order judged (for `--scores`; not in the JSON).
    #[serde(skip)]
    pub scored: Vec<Scored>,
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
    /// What the filter's total score, and each classifier's probability alone, can
    /// separate whatever the thresholds: spam recall with the threshold just above the
    /// (k+1)-th highest-scored ham (k = 0, 1, 2 false positives), and the area above the
    /// ROC curve in percent (0 is perfect; ties count half).
    pub separation: Vec<Separation>,
    /// The held-out messages judged wrongly: (class, index in its class, score in points,
    /// classifier probability).
    pub errors: Vec<(String, usize, f64, Option<f64>)>,
    /// How many judged spam and ham messages got each symbol: (name, spam, ham), the
    /// most telling first (spam share minus ham share).
    pub symbol_hits: Vec<(String, usize, usize)>,
    /// Tokens and approximate bytes of a table trained on every message.
    pub table_tokens: usize,
    pub table_bytes: usize,
    pub judged_per_second: f64,
}

pub(super) fn summarize(
    scored: &[Scored],
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
        plan: String::new(),
        symbol_hits: symbol_hits(scored, spam, ham),
        scored: scored.to_vec(),
        errors,
        probability_histogram,
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
        separation: vec![
            separation("score", &points(scored, |s| Some(s.total_milli as f64))),
            separation("bayes", &points(scored, |s| s.probability)),
            separation("logistic", &points(scored, |s| s.logistic)),
        ],
        table_tokens,
        table_bytes,
        judged_per_second,
    }
}

fn symbol_hits(scored: &[Scored], spam: usize, ham: usize) -> Vec<(String, usize, usize)> {
    let mut hits = std::collections::BTreeMap::<&str, (usize, usize)>::new();
    for s in scored {
        for name in &s.symbols {
            let h = hits.entry(name).or_default();
            if s.spam {
                h.0 += 1;
            } else {
                h.1 += 1;
            }
        }
    }
    let share = |n: usize, of: usize| n as f64 / of.max(1) as f64;
    let mut hits: Vec<(String, usize, usize)> = hits
        .into_iter()
        .map(|(n, (s, h))| (n.to_owned(), s, h))
        .collect();
    hits.sort_by(|a, b| {
        let telling = |x: &(String, usize, usize)| share(x.1, spam) - share(x.2, ham);
        telling(b)
            .total_cmp(&telling(a))
            .then_with(|| a.0.cmp(&b.0))
    });
    hits
}

fn points(scored: &[Scored], score: impl Fn(&Scored) -> Option<f64>) -> Vec<(bool, f64)> {
    scored
        .iter()
        .filter_map(|s| Some((s.spam, score(s)?)))
        .collect()
}

/// How well one score separates the classes: recall at 0, 1 and 2 false positives and the
/// area above the ROC curve (percent).
#[derive(Debug, Clone, serde::Serialize)]
pub struct Separation {
    pub score: String,
    pub recall_at_false_positives: Vec<(usize, f64)>,
    pub roc_area_above_percent: f64,
}

fn separation(name: &str, points: &[(bool, f64)]) -> Separation {
    Separation {
        score: name.to_owned(),
        recall_at_false_positives: (0..3)
            .map(|k| (k, recall_at_false_positives(points, k)))
            .collect(),
        roc_area_above_percent: roc_area_above(points) * 100.0,
    }
}

/// Spam recall when the threshold sits just above the score of the (k+1)-th highest ham.
fn recall_at_false_positives(points: &[(bool, f64)], k: usize) -> f64 {
    let mut ham: Vec<f64> = points.iter().filter(|p| !p.0).map(|p| p.1).collect();
    ham.sort_unstable_by(|a, b| b.total_cmp(a));
    let spam: Vec<f64> = points.iter().filter(|p| p.0).map(|p| p.1).collect();
    if spam.is_empty() {
        return 0.0;
    }
    let caught = match ham.get(k) {
        Some(&bar) => spam.iter().filter(|&&s| s > bar).count(),
        None => spam.len(),
    };
    caught as f64 / spam.len() as f64
}

/// 1 − the probability that a random spam scores above a random ham (ties half).
fn roc_area_above(points: &[(bool, f64)]) -> f64 {
    let mut ham: Vec<f64> = points.iter().filter(|p| !p.0).map(|p| p.1).collect();
    ham.sort_unstable_by(f64::total_cmp);
    let spam: Vec<f64> = points.iter().filter(|p| p.0).map(|p| p.1).collect();
    if ham.is_empty() || spam.is_empty() {
        return 0.0;
    }
    let mut wins = 0.0;
    for s in &spam {
        let below = ham.partition_point(|h| h < s);
        let tied = ham.partition_point(|h| h <= s) - below;
        wins += below as f64 + tied as f64 / 2.0;
    }
    1.0 - wins / (ham.len() as f64 * spam.len() as f64)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scored(spam: bool, points: i64) -> (bool, f64) {
        (spam, points as f64)
    }

    #[test]
    fn recall_at_false_positives_counts_spam_above_the_kth_ham() {
        let s = [
            scored(false, 9),
            scored(false, 5),
            scored(false, 1),
            scored(true, 10),
            scored(true, 7),
            scored(true, 3),
            scored(true, 0),
        ];
        assert_eq!(recall_at_false_positives(&s, 0), 0.25);
        assert_eq!(recall_at_false_positives(&s, 1), 0.5);
        assert_eq!(recall_at_false_positives(&s, 2), 0.75);
        assert_eq!(recall_at_false_positives(&s, 3), 1.0);
    }

    #[test]
    fn roc_area_is_zero_when_separated_and_half_when_all_tied() {
        let separated = [scored(false, 1), scored(false, 2), scored(true, 3)];
        assert_eq!(roc_area_above(&separated), 0.0);
        let tied = [scored(false, 4), scored(true, 4)];
        assert_eq!(roc_area_above(&tied), 0.5);
        let reversed = [scored(false, 5), scored(true, 4)];
        assert_eq!(roc_area_above(&reversed), 1.0);
    }
}
