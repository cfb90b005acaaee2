//! The command-line grammar of `peagectl` (clap): global options, every command and its
//! arguments, with the help an operator reads.

use std::path::PathBuf;

use clap::{Parser, Subcommand, ValueEnum};

use crate::wire;
use peage_client::v1::{EntryKind, ListName};

mod access;
mod outbound;
mod reports;

pub use access::{AuditArgs, AuditCmd, DigestCmd, PortalCmd, TokenCmd};

pub use outbound::{DkimCmd, IdentityCmd, OutboundCmd, PrincipalArgs, RatelimitCmd, UserCmd};
pub use reports::{StatsArgs, TrackArgs};

#[derive(Clone, Copy, ValueEnum)]
pub enum LearnClass {
    Spam,
    Ham,
}

impl LearnClass {
    pub fn name(self) -> &'static str {
        match self {
            LearnClass::Spam => "spam",
            LearnClass::Ham => "ham",
        }
    }
}

/// The files named, with each directory replaced by its files (sorted).
#[derive(Parser)]
#[command(
    name = "peagectl",
    version,
    about = "Drive a Péage mail-filter cluster through any node's admin API",
    after_help = "Examples:\n  peagectl status\n  peagectl list add ip 203.0.113.0/24 --reason \"botnet\"\n  peagectl list check ip 203.0.113.7\n  peagectl --stale list ls --kind domain --json"
)]
pub struct Cli {
    /// Admin endpoint of any node, or several separated by commas: the first that answers is
    /// used (with all three sites given, one site down does not stop the CLI).
    #[arg(
        long,
        env = "PEAGE_ADDR",
        default_value = "http://127.0.0.1:50051",
        global = true
    )]
    pub addr: String,
    /// Bearer token: its role (operator, helpdesk, auditor, domain-admin) and domains
    /// decide what the node lets it do and see.
    #[arg(long, env = "PEAGE_TOKEN", hide_env_values = true, global = true)]
    pub token: Option<String>,
    /// The cluster CA (PEM, `peage cert ca` makes it) that signed the nodes' certificates:
    /// needed for https:// endpoints.
    #[arg(long, env = "PEAGE_CA", global = true)]
    pub ca: Option<std::path::PathBuf>,
    /// Print JSON instead of tables (reads).
    #[arg(long, global = true)]
    pub json: bool,
    /// Answer reads from the contacted node's replica without asking the leader; the reply
    /// says how far behind it may be.
    #[arg(long, global = true)]
    pub stale: bool,
    #[command(subcommand)]
    pub command: Cmd,
}

#[derive(Subcommand)]
pub enum Cmd {
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
    /// Submission principals: who may log in (SMTP AUTH on 587/465) or relay from a trusted
    /// network, send as which domains, and as which identity.
    #[command(subcommand)]
    User(UserCmd),
    /// Outgoing mail: the identities locked for abuse (spam, malware, unknown recipients).
    #[command(subcommand)]
    Outbound(OutboundCmd),
    /// Outgoing mail's rate limits, counted across the sites.
    #[command(subcommand)]
    Ratelimit(RatelimitCmd),
    /// What happened to messages, across every site: `track --recipient bob@example.test
    /// --since 2d`, `track --queue-id ID`.
    Track(TrackArgs),
    /// Mail counted per hour or day, merged across the sites: `stats --since 7d --by day`,
    /// `stats --domain example.test --json`.
    Stats(StatsArgs),
    /// One read-only SQL statement over the contacted node's replicated state (operator
    /// token): `sql "SELECT domain, route FROM domains"`. Writes, ATTACH and PRAGMA are
    /// refused; a query stops after 5 s, and one whose reply passes 3 MiB is refused; `--stale`
    /// answers without asking the leader.
    Sql {
        query: String,
        /// Rows at most (up to 10000); a query that returns more is refused.
        #[arg(long, default_value_t = 1000)]
        max_rows: u32,
    },
    /// API tokens: their roles, domains and expiry (operator token).
    #[command(subcommand)]
    Token(TokenCmd),
    /// The audit log of admin writes: who, with which role, from where, what, outcome.
    #[command(subcommand)]
    Audit(AuditCmd),
    /// The end users' quarantine portal: links to a mailbox's held mail.
    #[command(subcommand)]
    Portal(PortalCmd),
    /// DKIM keys that sign the hosted domains' outgoing mail (operator token).
    #[command(subcommand)]
    Dkim(DkimCmd),
    /// Score messages without storing them: every symbol, the total and the verdict. A file
    /// that cannot be read or that the node refuses (larger than it takes) is named with the
    /// reason and skipped; the exit status is then 1.
    Check {
        /// Message files (RFC 5322), or directories of them.
        #[arg(required = true)]
        paths: Vec<PathBuf>,
        /// Client IP to score with.
        #[arg(long, default_value = "127.0.0.1")]
        client_ip: String,
        #[arg(long, default_value = "")]
        helo: String,
        /// Envelope sender to score with.
        #[arg(long, default_value = "")]
        from: String,
        /// Envelope recipient to score for (repeat for several): a domain's or mailbox's own
        /// list entries count only when every recipient is theirs.
        #[arg(long = "to")]
        to: Vec<String>,
        /// Messages in flight at once (the results are printed in the order of the files).
        #[arg(long, default_value_t = 8)]
        jobs: usize,
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
        paths: Vec<PathBuf>,
        /// Messages in flight at once. The node packs learnings that arrive together into one
        /// Raft entry, so more in flight learn faster (2,625 messages: 49 s with 8, 15 s with
        /// 64); each in flight is held in memory.
        #[arg(long, default_value_t = 64)]
        jobs: usize,
    },
    /// Alone: a hash of the replicated state, equal on nodes at the same applied index.
    /// `digest send`: a mailbox's digest of held mail, now.
    Digest {
        #[command(subcommand)]
        send: Option<DigestCmd>,
    },
    /// Build a snapshot on the contacted node now.
    Snapshot,
    /// Canary: send marked test messages to every MX and follow each through the admin API
    /// until it is delivered or quarantined; report loss and latency per MX. Exits 1 when an
    /// MX failed to accept or a message was not delivered in time.
    #[command(
        after_help = "Example:\n  peagectl probe --mx 127.0.0.1:2525,127.0.0.2:2525,127.0.0.3:2525 \\\n    --admin http://127.0.0.1:50051,http://127.0.0.2:50051 --rate 5 --duration 30s"
    )]
    Probe(ProbeArgs),
}

#[derive(Subcommand)]
pub enum NodeCmd {
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
pub enum PolicyCmd {
    /// The current thresholds and quarantine retention.
    Show,
    /// Change the thresholds (points) or how long quarantined messages are kept:
    /// `policy set --quarantine 6 --reject 15`, `policy set --quarantine-retention 30d`.
    Set {
        /// Quarantine at this score or more.
        #[arg(long)]
        quarantine: Option<f64>,
        /// Reject at this score or more.
        #[arg(long)]
        reject: Option<f64>,
        /// Remove quarantined messages this long after they arrived: 90s, 15m, 2h, 7d.
        #[arg(long)]
        quarantine_retention: Option<String>,
        /// Hold outgoing mail (from hosted accounts and the platform's MTAs) in the outbound
        /// quarantine at this score or more; it is never refused.
        #[arg(long)]
        outbound_hold: Option<f64>,
    },
}

#[derive(Subcommand)]
pub enum QueueCmd {
    /// Messages waiting for delivery; under one that failed, how many attempts failed and the last error, from every site.
    Ls(ListArgs),
    /// Attempt delivery of a message now; with --all, of every queued message that the
    /// filters match (after a downstream's outage, as `postqueue -f` does).
    #[command(
        after_help = "Examples:\n  peagectl queue retry 3358345415DC93B3\n  peagectl queue retry --all\n  peagectl queue retry --all --recipient @example.test"
    )]
    Retry(QueuedMessages),
    /// Remove a message from the queue (it will not be delivered); with --all, every queued
    /// message that the filters match, of which there must be one at least (a mail loop's
    /// or a hijacked account's messages, as `postsuper -d` does).
    #[command(
        after_help = "Examples:\n  peagectl queue drop 3358345415DC93B3\n  peagectl queue drop --all --sender hijacked@shop.example\n  peagectl queue drop --all --recipient @loop.example --since 1h"
    )]
    Drop(QueuedMessages),
}

/// One queued message by its id, or with --all every one the filters match.
#[derive(clap::Args)]
#[group(id = "which", required = true, multiple = false, args = ["queue_id", "all"])]
pub struct QueuedMessages {
    /// The message.
    pub queue_id: Option<String>,
    /// Every queued message the filters match.
    #[arg(long)]
    pub all: bool,
    /// With --all: messages acted on at once.
    #[arg(long, default_value_t = 16, requires = "all")]
    pub jobs: usize,
    #[command(flatten)]
    pub filter: MessageFilter,
}

#[derive(Subcommand)]
pub enum QuarantineCmd {
    /// Held messages.
    Ls(ListArgs),
    /// A held message: its record and headers (`--raw`: the whole message).
    Show {
        queue_id: String,
        /// The whole message as stored, headers and body, on standard output (a role that
        /// may read bodies: not an auditor)
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
pub struct MessageFilter {
    /// Outgoing mail only (sent by hosted accounts and the platform's MTAs). The outbound
    /// quarantine is kept apart: `quarantine ls` without it lists incoming mail only.
    #[arg(long)]
    pub outbound: bool,
    /// Recipient contains this text.
    #[arg(long, default_value = "")]
    pub recipient: String,
    /// Sender contains this text.
    #[arg(long, default_value = "")]
    pub sender: String,
    /// Accepted within this long: 90s, 15m, 2h, 7d.
    #[arg(long)]
    pub since: Option<String>,
    /// Only this verdict (deliver, released, quarantine).
    #[arg(long, default_value = "")]
    pub verdict: String,
}

/// `queue ls` and `quarantine ls`: which messages, and which page of them.
#[derive(clap::Args)]
pub struct ListArgs {
    #[command(flatten)]
    pub filter: MessageFilter,
    /// Messages per page (at most 1000).
    #[arg(long, default_value_t = 100)]
    pub limit: u32,
    /// Continue after this token (printed after a full page).
    #[arg(long, default_value = "")]
    pub page_token: String,
}

impl MessageFilter {
    /// Whether no filter was given (the page options aside).
    pub fn is_empty(&self) -> bool {
        !self.outbound
            && self.recipient.is_empty()
            && self.sender.is_empty()
            && self.since.is_none()
            && self.verdict.is_empty()
    }
}

#[derive(Subcommand)]
pub enum DomainCmd {
    /// Accept mail for DOMAIN and relay it to ROUTE: `domain add example.test --route smtp://10.0.0.5:25`.
    Add {
        domain: String,
        /// smtp://HOST:PORT of the downstream mail server.
        #[arg(long)]
        route: String,
        /// How RCPT addresses are checked: `none` (any local part), `list` (only the
        /// mailboxes of `domain users`; others get `550 5.1.1`) or `callout` (the route's
        /// server is asked `RCPT TO` first; its answer is cached cluster-wide, and a mailbox
        /// it refuses gets `550 5.1.1`). Unchanged when omitted.
        #[arg(long, value_parser = ["none", "list", "callout"])]
        verify: Option<String>,
        /// What a sender's failing DMARC policy does to mail for DOMAIN: `reject` (p=reject
        /// refused with 550, p=quarantine held), `quarantine` (held, never refused), `score`
        /// (points only) or `default` (the node's `dns.dmarc_policy`). With recipients in
        /// several domains, the most lenient one decides. Unchanged when omitted.
        #[arg(long, value_parser = ["reject", "quarantine", "score", "default"])]
        dmarc: Option<String>,
        /// Whether DOMAIN's mailbox owners may use the quarantine portal (`peagectl portal
        /// link`, and the links of digests). Off for a new domain; unchanged when omitted.
        #[arg(long, value_parser = ["on", "off"])]
        portal: Option<String>,
        /// When each of DOMAIN's mailboxes with newly held mail gets its daily digest
        /// (HH:MM, UTC; needs the portal), or `off`. Off for a new domain; unchanged when
        /// omitted.
        #[arg(long, value_name = "HH:MM|off")]
        digest_at: Option<String>,
        /// The language of DOMAIN's digests and portal pages. English for a new domain;
        /// unchanged when omitted.
        #[arg(long, value_parser = ["en", "fr"])]
        lang: Option<String>,
    },
    /// Stop accepting mail for DOMAIN (its recipient list goes with it).
    Rm { domain: String },
    /// The routing table.
    Ls,
    /// The valid mailboxes of domains added with `--verify list`.
    #[command(subcommand)]
    Users(UsersCmd),
}

#[derive(Subcommand)]
pub enum UsersCmd {
    /// Add mailboxes: `domain users add bob@example.test carol@example.test`.
    Add {
        #[arg(required = true)]
        addresses: Vec<String>,
    },
    /// Remove mailboxes.
    Rm {
        #[arg(required = true)]
        addresses: Vec<String>,
    },
    /// A domain's mailboxes, in order.
    Ls { domain: String },
    /// Add every address of FILE (one a line; blank lines and `#` comments skipped), in
    /// batches of 10,000; a batch with an invalid address is refused whole (the error names
    /// it), the batches before it stay added.
    Import { file: PathBuf },
}

#[derive(Subcommand)]
pub enum ListCmd {
    /// Add (or replace) an entry: `list add ip 203.0.113.0/24 --reason "botnet"`.
    Add {
        #[arg(value_parser = wire::entry_kind())]
        kind: EntryKind,
        /// IP or CIDR, domain (matches subdomains), sender address, or URL/host.
        value: String,
        #[arg(long, default_value = "")]
        reason: String,
        /// Expire after this long: 90s, 15m, 2h, 7d.
        #[arg(long)]
        ttl: Option<String>,
        /// `block` adds points; `allow` takes 20 off — for an IP always, for a sender or
        /// domain only when SPF or DKIM proves the message comes from it, for a URL host
        /// never (anyone can write a link).
        #[arg(long, value_parser = wire::list_name(), default_value = "block")]
        list: ListName,
        /// Whose entry: a hosted domain (its recipients and its subdomains') or one mailbox
        /// (user@domain). It counts only for mail whose recipients are all in the scope.
        /// Unset: the cluster-wide lists (operators only); a domain admin must set it.
        #[arg(long, default_value = "")]
        scope: String,
    },
    /// Remove an entry.
    Rm {
        #[arg(value_parser = wire::entry_kind())]
        kind: EntryKind,
        value: String,
        #[arg(long, value_parser = wire::list_name(), default_value = "block")]
        list: ListName,
        /// The entry's scope, as given to `list add`.
        #[arg(long, default_value = "")]
        scope: String,
    },
    /// List entries, optionally filtered.
    Ls {
        #[arg(long, value_parser = wire::list_name())]
        list: Option<ListName>,
        #[arg(long, value_parser = wire::entry_kind())]
        kind: Option<EntryKind>,
        /// Only values containing this text.
        #[arg(long, default_value = "")]
        contains: String,
        /// Only the entries scoped to this domain (its subdomains and mailboxes included).
        #[arg(long, default_value = "")]
        scope: String,
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
    Check {
        #[arg(value_parser = wire::entry_kind())]
        kind: EntryKind,
        value: String,
    },
}

#[derive(clap::Args)]
pub struct ProbeArgs {
    /// The MX to probe, HOST:PORT, comma-separated; messages go to each in turn.
    #[arg(long, required = true, value_delimiter = ',')]
    pub mx: Vec<String>,
    /// Admin endpoints to follow messages through, tried in turn (default: --addr).
    #[arg(long, value_delimiter = ',')]
    pub admin: Vec<String>,
    /// Messages per second over all MX together.
    #[arg(long, default_value_t = 2.0)]
    pub rate: f64,
    /// How long to send, e.g. 30s or 5m.
    #[arg(long, default_value = "30s")]
    pub duration: String,
    /// The recipient: an address of a local domain whose mailbox can take probes.
    #[arg(long, default_value = "probe@example.test")]
    pub rcpt: String,
    /// The envelope sender's domain (the local part names the run and message).
    #[arg(long, default_value = "probe.peage.invalid")]
    pub sender_domain: String,
    /// How long an accepted message has to be delivered or quarantined.
    #[arg(long, default_value = "2m")]
    pub follow_timeout: String,
}
