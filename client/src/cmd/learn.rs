//! `peagectl learn spam|ham FILE|DIR…`: sends each message to the admin API's `Learn`, a few
//! at a time (`context::pipelined`), with a progress line on a terminal and a summary at the end.

use std::io::{IsTerminal, Write};
use std::path::PathBuf;

use serde_json::json;

use peage_client::v1::*;
use peage_client::ClientError;

use super::context::{pipelined, refused_message, Ctx};

#[derive(Default)]
struct Tally {
    new: usize,
    unchanged: usize,
    moved: usize,
    failed: Vec<(PathBuf, String)>,
    last: Option<LearnReply>,
}

pub async fn run(
    ctx: &mut Ctx,
    class: &str,
    files: Vec<PathBuf>,
    jobs: usize,
) -> Result<(), ClientError> {
    let admin = ctx.admin().await?.clone();
    let (addr, json_out) = (ctx.addr.as_str(), ctx.json);
    if files.is_empty() {
        return Err(ClientError::InvalidArgument(
            "no message files given".into(),
        ));
    }
    let total = files.len();
    let progress = std::io::stderr().is_terminal() && !json_out;
    let mut tally = Tally::default();
    let mut done = 0usize;
    let call = |file: PathBuf| {
        let mut admin = admin.clone();
        let class = class.to_owned();
        async move {
            let outcome = match std::fs::read(&file) {
                Err(e) => Err(format!("cannot read: {e}")),
                Ok(message) => admin
                    .learn(LearnRequest { message, class })
                    .await
                    .map(|r| r.into_inner())
                    .map_err(|s| refused_message(&s).unwrap_or_else(|| s.message().to_owned())),
            };
            (file, outcome)
        }
    };
    pipelined(files, jobs, call, |(file, outcome)| {
        done += 1;
        match outcome {
            Ok(r) => {
                match r.change.as_str() {
                    "new" => tally.new += 1,
                    "moved" => tally.moved += 1,
                    _ => tally.unchanged += 1,
                }
                // The latest state is the reply of the last applied entry, whatever the
                // order the replies are read in.
                if tally
                    .last
                    .as_ref()
                    .is_none_or(|l| r.log_index >= l.log_index)
                {
                    tally.last = Some(r);
                }
            }
            Err(why) => {
                // An unreachable cluster fails everything: stop at the first such error.
                if tally.new + tally.moved + tally.unchanged == 0 && tally.failed.len() >= 3 {
                    return Err(ClientError::Unavailable {
                        addr: addr.to_owned(),
                        message: why,
                    });
                }
                tally.failed.push((file, why));
            }
        }
        if progress {
            eprint!("\rlearning {class}: {done}/{total}");
            let _ = std::io::stderr().flush();
        }
        Ok(())
    })
    .await?;
    if progress {
        eprintln!();
    }
    print_summary(&tally, class, total, json_out);
    if tally.failed.is_empty() {
        Ok(())
    } else {
        Err(ClientError::InvalidArgument(format!(
            "{} message(s) could not be learned",
            tally.failed.len()
        )))
    }
}

fn print_summary(tally: &Tally, class: &str, total: usize, json_out: bool) {
    let known = tally.last.as_ref();
    if json_out {
        let failed: Vec<_> = tally
            .failed
            .iter()
            .map(|(f, why)| json!({"file": f.display().to_string(), "error": why}))
            .collect();
        println!(
            "{}",
            json!({
                "class": class, "messages": total, "new": tally.new, "moved": tally.moved,
                "unchanged": tally.unchanged, "failed": failed,
                "cluster_spam": known.map(|r| r.spam_messages),
                "cluster_ham": known.map(|r| r.ham_messages),
                "cluster_tokens": known.map(|r| r.tokens),
            })
        );
    } else {
        println!(
            "{total} message(s) to learn as {class}: {} new, {} moved from the other class, {} already known, {} failed",
            tally.new,
            tally.moved,
            tally.unchanged,
            tally.failed.len()
        );
        for (f, why) in tally.failed.iter().take(20) {
            println!("  failed: {}: {why}", f.display());
        }
        if let Some(r) = known {
            println!(
                "the cluster has learned {} spam and {} ham ({} distinct tokens)",
                r.spam_messages, r.ham_messages, r.tokens
            );
        }
    }
}
