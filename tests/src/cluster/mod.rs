//! A test cluster: real `peage` processes on their own loopback addresses (or one network
//! namespace per site), in temporary directories, started, stopped with SIGTERM or killed
//! with SIGKILL on demand, and always stopped on drop. `config` writes their configs,
//! `waits` the conditions tests wait for.

mod accounts;
mod config;
mod tls;
mod tuning;
mod waits;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context;

use peage_client::v1;
use peage_client::{connect_with, Access, Admin};

use crate::binaries::bin;
use crate::netns;
use crate::sink::SinkProcess;
pub use tuning::Tuning;

pub const ADMIN_TOKEN: &str = "test-admin-token-0123456789";
pub const READ_TOKEN: &str = "test-read-only-token-0123456789";
pub const SECRET: &str = "test-cluster-secret-0123456789";
pub const SITES: [&str; 4] = ["paris", "roubaix", "ariege", "lyon"];

static NEXT_NET: AtomicU32 = AtomicU32::new(0);

/// A /24 of loopback addresses no other cluster of this test run uses.
fn fresh_net() -> String {
    let n = NEXT_NET.fetch_add(1, Ordering::SeqCst);
    let pid = std::process::id();
    format!("127.{}.{}", 10 + (pid % 200), n % 250 + 1)
}

pub struct Node {
    pub id: u64,
    pub site: String,
    pub ip: String,
    pub config: PathBuf,
    pub data_dir: PathBuf,
    pub log: PathBuf,
    /// Runs the node with its wall clock shifted (libfaketime's offset, e.g. `-20s`), as a
    /// machine whose clock drifted would; monotonic time is left alone.
    pub clock_offset: Option<String>,
    /// One of the three initial voters (a learner joins later).
    pub bootstrap: bool,
    /// The cluster CA when the admin API runs TLS.
    pub ca: Option<PathBuf>,
    child: Option<Child>,
}

impl Node {
    pub fn admin_url(&self) -> String {
        let scheme = if self.ca.is_some() { "https" } else { "http" };
        format!("{scheme}://{}:50051", self.ip)
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

    /// The node's resident memory in bytes (VmRSS), while it runs.
    pub fn rss_bytes(&self) -> Option<u64> {
        let pid = self.child.as_ref()?.id();
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
        let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
        let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
        Some(kib * 1024)
    }
}

/// Debian's libfaketime (package `faketime`, installed by scripts/ensure-deps).
const FAKETIME_LIBRARY: &str = "/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1";

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

    /// Writes a node's config; `bootstrap` nodes are the three initial voters, others join
    /// later as learners.
    pub fn add_node_config(&mut self, id: u64, bootstrap: bool) -> anyhow::Result<usize> {
        let site = SITES[(id as usize - 1) % SITES.len()].to_owned();
        let config = self.dir.path().join(format!("node{id}.toml"));
        self.write_node_config(id, &site, bootstrap, &config, |_| {})?;
        self.nodes.push(Node {
            id,
            site,
            ip: format!("{}.{id}", self.net),
            config,
            data_dir: self.dir.path().join(format!("data{id}")),
            log: self.dir.path().join(format!("node{id}.log")),
            clock_offset: None,
            bootstrap,
            ca: self.ca_path(),
            child: None,
        });
        Ok(self.nodes.len() - 1)
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
        if let Some(offset) = &n.clock_offset {
            command
                .env("LD_PRELOAD", FAKETIME_LIBRARY)
                .env("FAKETIME", offset)
                .env("FAKETIME_DONT_FAKE_MONOTONIC", "1");
        }
        let child = command
            .arg("run")
            .arg("--config")
            .arg(&n.config)
            .arg("--data-dir")
            .arg(&n.data_dir)
            // The node's own default filter, whatever the test runner's RUST_LOG says.
            .env_remove("RUST_LOG")
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

    /// Sends `signal` to node `i`, if it runs.
    pub fn signal(&self, i: usize, signal: libc::c_int) {
        if let Some(c) = &self.nodes[i].child {
            // SAFETY: kill(2) on the pid of a child we spawned and have not reaped yet.
            unsafe {
                libc::kill(c.id() as libc::pid_t, signal);
            }
        }
    }

    /// SIGTERM, then waits for the node to exit (SIGKILL past `grace`); whether it exited
    /// by itself within `grace`.
    pub fn stop(&mut self, i: usize, grace: Duration) -> bool {
        let Some(mut c) = self.nodes[i].child.take() else {
            return true;
        };
        // SAFETY: kill(2) on the pid of a child we spawned and have not reaped yet.
        unsafe {
            libc::kill(c.id() as libc::pid_t, libc::SIGTERM);
        }
        let deadline = Instant::now() + grace;
        while matches!(c.try_wait(), Ok(None)) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
        let exited = matches!(c.try_wait(), Ok(Some(_)));
        let _ = c.kill();
        let _ = c.wait();
        exited
    }

    /// How node `i` exited, if it has (it is then no longer running); `None` while it runs.
    pub fn exit_status(&mut self, i: usize) -> Option<std::process::ExitStatus> {
        let status = self.nodes[i].child.as_mut()?.try_wait().ok()??;
        self.nodes[i].child = None;
        Some(status)
    }

    pub fn node_log(&self, i: usize) -> String {
        std::fs::read_to_string(&self.nodes[i].log).unwrap_or_default()
    }

    pub async fn client(&self, i: usize) -> anyhow::Result<Admin> {
        self.client_with(i, Some(ADMIN_TOKEN)).await
    }

    pub async fn client_with(&self, i: usize, token: Option<&str>) -> anyhow::Result<Admin> {
        let ca_pem = match &self.nodes[i].ca {
            Some(ca) => Some(std::fs::read(ca)?),
            None => None,
        };
        let access = Access {
            token: token.map(str::to_owned),
            ca_pem,
        };
        Ok(connect_with(&self.nodes[i].admin_url(), &access).await?)
    }

    pub async fn status(&self, i: usize) -> anyhow::Result<v1::StatusReply> {
        let mut c = self.client(i).await?;
        Ok(c.status(v1::StatusRequest {}).await?.into_inner())
    }

    /// The cluster's downstream: a `peage sink` on `{net}.200:2626` with its own maildir.
    pub async fn start_sink(&self) -> anyhow::Result<SinkProcess> {
        SinkProcess::start_in_temp_dir(&self.sink_addr(), 20).await
    }

    /// As `start_sink`, taking at most `per_ip` connections from each node at once.
    pub async fn start_sink_limited(&self, per_ip: usize) -> anyhow::Result<SinkProcess> {
        SinkProcess::start_in_temp_dir(&self.sink_addr(), per_ip).await
    }

    /// One series (`name` or `name{labels}`) of node `i`'s `/metrics`; None when absent.
    pub async fn metric(&self, i: usize, series: &str) -> Option<f64> {
        let (_, text) = crate::http::http_get(&self.nodes[i].metrics_addr(), "/metrics")
            .await
            .ok()?;
        crate::http::metric_value(&text, series)
    }

    /// Where the cluster's downstream listens: an address of the cluster's own /24.
    pub fn sink_addr(&self) -> String {
        format!("{}.200:2626", self.net)
    }

    /// A cluster that authenticates senders against a DNS server of its own serving `txt`
    /// (name → TXT record: SPF, DKIM keys, DMARC), with `example.test` routed to the sink.
    /// The server must outlive the cluster's use.
    pub async fn start_authenticating(
        tuning: Tuning,
        txt: &[(&str, &str)],
    ) -> anyhow::Result<(TestCluster, crate::dns::DnsServer)> {
        let dns = crate::dns::DnsServer::start("127.0.0.1", txt)?;
        let c = TestCluster::start(Tuning {
            dns_server: Some(dns.addr),
            ..tuning
        })
        .await?;
        c.route_local_domain().await?;
        Ok((c, dns))
    }

    /// Routes `example.test`, the tests' local domain, to the cluster's sink address.
    pub async fn route_local_domain(&self) -> anyhow::Result<()> {
        self.route_domain("example.test", &format!("smtp://{}", self.sink_addr()))
            .await
    }

    /// Routes `domain` to `route` (smtp://HOST:PORT) and waits until every running node
    /// knows it: before that, a node would refuse mail for the domain.
    pub async fn route_domain(&self, domain: &str, route: &str) -> anyhow::Result<()> {
        let mut a = self.client(0).await?;
        let set = a
            .domain_set(v1::DomainSetRequest {
                domain: domain.into(),
                route: route.into(),
                ..Default::default()
            })
            .await?
            .into_inner();
        // The write's own index: node 0 itself may not have applied it when it answers.
        for i in (0..self.nodes.len()).filter(|&i| self.nodes[i].is_running()) {
            self.wait_applied(i, set.log_index).await?;
        }
        Ok(())
    }

    /// Adds node `id` as a learner: writes its config, starts it, and has node `through`
    /// add it to the membership. Returns its index in `nodes`.
    pub async fn add_learner(&mut self, id: u64, through: usize) -> anyhow::Result<usize> {
        let i = self.add_node_config(id, false)?;
        self.start_node(i)?;
        let n = &self.nodes[i];
        let add = v1::AddLearnerRequest {
            node_id: id,
            peer_addr: n.peer_addr(),
            admin_addr: n.admin_addr(),
            site: n.site.clone(),
        };
        self.client(through).await?.add_learner(add).await?;
        Ok(i)
    }

    /// The message bodies node `i` holds (files in its blob store's two-hex-digit shards;
    /// temporary files and the journal aside).
    pub fn blob_files(&self, i: usize) -> Vec<PathBuf> {
        let root = self.nodes[i].data_dir.join("blobs");
        let shards = std::fs::read_dir(root).into_iter().flatten().flatten();
        shards
            .filter(|s| peage_node::blobs::is_shard(&s.file_name()))
            .flat_map(|s| std::fs::read_dir(s.path()).into_iter().flatten().flatten())
            .map(|f| f.path())
            .collect()
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
        ..Default::default()
    }
}

impl TestCluster {
    /// `peagectl ARGS` against node `node`'s admin API with the admin token.
    pub fn peagectl(&self, node: usize, args: &[&str]) -> std::process::Output {
        self.peagectl_as(node, ADMIN_TOKEN, args)
    }

    /// `peagectl ARGS` against node `node`'s admin API with `token`.
    pub fn peagectl_as(&self, node: usize, token: &str, args: &[&str]) -> std::process::Output {
        self.peagectl_command(node, token, args)
            .output()
            .expect("run peagectl")
    }

    /// `peagectl ARGS` against node `node` as admin, with `input` on its standard input.
    pub fn peagectl_with_input(&self, node: usize, args: &[&str], input: &str) -> Output {
        use std::io::Write;
        let mut child = self
            .peagectl_command(node, ADMIN_TOKEN, args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("run peagectl");
        let mut stdin = child.stdin.take().expect("piped");
        stdin.write_all(input.as_bytes()).expect("write stdin");
        drop(stdin);
        child.wait_with_output().expect("peagectl finishes")
    }

    fn peagectl_command(&self, node: usize, token: &str, args: &[&str]) -> Command {
        let mut command = Command::new(crate::binaries::bin("peagectl"));
        if let Some(ca) = &self.nodes[node].ca {
            command.arg("--ca").arg(ca);
        }
        command
            .arg("--addr")
            .arg(self.nodes[node].admin_url())
            .env("PEAGE_TOKEN", token)
            .args(args);
        command
    }
}
