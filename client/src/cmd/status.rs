//! `peagectl status`: the contacted node's view of the cluster.

use serde_json::{json, Value};

use peage_client::v1::{Member, StatusReply, StatusRequest};
use peage_client::ClientError;

use super::context::Ctx;
use crate::output::{print_json, read_json};

pub async fn run(ctx: &mut Ctx) -> Result<(), ClientError> {
    let reply = ctx.admin().await?.status(StatusRequest {}).await;
    let s = reply.map_err(|e| ctx.failed(e))?.into_inner();
    if ctx.json {
        print_json(status_json(&s));
    } else {
        print_status(&s);
    }
    Ok(())
}

fn status_json(s: &StatusReply) -> Value {
    let members: Vec<Value> = s
        .members
        .iter()
        .map(|m| {
            json!({
                "node_id": m.node_id,
                "site": m.site,
                "addr": m.admin_addr,
                "peer_addr": m.peer_addr,
                "voter": m.voter,
                "matched_index": m.matched_index,
                "silent_ms": m.silent_ms,
            })
        })
        .collect();
    json!({
        "node_id": s.node_id,
        "site": s.site,
        "role": s.role,
        "leader_id": s.leader_id,
        "term": s.term,
        "last_applied": s.last_applied,
        "last_log_index": s.last_log_index,
        "snapshot_index": s.snapshot_index,
        "purged_index": s.purged_index,
        "millis_since_quorum_ack": s.millis_since_quorum_ack,
        "learned_spam": s.learned_spam,
        "learned_ham": s.learned_ham,
        "learned_tokens": s.learned_tokens,
        "learned_table_bytes": s.learned_table_bytes,
        "members": members,
        "warnings": s.warnings,
        "read": read_json(&s.read),
    })
}

/// The member's matched index, and whether the leader hears from it.
fn matched(m: &Member) -> String {
    let index = m.matched_index.map_or("-".into(), |i| i.to_string());
    match m.silent_ms {
        Some(ms) => format!("{index} (not answering for {} s)", ms / 1000),
        None => index,
    }
}

fn print_status(s: &StatusReply) {
    println!(
        "node {} ({})  role {}  term {}  leader {}",
        s.node_id,
        s.site,
        s.role,
        s.term,
        s.leader_id.map_or("none".into(), |l| l.to_string())
    );
    println!(
        "applied {}  last log {}  snapshot {}  purged {}",
        s.last_applied, s.last_log_index, s.snapshot_index, s.purged_index
    );
    println!(
        "classifier: learned {} spam, {} ham; {} tokens, {:.1} MiB in memory",
        s.learned_spam,
        s.learned_ham,
        s.learned_tokens,
        s.learned_table_bytes as f64 / f64::from(1 << 20)
    );
    println!();
    println!(
        "{:>4}  {:<10}  {:<22}  {:<22}  {:<8}  MATCHED",
        "ID", "SITE", "ADMIN", "PEER", "ROLE"
    );
    for m in &s.members {
        println!(
            "{:>4}  {:<10}  {:<22}  {:<22}  {:<8}  {}",
            m.node_id,
            m.site,
            m.admin_addr,
            m.peer_addr,
            if m.voter { "voter" } else { "learner" },
            matched(m)
        );
    }
    for w in &s.warnings {
        println!("WARNING: {w}");
    }
}
