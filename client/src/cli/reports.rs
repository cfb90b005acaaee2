//! The grammar of the operators' reports: message tracking and statistics.

use clap::Args;

/// Follow messages across the cluster: every node's events (recipients refused at RCPT,
/// messages rejected, accepted, quarantined, released, delivered, deferred, bounced,
/// expired, taken over or handed off between sites), newest first. The node asked fans the
/// search out to every member and names those that did not answer.
#[derive(Args)]
pub struct TrackArgs {
    /// Sender contains this text.
    #[arg(long, default_value = "")]
    pub sender: String,
    /// A recipient contains this text.
    #[arg(long, default_value = "")]
    pub recipient: String,
    /// The sender's or a recipient's domain.
    #[arg(long, default_value = "")]
    pub domain: String,
    /// The client's address.
    #[arg(long, default_value = "")]
    pub ip: String,
    #[arg(long, default_value = "")]
    pub message_id: String,
    #[arg(long, default_value = "")]
    pub queue_id: String,
    /// deliver, quarantine or reject.
    #[arg(long, default_value = "")]
    pub verdict: String,
    /// Events within this long: 90s, 15m, 2h, 7d.
    #[arg(long)]
    pub since: Option<String>,
    /// Events at least this long ago.
    #[arg(long)]
    pub until: Option<String>,
    /// Events per page (at most 1000).
    #[arg(long, default_value_t = 100)]
    pub limit: u32,
    /// The next page: the `--before` value the previous page printed.
    #[arg(long, default_value_t = 0)]
    pub before: i64,
}

/// Counts from every node's hourly roll-ups, summed across the sites that answer: messages
/// received (ham, spam, virus, outbound, bytes), quarantined, rejected by reason, released;
/// recipients refused by status code, delivered, deferred, bounced; and the top senders,
/// recipients and client networks. An incoming message counts for its recipients' domains,
/// an outgoing one for its sender's. A token bound to domains sees only those.
#[derive(Args)]
pub struct StatsArgs {
    /// Only this domain and its subdomains (repeat for several); without it, the whole
    /// cluster (or all of a domain-bound token's domains).
    #[arg(long)]
    pub domain: Vec<String>,
    /// Counts within this long: 90m, 2h, 7d (default 1d).
    #[arg(long, default_value = "1d")]
    pub since: String,
    /// Counts at least this long ago.
    #[arg(long)]
    pub until: Option<String>,
    /// One row per hour or per day (UTC).
    #[arg(long, default_value = "hour", value_parser = ["hour", "day"])]
    pub by: String,
    /// How many top senders, recipients and client networks (at most 100).
    #[arg(long, default_value_t = 10)]
    pub top: u32,
}
