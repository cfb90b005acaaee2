//! The cluster harness: real `peage` processes on their own loopback addresses, in
//! temporary directories, killed with SIGKILL on demand and always stopped on drop.
//! Waits are conditions with a deadline and a reason, never fixed sleeps.

use std::future::Future;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};

pub mod corpus;
pub mod drill;
pub mod netns;
pub mod proxy;

pub use peage_client::v1;
use peage_client::{connect, Admin};

pub const ADMIN_TOKEN: &str = "test-admin-token-0123456789";
pub const READ_TOKEN: &str = "test-read-only-token-0123456789";
pub const SECRET: &str = "test-cluster-secret-0123456789";
pub const SITES: [&str; 4] = ["paris", "roubaix", "ariege", "lyon"];

/// The directory holding the workspace's binaries, next to the running test executable.
pub fn bin_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("current_exe");
    let mut dir = exe.parent().expect("exe has a parent").to_path_buf();
    if dir.ends_with("deps") {
        dir.pop();
    }
    dir
}

/// Path of a workspace binary; the test command builds them first (`cargo build --bins`).
pub fn bin(name: &str) -> PathBuf {
    let p = bin_dir().join(name);
    assert!(
        p.exists(),
        "{} is missing: build the binaries first (cargo build --workspace --bins)",
        p.display()
    );
    p
}

static NEXT_NET: AtomicU32 = AtomicU32::new(0);

/// A /24 of loopback addresses no other cluster of this test run uses.
fn fresh_net() -> String {
    let n = NEXT_NET.fetch_add(1, Ordering::SeqCst);
    let pid = std::process::id();
    format!("127.{}.{}", 10 + (pid % 200), n % 250 + 1)
}

/// Raft and list settings for a test cluster.
#[derive(Clone)]
pub struct Tuning {
    pub snapshot_after_entries: u64,
    pub keep_entries_after_snapshot: u64,
    pub sweep_interval_ms: u64,
    pub commit_timeout_ms: u64,
    pub lease_secs: u64,
    /// How long an undeliverable message is held before it is bounced.
    pub retention_secs: u64,
    /// Raft timing: heartbeat (also openraft's per-RPC timeout), minimum election timeout
    /// (the maximum is twice it), and how long a leader may go without a majority.
    pub heartbeat_ms: u64,
    pub election_timeout_ms: u64,
    pub quorum_lost_after_ms: u64,
    /// Dial every peer through a per-link address ([`TestCluster::link_addr`]) where a
    /// proxy (the drill's) adds latency or cuts the link; nothing listens there otherwise.
    pub proxied_peers: bool,
    /// Offer STARTTLS with a freshly generated self-signed certificate.
    pub tls: bool,
}

impl Default for Tuning {
    fn default() -> Self {
        Tuning {
            snapshot_after_entries: 5000,
            keep_entries_after_snapshot: 1000,
            sweep_interval_ms: 200,
            commit_timeout_ms: 3000,
            lease_secs: 2,
            retention_secs: 5 * 86_400,
            heartbeat_ms: 50,
            election_timeout_ms: 300,
            quorum_lost_after_ms: 1000,
            proxied_peers: false,
            tls: false,
        }
    }
}

pub struct Node {
    pub id: u64,
    pub site: String,
    pub ip: String,
    pub config: PathBuf,
    pub data_dir: PathBuf,
    pub log: PathBuf,
    child: Option<Child>,
}

impl Node {
    pub fn admin_url(&self) -> String {
        format!("http://{}:50051", self.ip)
    }
    pub fn peer_addr(&self) -> String {
        format!("{}:50052", self.ip)
    }
    pub fn admin_addr(&self) -> String {
        format!("{}:50051", self.ip)
    }
    pub fn smtp_addr(&self) -> (String, u16) {
        (self.ip.clone(), 2525)
    }
    pub fn metrics_addr(&self) -> String {
        format!("{}:9090", self.ip)
    }
    pub fn is_running(&self) -> bool {
        self.child.is_some()
    }
}

pub struct TestCluster {
    pub dir: tempfile::TempDir,
    pub net: String,
    pub nodes: Vec<Node>,
    pub tuning: Tuning,
    /// Sites in their own network namespaces; dropped after the nodes are stopped.
    pub sites_net: Option<netns::SiteNetwork>,
}

impl Drop for TestCluster {
    fn drop(&mut self) {
        for n in &mut self.nodes {
            if let Some(mut c) = n.child.take() {
                let _ = c.kill();
                let _ = c.wait();
            }
        }
    }
}

/// Polls `check` until it returns `Some`, or fails after `timeout` naming `reason`.
pub async fn wait_for<T, F, Fut>(reason: &str, timeout: Duration, mut check: F) -> anyhow::Result<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = check().await {
            return Ok(v);
        }
        if Instant::now() > deadline {
            bail!("timed out after {timeout:?} waiting for: {reason}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

impl TestCluster {
    /// Writes configs for three bootstrap voters (one per site) and starts them.
    pub async fn start(tuning: Tuning) -> anyhow::Result<TestCluster> {
        let mut cluster = TestCluster::configure(tuning)?;
        for i in 0..3 {
            cluster.start_node(i)?;
        }
        cluster.wait_for_leader_everywhere().await?;
        Ok(cluster)
    }

    /// Writes configs for three bootstrap voters without starting any.
    pub fn configure(tuning: Tuning) -> anyhow::Result<TestCluster> {
        TestCluster::configure_on(tuning, false)
    }

    /// As [`TestCluster::configure`]; with `namespaces`, each site is a network namespace
    /// of its own ([`netns`]) on a private /24 instead of loopback addresses.
    pub fn configure_on(tuning: Tuning, namespaces: bool) -> anyhow::Result<TestCluster> {
        let dir = tempfile::tempdir()?;
        let (net, sites_net) = if namespaces {
            let n = NEXT_NET.fetch_add(1, Ordering::SeqCst);
            let pid = std::process::id();
            let net = format!("10.{}.{}", 200 + pid % 50, n % 250 + 1);
            netns::remove_orphans();
            let tag = format!("pg{pid}x{n}");
            let sites = netns::SiteNetwork::create(&net, &tag, &[1, 2, 3])?;
            (net, Some(sites))
        } else {
            (fresh_net(), None)
        };
        let mut cluster = TestCluster {
            dir,
            net,
            nodes: Vec::new(),
            tuning,
            sites_net,
        };
        for id in 1..=3 {
            cluster.add_node_config(id, true)?;
        }
        Ok(cluster)
    }

    fn members_toml(&self) -> String {
        (1..=3)
            .map(|id| {
                format!(
                    "  {{ id = {id}, site = \"{}\", peer = \"{}.{id}:50052\", admin = \"{}.{id}:50051\" }},\n",
                    SITES[id as usize - 1],
                    self.net,
                    self.net
                )
            })
            .collect()
    }

    /// Where node `from` dials node `to` when peers are proxied: `to`'s address, one port
    /// per caller, so each direction of each link can be cut or slowed on its own.
    pub fn link_addr(&self, from: u64, to: u64) -> String {
        match self.sites_net {
            // The proxies run in the host's namespace, on the bridge.
            Some(_) => format!("{}.254:{}", self.net, 51000 + 10 * from + to),
            None => format!("{}.{to}:{}", self.net, 51000 + from),
        }
    }

    /// The address the `n`th client connection comes from (each of several, as from many
    /// MTAs, so the per-IP connection limit is not what a load measures).
    pub fn client_source(&self, n: u64) -> String {
        match self.sites_net {
            Some(_) => format!("{}.{}", self.net, 100 + n % netns::CLIENT_SOURCES),
            None => format!("{}.{}", self.net, 100 + n % 100),
        }
    }

    fn peer_via_toml(&self, from: u64) -> String {
        if !self.tuning.proxied_peers {
            return String::new();
        }
        let links: String = (1..=3)
            .filter(|&to| to != from)
            .map(|to| {
                format!(
                    "\"{}.{to}:50052\" = \"{}\"\n",
                    self.net,
                    self.link_addr(from, to)
                )
            })
            .collect();
        format!("[cluster.peer_via]\n{links}")
    }

    /// Writes a node's config; `bootstrap` nodes are the three initial voters, others join
    /// later as learners.
    pub fn add_node_config(&mut self, id: u64, bootstrap: bool) -> anyhow::Result<usize> {
        let site = SITES[(id as usize - 1) % SITES.len()].to_owned();
        let ip = format!("{}.{id}", self.net);
        let t = &self.tuning;
        let members = if bootstrap {
            format!("bootstrap = true\nmembers = [\n{}]\n", self.members_toml())
        } else {
            String::new()
        };
        let text = format!(
            r#"[node]
id = {id}
site = "{site}"

[listen]
admin = "{ip}:50051"
peer = "{ip}:50052"
smtp = "{ip}:2525"
metrics = "{ip}:9090"

[cluster]
secret = "{SECRET}"
{members}{peer_via}
[raft]
heartbeat_interval_ms = {heartbeat}
election_timeout_min_ms = {election}
election_timeout_max_ms = {election_max}
quorum_lost_after_ms = {quorum_lost}
snapshot_after_entries = {snap}
keep_entries_after_snapshot = {keep}
commit_timeout_ms = {commit}

[lists]
sweep_interval_ms = {sweep}

[evidence]
flush_ms = 200

{tls}
[spool]
bounce_route = "smtp://{net}.200:2626"
lease_secs = {lease}
retention_secs = {retention}
delivery_tick_ms = 100
retry_first_ms = 200
retry_max_secs = 2
connect_timeout_secs = 5

[[admin.tokens]]
name = "test-admin"
token = "{ADMIN_TOKEN}"
role = "admin"

[[admin.tokens]]
name = "test-reader"
token = "{READ_TOKEN}"
role = "read-only"
"#,
            snap = t.snapshot_after_entries,
            keep = t.keep_entries_after_snapshot,
            commit = t.commit_timeout_ms,
            sweep = t.sweep_interval_ms,
            lease = t.lease_secs,
            retention = t.retention_secs,
            heartbeat = t.heartbeat_ms,
            election = t.election_timeout_ms,
            election_max = 2 * t.election_timeout_ms,
            quorum_lost = t.quorum_lost_after_ms,
            peer_via = self.peer_via_toml(id),
            net = self.net,
            tls = self.tls_section(id)?,
        );
        let config = self.dir.path().join(format!("node{id}.toml"));
        std::fs::write(&config, text)?;
        self.nodes.push(Node {
            id,
            site,
            ip,
            config,
            data_dir: self.dir.path().join(format!("data{id}")),
            log: self.dir.path().join(format!("node{id}.log")),
            child: None,
        });
        Ok(self.nodes.len() - 1)
    }

    /// The `[smtp]` section with a self-signed certificate, when `tuning.tls` asks for it.
    fn tls_section(&self, id: u64) -> anyhow::Result<String> {
        if !self.tuning.tls {
            return Ok(String::new());
        }
        let cert = rcgen::generate_simple_self_signed(vec![format!("{}.{id}", self.net)])?;
        let (c, k) = (
            self.dir.path().join(format!("cert{id}.pem")),
            self.dir.path().join(format!("key{id}.pem")),
        );
        std::fs::write(&c, cert.cert.pem())?;
        std::fs::write(&k, cert.signing_key.serialize_pem())?;
        Ok(format!(
            "[smtp]\ntls_cert = \"{}\"\ntls_key = \"{}\"\n",
            c.display(),
            k.display()
        ))
    }

    /// Starts (or restarts) node `i` from its data directory.
    pub fn start_node(&mut self, i: usize) -> anyhow::Result<()> {
        let n = &mut self.nodes[i];
        assert!(n.child.is_none(), "node {} is already running", n.id);
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&n.log)?;
        let mut command = match &self.sites_net {
            Some(sites) => {
                let mut c = Command::new("ip");
                // `ip netns exec` execs the node: the child's pid is the node's.
                c.args(["netns", "exec", &sites.namespace(n.id)])
                    .arg(bin("peage"));
                c
            }
            None => Command::new(bin("peage")),
        };
        let child = command
            .arg("run")
            .arg("--config")
            .arg(&n.config)
            .arg("--data-dir")
            .arg(&n.data_dir)
            .env("RUST_LOG", "info,openraft=warn")
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .context("spawn peage")?;
        n.child = Some(child);
        Ok(())
    }

    /// SIGKILL, no chance to flush anything.
    pub fn kill(&mut self, i: usize) {
        if let Some(mut c) = self.nodes[i].child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// SIGTERM, then waits for the node to exit (SIGKILL past `grace`).
    pub fn stop(&mut self, i: usize, grace: Duration) {
        if let Some(mut c) = self.nodes[i].child.take() {
            // SAFETY: kill(2) on the pid of a child we spawned and have not reaped yet.
            unsafe {
                libc::kill(c.id() as libc::pid_t, libc::SIGTERM);
            }
            let deadline = Instant::now() + grace;
            while matches!(c.try_wait(), Ok(None)) && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    pub fn node_log(&self, i: usize) -> String {
        std::fs::read_to_string(&self.nodes[i].log).unwrap_or_default()
    }

    pub async fn client(&self, i: usize) -> anyhow::Result<Admin> {
        Ok(connect(&self.nodes[i].admin_url(), Some(ADMIN_TOKEN)).await?)
    }

    pub async fn client_with(&self, i: usize, token: Option<&str>) -> anyhow::Result<Admin> {
        Ok(connect(&self.nodes[i].admin_url(), token).await?)
    }

    pub async fn status(&self, i: usize) -> anyhow::Result<v1::StatusReply> {
        let mut c = self.client(i).await?;
        Ok(c.status(v1::StatusRequest {}).await?.into_inner())
    }

    /// Waits until every running node knows the same leader; returns its index in `nodes`.
    pub async fn wait_for_leader_everywhere(&self) -> anyhow::Result<usize> {
        let running: Vec<usize> = (0..self.nodes.len())
            .filter(|i| self.nodes[*i].is_running())
            .collect();
        wait_for(
            "every running node knows the same leader",
            Duration::from_secs(30),
            || {
                let running = running.clone();
                async move {
                    let mut leader = None;
                    for i in running {
                        let s = self.status(i).await.ok()?;
                        let l = s.leader_id?;
                        if leader.is_some_and(|x| x != l) {
                            return None;
                        }
                        leader = Some(l);
                    }
                    let l = leader?;
                    let idx = self.nodes.iter().position(|n| n.id == l)?;
                    self.nodes[idx].is_running().then_some(idx)
                }
            },
        )
        .await
    }

    /// Waits until every running node has applied what node `from` has; returns that index.
    pub async fn sync_all(&self, from: usize) -> anyhow::Result<u64> {
        let index = self.status(from).await?.last_applied;
        for i in (0..self.nodes.len()).filter(|&i| self.nodes[i].is_running()) {
            self.wait_applied(i, index).await?;
        }
        Ok(index)
    }

    /// Every running node's state digest, read when they have all applied the same index
    /// (at least what node `from` has): background entries (lease renewals, evidence
    /// flushes) keep moving the index, so the reads are retried until they line up.
    pub async fn digests(&self, from: usize) -> anyhow::Result<Vec<String>> {
        self.sync_all(from).await?;
        let running: Vec<usize> = (0..self.nodes.len())
            .filter(|&i| self.nodes[i].is_running())
            .collect();
        wait_for(
            "digests at one applied index",
            Duration::from_secs(30),
            || {
                let running = running.clone();
                async move {
                    let mut seen = Vec::new();
                    for i in running {
                        let mut a = self.client(i).await.ok()?;
                        let d = a
                            .state_digest(v1::StateDigestRequest { stale: true })
                            .await
                            .ok()?
                            .into_inner();
                        seen.push((d.applied_index, d.sha256));
                    }
                    seen.windows(2)
                        .all(|w| w[0].0 == w[1].0)
                        .then(|| seen.into_iter().map(|(_, h)| h).collect())
                }
            },
        )
        .await
    }

    /// The cluster's downstream: a `peage sink` on `{net}.200:2626` with its own maildir.
    pub async fn start_sink(&self) -> anyhow::Result<SinkProcess> {
        let dir = tempfile::tempdir()?;
        let mut sink = SinkProcess::start(&self.sink_addr(), dir.path()).await?;
        sink._owned_dir = Some(dir);
        Ok(sink)
    }

    /// Where the cluster's downstream listens: an address of the cluster's own /24.
    pub fn sink_addr(&self) -> String {
        format!("{}.200:2626", self.net)
    }

    /// Routes `domain` to `route` (smtp://HOST:PORT) and waits until every running node
    /// knows it: before that, a node would refuse mail for the domain.
    pub async fn route_domain(&self, domain: &str, route: &str) -> anyhow::Result<()> {
        let mut a = self.client(0).await?;
        a.domain_set(v1::DomainSetRequest {
            domain: domain.into(),
            route: route.into(),
        })
        .await?;
        self.sync_all(0).await?;
        Ok(())
    }

    /// Waits until node `i` has applied at least `index`.
    pub async fn wait_applied(&self, i: usize, index: u64) -> anyhow::Result<()> {
        wait_for(
            &format!("node {} applies index {index}", self.nodes[i].id),
            Duration::from_secs(30),
            || async move {
                let s = self.status(i).await.ok()?;
                (s.last_applied >= index).then_some(())
            },
        )
        .await
    }

    pub fn data_dir(&self) -> &Path {
        self.dir.path()
    }
}

/// A list entry request for tests.
pub fn add_req(kind: v1::EntryKind, value: &str, reason: &str) -> v1::ListAddRequest {
    v1::ListAddRequest {
        list: v1::ListName::Block as i32,
        kind: kind as i32,
        value: value.to_owned(),
        reason: reason.to_owned(),
        ttl_secs: None,
    }
}

/// What Python's smtplib saw, step by step (see tests/py/smtp_send.py).
#[derive(Debug, serde::Deserialize)]
pub struct SmtpResult {
    pub ehlo: Option<(u16, String)>,
    pub mail: Option<(u16, String)>,
    #[serde(default)]
    pub rcpt: Vec<(u16, String)>,
    pub data: Option<(u16, String)>,
    pub disconnected: Option<String>,
    pub starttls: Option<(u16, String)>,
    pub cipher: Option<String>,
}

/// Sends one message with Python's smtplib (a real SMTP client).
pub fn smtplib_send(host: &str, port: u16, from: &str, rcpts: &[&str], body: &[u8]) -> SmtpResult {
    smtplib_send_with(host, port, from, rcpts, body, false)
}

/// `smtplib_send`, optionally after STARTTLS.
pub fn smtplib_send_with(
    host: &str,
    port: u16,
    from: &str,
    rcpts: &[&str],
    body: &[u8],
    starttls: bool,
) -> SmtpResult {
    let dir = tempfile::tempdir().expect("tempdir");
    let body_file = dir.path().join("body.eml");
    std::fs::write(&body_file, body).expect("write body");
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/py/smtp_send.py");
    let mut cmd = Command::new("python3");
    if starttls {
        cmd.env("PEAGE_STARTTLS", "1");
    }
    let out = cmd
        .arg(script)
        .arg(host)
        .arg(port.to_string())
        .arg(from)
        .arg(rcpts.join(","))
        .arg(&body_file)
        .output()
        .expect("run python3");
    assert!(
        out.status.success(),
        "smtp_send.py failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("smtp_send.py prints JSON")
}

/// A `peage sink` process (the downstream mail server), stopped on drop.
pub struct SinkProcess {
    child: Option<Child>,
    pub addr: String,
    pub maildir: PathBuf,
    /// The maildir's temporary directory, when the sink made its own.
    _owned_dir: Option<tempfile::TempDir>,
}

impl Drop for SinkProcess {
    fn drop(&mut self) {
        self.stop();
    }
}

impl SinkProcess {
    /// Starts a sink on `addr` storing under `maildir`; returns once it listens.
    pub async fn start(addr: &str, maildir: &Path) -> anyhow::Result<SinkProcess> {
        let child = Command::new(bin("peage"))
            .args([
                "sink",
                "--listen",
                addr,
                "--refuse-prefix",
                "reject-",
                "--maildir",
            ])
            .arg(maildir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()?;
        let sink = SinkProcess {
            child: Some(child),
            addr: addr.to_owned(),
            maildir: maildir.to_owned(),
            _owned_dir: None,
        };
        wait_for("the sink listens", Duration::from_secs(20), || async {
            std::net::TcpStream::connect(addr).ok().map(|_| ())
        })
        .await?;
        Ok(sink)
    }

    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// The messages stored for `rcpt`.
    pub fn messages(&self, rcpt: &str) -> Vec<String> {
        read_maildir(&self.maildir, rcpt)
    }
}

/// The messages in `root/<rcpt>/new`.
pub fn read_maildir(root: &Path, rcpt: &str) -> Vec<String> {
    let Ok(entries) = std::fs::read_dir(root.join(rcpt).join("new")) else {
        return Vec::new();
    };
    entries
        // Lossy: real mail is not always UTF-8, and a skipped file would look like a loss.
        .filter_map(|e| {
            Some(String::from_utf8_lossy(&std::fs::read(e.ok()?.path()).ok()?).into_owned())
        })
        .collect()
}

/// A plain HTTP/1.1 GET (the metrics endpoint): the status code and the body.
pub async fn http_get(addr: &str, path: &str) -> anyhow::Result<(u16, String)> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let exchange = async {
        let mut s = tokio::net::TcpStream::connect(addr).await?;
        s.write_all(
            format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n").as_bytes(),
        )
        .await?;
        let mut raw = Vec::new();
        s.read_to_end(&mut raw).await?;
        anyhow::Ok(String::from_utf8_lossy(&raw).into_owned())
    };
    let text = tokio::time::timeout(Duration::from_secs(10), exchange)
        .await
        .context("no HTTP reply within 10 s")??;
    let (head, body) = text.split_once("\r\n\r\n").context("no end of headers")?;
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .context("no status code")?;
    Ok((status, body.to_owned()))
}
