//! `peagectl`: the operator's command line for the Péage admin API.

use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};
use serde_json::{json, Value};

use peage_client::v1::*;
use peage_client::{connect, parse_duration_secs, Admin, ClientError};

mod learn;
mod probe;

#[derive(Clone, Copy, ValueEnum)]
enum LearnClass {
    Spam,
    Ham,
}

impl LearnClass {
    fn name(self) -> &'static str {
        match self {
            LearnClass::Spam => "spam",
            LearnClass::Ham => "ham",
        }
    }
}

/// The files named, with each directory replaced by its files (sorted).
fn message_files(paths: Vec<std::path::PathBuf>) -> Result<Vec<std::path::PathBuf>, ClientError> {
    let mut files = Vec::new();
    for p in paths {
        if p.is_dir() {
            let mut entries: Vec<_> = std::fs::read_dir(&p)
                .map_err(|e| ClientError::InvalidArgument(format!("{}: {e}", p.display())))?
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.is_file())
                .collect();
            entries.sort();
            files.extend(entries);
        } else {
            files.push(p);
        }
    }
    Ok(files)
}

#[derive(Parser)]
#[command(
    name = "peagectl",
    version,
    about = "Drive a Péage mail-filter cluster through any node's admin API",
    after_help = "Examples:\n  peagectl status\n  peagectl list add ip 203.0.113.0/24 --reason \"botnet\"\n  peagectl list check ip 203.0.113.7\n  peagectl --stale list ls --kind domain --json"
)]
struct Cli {
    /// Admin endpoint of any node.
    #[arg(
        long,
        env = "PEAGE_ADDR",
        default_value = "http://127.0.0.1:50051",
        global = true
    )]
    addr: String,
    /// Bearer token (admin or read-only).
    #[arg(long, env = "PEAGE_TOKEN", hide_env_values = true, global = true)]
    token: Option<String>,
    /// Print JSON instead of tables (reads).
    #[arg(long, global = true)]
    json: bool,
    /// Answer reads from the contacted node's replica without asking the leader; the reply
    /// says how far behind it may be.
    #[arg(long, global = true)]
    stale: bool,
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// The contacted node's view: role, term, leader, members, placement warnings.
    Status,
    /// Cluster membership.
    #[command(subcommand)]
    Node(NodeCmd),
    /// Block and allow lists.
    #[command(subcommand)]
    List(ListCmd),
    /// Local domains and the downstream route of each (mail is accepted only for these).
    #[command(subcommand)]
    Domain(DomainCmd),
    /// Score messages without storing them: every symbol, the total and the verdict.
    Check {
        /// Message files (RFC 5322), or directories of them.
        #[arg(required = true)]
        paths: Vec<std::path::PathBuf>,
        /// Client IP to score with.
        #[arg(long, default_value = "127.0.0.1")]
        client_ip: String,
        #[arg(long, default_value = "")]
        helo: String,
        /// Envelope sender to score with.
        #[arg(long, default_value = "")]
        from: String,
    },
    /// The filter's score thresholds.
    #[command(subcommand)]
    Policy(PolicyCmd),
    /// The spool: messages accepted and not yet delivered.
    #[command(subcommand)]
    Queue(QueueCmd),
    /// Messages the filter held back, on every site.
    #[command(subcommand)]
    Quarantine(QuarantineCmd),
    /// Teach the classifier messages as spam or ham, cluster-wide. Learning a message again
    /// the same way changes nothing; learning it the other way moves it.
    #[command(
        after_help = "Examples:\n  peagectl learn spam ~/caught/*.eml\n  peagectl learn ham ./false-positives/"
    )]
    Learn {
        /// spam or ham.
        class: LearnClass,
        /// Message files (RFC 5322), or directories of them.
        #[arg(required = true)]
        paths: Vec<std::path::PathBuf>,
        /// Messages in flight at once.
        #[arg(long, default_value_t = 8)]
        jobs: usize,
    },
    /// A hash of the replicated state, equal on nodes at the same applied index.
    Digest,
    /// Build a snapshot on the contacted node now.
    Snapshot,
    /// Canary: send marked test messages to every MX and follow each through the admin API
    /// until it is delivered or quarantined; report loss and latency per MX. Exits 1 when an
    /// MX failed to accept or a message was not delivered in time.
    #[command(
        after_help = "Example:\n  peagectl probe --mx 127.0.0.1:2525,127.0.0.2:2525,127.0.0.3:2525 \\\n    --admin http://127.0.0.1:50051,http://127.0.0.2:50051 --rate 5 --duration 30s"
    )]
    Probe {
        /// The MX to probe, HOST:PORT, comma-separated; messages go to each in turn.
        #[arg(long, required = true, value_delimiter = ',')]
        mx: Vec<String>,
        /// Admin endpoints to follow messages through, tried in turn (default: --addr).
        #[arg(long, value_delimiter = ',')]
        admin: Vec<String>,
        /// Messages per second over all MX together.
        #[arg(long, default_value_t = 2.0)]
        rate: f64,
        /// How long to send, e.g. 30s or 5m.
        #[arg(long, default_value = "30s")]
        duration: String,
        /// The recipient: an address of a local domain whose mailbox can take probes.
        #[arg(long, default_value = "probe@example.test")]
        rcpt: String,
        /// The envelope sender's domain (the local part names the run and message).
        #[arg(long, default_value = "probe.peage.invalid")]
        sender_domain: String,
        /// How long an accepted message has to be delivered or quarantined.
        #[arg(long, default_value = "2m")]
        follow_timeout: String,
    },
}

#[derive(Subcommand)]
enum NodeCmd {
    /// Add a node as a learner (it receives the log or a snapshot, but does not vote).
    Add {
        node_id: u64,
        /// Its peer (Raft) address, IP:PORT.
        #[arg(long)]
        peer: String,
        /// Its admin address, IP:PORT.
        #[arg(long)]
        admin: String,
        /// Its site.
        #[arg(long)]
        site: String,
    },
    /// Make a learner a voter.
    Promote { node_id: u64 },
    /// Remove a voter or learner.
    Remove { node_id: u64 },
}

#[derive(Subcommand)]
enum PolicyCmd {
    /// The current thresholds.
    Show,
    /// Change the thresholds (points): `policy set --quarantine 6 --reject 15`.
    Set {
        #[arg(long)]
        quarantine: Option<f64>,
        #[arg(long)]
        reject: Option<f64>,
    },
}

#[derive(Subcommand)]
enum QueueCmd {
    /// Messages waiting for delivery.
    Ls(MessageFilter),
    /// Attempt delivery of a message now.
    Retry { queue_id: String },
    /// Remove a message from the queue (it will not be delivered).
    Drop { queue_id: String },
}

#[derive(Subcommand)]
enum QuarantineCmd {
    /// Held messages.
    Ls(MessageFilter),
    /// A held message: its record and headers (`--raw`: the whole message).
    Show {
        queue_id: String,
        #[arg(long)]
        raw: bool,
    },
    /// Deliver a held message, and teach the classifier it was ham (a false positive).
    Release {
        queue_id: String,
        /// Do not learn it as ham (e.g. released to a spam trap for analysis).
        #[arg(long)]
        no_learn: bool,
    },
    /// Delete a held message.
    Rm { queue_id: String },
}

#[derive(clap::Args)]
struct MessageFilter {
    /// Recipient contains this text.
    #[arg(long, default_value = "")]
    recipient: String,
    /// Sender contains this text.
    #[arg(long, default_value = "")]
    sender: String,
    /// Accepted within this long: 90s, 15m, 2h, 7d.
    #[arg(long)]
    since: Option<String>,
    /// Only this verdict (deliver, released, quarantine).
    #[arg(long, default_value = "")]
    verdict: String,
    /// Messages per page (at most 1000).
    #[arg(long, default_value_t = 100)]
    limit: u32,
    /// Continue after this token (printed after a full page).
    #[arg(long, default_value = "")]
    page_token: String,
}

#[derive(Subcommand)]
enum DomainCmd {
    /// Accept mail for DOMAIN and relay it to ROUTE: `domain add example.test --route smtp://10.0.0.5:25`.
    Add {
        domain: String,
        /// smtp://HOST:PORT of the downstream mail server.
        #[arg(long)]
        route: String,
    },
    /// Stop accepting mail for DOMAIN.
    Rm { domain: String },
    /// The routing table.
    Ls,
}

#[derive(Clone, Copy, ValueEnum)]
enum Kind {
    Ip,
    Domain,
    Sender,
    Url,
}

#[derive(Clone, Copy, ValueEnum)]
enum List {
    Block,
    Allow,
}

impl Kind {
    fn wire(self) -> i32 {
        (match self {
            Kind::Ip => EntryKind::Ip,
            Kind::Domain => EntryKind::Domain,
            Kind::Sender => EntryKind::Sender,
            Kind::Url => EntryKind::Url,
        }) as i32
    }
}

impl List {
    fn wire(self) -> i32 {
        (match self {
            List::Block => ListName::Block,
            List::Allow => ListName::Allow,
        }) as i32
    }
}

#[derive(Subcommand)]
enum ListCmd {
    /// Add (or replace) an entry: `list add ip 203.0.113.0/24 --reason "botnet"`.
    Add {
        kind: Kind,
        /// IP or CIDR, domain (matches subdomains), sender address, or URL/host.
        value: String,
        #[arg(long, default_value = "")]
        reason: String,
        /// Expire after this long: 90s, 15m, 2h, 7d.
        #[arg(long)]
        ttl: Option<String>,
        #[arg(long, value_enum, default_value = "block")]
        list: List,
    },
    /// Remove an entry.
    Rm {
        kind: Kind,
        value: String,
        #[arg(long, value_enum, default_value = "block")]
        list: List,
    },
    /// List entries, optionally filtered.
    Ls {
        #[arg(long, value_enum)]
        list: Option<List>,
        #[arg(long, value_enum)]
        kind: Option<Kind>,
        /// Only values containing this text.
        #[arg(long, default_value = "")]
        contains: String,
        /// Entries per page (at most 1000).
        #[arg(long, default_value_t = 100)]
        limit: u32,
        /// Continue after this token (printed after a full page).
        #[arg(long, default_value_t = 0)]
        page_token: u64,
        /// Fetch every page.
        #[arg(long)]
        all: bool,
    },
    /// The entries (of both lists) that match a value.
    Check { kind: Kind, value: String },
}

fn kind_name(k: i32) -> &'static str {
    match EntryKind::try_from(k) {
        Ok(EntryKind::Ip) => "ip",
        Ok(EntryKind::Domain) => "domain",
        Ok(EntryKind::Sender) => "sender",
        Ok(EntryKind::Url) => "url",
        _ => "?",
    }
}

fn list_name(l: i32) -> &'static str {
    match ListName::try_from(l) {
        Ok(ListName::Block) => "block",
        Ok(ListName::Allow) => "allow",
        _ => "?",
    }
}

fn entry_json(e: &ListEntry) -> Value {
    json!({
        "id": e.id,
        "list": list_name(e.list),
        "kind": kind_name(e.kind),
        "value": e.value,
        "reason": e.reason,
        "author": e.author,
        "created_at_ms": e.created_at_ms,
        "expires_at_ms": e.expires_at_ms,
    })
}

fn read_json(r: &Option<ReadInfo>) -> Value {
    match r {
        None => Value::Null,
        Some(r) => json!({
            "stale": r.stale,
            "node_id": r.node_id,
            "applied_index": r.applied_index,
            "known_commit_index": r.known_commit_index,
            "lag_entries": r.lag_entries,
            "millis_since_leader_contact": r.millis_since_leader_contact,
        }),
    }
}

fn print_read_note(r: &Option<ReadInfo>) {
    if let Some(r) = r {
        if r.stale {
            let contact = r
                .millis_since_leader_contact
                .map_or("never heard from a leader".to_owned(), |ms| {
                    format!("last heard from the leader {ms} ms ago")
                });
            eprintln!(
                "(stale read from node {}: applied index {}, {} entries behind what it knows; {contact})",
                r.node_id, r.applied_index, r.lag_entries
            );
        }
    }
}

fn print_entries(entries: &[ListEntry]) {
    println!(
        "{:>6}  {:<5}  {:<6}  {:<32}  {:<12}  {:<13}  REASON",
        "ID", "LIST", "KIND", "VALUE", "AUTHOR", "EXPIRES(ms)"
    );
    for e in entries {
        println!(
            "{:>6}  {:<5}  {:<6}  {:<32}  {:<12}  {:<13}  {}",
            e.id,
            list_name(e.list),
            kind_name(e.kind),
            e.value,
            e.author,
            e.expires_at_ms.map_or("never".into(), |t| t.to_string()),
            e.reason
        );
    }
}

fn message_json(m: &QueuedMessage) -> Value {
    let symbols: Vec<Value> = m
        .symbols
        .iter()
        .map(
            |s| json!({"name": s.name, "score": s.score_milli as f64 / 1000.0, "reason": s.reason}),
        )
        .collect();
    json!({
        "queue_id": m.queue_id, "mail_from": m.mail_from, "rcpt_to": m.rcpt_to,
        "size": m.size, "body_sha256": m.body_sha256, "holders": m.holders,
        "owner": m.owner, "accepted_at_ms": m.accepted_at_ms,
        "lease_until_ms": m.lease_until_ms, "verdict": m.verdict,
        "score": m.score_milli as f64 / 1000.0, "symbols": symbols,
    })
}

/// `queue ls` and `quarantine ls`.
async fn list_messages(
    admin: &mut Admin,
    addr: &str,
    f: &MessageFilter,
    quarantine: bool,
    json_out: bool,
    stale: bool,
) -> Result<(), ClientError> {
    let since_ms = match &f.since {
        None => 0,
        Some(d) => {
            let secs = parse_duration_secs(d).map_err(ClientError::InvalidArgument)?;
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_millis() as i64);
            now - secs as i64 * 1000
        }
    };
    let r = admin
        .queue_list(QueueListRequest {
            stale,
            quarantine,
            recipient: f.recipient.clone(),
            sender: f.sender.clone(),
            since_ms,
            verdict: f.verdict.clone(),
            page_size: f.limit,
            page_token: f.page_token.clone(),
        })
        .await
        .map_err(|s| ClientError::from_status(addr, s))?
        .into_inner();
    if json_out {
        let list: Vec<Value> = r.messages.iter().map(message_json).collect();
        println!(
            "{}",
            json!({"messages": list, "next_page_token": r.next_page_token, "read": read_json(&r.read)})
        );
        return Ok(());
    }
    println!(
        "{:<16}  {:<10}  {:>7}  {:>9}  {:<5}  {:<28}  RECIPIENTS",
        "QUEUE ID", "VERDICT", "SCORE", "SIZE", "OWNER", "FROM"
    );
    for m in &r.messages {
        println!(
            "{:<16}  {:<10}  {:>7}  {:>9}  {:<5}  {:<28}  {}",
            m.queue_id,
            m.verdict,
            m.score_milli as f64 / 1000.0,
            m.size,
            m.owner,
            if m.mail_from.is_empty() {
                "<>"
            } else {
                &m.mail_from
            },
            m.rcpt_to.join(", ")
        );
    }
    if !r.next_page_token.is_empty() {
        println!("(more: --page-token {})", r.next_page_token);
    }
    print_read_note(&r.read);
    Ok(())
}

async fn run(cli: Cli) -> Result<(), ClientError> {
    if let Cmd::Probe {
        mx,
        admin,
        rate,
        duration,
        rcpt,
        sender_domain,
        follow_timeout,
    } = cli.command
    {
        let secs = |d: &str| parse_duration_secs(d).map_err(ClientError::InvalidArgument);
        let options = probe::ProbeOptions {
            mx,
            admin: if admin.is_empty() {
                vec![cli.addr]
            } else {
                admin
            },
            token: cli.token,
            rate,
            duration: std::time::Duration::from_secs(secs(&duration)?),
            rcpt,
            sender_domain,
            follow_timeout: std::time::Duration::from_secs(secs(&follow_timeout)?),
            json: cli.json,
        };
        return match probe::run(options).await? {
            true => Ok(()),
            false => Err(ClientError::ProbeFailed),
        };
    }
    let addr = cli.addr.clone();
    let mut admin: Admin = connect(&addr, cli.token.as_deref()).await?;
    let err = |s: tonic::Status| ClientError::from_status(&addr, s);
    match cli.command {
        Cmd::Status => {
            let s = admin
                .status(StatusRequest {})
                .await
                .map_err(err)?
                .into_inner();
            if cli.json {
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
                        })
                    })
                    .collect();
                println!(
                    "{}",
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
                );
            } else {
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
                        m.matched_index.map_or("-".into(), |i| i.to_string())
                    );
                }
                for w in &s.warnings {
                    println!("WARNING: {w}");
                }
            }
        }
        Cmd::Node(cmd) => {
            let reply = match cmd {
                NodeCmd::Add {
                    node_id,
                    peer,
                    admin: admin_addr,
                    site,
                } => admin
                    .add_learner(AddLearnerRequest {
                        node_id,
                        peer_addr: peer,
                        admin_addr,
                        site,
                    })
                    .await
                    .map_err(err)?,
                NodeCmd::Promote { node_id } => admin
                    .promote_voter(PromoteVoterRequest { node_id })
                    .await
                    .map_err(err)?,
                NodeCmd::Remove { node_id } => admin
                    .remove_node(RemoveNodeRequest { node_id })
                    .await
                    .map_err(err)?,
            }
            .into_inner();
            println!("membership changed at log index {}", reply.log_index);
            for m in reply.members {
                println!(
                    "  node {} ({}) {}",
                    m.node_id,
                    m.site,
                    if m.voter { "voter" } else { "learner" }
                );
            }
        }
        Cmd::List(ListCmd::Add {
            kind,
            value,
            reason,
            ttl,
            list,
        }) => {
            let ttl_secs = ttl
                .map(|t| parse_duration_secs(&t))
                .transpose()
                .map_err(ClientError::InvalidArgument)?;
            let r = admin
                .list_add(ListAddRequest {
                    list: list.wire(),
                    kind: kind.wire(),
                    value,
                    reason,
                    ttl_secs,
                })
                .await
                .map_err(err)?
                .into_inner();
            let e = r.entry.unwrap_or_default();
            if cli.json {
                println!(
                    "{}",
                    json!({"entry": entry_json(&e), "created": r.created, "log_index": r.log_index})
                );
            } else {
                println!(
                    "{} {} entry {} `{}` (id {}, log index {})",
                    if r.created { "added" } else { "replaced" },
                    list_name(e.list),
                    kind_name(e.kind),
                    e.value,
                    e.id,
                    r.log_index
                );
            }
        }
        Cmd::List(ListCmd::Rm { kind, value, list }) => {
            let r = admin
                .list_remove(ListRemoveRequest {
                    list: list.wire(),
                    kind: kind.wire(),
                    value,
                })
                .await
                .map_err(err)?
                .into_inner();
            println!("removed {} entry (log index {})", r.removed, r.log_index);
        }
        Cmd::List(ListCmd::Ls {
            list,
            kind,
            contains,
            limit,
            page_token,
            all,
        }) => {
            let mut token = page_token;
            let mut entries = Vec::new();
            let mut read;
            loop {
                let r = admin
                    .list_query(ListQueryRequest {
                        list: list.map_or(0, List::wire),
                        kind: kind.map_or(0, Kind::wire),
                        contains: contains.clone(),
                        page_size: limit,
                        page_token: token,
                        stale: cli.stale,
                    })
                    .await
                    .map_err(err)?
                    .into_inner();
                entries.extend(r.entries);
                read = r.read;
                token = r.next_page_token;
                if !all || token == 0 {
                    break;
                }
            }
            if cli.json {
                let list: Vec<Value> = entries.iter().map(entry_json).collect();
                println!(
                    "{}",
                    json!({"entries": list, "next_page_token": token, "read": read_json(&read)})
                );
            } else {
                print_entries(&entries);
                if token != 0 {
                    println!("(more: --page-token {token}, or --all)");
                }
                print_read_note(&read);
            }
        }
        Cmd::List(ListCmd::Check { kind, value }) => {
            let r = admin
                .list_check(ListCheckRequest {
                    kind: kind.wire(),
                    value,
                    stale: cli.stale,
                })
                .await
                .map_err(err)?
                .into_inner();
            if cli.json {
                let list: Vec<Value> = r.matches.iter().map(entry_json).collect();
                println!(
                    "{}",
                    json!({"normalized": r.normalized, "matches": list, "read": read_json(&r.read)})
                );
            } else {
                if r.matches.is_empty() {
                    println!(
                        "{} `{}`: no entry matches",
                        kind_name(kind.wire()),
                        r.normalized
                    );
                } else {
                    println!("{} `{}` matches:", kind_name(kind.wire()), r.normalized);
                    print_entries(&r.matches);
                }
                print_read_note(&r.read);
            }
        }
        Cmd::Domain(DomainCmd::Add { domain, route }) => {
            let r = admin
                .domain_set(DomainSetRequest { domain, route })
                .await
                .map_err(err)?
                .into_inner();
            let d = r.domain.unwrap_or_default();
            println!(
                "{} local domain {} → {} (log index {})",
                if r.created { "added" } else { "re-routed" },
                d.domain,
                d.route,
                r.log_index
            );
        }
        Cmd::Domain(DomainCmd::Rm { domain }) => {
            let r = admin
                .domain_remove(DomainRemoveRequest {
                    domain: domain.clone(),
                })
                .await
                .map_err(err)?
                .into_inner();
            println!("removed local domain {domain} (log index {})", r.log_index);
        }
        Cmd::Domain(DomainCmd::Ls) => {
            let r = admin
                .domain_list(DomainListRequest { stale: cli.stale })
                .await
                .map_err(err)?
                .into_inner();
            if cli.json {
                let list: Vec<Value> = r
                    .domains
                    .iter()
                    .map(|d| {
                        json!({"domain": d.domain, "route": d.route, "author": d.author, "created_at_ms": d.created_at_ms})
                    })
                    .collect();
                println!("{}", json!({"domains": list, "read": read_json(&r.read)}));
            } else {
                println!("{:<32}  {:<32}  AUTHOR", "DOMAIN", "ROUTE");
                for d in &r.domains {
                    println!("{:<32}  {:<32}  {}", d.domain, d.route, d.author);
                }
                print_read_note(&r.read);
            }
        }
        Cmd::Check {
            paths,
            client_ip,
            helo,
            from,
        } => {
            let files = message_files(paths)?;
            for file in files {
                let message = std::fs::read(&file).map_err(|e| {
                    ClientError::InvalidArgument(format!("cannot read {}: {e}", file.display()))
                })?;
                let r = admin
                    .check_message(CheckMessageRequest {
                        message,
                        client_ip: client_ip.clone(),
                        helo: helo.clone(),
                        mail_from: from.clone(),
                    })
                    .await
                    .map_err(err)?
                    .into_inner();
                let points = |m: i64| m as f64 / 1000.0;
                if cli.json {
                    let symbols: Vec<Value> = r
                        .symbols
                        .iter()
                        .map(|s| json!({"name": s.name, "score": points(s.score_milli), "reason": s.reason}))
                        .collect();
                    println!(
                        "{}",
                        json!({"file": file.display().to_string(), "verdict": r.verdict, "score": points(r.score_milli), "symbols": symbols})
                    );
                } else {
                    println!(
                        "{}: {} (score {})",
                        file.display(),
                        r.verdict,
                        points(r.score_milli)
                    );
                    for s in &r.symbols {
                        println!(
                            "  {:<26} {:>8}  {}",
                            s.name,
                            points(s.score_milli),
                            s.reason
                        );
                    }
                }
            }
        }
        Cmd::Policy(cmd) => {
            let r = match cmd {
                PolicyCmd::Show => admin.policy_get(PolicyGetRequest {}).await,
                PolicyCmd::Set { quarantine, reject } => {
                    admin
                        .policy_set(PolicySetRequest {
                            quarantine_at: quarantine.unwrap_or(0.0),
                            reject_at: reject.unwrap_or(0.0),
                        })
                        .await
                }
            }
            .map_err(err)?
            .into_inner();
            let (q, j) = (
                r.quarantine_at_milli as f64 / 1000.0,
                r.reject_at_milli as f64 / 1000.0,
            );
            if cli.json {
                println!("{}", json!({"quarantine_at": q, "reject_at": j}));
            } else {
                println!("quarantine at score >= {q}, reject at score >= {j}");
            }
        }
        Cmd::Queue(QueueCmd::Ls(f)) => {
            list_messages(&mut admin, &addr, &f, false, cli.json, cli.stale).await?
        }
        Cmd::Quarantine(QuarantineCmd::Ls(f)) => {
            list_messages(&mut admin, &addr, &f, true, cli.json, cli.stale).await?
        }
        Cmd::Quarantine(QuarantineCmd::Show { queue_id, raw }) => {
            let r = admin
                .message_show(MessageRef {
                    queue_id,
                    ..Default::default()
                })
                .await
                .map_err(err)?
                .into_inner();
            let m = r.message.unwrap_or_default();
            if raw {
                use std::io::Write;
                let _ = std::io::stdout().write_all(&r.body);
            } else if cli.json {
                println!("{}", message_json(&m));
            } else {
                println!("queue id  {}", m.queue_id);
                println!(
                    "verdict   {} (score {})",
                    m.verdict,
                    m.score_milli as f64 / 1000.0
                );
                println!(
                    "from      {}",
                    if m.mail_from.is_empty() {
                        "<>"
                    } else {
                        &m.mail_from
                    }
                );
                println!("to        {}", m.rcpt_to.join(", "));
                println!("size      {} bytes", m.size);
                for sym in &m.symbols {
                    println!(
                        "  {:<26} {:>8}  {}",
                        sym.name,
                        sym.score_milli as f64 / 1000.0,
                        sym.reason
                    );
                }
                let text = String::from_utf8_lossy(&r.body);
                let headers = text.split("\r\n\r\n").next().unwrap_or("");
                println!("\n{headers}");
            }
        }
        Cmd::Quarantine(QuarantineCmd::Release { queue_id, no_learn }) => {
            let r = admin
                .message_release(MessageRef {
                    queue_id: queue_id.clone(),
                    no_learn,
                })
                .await
                .map_err(err)?
                .into_inner();
            let learned = match r.learned.as_str() {
                "" => String::new(),
                "unchanged" => "; already learned as ham".to_owned(),
                change => format!("; learned as ham ({change})"),
            };
            println!(
                "released {queue_id} for delivery (log index {}){learned}",
                r.log_index
            );
        }
        Cmd::Quarantine(QuarantineCmd::Rm { queue_id })
        | Cmd::Queue(QueueCmd::Drop { queue_id }) => {
            let r = admin
                .message_drop(MessageRef {
                    queue_id: queue_id.clone(),
                    ..Default::default()
                })
                .await
                .map_err(err)?
                .into_inner();
            println!("removed {queue_id} (log index {})", r.log_index);
        }
        Cmd::Queue(QueueCmd::Retry { queue_id }) => {
            let r = admin
                .message_retry(MessageRef {
                    queue_id: queue_id.clone(),
                    ..Default::default()
                })
                .await
                .map_err(err)?
                .into_inner();
            println!("retrying {queue_id} now (log index {})", r.log_index);
        }
        Cmd::Digest => {
            let r = admin
                .state_digest(StateDigestRequest { stale: cli.stale })
                .await
                .map_err(err)?
                .into_inner();
            if cli.json {
                println!(
                    "{}",
                    json!({"sha256": r.sha256, "applied_index": r.applied_index, "list_entries": r.list_entries, "read": read_json(&r.read)})
                );
            } else {
                println!(
                    "{}  applied {}  entries {}",
                    r.sha256, r.applied_index, r.list_entries
                );
                print_read_note(&r.read);
            }
        }
        Cmd::Probe { .. } => unreachable!("handled before connecting"),
        Cmd::Learn { class, paths, jobs } => {
            learn::run(
                admin,
                &addr,
                class.name(),
                message_files(paths)?,
                jobs,
                cli.json,
            )
            .await?
        }
        Cmd::Snapshot => {
            let r = admin
                .trigger_snapshot(TriggerSnapshotRequest {})
                .await
                .map_err(err)?
                .into_inner();
            println!("snapshot at log index {}", r.snapshot_index);
        }
    }
    Ok(())
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("peagectl: {e}");
            ExitCode::FAILURE
        }
    }
}
