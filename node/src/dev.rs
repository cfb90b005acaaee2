//! `peage dev`: the local three-site cluster as child processes of one command, with the
//! configs embedded in the binary, so a newcomer needs nothing but the build.

use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};

/// ops/local/*.toml, embedded: (file name, contents).
pub const LOCAL_CONFIGS: [(&str, &str); 3] = [
    ("paris.toml", include_str!("../../ops/local/paris.toml")),
    ("roubaix.toml", include_str!("../../ops/local/roubaix.toml")),
    ("ariege.toml", include_str!("../../ops/local/ariege.toml")),
];

struct Site {
    name: String,
    admin: SocketAddr,
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

pub fn run(dir: &Path) -> anyhow::Result<()> {
    let exe = std::env::current_exe().context("cannot find the peage executable")?;
    let config_dir = dir.join("config");
    std::fs::create_dir_all(&config_dir)
        .with_context(|| format!("cannot create {}", config_dir.display()))?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;

    let mut sites: Vec<Site> = Vec::new();
    let mut token = String::new();
    for (file, text) in LOCAL_CONFIGS {
        let name = file.trim_end_matches(".toml").to_owned();
        let config_path = config_dir.join(file);
        std::fs::write(&config_path, text)?;
        let config = crate::config::Config::parse(text, &config_path)?;
        if token.is_empty() {
            token = config
                .admin
                .tokens
                .iter()
                .find(|t| t.role == crate::config::Role::Admin)
                .map(|t| t.token.clone())
                .unwrap_or_default();
        }
        let log_path = dir.join(format!("{name}.log"));
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log_path)
            .with_context(|| format!("cannot open {}", log_path.display()))?;
        let child = Command::new(&exe)
            .arg("run")
            .arg("--config")
            .arg(&config_path)
            .arg("--data-dir")
            .arg(dir.join(&name))
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn();
        let child = match child {
            Ok(c) => c,
            Err(e) => {
                stop_all(&mut sites);
                return Err(e).context("cannot start a node");
            }
        };
        let restart = format!(
            "peage run --config {} --data-dir {}",
            config_path.display(),
            dir.join(&name).display()
        );
        sites.push(Site {
            name,
            admin: config.listen.admin,
            child,
            restart,
        });
    }

    // The downstream the local configs route example.test to.
    let sink_addr: SocketAddr = ([127, 0, 0, 1], 2626).into();
    let maildir = dir.join("maildir");
    let log_path = dir.join("sink.log");
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&log_path)
        .with_context(|| format!("cannot open {}", log_path.display()))?;
    match Command::new(&exe)
        .arg("sink")
        .arg("--listen")
        .arg(sink_addr.to_string())
        .arg("--maildir")
        .arg(&maildir)
        .stdin(Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log)
        .spawn()
    {
        Ok(child) => sites.push(Site {
            name: "sink".into(),
            admin: sink_addr,
            child,
            restart: format!(
                "peage sink --listen {sink_addr} --maildir {}",
                maildir.display()
            ),
        }),
        Err(e) => {
            stop_all(&mut sites);
            return Err(e).context("cannot start the sink");
        }
    }

    let deadline = Instant::now() + Duration::from_secs(30);
    for i in 0..sites.len() {
        let admin = sites[i].admin;
        if let Err(e) = wait_for_port(admin, &mut sites[i].child, deadline) {
            let log = dir.join(format!("{}.log", sites[i].name));
            stop_all(&mut sites);
            return Err(e).with_context(|| format!("see {}", log.display()));
        }
    }

    println!(
        "Péage local cluster is up (data and logs in {}):",
        dir.display()
    );
    for s in sites.iter().filter(|s| s.name != "sink") {
        println!(
            "  {:<8} admin http://{}  smtp {}:2525  metrics http://{}:9525/metrics  (log: {}/{}.log)",
            s.name,
            s.admin,
            s.admin.ip(),
            s.admin.ip(),
            dir.display(),
            s.name
        );
    }
    println!(
        "  sink     smtp {sink_addr} → {}/<recipient>/new/  (example.test is routed there)",
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
    println!("  export PEAGE_ADDR=http://127.0.0.1:50051 PEAGE_TOKEN={token}");
    println!("  peagectl status");
    println!("  peagectl list add ip 203.0.113.0/24 --reason \"botnet\"");
    println!("  peagectl --addr http://127.0.0.3:50051 list check ip 203.0.113.7");
    println!("  peagectl list ls --json");
    println!("  swaks --server 127.0.0.2:2525 --to bob@example.test   # or Python's smtplib");
    println!("  peagectl queue ls");
    println!("  peagectl probe --mx 127.0.0.1:2525,127.0.0.2:2525,127.0.0.3:2525 --duration 10s");
    println!("  ls {}/bob@example.test/new", maildir.display());
    println!();
    println!("Ctrl-C stops the three nodes and the sink.");

    // Until Ctrl-C / SIGTERM. A site that dies (or is killed for a failover rehearsal) is
    // reported and the others keep running: that is what a drill on `peage dev` needs.
    let mut reported = vec![false; sites.len()];
    runtime.block_on(async {
        let mut poll = tokio::time::interval(Duration::from_millis(500));
        let signal = crate::shutdown_signal();
        tokio::pin!(signal);
        loop {
            tokio::select! {
                _ = &mut signal => return,
                _ = poll.tick() => {
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
            }
        }
    });
    println!("stopping the nodes...");
    stop_all(&mut sites);
    Ok(())
}
