//! Offline evaluation of the whole filter, classifiers included, four ways: k-fold
//! cross-validation; learn one set and judge another; split one corpus by its Date headers
//! (learn the older part, judge the newer); and online, TREC style (judge each message in
//! date order, then learn it). Learning goes through [`Learned`], the same calls the
//! replicated state makes, so the figures are the cluster's.

mod report;

use std::path::Path;
use std::time::Instant;

use mail_parser::MessageParser;

use crate::bayes::{tokens_of, Class, TokenTable, Tokens};
use crate::features::{features_of, Features};
use crate::filter::{judge, FilterInput, Knowledge, Policy};
use crate::lists::{EntryKind, ListEntry};
use crate::logistic::{self, KeptLessons, Model};
use crate::text::MessageText;
pub use report::{Rates, Report, Scored, Separation};

/// Every file under `dir` (and one level of subdirectories), sorted by path, with bare LF
/// made CRLF and NUL bytes dropped, as an MTA would send them.
pub fn load_dir(dir: &Path) -> std::io::Result<Vec<Vec<u8>>> {
    Ok(load_named(dir)?.into_iter().map(|(_, m)| m).collect())
}

/// As [`load_dir`], with each message's file name.
pub fn load_named(dir: &Path) -> std::io::Result<Vec<(String, Vec<u8>)>> {
    // io::Error names no path: say which directory or file could not be read.
    let naming = |p: &Path| {
        let p = p.display().to_string();
        move |e: std::io::Error| std::io::Error::new(e.kind(), format!("cannot read {p}: {e}"))
    };
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(naming(dir))? {
        let p = entry.map_err(naming(dir))?.path();
        if p.is_dir() {
            for e in std::fs::read_dir(&p).map_err(naming(&p))? {
                files.push(e.map_err(naming(&p))?.path());
            }
        } else {
            files.push(p);
        }
    }
    files.sort();
    let mut out = Vec::with_capacity(files.len());
    for f in files {
        let bytes = std::fs::read(&f).map_err(naming(&f))?;
        out.push((f.display().to_string(), as_smtp(&bytes)));
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

/// One message of an evaluation: its name, bytes, class, date and features.
pub struct Sample {
    pub name: String,
    pub bytes: Vec<u8>,
    pub spam: bool,
    /// Seconds since the epoch from its Date header; 0 (the oldest) without one.
    pub date: i64,
    tokens: Tokens,
    features: Features,
}

impl Sample {
    pub fn new(name: String, bytes: Vec<u8>, spam: bool) -> Sample {
        let parsed = MessageParser::default().parse(&bytes);
        let (tokens, features, date) = match parsed.as_ref().map(|m| (m, MessageText::of(m))) {
            Some((msg, decoded)) => (
                tokens_of(msg, &decoded),
                features_of(msg, &decoded),
                msg.date().map_or(0, |d| d.to_timestamp()),
            ),
            None => (Tokens::default(), Features::default(), 0),
        };
        Sample {
            name,
            bytes,
            spam,
            date,
            tokens,
            features,
        }
    }

    fn class(&self) -> Class {
        if self.spam {
            Class::Spam
        } else {
            Class::Ham
        }
    }
}

/// The spam and ham directories' messages as samples, spam first.
pub fn load_samples(spam_dir: &Path, ham_dir: &Path) -> std::io::Result<Vec<Sample>> {
    let mut out = Vec::new();
    for (dir, spam) in [(spam_dir, true), (ham_dir, false)] {
        for (name, bytes) in load_named(dir)? {
            out.push(Sample::new(name, bytes, spam));
        }
    }
    Ok(out)
}

/// How the messages are split between learning and judging.
#[derive(Debug, Clone)]
pub enum Plan {
    /// Message `i` of each class in fold `i % folds`; each fold judged by what learned the others.
    CrossValidate { folds: usize },
    /// Learn the oldest `learn_fraction` of each class by Date, judge the rest.
    ByDate { learn_fraction: f64 },
    /// Judge every message in date order, learning each right after it is judged.
    Online,
    /// Learn the first `learn` samples, judge the others.
    TrainTest { learn: usize },
    /// Learn nothing, judge everything: what the rules alone catch on a new cluster.
    RulesOnly,
}

impl Plan {
    pub fn describe(&self) -> String {
        match self {
            Plan::CrossValidate { folds } => format!("{folds}-fold cross-validation"),
            Plan::ByDate { learn_fraction } => format!(
                "by date: the oldest {:.0} % of each class learned, the newest {:.0} % judged",
                learn_fraction * 100.0,
                (1.0 - learn_fraction) * 100.0
            ),
            Plan::Online => "online: each message judged in date order, then learned".into(),
            Plan::TrainTest { .. } => "one set learned, the other judged".into(),
            Plan::RulesOnly => "rules only: nothing learned".into(),
        }
    }
}

/// What the cluster learns, trained by the calls the replicated state makes; no lists.
#[derive(Default)]
pub struct Learned {
    bayes: TokenTable,
    logistic: Model,
    lessons: KeptLessons,
}

impl Learned {
    /// As `state::bayes::apply_learn` does (a message learned twice counts once).
    pub fn learn(&mut self, s: &Sample) {
        self.bayes.apply(&s.tokens.0, s.class(), 1);
        self.lessons
            .keep(s.tokens.fingerprint(), s.spam, s.features.clone());
        logistic::teach(&mut self.logistic, &mut self.lessons, &s.features, s.spam);
    }
}

impl Knowledge for Learned {
    fn lookup(&self, _: EntryKind, _: &str) -> Vec<ListEntry> {
        Vec::new()
    }
    fn spam_probability(&self, tokens: &[u64]) -> Option<f64> {
        self.bayes.spam_probability(tokens)
    }
    fn logistic_probability(&self, features: &Features) -> Option<f64> {
        self.bayes
            .spam_probability(&[])
            .map(|_| logistic::probability(logistic::margin(&self.logistic, features)))
    }
}

fn score(i: usize, s: &Sample, learned: &Learned, policy: &Policy) -> Scored {
    let input = FilterInput {
        client_ip: [198, 51, 100, 1].into(),
        helo: "mail.eval.example",
        mail_from: "sender@eval.example",
        message: &s.bytes,
        proved: &crate::trust::Authenticated::nothing(),
        recipients: &[],
    };
    let j = judge(&input, learned, policy);
    Scored {
        index: i,
        spam: s.spam,
        probability: learned.bayes.spam_probability(&s.tokens.0),
        logistic: learned.logistic_probability(&s.features),
        total_milli: j.total_milli,
        verdict: j.verdict,
        symbols: j.symbols.into_iter().map(|s| s.name).collect(),
    }
}

/// The rounds of a split plan: which samples are learned, then which are judged, in order.
/// `Plan::Online` is one round that judges every sample in date order, each before it is
/// learned.
fn rounds(samples: &[Sample], plan: &Plan) -> Vec<(Vec<usize>, Vec<usize>)> {
    let mut by_date: Vec<usize> = (0..samples.len()).collect();
    // Ties (and undated mail) in file order, so a run is repeatable.
    by_date.sort_by_key(|&i| (samples[i].date, i));
    match *plan {
        Plan::CrossValidate { folds } => {
            let folds = folds.max(2);
            // Fold by position within the class, as the corpus directories are laid out.
            let mut nth = [0usize; 2];
            let fold_of: Vec<usize> = samples
                .iter()
                .map(|s| {
                    let n = &mut nth[s.spam as usize];
                    *n += 1;
                    (*n - 1) % folds
                })
                .collect();
            (0..folds)
                .map(|fold| {
                    let (judged, learn) = (0..samples.len()).partition(|&i| fold_of[i] == fold);
                    (learn, judged)
                })
                .collect()
        }
        Plan::ByDate { learn_fraction } => {
            // Each class split on its own: spam and ham were not collected over the same
            // months, and one cut over both would leave almost no spam to judge.
            let (mut learn, mut judged) = (Vec::new(), Vec::new());
            for spam in [true, false] {
                let class: Vec<usize> = by_date
                    .iter()
                    .copied()
                    .filter(|&i| samples[i].spam == spam)
                    .collect();
                let cut = ((class.len() as f64) * learn_fraction.clamp(0.0, 1.0)) as usize;
                learn.extend_from_slice(&class[..cut]);
                judged.extend_from_slice(&class[cut..]);
            }
            vec![(learn, judged)]
        }
        Plan::TrainTest { learn } => {
            let learn = learn.min(samples.len());
            vec![((0..learn).collect(), (learn..samples.len()).collect())]
        }
        Plan::Online => vec![(Vec::new(), by_date)],
        Plan::RulesOnly => vec![(Vec::new(), (0..samples.len()).collect())],
    }
}

/// The order in which what a round learns is taught (the logistic classifier learns online,
/// so order matters).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LearnOrder {
    /// All the spam, then all the ham, each by date: what `peagectl learn spam DIR` then
    /// `peagectl learn ham DIR` does.
    Class,
    /// By date, spam and ham interleaved as the mail arrived: what users' feedback does.
    Date,
}

/// Learns and judges `samples` as `plan` says, teaching in `order`; `Scored::index` is the
/// sample's index.
pub fn evaluate(samples: &[Sample], plan: &Plan, order: LearnOrder, policy: &Policy) -> Report {
    // Judging alone is timed: the filter's throughput, not the learning's.
    let mut judging = std::time::Duration::ZERO;
    let mut scored = Vec::new();
    let online = matches!(plan, Plan::Online);
    for (mut learn, judged) in rounds(samples, plan) {
        match order {
            LearnOrder::Class => learn.sort_by_key(|&i| (!samples[i].spam, samples[i].date, i)),
            LearnOrder::Date => learn.sort_by_key(|&i| (samples[i].date, i)),
        }
        let mut learned = Learned::default();
        for &i in &learn {
            learned.learn(&samples[i]);
        }
        for &i in &judged {
            let started = Instant::now();
            scored.push(score(i, &samples[i], &learned, policy));
            judging += started.elapsed();
            if online {
                learned.learn(&samples[i]);
            }
        }
    }
    let judged_per_second = scored.len() as f64 / judging.as_secs_f64().max(1e-9);
    let mut full = TokenTable::default();
    for s in samples {
        full.apply(&s.tokens.0, s.class(), 1);
    }
    let mut report = report::summarize(
        &scored,
        full.len(),
        full.approximate_bytes(),
        judged_per_second,
    );
    report.plan = plan.describe();
    report
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Ten messages, spam and ham in turn, dated in the reverse of their file order.
    fn samples() -> Vec<Sample> {
        (0..10)
            .map(|n| {
                let day = 20 - n;
                let bytes = format!(
                    "Date: Mon, {day} Jan 2003 10:00:00 +0000\r\nSubject: m{n}\r\n\r\nbody {n}\r\n"
                );
                Sample::new(format!("{n}"), bytes.into_bytes(), n % 2 == 0)
            })
            .collect()
    }

    /// A corpus that cannot be read is named: of the spam and ham directories, the one
    /// missing; of the files, the one unreadable.
    #[test]
    fn a_directory_or_file_that_cannot_be_read_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let (spam, ham) = (dir.path().join("spam"), dir.path().join("ham"));
        std::fs::create_dir(&spam).unwrap();
        let e = load_samples(&spam, &ham).err().unwrap().to_string();
        assert!(
            e.starts_with(&format!("cannot read {}: ", ham.display())),
            "{e}"
        );
        std::fs::create_dir(&ham).unwrap();
        // A dangling link reads as a file that cannot be opened, even as root.
        let dangling = spam.join("m1.eml");
        std::os::unix::fs::symlink(dir.path().join("gone"), &dangling).unwrap();
        let e = load_samples(&spam, &ham).err().unwrap().to_string();
        assert!(
            e.starts_with(&format!("cannot read {}: ", dangling.display())),
            "{e}"
        );
    }

    #[test]
    fn by_date_learns_the_oldest_and_judges_the_newest() {
        let s = samples();
        assert!(s[0].date > s[9].date);
        let r = rounds(
            &s,
            &Plan::ByDate {
                learn_fraction: 0.7,
            },
        );
        assert_eq!(r.len(), 1);
        let (learn, judged) = &r[0];
        // Spam are the even ones, ham the odd; each class's oldest 70 % (3 of 5) learned.
        assert_eq!(learn, &vec![8, 6, 4, 9, 7, 5]);
        assert_eq!(judged, &vec![2, 0, 3, 1]);
    }

    #[test]
    fn online_judges_everything_in_date_order_and_train_test_keeps_the_sets_apart() {
        let s = samples();
        let r = rounds(&s, &Plan::Online);
        assert_eq!(r, vec![(vec![], (0..10).rev().collect::<Vec<_>>())]);
        let r = rounds(&s, &Plan::TrainTest { learn: 4 });
        assert_eq!(r, vec![((0..4).collect(), (4..10).collect())]);
    }

    #[test]
    fn cross_validation_judges_each_message_once_and_never_learns_it_in_its_fold() {
        let s = samples();
        let r = rounds(&s, &Plan::CrossValidate { folds: 3 });
        assert_eq!(r.len(), 3);
        let mut judged: Vec<usize> = r.iter().flat_map(|(_, j)| j.clone()).collect();
        judged.sort();
        assert_eq!(judged, (0..10).collect::<Vec<_>>());
        for (learn, judged) in &r {
            assert!(learn.iter().all(|i| !judged.contains(i)));
        }
    }
}
