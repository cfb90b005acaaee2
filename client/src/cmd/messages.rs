//! `peagectl queue …` and `peagectl quarantine …`: the spool and the quarantine, listed and
//! acted on one message at a time.

use std::io::Write;

use serde_json::{json, Value};

use peage_client::v1::{MessageRef, QueueListRequest, QueuedMessage};
use peage_client::{parse_duration_secs, ClientError};

use super::context::Ctx;
use crate::cli::{MessageFilter, QuarantineCmd, QueueCmd};
use crate::output::{
    message_json, points, print_json, print_read_note, print_symbols, read_json, sender, utc,
};

pub async fn queue(ctx: &mut Ctx, cmd: QueueCmd) -> Result<(), ClientError> {
    match cmd {
        QueueCmd::Ls(f) => list(ctx, &f, false).await,
        QueueCmd::Retry { queue_id } => retry(ctx, queue_id).await,
        QueueCmd::Drop { queue_id } => remove(ctx, queue_id).await,
    }
}

pub async fn quarantine(ctx: &mut Ctx, cmd: QuarantineCmd) -> Result<(), ClientError> {
    match cmd {
        QuarantineCmd::Ls(f) => list(ctx, &f, true).await,
        QuarantineCmd::Show { queue_id, raw } => show(ctx, queue_id, raw).await,
        QuarantineCmd::Release { queue_id, no_learn } => release(ctx, queue_id, no_learn).await,
        QuarantineCmd::Rm { queue_id } => remove(ctx, queue_id).await,
    }
}

fn message_ref(queue_id: &str) -> MessageRef {
    MessageRef {
        queue_id: queue_id.to_owned(),
        ..Default::default()
    }
}

/// The time `ago` (90s, 15m, 2h, 7d) before now, in UNIX ms; 0 when not given.
pub(super) fn ago_ms(ago: &Option<String>) -> Result<i64, ClientError> {
    let Some(d) = ago else {
        return Ok(0);
    };
    let secs = parse_duration_secs(d).map_err(ClientError::InvalidArgument)?;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64);
    Ok(now - secs as i64 * 1000)
}

/// `queue ls` and `quarantine ls`.
async fn list(ctx: &mut Ctx, f: &MessageFilter, quarantine: bool) -> Result<(), ClientError> {
    ctx.admin().await?;
    let since_ms = ago_ms(&f.since)?;
    let req = QueueListRequest {
        stale: ctx.stale,
        quarantine,
        recipient: f.recipient.clone(),
        sender: f.sender.clone(),
        since_ms,
        verdict: f.verdict.clone(),
        page_size: f.limit,
        page_token: f.page_token.clone(),
        outbound: f.outbound,
    };
    let reply = ctx.admin().await?.queue_list(req).await;
    let r = reply.map_err(|e| ctx.failed(e))?.into_inner();
    if ctx.json {
        let list: Vec<Value> = r.messages.iter().map(message_json).collect();
        print_json(
            json!({"messages": list, "next_page_token": r.next_page_token,
                   "unanswered": r.unanswered, "read": read_json(&r.read)}),
        );
        return Ok(());
    }
    print_messages(&r.messages);
    if !r.next_page_token.is_empty() {
        println!("(more: --page-token {})", r.next_page_token);
    }
    if !r.unanswered.is_empty() {
        println!(
            "(failed attempts not counted from {}: no answer)",
            r.unanswered.join(", ")
        );
    }
    print_read_note(&r.read);
    Ok(())
}

fn print_messages(messages: &[QueuedMessage]) {
    println!(
        "{:<16}  {:<10}  {:>7}  {:>9}  {:<5}  {:<28}  RECIPIENTS",
        "QUEUE ID", "VERDICT", "SCORE", "SIZE", "OWNER", "FROM"
    );
    for m in messages {
        println!(
            "{:<16}  {:<10}  {:>7}  {:>9}  {:<5}  {:<28}  {}",
            m.queue_id,
            m.verdict,
            points(m.score_milli),
            m.size,
            m.owner,
            sender(&m.mail_from),
            m.rcpt_to.join(", ")
        );
        if m.failed_attempts > 0 {
            println!("{:<18}({})", "", failed_attempts(m));
        }
    }
}

/// Why a message still waits, under its line as `mailq` shows it.
fn failed_attempts(m: &QueuedMessage) -> String {
    let attempts = match m.failed_attempts {
        1 => "1 failed attempt".to_owned(),
        n => format!("{n} failed attempts"),
    };
    format!(
        "{attempts}, the last at {} UTC: {}",
        utc(m.last_failed_ms),
        m.last_failure
    )
}

async fn show(ctx: &mut Ctx, queue_id: String, raw: bool) -> Result<(), ClientError> {
    let reply = ctx
        .admin()
        .await?
        .message_show(message_ref(&queue_id))
        .await;
    let r = reply.map_err(|e| ctx.failed(e))?.into_inner();
    let m = r.message.unwrap_or_default();
    if raw {
        let _ = std::io::stdout().write_all(&r.body);
    } else if ctx.json {
        print_json(message_json(&m));
    } else {
        println!("queue id  {}", m.queue_id);
        println!("verdict   {} (score {})", m.verdict, points(m.score_milli));
        println!("from      {}", sender(&m.mail_from));
        println!("to        {}", m.rcpt_to.join(", "));
        println!("size      {} bytes", m.size);
        print_symbols(&m.symbols);
        let text = String::from_utf8_lossy(&r.body);
        let headers = text.split("\r\n\r\n").next().unwrap_or("");
        println!("\n{headers}");
    }
    Ok(())
}

async fn release(ctx: &mut Ctx, queue_id: String, no_learn: bool) -> Result<(), ClientError> {
    let req = MessageRef {
        queue_id: queue_id.clone(),
        no_learn,
    };
    let reply = ctx.admin().await?.message_release(req).await;
    let r = reply.map_err(|e| ctx.failed(e))?.into_inner();
    let learned = match r.learned.as_str() {
        "" => String::new(),
        "unchanged" => "; already learned as ham".to_owned(),
        change => format!("; learned as ham ({change})"),
    };
    println!(
        "released {queue_id} for delivery (log index {}){learned}",
        r.log_index
    );
    Ok(())
}

async fn remove(ctx: &mut Ctx, queue_id: String) -> Result<(), ClientError> {
    let reply = ctx
        .admin()
        .await?
        .message_drop(message_ref(&queue_id))
        .await;
    let r = reply.map_err(|e| ctx.failed(e))?.into_inner();
    println!("removed {queue_id} (log index {})", r.log_index);
    Ok(())
}

async fn retry(ctx: &mut Ctx, queue_id: String) -> Result<(), ClientError> {
    let reply = ctx
        .admin()
        .await?
        .message_retry(message_ref(&queue_id))
        .await;
    let r = reply.map_err(|e| ctx.failed(e))?.into_inner();
    println!("retrying {queue_id} now (log index {})", r.log_index);
    Ok(())
}
