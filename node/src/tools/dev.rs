//! `peage dev`: the local three-site cluster as child processes of one command, with the
//! configs embedded in the binary, so a newcomer needs nothing but the build.

use std::fs::{File, OpenOptions};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};

use crate::config::{Config, Role, TlsSection};
use crate::tools::cert;

/// ops/local/*.toml, embedded: (file name, contents).
pub const LOCAL_CONFIGS: [(&str, &str); 3] = [
    ("paris.toml", include_str!("../../../ops/local/paris.toml")),
    (
        "roubaix.toml",
        include_str!("../../../ops/local/roubaix.toml"),
    ),
    (
        "ariege.toml",
        include_str!("../../../ops/local/ariege.toml"),
    ),
];

/// The downstream the local configs route example.test to.
const SINK_ADDR: ([u8; 4], u16) = ([127, 0, 0, 1], 2626);

/// A child process: a site's node, or the sink.
struct Site {
    name: String,
    /// Where it listens once it is up (the admin port; the sink's SMTP port).
    addr: SocketAddr,
    child: Child,
    /// The command that starts it again by hand.
    restart: String,
}

/// Sends SIGTERM, then SIGKILL to whatever has not exited after the grace period.
fn stop_all(sites: &mut [Site]) {
    for s in sites.iter() {
        // SAFETY: kill(2) on the pid of a child we spawned and have not reaped yet.
        unsafe {
            libc::kill(s.child.id() as libc::pid_t, libc::SIGTERM);
        }
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    for s in sites.iter_mut() {
        loop {
            match s.child.try_wait() {
                Ok(Some(_)) => break,
                Ok(None) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(50))
                }
                _ => {
                    let _ = s.child.kill();
                    let _ = s.child.wait();
                    break;
                }
            }
        }
    }
}

fn wait_for_port(addr: SocketAddr, child: &mut Child, deadline: Instant) -> anyhow::Result<()> {
    loop {
        if TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok() {
            return Ok(());
        }
        if let Some(status) = child.try_wait()? {
            bail!("the node for {addr} exited early ({status})");
        }
        if Instant::now() > deadline {
            bail!("nothing listens on {addr} after 30 s");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn log_file(dir: &Path, name: &str) -> anyhow::Result<File> {
    let path = dir.join(format!("{name}.log"));
    OpenOptions::new()
        .create(true)
        .append(true)
        .open(&path)
        .with_context(|| format!("cannot open {}", path.display()))
}

/// Starts `exe args…` with its output in `DIR/<name>.log`.
fn spawn(exe: &Path, args: &[&std::ffi::OsStr], dir: &Path, name: &str) -> anyhow::Result<Child> {
    let log = log_file(dir, name)?;
    Command::new(exe)
        .args(args)
        .stdin(Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log)
        .spawn()
        .with_context(|| format!("cannot start {name}"))
}

/// Writes each site's config under `DIR/config` and starts its node; returns the sites and
/// the admin token of the local configs.
fn start_sites(exe: &Path, dir: &Path, sites: &mut Vec<Site>) -> anyhow::Result<String> {
    let config_dir = dir.join("config");
    std::fs::create_dir_all(&config_dir)
        .with_context(|| format!("cannot create {}", config_dir.display()))?;
    let mut token = String::new();
    for (file, text) in LOCAL_CONFIGS {
        let name = file.trim_end_matches(".toml").to_owned();
        let config_path = config_dir.join(file);
        let config = dev_config(dir, &name, Config::parse(text, &config_path)?)?;
        std::fs::write(&config_path, toml::to_string(&config)?)?;
        if token.is_empty() {
            let admin = config
                .admin
                .tokens
                .iter()
                .find(|t| t.role == Role::Operator && t.domains.is_empty());
            token = admin.map(|t| t.token.clone()).unwrap_or_default();
        }
        let data = dir.join(&name);
        let args = ["run".as_ref(), "--config".as_ref(), config_path.as_os_str()];
        let data_args = ["--data-dir".as_ref(), data.as_os_str()];
        let child = spawn(exe, &[&args[..], &data_args[..]].concat(), dir, &name)?;
        sites.push(Site {
            restart: format!(
                "peage run --config {} --data-dir {}",
                config_path.display(),
                data.display()
            ),
            name,
            addr: config.listen.admin,
            child,
        });
    }
    Ok(token)
}

/// Site `name`'s local config with the dev cluster's certificates (under `DIR/tls`, made
/// on the first start and kept after): TLS between the nodes and on the admin API, and
/// STARTTLS with submission on 2587 (STARTTLS) and 2465 (implicit TLS), and the portal on
/// 8443.
fn dev_config(dir: &Path, name: &str, mut config: Config) -> anyhow::Result<Config> {
    let tls = std::fs::canonicalize(dir)?.join("tls");
    if !tls.join("ca.key").exists() {
        cert::make_ca(&tls)?;
    }
    let (cert_path, key_path) = (
        tls.join(format!("{name}.pem")),
        tls.join(format!("{name}.key")),
    );
    if !cert_path.exists() {
        let mut hosts = vec![config.listen.peer.ip().to_string()];
        hosts.push(config.listen.admin.ip().to_string());
        hosts.dedup();
        cert::make_node(&tls, name, &hosts)?;
    }
    let ip = config.listen.admin.ip();
    config.listen.submission = Some(SocketAddr::new(ip, 2587));
    config.listen.submissions = Some(SocketAddr::new(ip, 2465));
    config.listen.portal = Some(SocketAddr::new(ip, 8443));
    config.smtp.tls_cert = Some(cert_path.clone());
    config.smtp.tls_key = Some(key_path.clone());
    config.tls = Some(TlsSection {
        ca: tls.join("ca.pem"),
        cert: cert_path,
        key: key_path,
    });
    Ok(config)
}

/// Starts the sink that stores what the cluster delivers in `DIR/maildir`.
fn start_sink(exe: &Path, dir: &Path) -> anyhow::Result<Site> {
    let addr = SocketAddr::from(SINK_ADDR);
    let maildir = dir.join("maildir");
    let listen = addr.to_string();
    let args = [
        "sink".as_ref(),
        "--listen".as_ref(),
        listen.as_ref(),
        "--maildir".as_ref(),
        maildir.as_os_str(),
    ];
    Ok(Site {
        name: "sink".into(),
        addr,
        child: spawn(exe, &args, dir, "sink")?,
        restart: format!("peage sink --listen {addr} --maildir {}", maildir.display()),
    })
}

fn print_quick_start(dir: &Path, sites: &[Site], token: &str, exe: &Path) {
    let maildir = dir.join("maildir");
    println!(
        "Péage local cluster is up (data and logs in {}):",
        dir.display()
    );
    for s in sites.iter().filter(|s| s.name != "sink") {
        println!(
            "  {:<8} admin https://{}  smtp {}:2525  metrics http://{}:9525/metrics  (log: {}/{}.log)",
            s.name,
            s.addr,
            s.addr.ip(),
            s.addr.ip(),
            dir.display(),
            s.name
        );
    }
    println!(
        "  sink     smtp {} → {}/<recipient>/new/  (example.test is routed there)",
        SocketAddr::from(SINK_ADDR),
        maildir.display()
    );
    println!();
    println!("Admin token: {token}");
    println!();
    let bin_dir = exe
        .parent()
        .map(|d| d.display().to_string())
        .unwrap_or_default();
    println!("Quick start (in another shell):");
    println!("  export PATH={bin_dir}:$PATH");
    let ca = dir.join("tls").join("ca.pem");
    println!(
        "  export PEAGE_ADDR=https://127.0.0.1:50051,https://127.0.0.2:50051,https://127.0.0.3:50051\n  export PEAGE_TOKEN={token} PEAGE_CA={}",
        ca.display()
    );
    println!("  peagectl status");
    println!("  peagectl list add ip 203.0.113.0/24 --reason \"botnet\"");
    println!("  peagectl --addr https://127.0.0.3:50051 list check ip 203.0.113.7");
    println!("  peagectl list ls --json");
    println!("  swaks --server 127.0.0.2:2525 --to bob@example.test   # or Python's smtplib");
    println!("  peagectl queue ls");
    println!("  echo 'correct-horse-battery' | peagectl user add alice@shop.example --domain shop.example");
    println!("  swaks --server 127.0.0.1:2587 -tls --auth-user alice@shop.example --auth-password correct-horse-battery \\");
    println!("        --from alice@shop.example --to bob@example.test   # submission (2465: implicit TLS)");
    println!("  peagectl probe --mx 127.0.0.1:2525,127.0.0.2:2525,127.0.0.3:2525 --duration 10s");
    println!("  peagectl portal link bob@example.test   # bob's held mail, https://127.0.0.x:8443 (the dev CA)");
    println!("  peagectl digest send --recipient bob@example.test   # bob's digest of held mail, to the sink");
    println!("  ls {}/bob@example.test/new", maildir.display());
    println!();
    println!("Ctrl-C stops the three nodes and the sink.");
}

/// Until Ctrl-C / SIGTERM. A site that dies (or is killed for a failover rehearsal) is
/// reported and the others keep running: that is what a drill on `peage dev` needs.
fn supervise(dir: &Path, sites: &mut [Site]) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let mut reported = vec![false; sites.len()];
    runtime.block_on(async {
        let mut poll = tokio::time::interval(Duration::from_millis(500));
        let signal = crate::shutdown::signal();
        tokio::pin!(signal);
        loop {
            tokio::select! {
                _ = &mut signal => return,
                _ = poll.tick() => {}
            }
            for (i, s) in sites.iter_mut().enumerate() {
                if reported[i] {
                    continue;
                }
                if let Ok(Some(status)) = s.child.try_wait() {
                    reported[i] = true;
                    println!(
                        "{} exited ({status}); the others keep running. Log: {}. Restart it with:\n  {}",
                        s.name,
                        dir.join(format!("{}.log", s.name)).display(),
                        s.restart,
                    );
                }
            }
            if reported.iter().all(|r| *r) {
                return;
            }
        }
    });
    Ok(())
}

pub fn run(dir: &Path) -> anyhow::Result<()> {
    let exe: PathBuf = std::env::current_exe().context("cannot find the peage executable")?;
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    // What it prints (PEAGE_CA, logs, restart commands) must work from another shell's
    // directory too.
    let dir =
        &std::path::absolute(dir).with_context(|| format!("cannot resolve {}", dir.display()))?;
    let mut sites: Vec<Site> = Vec::new();
    let started =
        start_sites(&exe, dir, &mut sites).and_then(|token| Ok((token, start_sink(&exe, dir)?)));
    let token = match started {
        Ok((token, sink)) => {
            sites.push(sink);
            token
        }
        Err(e) => {
            stop_all(&mut sites);
            return Err(e);
        }
    };
    let deadline = Instant::now() + Duration::from_secs(30);
    for i in 0..sites.len() {
        let addr = sites[i].addr;
        if let Err(e) = wait_for_port(addr, &mut sites[i].child, deadline) {
            let log = dir.join(format!("{}.log", sites[i].name));
            stop_all(&mut sites);
            return Err(e).with_context(|| format!("see {}", log.display()));
        }
    }
    print_quick_start(dir, &sites, &token, &exe);
    let supervised = supervise(dir, &mut sites);
    println!("stopping the nodes...");
    stop_all(&mut sites);
    supervised
}
