//! `peagectl track` and `peagectl stats`: one search across the cluster's tracking stores,
//! printed as a timeline (newest first) or as counts per hour or day, with the nodes that
//! did not answer.

use serde_json::json;

use std::collections::HashMap;

use peage_client::v1::{StatsQuery, TrackEvent, TrackQuery};
use peage_client::ClientError;

use super::context::Ctx;
use super::messages::ago_ms;
use crate::cli::{StatsArgs, TrackArgs};
use crate::output::{print_json, utc};

fn event_json(e: &TrackEvent) -> serde_json::Value {
    json!({"at_ms": e.at_ms, "node_id": e.node_id, "site": e.site, "kind": e.kind,
           "queue_id": e.queue_id, "message_id": e.message_id, "sender": e.sender,
           "recipients": e.recipients, "client_ip": e.client_ip, "helo": e.helo,
           "verdict": e.verdict, "score_milli": e.score_milli, "detail": e.detail,
           "tls": e.tls, "login": e.login, "rdns": e.rdns})
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
    say_unreachable(&r.unreachable, "events");
    if r.next_before_ms != 0 {
        println!("more: add --before {}", r.next_before_ms);
    }
    Ok(())
}

fn say_unreachable(nodes: &[String], what: &str) {
    if !nodes.is_empty() {
        println!(
            "not answering, their {what} are missing: {}",
            nodes.join(", ")
        );
    }
}

/// The counters `stats` prints as columns, in order; the others (by reason) follow.
const COLUMNS: [&str; 12] = [
    "received",
    "ham",
    "spam",
    "virus",
    "outbound",
    "quarantined",
    "rejected",
    "refused",
    "released",
    "delivered",
    "deferred",
    "bounced",
];

fn row(label: &str, counters: &HashMap<String, i64>) -> String {
    let mut line = format!("{label:<17}");
    for name in COLUMNS {
        let width = name.len().max(5);
        let n = counters.get(name).copied().unwrap_or(0);
        line.push_str(&format!("  {n:>width$}"));
    }
    let bytes = counters.get("bytes").copied().unwrap_or(0);
    line.push_str(&format!("  {bytes:>12}"));
    line
}

pub async fn stats(ctx: &mut Ctx, a: StatsArgs) -> Result<(), ClientError> {
    let query = StatsQuery {
        domains: a.domain,
        since_ms: ago_ms(&Some(a.since))?,
        until_ms: ago_ms(&a.until)?,
        by: a.by,
        top: a.top,
        // The node sets it from the token: a client cannot widen it.
        scope: Vec::new(),
    };
    let hourly = query.by == "hour";
    let reply = ctx.admin().await?.stats(query).await;
    let r = reply.map_err(|e| ctx.failed(e))?.into_inner();
    if ctx.json {
        let buckets: Vec<_> = r
            .buckets
            .iter()
            .map(|b| json!({"start_ms": b.start_ms, "counters": b.counters}))
            .collect();
        let top: Vec<_> = r
            .top
            .iter()
            .map(|t| json!({"kind": t.kind, "key": t.key, "count": t.count}))
            .collect();
        print_json(json!({"buckets": buckets, "totals": r.totals, "top": top,
                          "unreachable": r.unreachable}));
        return Ok(());
    }
    let mut header = format!("{:<17}", if hourly { "HOUR (UTC)" } else { "DAY (UTC)" });
    for name in COLUMNS {
        let width = name.len().max(5);
        header.push_str(&format!("  {:>width$}", name.to_uppercase()));
    }
    println!("{header}  {:>12}", "BYTES");
    for b in &r.buckets {
        let when = utc(b.start_ms);
        let label = when.get(..if hourly { 16 } else { 10 }).unwrap_or(&when);
        println!("{}", row(label, &b.counters));
    }
    println!("{}", row("total", &r.totals));
    let mut reasons: Vec<_> = r.totals.iter().filter(|(k, _)| k.contains(':')).collect();
    reasons.sort_by(|a, b| b.1.cmp(a.1).then(a.0.cmp(b.0)));
    if !reasons.is_empty() {
        println!("\nBY REASON");
        for (reason, n) in reasons {
            println!("  {reason:<40} {n:>8}");
        }
    }
    for kind in ["sender", "recipient", "network"] {
        let keys: Vec<_> = r.top.iter().filter(|t| t.kind == kind).collect();
        if !keys.is_empty() {
            println!("\nTOP {}S", kind.to_uppercase());
            for t in keys {
                println!("  {:<40} {:>8}", t.key, t.count);
            }
        }
    }
    say_unreachable(&r.unreachable, "counts");
    Ok(())
}
