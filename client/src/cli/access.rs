//! The grammar of who may drive the cluster: `peagectl token` (API tokens, their roles,
//! domains and expiry) and `peagectl audit` (the log of admin writes).

use clap::{Args, Subcommand, ValueEnum};

/// What a token may do.
#[derive(Clone, Copy, ValueEnum)]
pub enum RoleArg {
    /// Everything.
    Operator,
    /// Reads everything (message bodies too), releases and retries messages; no policy,
    /// membership, lists, accounts or tokens.
    Helpdesk,
    /// Reads records and settings; no message body, no write.
    Auditor,
    /// Only its domains (--domain): their quarantine and queue, tracking, recipients,
    /// accounts and locks; reads bodies, releases, drops.
    DomainAdmin,
}

impl RoleArg {
    pub fn name(self) -> &'static str {
        match self {
            RoleArg::Operator => "operator",
            RoleArg::Helpdesk => "helpdesk",
            RoleArg::Auditor => "auditor",
            RoleArg::DomainAdmin => "domain-admin",
        }
    }
}

/// API tokens (operator token): made here, replicated to every node (only a hash of each
/// secret is stored), bound to domains, expiring.
#[derive(Subcommand)]
pub enum TokenCmd {
    /// A new token; its secret is printed once and stored nowhere in clear. Adding a name
    /// again replaces that token (and its secret).
    #[command(
        after_help = "Examples:\n  peagectl token add desk --role helpdesk --expires-in 90d\n  peagectl token add acme-admin --role domain-admin --domain acme.example"
    )]
    Add {
        /// Recorded as the author of every write made with it.
        name: String,
        #[arg(long, value_enum)]
        role: RoleArg,
        /// A domain the token is bound to (its subdomains too); repeat for more. None: every
        /// domain (a domain admin needs at least one).
        #[arg(long = "domain")]
        domains: Vec<String>,
        /// The token stops working this long from now: 12h, 30d. Default: never.
        #[arg(long)]
        expires_in: Option<String>,
    },
    /// Remove a token made through the API (one in a node's configuration file is removed
    /// there).
    Rm { name: String },
    /// Every token: the nodes' configured ones and those made through the API.
    Ls,
}

/// The audit log of admin writes.
#[derive(Subcommand)]
pub enum AuditCmd {
    /// Every admin write (refused ones too) with the token that made it, its role, the
    /// client's address, the node that served it and how it ended; newest first.
    #[command(
        after_help = "Examples:\n  peagectl audit ls --since 1d\n  peagectl audit ls --by acme --failed"
    )]
    Ls(AuditArgs),
}

#[derive(Args)]
pub struct AuditArgs {
    /// Writes made with the token of this name (`--token` is the caller's own secret).
    #[arg(long, default_value = "")]
    pub by: String,
    /// The API call, e.g. ListAdd, MessageRelease, PolicySet.
    #[arg(long, default_value = "")]
    pub action: String,
    /// Only writes that failed (refused, invalid, unavailable).
    #[arg(long)]
    pub failed: bool,
    /// Records within this long: 90s, 15m, 2h, 7d.
    #[arg(long)]
    pub since: Option<String>,
    /// Records at most (up to 1000).
    #[arg(long, default_value_t = 100)]
    pub limit: u32,
}

/// The end users' quarantine portal.
#[derive(Subcommand)]
pub enum PortalCmd {
    /// A signed link that opens one mailbox's held mail in the portal, to send its owner
    /// (operator, helpdesk, or a domain admin for its domains' mailboxes).
    #[command(after_help = "Example:\n  peagectl portal link bob@example.test --valid 2d")]
    Link {
        mailbox: String,
        /// How long the link stays good (at most 90d): 90s, 15m, 2h, 7d. Default: the
        /// node's portal.link_days.
        #[arg(long)]
        valid: Option<String>,
    },
}

/// The daily digests of held mail.
#[derive(Subcommand)]
pub enum DigestCmd {
    /// Send one mailbox its digest now: what was held for it since its last digest (the
    /// next daily digest starts after it). Its domain needs the portal on (operator,
    /// helpdesk, or a domain admin for its domains' mailboxes).
    #[command(after_help = "Example:\n  peagectl digest send --recipient bob@example.test --all")]
    Send {
        /// The mailbox (its domain's language is the digest's).
        #[arg(long)]
        recipient: String,
        /// List everything held for the mailbox, not only what is new.
        #[arg(long)]
        all: bool,
    },
}
