//! The filter alone: in-process on one core over the corpus, with nothing learned and with
//! both classifiers trained on it, then through one node's admin API.

use std::time::Instant;

use peage_tests::v1::*;
use peage_tests::{TestCluster, Tuning};

pub async fn filter_bench(corpus: std::path::PathBuf, passes: usize) -> anyhow::Result<()> {
    let messages = peage_tests::corpus::load(&corpus)?;
    let bytes: usize = messages.iter().map(Vec::len).sum();
    let policy = peage_mail::filter::Policy::default();
    let nothing_learned = &peage_tests::corpus::NoLists;
    let (secs, verdicts) = judge_all(
        messages.iter().map(Vec::as_slice),
        nothing_learned,
        &policy,
        passes,
    );
    println!(
        "in-process, one core, nothing learned (fastest of {passes} passes): {} messages ({:.1} MB) in {:.2} s = {:.0} messages/s; verdicts {:?}",
        messages.len(),
        bytes as f64 / 1e6,
        secs,
        messages.len() as f64 / secs,
        verdicts
    );
    judge_with_both_classifiers(&corpus, &policy, passes)?;

    let c = TestCluster::start(Tuning::default()).await?;
    let mut a = c.client(0).await?;
    let start = Instant::now();
    for m in &messages {
        a.check_message(CheckMessageRequest {
            message: m.clone(),
            client_ip: "198.51.100.1".into(),
            helo: "mail.bench.example".into(),
            mail_from: "sender@bench.example".into(),
            ..Default::default()
        })
        .await?;
    }
    let secs = start.elapsed().as_secs_f64();
    println!(
        "admin API (one client, sequential): {:.0} messages/s",
        messages.len() as f64 / secs
    );
    Ok(())
}

/// Judges each message in turn on this thread, `passes` times over: the seconds of the
/// fastest pass (the others include whatever else the machine did meanwhile), and how many
/// got each verdict in one pass.
fn judge_all<'m>(
    messages: impl Iterator<Item = &'m [u8]> + Clone,
    knowledge: &dyn peage_mail::filter::Knowledge,
    policy: &peage_mail::filter::Policy,
    passes: usize,
) -> (f64, std::collections::BTreeMap<&'static str, usize>) {
    let mut fastest = f64::MAX;
    let mut verdicts = std::collections::BTreeMap::new();
    for _ in 0..passes.max(1) {
        verdicts.clear();
        let start = Instant::now();
        for message in messages.clone() {
            let input = peage_mail::filter::FilterInput {
                client_ip: [198, 51, 100, 1].into(),
                helo: "mail.bench.example",
                mail_from: "sender@bench.example",
                message,
                proved: &peage_mail::trust::Authenticated::nothing(),
                recipients: &[],
            };
            let j = peage_mail::filter::judge(&input, knowledge, policy);
            *verdicts.entry(j.verdict.as_str()).or_insert(0) += 1;
        }
        fastest = fastest.min(start.elapsed().as_secs_f64());
    }
    (fastest, verdicts)
}

/// Judges the corpus in-process with both classifiers trained on all of it (`spam/` and
/// `ham/` under `corpus`): the filter as a cluster that has learned runs it.
fn judge_with_both_classifiers(
    corpus: &std::path::Path,
    policy: &peage_mail::filter::Policy,
    passes: usize,
) -> anyhow::Result<()> {
    use peage_mail::eval::{load_samples, Learned};
    let samples = load_samples(&corpus.join("spam"), &corpus.join("ham"))?;
    let mut learned = Learned::default();
    for s in &samples {
        learned.learn(s);
    }
    let (secs, verdicts) = judge_all(
        samples.iter().map(|s| s.bytes.as_slice()),
        &learned,
        policy,
        passes,
    );
    println!(
        "in-process, one core, both classifiers trained on the corpus (fastest of {passes} passes): {} messages in {:.2} s = {:.0} messages/s; verdicts {:?}",
        samples.len(),
        secs,
        samples.len() as f64 / secs,
        verdicts
    );
    Ok(())
}
