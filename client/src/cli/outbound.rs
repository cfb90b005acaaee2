//! The grammar of what operators do with outgoing mail and its senders — principals, DKIM
//! keys, locked identities, rate limits.

use clap::{Args, Subcommand};

#[derive(Subcommand)]
pub enum DkimCmd {
    /// Make a key for DOMAIN and print the DNS TXT record to publish. A domain's first key
    /// signs at once; a later one waits for `dkim activate` (publish it first: rotation).
    Generate {
        domain: String,
        /// The selector (`s=`); made up from the algorithm and the date when omitted.
        #[arg(long, default_value = "")]
        selector: String,
        #[arg(long, default_value = "ed25519", value_parser = ["ed25519", "rsa"])]
        algorithm: String,
    },
    /// Sign DOMAIN's mail with SELECTOR from now on (the others stop signing).
    Activate { domain: String, selector: String },
    /// Remove a key (remove its DNS record after the mail it signed has been read).
    Rm { domain: String, selector: String },
    /// Every key, with its DNS record and whether it signs.
    Ls,
}

#[derive(Subcommand)]
pub enum OutboundCmd {
    /// Locked identities (a run of spam verdicts, one message with malware, or many
    /// unknown recipients or hard bounces locks one on every site).
    #[command(subcommand)]
    Identity(IdentityCmd),
}

#[derive(Subcommand)]
pub enum IdentityCmd {
    /// Every identity locked now or before, with why and until when.
    Ls,
    /// Lock an identity (a login, or a sender address) until an operator unlocks it: its
    /// principal can still log in, but its mail is refused.
    Lock {
        login: String,
        #[arg(long, default_value = "")]
        reason: String,
    },
    /// Unlock an identity (its strikes are forgotten).
    Unlock { login: String },
}

#[derive(Subcommand)]
pub enum RatelimitCmd {
    /// The counts the contacted node knows in the windows open now (its own and its
    /// peers' last reports), with their limits; only NAME's when given.
    Show { name: Option<String> },
    /// Forget every count of NAME (identity, principal, client address or sender domain)
    /// on every node that answers; the reply names those that did not.
    Reset { name: String },
}

#[derive(Subcommand)]
pub enum UserCmd {
    /// Create a principal: `user add alice@shop.example --domain shop.example` (the
    /// password is read from standard input, one line of at least 10 characters, never from
    /// the command line); one credential for a whole domain: `user add shop.example --domain
    /// shop.example --identity sender`; the platform's MTAs, trusted by network: `user add
    /// platform --domain '*' --network 10.1.0.0/16 --identity header:Received --no-password`.
    Add {
        login: String,
        #[command(flatten)]
        principal: PrincipalArgs,
        /// No password: the principal is trusted by its `--network`s only and cannot log in.
        #[arg(long)]
        no_password: bool,
    },
    /// Set a new password (read from standard input); what else is given changes too.
    Passwd {
        login: String,
        #[command(flatten)]
        principal: PrincipalArgs,
    },
    /// Change a principal's domains, networks or identity method, keeping its password.
    Edit {
        login: String,
        #[command(flatten)]
        principal: PrincipalArgs,
    },
    /// Remove a principal: it can no longer log in or relay.
    Rm { login: String },
    /// The principals, their domains, networks and identity methods (never passwords).
    Ls,
}

/// What a submission principal may do; each one omitted stays as it was (a new principal:
/// no networks, `login` identity).
#[derive(Args)]
pub struct PrincipalArgs {
    /// A domain it may send as (MAIL FROM and header From); `*` for every hosted domain;
    /// repeat for more.
    #[arg(long = "domain")]
    pub domains: Vec<String>,
    /// A network (CIDR) whose clients send as it on the submission ports without AUTH;
    /// repeat for more.
    #[arg(long = "network")]
    pub networks: Vec<String>,
    /// Whom its mail is counted, rate-limited and locked as: `login` (the principal
    /// itself), `sender` (each envelope sender, e.g. for a domain credential) or
    /// `header:NAME` (a header the platform MTA adds; `header:Received` reads its
    /// `(Authenticated sender: …)`), falling back to the envelope sender.
    #[arg(long)]
    pub identity: Option<String>,
}
