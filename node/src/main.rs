//! The `peage` binary: parses flags, loads the config, sets up logging, and hands over to
//! the library.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(name = "peage", version, about = "Péage mail-filter cluster node")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run one node.
    Run {
        /// The node's TOML configuration (see ops/local/*.toml).
        #[arg(long, short)]
        config: PathBuf,
        /// Data directory (Raft log, state, snapshots); overrides node.data_dir.
        #[arg(long)]
        data_dir: Option<PathBuf>,
    },
    /// A downstream SMTP server for tests and `peage dev`: stores every message it accepts
    /// in a maildir per recipient (DIR/<recipient>/new/).
    Sink {
        /// Address to listen on, IP:PORT.
        #[arg(long, default_value = "127.0.0.1:2626")]
        listen: std::net::SocketAddr,
        /// Root of the per-recipient maildirs.
        #[arg(long)]
        maildir: PathBuf,
        /// Refuse (550 5.1.1) recipients whose local part starts with this, to test bounces.
        #[arg(long)]
        refuse_prefix: Option<String>,
    },
    /// Start the local three-site cluster (Paris, Roubaix, Ariège on 127.0.0.1-3) as child
    /// processes, print the endpoints and a quick start; Ctrl-C stops everything.
    Dev {
        /// Where the nodes keep their data and logs.
        #[arg(long, default_value = "peage-dev")]
        dir: PathBuf,
    },
}

fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,openraft=warn"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        // Colour only on a terminal: `peage dev` and services write logs to files.
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Run { config, data_dir } => {
            let config = match peage_node::config::Config::load(&config) {
                Ok(c) => c,
                Err(e) => {
                    eprintln!("peage: {e}");
                    return ExitCode::from(2);
                }
            };
            let Some(data_dir) = data_dir.or_else(|| config.node.data_dir.clone()) else {
                eprintln!("peage: no data directory: pass --data-dir or set node.data_dir");
                return ExitCode::from(2);
            };
            init_logging();
            let runtime = match tokio::runtime::Runtime::new() {
                Ok(r) => r,
                Err(e) => {
                    eprintln!("peage: cannot start the runtime: {e}");
                    return ExitCode::FAILURE;
                }
            };
            match runtime.block_on(peage_node::run(
                config,
                &data_dir,
                peage_node::shutdown_signal(),
            )) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("peage: {e:#}");
                    ExitCode::FAILURE
                }
            }
        }
        Command::Sink {
            listen,
            maildir,
            refuse_prefix,
        } => {
            init_logging();
            let runtime = match tokio::runtime::Runtime::new() {
                Ok(r) => r,
                Err(e) => {
                    eprintln!("peage sink: cannot start the runtime: {e}");
                    return ExitCode::FAILURE;
                }
            };
            match runtime.block_on(peage_node::sink::run(
                listen,
                &maildir,
                refuse_prefix,
                peage_node::shutdown_signal(),
            )) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("peage sink: {e:#}");
                    ExitCode::FAILURE
                }
            }
        }
        Command::Dev { dir } => match peage_node::dev::run(&dir) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("peage dev: {e:#}");
                ExitCode::FAILURE
            }
        },
    }
}
