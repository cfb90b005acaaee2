//! `peage eval`: the offline cross-validation of `peage_mail::eval`, printed for operators.

use std::path::Path;

use anyhow::Context;
use peage_mail::eval::{cross_validate, load_named, Report};
use peage_mail::filter::Policy;

pub fn run(
    spam_dir: &Path,
    ham_dir: &Path,
    folds: usize,
    quarantine_at: Option<f64>,
    reject_at: Option<f64>,
    json: bool,
    show_errors: bool,
) -> anyhow::Result<()> {
    anyhow::ensure!(folds >= 2, "--folds must be at least 2");
    let load = |d: &Path| load_named(d).with_context(|| format!("cannot read {}", d.display()));
    let (spam_named, ham_named) = (load(spam_dir)?, load(ham_dir)?);
    let bodies = |v: &[(String, Vec<u8>)]| v.iter().map(|(_, m)| m.clone()).collect::<Vec<_>>();
    let (spam, ham) = (bodies(&spam_named), bodies(&ham_named));
    anyhow::ensure!(
        spam.len() >= folds && ham.len() >= folds,
        "need at least {folds} messages of each class (found {} spam, {} ham)",
        spam.len(),
        ham.len()
    );
    let mut policy = Policy::default();
    if let Some(q) = quarantine_at {
        policy.quarantine_at_milli = (q * 1000.0) as i64;
    }
    if let Some(r) = reject_at {
        policy.reject_at_milli = (r * 1000.0) as i64;
    }
    anyhow::ensure!(
        policy.quarantine_at_milli < policy.reject_at_milli,
        "the quarantine threshold must be below the reject threshold"
    );
    let report = cross_validate(&spam, &ham, folds, &policy);
    if json {
        println!("{}", serde_json::to_string(&report)?);
    } else {
        print(&report, &policy);
        if show_errors {
            println!("  judged wrongly (class, file, score, classifier probability):");
            for (class, i, score, p) in &report.errors {
                let named = if class == "spam" {
                    &spam_named
                } else {
                    &ham_named
                };
                let p = p.map_or_else(|| "-".to_owned(), |p| format!("{p:.3}"));
                println!("    {class:<4}  {}  {score}  {p}", named[*i].0);
            }
        }
    }
    Ok(())
}

fn print(r: &Report, policy: &Policy) {
    let pct = |x: f64| format!("{:.2} %", x * 100.0);
    println!(
        "{}-fold cross-validation: {} spam, {} ham; quarantine at {} points, reject at {}",
        r.folds,
        r.spam,
        r.ham,
        policy.quarantine_at_milli as f64 / 1000.0,
        policy.reject_at_milli as f64 / 1000.0
    );
    println!(
        "  spam recall          {} ({} of {} caught; {} rejected)",
        pct(r.spam_recall),
        r.spam_caught,
        r.spam,
        r.spam_rejected
    );
    println!(
        "  ham false positives  {} ({} of {})",
        pct(r.ham_false_positive_rate),
        r.ham_caught,
        r.ham
    );
    println!("  precision            {}", pct(r.precision));
    println!("  F1                   {:.4}", r.f1);
    println!(
        "  learned table        {} tokens, about {:.1} MiB (all messages)",
        r.table_tokens,
        r.table_bytes as f64 / (1 << 20) as f64
    );
    println!(
        "  judged               {:.0} messages/s",
        r.judged_per_second
    );
    println!("  score histogram (points: spam / ham):");
    for (lo, s, h) in &r.histogram {
        println!("    [{lo:>3}, {:>3})  {s:>5} / {h:>5}", lo + 2);
    }
    println!("  classifier probability (spam / ham):");
    for (band, s, h) in &r.probability_histogram {
        println!("    {band:>10}  {s:>5} / {h:>5}");
    }
    println!("  other quarantine thresholds (points: recall / ham false positives):");
    for t in &r.by_threshold {
        println!(
            "    {:>4}  {} / {}",
            t.quarantine_at,
            pct(t.spam_recall),
            pct(t.ham_false_positive_rate)
        );
    }
}
