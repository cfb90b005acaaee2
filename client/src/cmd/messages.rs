//! `peagectl queue …` and `peagectl quarantine …`: the spool and the quarantine, listed and
//! acted on one message at a time, or queued messages by filter.

use std::io::Write;

use serde_json::{json, Value};

use peage_client::v1::{MessageRef, QueueListRequest, QueuedMessage};
use peage_client::{parse_duration_secs, Admin, ClientError};

use super::context::pipelined;
use super::context::Ctx;
use crate::cli::{ListArgs, MessageFilter, QuarantineCmd, QueueCmd, QueuedMessages};
use crate::output::{
    message_json, points, print_json, print_read_note, print_symbols, read_json, sender, utc,
};

pub async fn queue(ctx: &mut Ctx, cmd: QueueCmd) -> Result<(), ClientError> {
    match cmd {
        QueueCmd::Ls(f) => list(ctx, &f, false).await,
        QueueCmd::Retry(chosen) => act_on_queue(ctx, chosen, QueueAction::Retry).await,
        QueueCmd::Drop(chosen) => act_on_queue(ctx, chosen, QueueAction::Drop).await,
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

/// The listing of the messages `f` matches, one page of `page_size` after `page_token`.
fn list_request(
    ctx: &Ctx,
    f: &MessageFilter,
    quarantine: bool,
    page_size: u32,
    page_token: String,
) -> Result<QueueListRequest, ClientError> {
    Ok(QueueListRequest {
        stale: ctx.stale,
        quarantine,
        recipient: f.recipient.clone(),
        sender: f.sender.clone(),
        since_ms: ago_ms(&f.since)?,
        verdict: f.verdict.clone(),
        page_size,
        page_token,
        outbound: f.outbound,
    })
}

/// `queue ls` and `quarantine ls`.
async fn list(ctx: &mut Ctx, args: &ListArgs, quarantine: bool) -> Result<(), ClientError> {
    ctx.admin().await?;
    let page_token = args.page_token.clone();
    let req = list_request(ctx, &args.filter, quarantine, args.limit, page_token)?;
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
    if r.messages.is_empty() {
        // As `mailq` says so: a bare header reads like a listing that failed.
        let (held, filtered) = (
            if quarantine { "held" } else { "queued" },
            !args.filter.is_empty(),
        );
        println!(
            "no {held} message{}",
            if filtered { " matches" } else { "" }
        );
    } else {
        print_messages(&r.messages);
    }
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
        "{:<16}  {:<10}  {:>7}  {:>9}  {:<12}  {:<28}  RECIPIENTS",
        "QUEUE ID", "VERDICT", "SCORE", "SIZE", "OWNER", "FROM"
    );
    for m in messages {
        println!(
            "{:<16}  {:<10}  {:>7}  {:>9}  {:<12}  {:<28}  {}",
            m.queue_id,
            m.verdict,
            points(m.score_milli),
            m.size,
            owner(m),
            sender(&m.mail_from),
            m.rcpt_to.join(", ")
        );
        if m.failed_attempts > 0 {
            println!("{:<18}({})", "", failed_attempts(m));
        }
    }
}

/// The node that delivers the message, by id and site (`2 roubaix`).
fn owner(m: &QueuedMessage) -> String {
    match m.owner_site.as_str() {
        "" => m.owner.to_string(),
        site => format!("{} {site}", m.owner),
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

/// Every queued message `filter` matches, page after page.
async fn queued(ctx: &mut Ctx, filter: &MessageFilter) -> Result<Vec<String>, ClientError> {
    let mut ids = Vec::new();
    let mut page_token = String::new();
    loop {
        let req = list_request(ctx, filter, false, 1000, page_token)?;
        let reply = ctx.admin().await?.queue_list(req).await;
        let r = reply.map_err(|e| ctx.failed(e))?.into_inner();
        ids.extend(r.messages.into_iter().map(|m| m.queue_id));
        if r.next_page_token.is_empty() {
            return Ok(ids);
        }
        page_token = r.next_page_token;
    }
}

/// What `queue retry` and `queue drop` do to each message they choose.
#[derive(Clone, Copy)]
enum QueueAction {
    Retry,
    Drop,
}

impl QueueAction {
    async fn one(self, ctx: &mut Ctx, queue_id: String) -> Result<(), ClientError> {
        match self {
            QueueAction::Retry => retry(ctx, queue_id).await,
            QueueAction::Drop => remove(ctx, queue_id).await,
        }
    }

    /// The call for one message, for `pipelined`.
    async fn call(self, mut admin: Admin, queue_id: String) -> Result<u64, tonic::Status> {
        let reply = match self {
            QueueAction::Retry => admin.message_retry(message_ref(&queue_id)).await,
            QueueAction::Drop => admin.message_drop(message_ref(&queue_id)).await,
        };
        reply.map(|r| r.into_inner().log_index)
    }

    /// The JSON key of the count, and the line that reports `n`.
    fn report(self, n: usize) -> (&'static str, String) {
        match self {
            QueueAction::Retry => ("retried", format!("retrying {n} queued message(s) now")),
            QueueAction::Drop => ("dropped", format!("dropped {n} queued message(s)")),
        }
    }
}

/// `queue retry|drop`: one message by its id, or with --all each that the filters match.
async fn act_on_queue(
    ctx: &mut Ctx,
    chosen: QueuedMessages,
    action: QueueAction,
) -> Result<(), ClientError> {
    match chosen.queue_id {
        Some(queue_id) if chosen.filter.is_empty() => action.one(ctx, queue_id).await,
        Some(_) => Err(ClientError::InvalidArgument(
            "the filters choose messages for --all; a QUEUE_ID is taken alone".into(),
        )),
        None if chosen.filter.is_empty() && matches!(action, QueueAction::Drop) => {
            Err(ClientError::InvalidArgument(
                "drop --all needs a filter (--sender, --recipient, --since, --verdict, \
                 --outbound): the whole queue is not dropped by accident"
                    .into(),
            ))
        }
        None => each_queued(ctx, &chosen.filter, chosen.jobs, action).await,
    }
}

/// Each matching message acted on, `jobs` at a time; one delivered or dropped meanwhile is
/// counted as gone, not as a failure.
async fn each_queued(
    ctx: &mut Ctx,
    filter: &MessageFilter,
    jobs: usize,
    action: QueueAction,
) -> Result<(), ClientError> {
    let ids = queued(ctx, filter).await?;
    let admin = ctx.admin().await?.clone();
    let call = |queue_id: String| {
        let admin = admin.clone();
        async move {
            let r = action.call(admin, queue_id.clone()).await;
            (queue_id, r)
        }
    };
    let (mut done, mut gone, mut failed) = (0usize, 0usize, Vec::new());
    pipelined(ids, jobs, call, |(queue_id, r)| {
        match r {
            Ok(_) => done += 1,
            Err(s) if s.code() == tonic::Code::NotFound => gone += 1,
            Err(s) => failed.push((queue_id, ctx.failed(s))),
        }
        Ok::<(), ClientError>(())
    })
    .await?;
    let (key, line) = action.report(done);
    if ctx.json {
        let failed: Vec<Value> = (failed.iter())
            .map(|(id, e)| json!({"queue_id": id, "error": e.to_string()}))
            .collect();
        print_json(json!({key: done, "gone": gone, "failed": failed}));
    } else {
        println!("{line}");
        if gone > 0 {
            println!("({gone} left the queue meanwhile: delivered or dropped)");
        }
        for (id, e) in &failed {
            println!("{id}: {e}");
        }
    }
    match failed.into_iter().next() {
        Some((_, e)) => Err(e),
        None => Ok(()),
    }
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
