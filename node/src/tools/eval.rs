//! `peage eval`: the offline evaluations of `peage_mail::eval`, printed for operators.

use std::path::{Path, PathBuf};

use anyhow::Context;
use peage_mail::eval::{evaluate, load_samples, LearnOrder, Plan, Report, Sample};
use peage_mail::filter::Policy;

/// `--learn-order`'s values (`peage_mail::eval::LearnOrder`).
#[derive(clap::ValueEnum, Clone, Copy, Debug)]
pub enum Order {
    Class,
    Date,
}

/// `peage eval`'s arguments.
#[derive(clap::Args, Debug)]
pub struct EvalArgs {
    /// Directory of spam messages (one RFC 5322 message per file).
    #[arg(long, required_unless_present_any = ["train", "test"])]
    pub spam: Option<PathBuf>,
    /// Directory of ham messages.
    #[arg(long, required_unless_present_any = ["train", "test"])]
    pub ham: Option<PathBuf>,
    /// Number of folds of the cross-validation: each message is judged by what learned
    /// the others.
    #[arg(long, default_value_t = 5)]
    pub folds: usize,
    /// Split by the Date headers instead: learn the oldest part, judge the newest.
    #[arg(long, conflicts_with_all = ["online", "train"])]
    pub by_date: bool,
    /// With --by-date: the fraction of each class, oldest first, that is learned.
    #[arg(long, default_value_t = 0.7)]
    pub learn_fraction: f64,
    /// Judge every message in date order, learning each right after (as users' feedback
    /// would teach the cluster).
    #[arg(long, conflicts_with = "train")]
    pub online: bool,
    /// The order in which the learned part is taught: `class` (all spam, then all ham, as
    /// `peagectl learn spam DIR` then `learn ham DIR` do) or `date` (interleaved as mail
    /// arrived, as users' feedback does).
    #[arg(long, value_enum, default_value = "class")]
    pub learn_order: Order,
    /// Learn nothing and judge every message: what the rules alone catch.
    #[arg(long, conflicts_with_all = ["by_date", "online", "train"])]
    pub rules_only: bool,
    /// Learn this directory (with spam/ and ham/ inside) and judge --test.
    #[arg(long, requires = "test", conflicts_with_all = ["spam", "ham"])]
    pub train: Option<PathBuf>,
    /// The directory (spam/ and ham/ inside) judged after learning --train.
    #[arg(long, requires = "train")]
    pub test: Option<PathBuf>,
    /// Quarantine threshold in points (default: the default policy's).
    #[arg(long)]
    pub quarantine_at: Option<f64>,
    /// Reject threshold in points (default: the default policy's).
    #[arg(long)]
    pub reject_at: Option<f64>,
    /// One JSON object instead of text.
    #[arg(long)]
    pub json: bool,
    /// Write every judged message's file, class, total score, each classifier's
    /// probability and its symbols to this CSV file (for choosing thresholds and scores
    /// on your own mail).
    #[arg(long)]
    pub scores: Option<PathBuf>,
    /// Also list every message judged wrongly (text output; JSON always has them).
    #[arg(long)]
    pub show_errors: bool,
}

fn load(spam: &Path, ham: &Path) -> anyhow::Result<Vec<Sample>> {
    let samples = load_samples(spam, ham)?;
    let spam_n = samples.iter().filter(|s| s.spam).count();
    anyhow::ensure!(
        spam_n > 0 && samples.len() > spam_n,
        "need messages of both classes (found {spam_n} spam, {} ham)",
        samples.len() - spam_n
    );
    Ok(samples)
}

/// The samples and how to split them, from the arguments.
fn plan(args: &EvalArgs) -> anyhow::Result<(Vec<Sample>, Plan)> {
    if let (Some(train), Some(test)) = (&args.train, &args.test) {
        let mut samples = load(&train.join("spam"), &train.join("ham"))?;
        let learn = samples.len();
        samples.extend(load(&test.join("spam"), &test.join("ham"))?);
        return Ok((samples, Plan::TrainTest { learn }));
    }
    let (Some(spam), Some(ham)) = (&args.spam, &args.ham) else {
        anyhow::bail!("pass --spam and --ham, or --train and --test");
    };
    let samples = load(spam, ham)?;
    let plan = if args.by_date {
        anyhow::ensure!(
            args.learn_fraction > 0.0 && args.learn_fraction < 1.0,
            "--learn-fraction must be between 0 and 1"
        );
        Plan::ByDate {
            learn_fraction: args.learn_fraction,
        }
    } else if args.online {
        Plan::Online
    } else if args.rules_only {
        Plan::RulesOnly
    } else {
        anyhow::ensure!(args.folds >= 2, "--folds must be at least 2");
        let least = samples
            .iter()
            .filter(|s| s.spam)
            .count()
            .min(samples.iter().filter(|s| !s.spam).count());
        anyhow::ensure!(
            least >= args.folds,
            "need at least {} messages of each class",
            args.folds
        );
        Plan::CrossValidate { folds: args.folds }
    };
    Ok((samples, plan))
}

pub fn run(args: &EvalArgs) -> anyhow::Result<()> {
    let mut policy = Policy::default();
    if let Some(q) = args.quarantine_at {
        policy.quarantine_at_milli = (q * 1000.0) as i64;
    }
    if let Some(r) = args.reject_at {
        policy.reject_at_milli = (r * 1000.0) as i64;
    }
    anyhow::ensure!(
        policy.quarantine_at_milli < policy.reject_at_milli,
        "the quarantine threshold must be below the reject threshold"
    );
    let (samples, plan) = plan(args)?;
    let order = match args.learn_order {
        Order::Class => LearnOrder::Class,
        Order::Date => LearnOrder::Date,
    };
    let report = evaluate(&samples, &plan, order, &policy);
    if let Some(path) = &args.scores {
        write_scores(path, &report, &samples)
            .with_context(|| format!("cannot write {}", path.display()))?;
    }
    if args.json {
        println!("{}", serde_json::to_string(&report)?);
    } else {
        print(&report, &plan, &policy);
        if args.show_errors {
            println!("  judged wrongly (class, file, score, classifier probability):");
            for (class, i, score, p) in &report.errors {
                let p = p.map_or_else(|| "-".to_owned(), |p| format!("{p:.3}"));
                println!("    {class:<4}  {}  {score}  {p}", samples[*i].name);
            }
        }
    }
    Ok(())
}

fn write_scores(path: &Path, report: &Report, samples: &[Sample]) -> std::io::Result<()> {
    let opt = |p: Option<f64>| p.map_or_else(String::new, |p| format!("{p:.6}"));
    let mut csv = String::from("file,class,score,bayes,logistic,symbols\n");
    for s in &report.scored {
        let class = if s.spam { "spam" } else { "ham" };
        csv.push_str(&format!(
            "{},{class},{:.3},{},{},{}\n",
            samples[s.index].name.replace(',', "_"),
            s.total_milli as f64 / 1000.0,
            opt(s.probability),
            opt(s.logistic),
            s.symbols.join(" ")
        ));
    }
    std::fs::write(path, csv)
}

fn print(r: &Report, plan: &Plan, policy: &Policy) {
    let pct = |x: f64| format!("{:.2} %", x * 100.0);
    println!(
        "{}: {} spam, {} ham judged; quarantine at {} points, reject at {}",
        plan.describe(),
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
    println!("  separation (recall at 0 / 1 / 2 false positives; area above the ROC curve):");
    for s in &r.separation {
        let recall: Vec<String> = s
            .recall_at_false_positives
            .iter()
            .map(|(_, r)| pct(*r))
            .collect();
        println!(
            "    {:<9} {}; {:.4} %",
            s.score,
            recall.join(" / "),
            s.roc_area_above_percent
        );
    }
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
    println!("  symbols (judged messages that got each: spam / ham):");
    for (name, s, h) in &r.symbol_hits {
        println!("    {name:<22}  {s:>5} / {h:>5}");
    }
}
