//! The `peage` binary: parses flags, loads the config, sets up logging, and hands over to
//! the library.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use peage_node::config::Config;

/// Many small allocations a message (parsing, gRPC buffers, Raft entries), from many threads.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

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
        /// Connections one client address may hold at once; more are told 421.
        #[arg(long, default_value_t = 20)]
        max_connections_per_ip: usize,
    },
    /// Disaster recovery: found an empty data directory from a snapshot file copied off a
    /// node (DATA_DIR/snapshots/snap-*.db), for this node's id. Restore every voter the
    /// snapshot lists from the same file, each with its own config, then start them all.
    Restore {
        /// The node's TOML configuration (its node.id must be a voter in the snapshot).
        #[arg(long, short)]
        config: PathBuf,
        /// The empty data directory to found; overrides node.data_dir.
        #[arg(long)]
        data_dir: Option<PathBuf>,
        /// The snapshot database file.
        #[arg(long)]
        snapshot: PathBuf,
    },
    /// Evaluate the filter with what it learns, offline (no cluster needed): k-fold
    /// cross-validation by default, or honestly on later mail with --by-date, --online or
    /// --train/--test. Prints spam recall and ham false positives at the policy's thresholds
    /// and at others, recall at 0, 1 and 2 false positives, the ROC area and histograms.
    Eval(peage_node::tools::eval::EvalArgs),
    /// Certificates for TLS between sites and on the admin API: `peage cert ca DIR` makes the
    /// cluster CA (DIR/ca.pem, DIR/ca.key), then `peage cert node DIR NAME HOST...` one
    /// certificate per node (DIR/NAME.pem, DIR/NAME.key) naming the IPs or names of its peer
    /// and admin addresses. Point each node's `[tls]` at ca.pem and its own pair; give
    /// operators ca.pem (`peagectl --ca`). Keep ca.key offline; nothing is overwritten.
    #[command(subcommand)]
    Cert(CertCommand),
    /// Start the local three-site cluster (Paris, Roubaix, Ariège on 127.0.0.1-3) as child
    /// processes, print the endpoints and a quick start; Ctrl-C stops everything.
    Dev {
        /// Where the nodes keep their data and logs.
        #[arg(long, default_value = "peage-dev")]
        dir: PathBuf,
    },
}

#[derive(Subcommand)]
enum CertCommand {
    /// A new cluster CA: DIR/ca.pem (give it to every node and operator) and DIR/ca.key.
    Ca { dir: PathBuf },
    /// A node certificate signed by DIR/ca.key: DIR/NAME.pem and DIR/NAME.key.
    Node {
        dir: PathBuf,
        /// The node's name (its site), naming the files.
        name: String,
        /// The IPs or DNS names of its peer and admin addresses, as the others dial them.
        #[arg(required = true)]
        hosts: Vec<String>,
    },
}

/// What a node logs unless `RUST_LOG` says otherwise. openraft's replication logs three
/// lines for every retry of a peer that is down, every heartbeat; the node logs when a peer
/// falls silent and when it answers again instead (`cluster::silence`).
const DEFAULT_LOG_FILTER: &str =
    "info,openraft=warn,openraft::replication=off,openraft::engine::handler::replication_handler=off";

fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(DEFAULT_LOG_FILTER));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        // Colour only on a terminal: `peage dev` and services write logs to files.
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
}

/// The config and data directory of `run` and `restore`; exit status 2 on a bad config.
fn node_setup(config: &Path, data_dir: Option<PathBuf>) -> Result<(Config, PathBuf), ExitCode> {
    let config = Config::load(config).map_err(|e| {
        eprintln!("peage: {e}");
        ExitCode::from(2)
    })?;
    let Some(data_dir) = data_dir.or_else(|| config.node.data_dir.clone()) else {
        eprintln!("peage: no data directory: pass --data-dir or set node.data_dir");
        return Err(ExitCode::from(2));
    };
    Ok((config, data_dir))
}

/// Runs `task` on a fresh runtime; `what` names the command in errors.
fn block_on<T>(
    what: &str,
    task: impl std::future::Future<Output = anyhow::Result<T>>,
) -> Result<T, ExitCode> {
    let runtime = tokio::runtime::Runtime::new().map_err(|e| {
        eprintln!("{what}: cannot start the runtime: {e}");
        ExitCode::FAILURE
    })?;
    runtime.block_on(task).map_err(|e| {
        eprintln!("{what}: {e:#}");
        ExitCode::FAILURE
    })
}

/// glibc gives each thread that allocates under contention an arena of its own, up to 8 per
/// core, and memory freed into one arena is not reused by the others: a node's RSS then
/// crept up through a 200,000-message soak (46 to 77 MB, +3 MB every tenth). Two arenas
/// keep it flat (`peage-bench soak --messages 60000`: 55 to 59 MB over the second half with
/// glibc's default, 47 to 48 with two). `MALLOC_ARENA_MAX` in the environment still wins.
fn limit_malloc_arenas() {
    #[cfg(target_env = "gnu")]
    if std::env::var_os("MALLOC_ARENA_MAX").is_none() {
        // SAFETY: called first in main, before any other thread exists or allocates.
        unsafe {
            libc::mallopt(libc::M_ARENA_MAX, 2);
        }
    }
}

fn main() -> ExitCode {
    peage_node::allocator::settle();
    limit_malloc_arenas();
    let cli = Cli::parse();
    let outcome = match cli.command {
        Command::Run { config, data_dir } => node_setup(&config, data_dir).and_then(|(c, dir)| {
            init_logging();
            block_on(
                "peage",
                peage_node::run(c, &dir, peage_node::shutdown::signal()),
            )
        }),
        Command::Restore {
            config,
            data_dir,
            snapshot,
        } => node_setup(&config, data_dir).and_then(|(c, dir)| {
            let summary = block_on(
                "peage restore",
                peage_node::tools::restore::run(&c, &dir, &snapshot),
            )?;
            println!("{summary}");
            Ok(())
        }),
        Command::Sink {
            listen,
            maildir,
            refuse_prefix,
            max_connections_per_ip,
        } => {
            init_logging();
            let options = peage_node::tools::sink::SinkOptions {
                refuse_prefix,
                max_connections_per_ip,
            };
            block_on(
                "peage sink",
                peage_node::tools::sink::run(
                    listen,
                    &maildir,
                    options,
                    peage_node::shutdown::signal(),
                ),
            )
        }
        Command::Eval(args) => peage_node::tools::eval::run(&args).map_err(|e| {
            eprintln!("peage eval: {e:#}");
            ExitCode::FAILURE
        }),
        Command::Cert(command) => {
            let made = match command {
                CertCommand::Ca { dir } => peage_node::tools::cert::make_ca(&dir),
                CertCommand::Node { dir, name, hosts } => {
                    peage_node::tools::cert::make_node(&dir, &name, &hosts)
                }
            };
            match made {
                Ok(files) => {
                    files.iter().for_each(|f| println!("wrote {}", f.display()));
                    Ok(())
                }
                Err(e) => {
                    eprintln!("peage cert: {e:#}");
                    Err(ExitCode::FAILURE)
                }
            }
        }
        Command::Dev { dir } => peage_node::tools::dev::run(&dir).map_err(|e| {
            eprintln!("peage dev: {e:#}");
            ExitCode::FAILURE
        }),
    };
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(code) => code,
    }
}
