//! `peagectl check FILE|DIR…`: scores messages without storing them.

use std::path::PathBuf;

use serde_json::json;

use peage_client::v1::CheckMessageRequest;
use peage_client::ClientError;

use super::context::{message_files, Ctx};
use crate::output::{points, print_json, print_symbols, symbols_json};

pub async fn run(
    ctx: &mut Ctx,
    paths: Vec<PathBuf>,
    client_ip: String,
    helo: String,
    from: String,
) -> Result<(), ClientError> {
    ctx.admin().await?;
    for file in message_files(paths)? {
        let message = std::fs::read(&file).map_err(|e| {
            ClientError::InvalidArgument(format!("cannot read {}: {e}", file.display()))
        })?;
        let req = CheckMessageRequest {
            message,
            client_ip: client_ip.clone(),
            helo: helo.clone(),
            mail_from: from.clone(),
        };
        let reply = ctx.admin().await?.check_message(req).await;
        let r = reply.map_err(|e| ctx.failed(e))?.into_inner();
        if ctx.json {
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
    Ok(())
}
