//! `peagectl track`: one search across the cluster's tracking stores, printed as a timeline
//! (newest first), with the nodes that did not answer and the next page.

use serde_json::json;

use peage_client::v1::{TrackEvent, TrackQuery};
use peage_client::ClientError;

use super::context::Ctx;
use super::messages::ago_ms;
use crate::cli::TrackArgs;
use crate::output::{print_json, utc};

fn event_json(e: &TrackEvent) -> serde_json::Value {
    json!({"at_ms": e.at_ms, "node_id": e.node_id, "site": e.site, "kind": e.kind,
           "queue_id": e.queue_id, "message_id": e.message_id, "sender": e.sender,
           "recipients": e.recipients, "client_ip": e.client_ip, "helo": e.helo,
           "verdict": e.verdict, "score_milli": e.score_milli, "detail": e.detail})
}

pub async fn run(ctx: &mut Ctx, a: TrackArgs) -> Result<(), ClientError> {
    let query = TrackQuery {
        sender: a.sender,
        recipient: a.recipient,
        domain: a.domain,
        client_ip: a.ip,
        message_id: a.message_id,
        queue_id: a.queue_id,
        verdict: a.verdict,
        since_ms: ago_ms(&a.since)?,
        until_ms: ago_ms(&a.until)?,
        limit: a.limit,
        before_ms: a.before,
        // The node sets it from the token: a client cannot widen it.
        scope: Vec::new(),
    };
    let reply = ctx.admin().await?.track(query).await;
    let r = reply.map_err(|e| ctx.failed(e))?.into_inner();
    if ctx.json {
        let events: Vec<_> = r.events.iter().map(event_json).collect();
        print_json(json!({"events": events, "unreachable": r.unreachable,
                          "next_before_ms": r.next_before_ms}));
        return Ok(());
    }
    println!(
        "{:<23}  {:<8}  {:<11}  {:<16}  {:<28}  {:<28}  DETAIL",
        "TIME (UTC)", "SITE", "EVENT", "QUEUE ID", "FROM", "TO"
    );
    for e in &r.events {
        let from = if e.sender.is_empty() { "<>" } else { &e.sender };
        println!(
            "{:<23}  {:<8}  {:<11}  {:<16}  {:<28}  {:<28}  {}",
            utc(e.at_ms),
            e.site,
            e.kind,
            e.queue_id,
            from,
            e.recipients.join(","),
            e.detail
        );
    }
    if !r.unreachable.is_empty() {
        println!(
            "not answering, their events are missing: {}",
            r.unreachable.join(", ")
        );
    }
    if r.next_before_ms != 0 {
        println!("more: add --before {}", r.next_before_ms);
    }
    Ok(())
}
