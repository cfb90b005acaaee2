//! `peagectl check FILE|DIR…`: scores messages without storing them, several in flight at
//! once (`context::pipelined`), reported in the order of the files.

use std::path::{Path, PathBuf};

use serde_json::json;

use peage_client::v1::{CheckMessageReply, CheckMessageRequest};
use peage_client::ClientError;

use super::context::{message_files, pipelined, refused_message, Ctx};
use crate::output::{points, print_json, print_symbols, symbols_json};

/// What to score the messages with, besides their bytes.
pub struct Envelope {
    pub client_ip: String,
    pub helo: String,
    pub from: String,
    pub to: Vec<String>,
}

pub async fn run(
    ctx: &mut Ctx,
    paths: Vec<PathBuf>,
    envelope: Envelope,
    jobs: usize,
) -> Result<(), ClientError> {
    let admin = ctx.admin().await?.clone();
    let files = message_files(paths)?;
    let envelope = std::sync::Arc::new(envelope);
    let call = |file: PathBuf| {
        let mut admin = admin.clone();
        let envelope = envelope.clone();
        async move {
            let reply = match std::fs::read(&file) {
                Err(e) => Err(ClientError::InvalidArgument(format!(
                    "cannot read {}: {e}",
                    file.display()
                ))),
                Ok(message) => {
                    let req = CheckMessageRequest {
                        message,
                        client_ip: envelope.client_ip.clone(),
                        helo: envelope.helo.clone(),
                        mail_from: envelope.from.clone(),
                        rcpt_to: envelope.to.clone(),
                    };
                    Ok(admin.check_message(req).await)
                }
            };
            (file, reply)
        }
    };
    let total = files.len();
    let mut failed = 0usize;
    pipelined(files, jobs, call, |(file, reply)| {
        // A file that cannot be read or that the node refuses is reported and skipped: the
        // rest of a directory still gets its verdicts.
        let refused = match reply {
            Err(ClientError::InvalidArgument(why)) => why,
            Err(e) => return Err(e),
            Ok(Err(status)) => match refused_message(&status) {
                Some(why) => why,
                None => return Err(ctx.failed(status)),
            },
            Ok(Ok(r)) => {
                print_verdict(ctx.json, &file, &r.into_inner());
                return Ok(());
            }
        };
        failed += 1;
        if ctx.json {
            print_json(json!({"file": file.display().to_string(), "error": refused}));
        } else {
            eprintln!("{}: not checked: {refused}", file.display());
        }
        Ok(())
    })
    .await?;
    if failed == 0 {
        Ok(())
    } else {
        Err(ClientError::InvalidArgument(format!(
            "{failed} of {total} message(s) could not be checked"
        )))
    }
}

fn print_verdict(json_out: bool, file: &Path, r: &CheckMessageReply) {
    if json_out {
        print_json(json!({
            "file": file.display().to_string(),
            "verdict": r.verdict,
            "score": points(r.score_milli),
            "symbols": symbols_json(&r.symbols),
        }));
    } else {
        println!(
            "{}: {} (score {})",
            file.display(),
            r.verdict,
            points(r.score_milli)
        );
        print_symbols(&r.symbols);
    }
}
