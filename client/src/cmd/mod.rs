//! One file per command group; `run` hands a parsed command line to the one it names.

mod access;
mod check;
mod context;
mod dkim;
mod domain;
mod learn;
mod lists;
mod maintenance;
mod messages;
mod node;
mod policy;
mod probe;
mod ratelimit;
mod sql;
mod status;
mod track;
mod users;

use peage_client::{Access, ClientError};

use crate::cli::{AuditCmd, Cli, Cmd, DigestCmd, OutboundCmd, PortalCmd};
use context::{message_files, Ctx};

pub async fn run(cli: Cli) -> Result<(), ClientError> {
    let ca_pem =
        match &cli.ca {
            Some(path) => Some(std::fs::read(path).map_err(|e| {
                ClientError::InvalidArgument(format!("--ca {}: {e}", path.display()))
            })?),
            None => None,
        };
    let access = Access {
        token: cli.token,
        ca_pem,
    };
    let mut ctx = Ctx::new(cli.addr, access, cli.json, cli.stale);
    match cli.command {
        Cmd::Status => status::run(&mut ctx).await,
        Cmd::Node(cmd) => node::run(&mut ctx, cmd).await,
        Cmd::List(cmd) => lists::run(&mut ctx, cmd).await,
        Cmd::Domain(cmd) => domain::run(&mut ctx, cmd).await,
        Cmd::User(cmd) => users::run(&mut ctx, cmd).await,
        Cmd::Dkim(cmd) => dkim::run(&mut ctx, cmd).await,
        Cmd::Outbound(OutboundCmd::Identity(cmd)) => users::identities(&mut ctx, cmd).await,
        Cmd::Ratelimit(cmd) => ratelimit::run(&mut ctx, cmd).await,
        Cmd::Track(args) => track::run(&mut ctx, args).await,
        Cmd::Stats(args) => track::stats(&mut ctx, args).await,
        Cmd::Sql { query, max_rows } => sql::run(&mut ctx, query, max_rows).await,
        Cmd::Token(cmd) => access::tokens(&mut ctx, cmd).await,
        Cmd::Audit(AuditCmd::Ls(args)) => access::audit(&mut ctx, args).await,
        Cmd::Portal(PortalCmd::Link { mailbox, valid }) => {
            access::portal_link(&mut ctx, mailbox, valid).await
        }
        Cmd::Digest {
            send: Some(DigestCmd::Send { recipient, all }),
        } => access::digest_send(&mut ctx, recipient, all).await,
        Cmd::Check {
            paths,
            client_ip,
            helo,
            from,
            to,
            jobs,
        } => {
            let envelope = check::Envelope {
                client_ip,
                helo,
                from,
                to,
            };
            check::run(&mut ctx, paths, envelope, jobs).await
        }
        Cmd::Policy(cmd) => policy::run(&mut ctx, cmd).await,
        Cmd::Queue(cmd) => messages::queue(&mut ctx, cmd).await,
        Cmd::Quarantine(cmd) => messages::quarantine(&mut ctx, cmd).await,
        Cmd::Learn { class, paths, jobs } => {
            ctx.admin().await?;
            let files = message_files(paths)?;
            learn::run(&mut ctx, class.name(), files, jobs).await
        }
        Cmd::Digest { send: None } => maintenance::digest(&mut ctx).await,
        Cmd::Snapshot => maintenance::snapshot(&mut ctx).await,
        Cmd::Probe(args) => probe::run(&ctx, args).await,
    }
}
