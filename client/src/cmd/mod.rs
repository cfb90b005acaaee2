//! One file per command group; `run` hands a parsed command line to the one it names.

mod check;
mod domain;
mod learn;
mod lists;
mod maintenance;
mod messages;
mod node;
mod policy;
mod probe;
mod status;

use std::path::PathBuf;

use peage_client::{connect, Admin, ClientError};

use crate::cli::{Cli, Cmd};

/// What every command gets: the options of the command line and, once asked for, a
/// connection to the node at `--addr`.
pub struct Ctx {
    pub addr: String,
    pub token: Option<String>,
    pub json: bool,
    pub stale: bool,
    admin: Option<Admin>,
}

impl Ctx {
    /// The admin client, connected on first use.
    pub async fn admin(&mut self) -> Result<&mut Admin, ClientError> {
        if self.admin.is_none() {
            self.admin = Some(connect(&self.addr, self.token.as_deref()).await?);
        }
        Ok(self.admin.as_mut().expect("connected just above"))
    }

    /// A failed call, worded with the address it went to.
    pub fn failed(&self, status: tonic::Status) -> ClientError {
        ClientError::from_status(&self.addr, status)
    }
}

pub async fn run(cli: Cli) -> Result<(), ClientError> {
    let mut ctx = Ctx {
        addr: cli.addr,
        token: cli.token,
        json: cli.json,
        stale: cli.stale,
        admin: None,
    };
    match cli.command {
        Cmd::Status => status::run(&mut ctx).await,
        Cmd::Node(cmd) => node::run(&mut ctx, cmd).await,
        Cmd::List(cmd) => lists::run(&mut ctx, cmd).await,
        Cmd::Domain(cmd) => domain::run(&mut ctx, cmd).await,
        Cmd::Check {
            paths,
            client_ip,
            helo,
            from,
        } => check::run(&mut ctx, paths, client_ip, helo, from).await,
        Cmd::Policy(cmd) => policy::run(&mut ctx, cmd).await,
        Cmd::Queue(cmd) => messages::queue(&mut ctx, cmd).await,
        Cmd::Quarantine(cmd) => messages::quarantine(&mut ctx, cmd).await,
        Cmd::Learn { class, paths, jobs } => {
            ctx.admin().await?;
            let files = message_files(paths)?;
            learn::run(&mut ctx, class.name(), files, jobs).await
        }
        Cmd::Digest => maintenance::digest(&mut ctx).await,
        Cmd::Snapshot => maintenance::snapshot(&mut ctx).await,
        Cmd::Probe(args) => probe::run(&ctx, args).await,
    }
}

/// The files named, with each directory replaced by its files (sorted).
pub(crate) fn message_files(paths: Vec<PathBuf>) -> Result<Vec<PathBuf>, ClientError> {
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
