//! The local cluster under drill: three sites joined by links that can be slowed or cut,
//! and the downstream sink; and what can be read back from them.

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime};

use peage_client::v1::*;

use super::load;
use super::options::RECIPIENT;
use crate::cluster::{TestCluster, Tuning};
use crate::proxy::LinkProxy;
use crate::sink::SinkProcess;
use crate::wait::wait_for;

/// The local cluster under drill: nodes, links, sink.
pub struct Stage {
    pub cluster: TestCluster,
    /// Where the latency between sites comes from, for the report.
    pub latency_source: String,
    links: BTreeMap<(u64, u64), LinkProxy>,
    pub sink: SinkProcess,
    pub sink_dir: tempfile::TempDir,
}

impl Stage {
    pub async fn start(latency: Duration, namespaces: bool) -> anyhow::Result<Stage> {
        // Sites a WAN apart: the timing ops/README.md recommends between sites (the
        // loopback timing livelocked a loaded 2-core machine: 50 ms per AppendEntries is
        // too little once batches grow, and elections followed one another).
        let tuning = Tuning {
            snapshot_after_entries: 20_000,
            lease_secs: 5,
            heartbeat_ms: 150,
            election_timeout_ms: 750,
            quorum_lost_after_ms: 3000,
            commit_timeout_ms: 5000,
            proxied_peers: true,
            ..Tuning::default()
        };
        let mut cluster = TestCluster::configure_on(tuning, namespaces)?;
        // tc netem on the site links where the kernel has it; the proxies' delay otherwise.
        let (proxy_latency, latency_source) = match &cluster.sites_net {
            Some(sites) => match sites.add_latency(latency) {
                Ok(()) => (Duration::ZERO, "tc netem on the site links".to_owned()),
                Err(e) => (latency, format!("the TCP proxies ({e})")),
            },
            None => (latency, "the TCP proxies".to_owned()),
        };
        let mut links = BTreeMap::new();
        for from in 1..=3u64 {
            for to in (1..=3u64).filter(|&t| t != from) {
                let target = cluster.nodes[to as usize - 1].peer_addr();
                let proxy =
                    LinkProxy::start(&cluster.link_addr(from, to), &target, proxy_latency).await?;
                links.insert((from, to), proxy);
            }
        }
        for i in 0..3 {
            cluster.start_node(i)?;
        }
        cluster.wait_for_leader_everywhere().await?;
        let sink_dir = tempfile::tempdir()?;
        let sink = SinkProcess::start(&cluster.sink_addr(), sink_dir.path()).await?;
        cluster
            .route_domain("example.test", &format!("smtp://{}", cluster.sink_addr()))
            .await?;
        Ok(Stage {
            cluster,
            latency_source,
            links,
            sink,
            sink_dir,
        })
    }

    pub fn cut_site(&self, site: usize, cut: bool) -> anyhow::Result<()> {
        let id = site as u64 + 1;
        if let Some(sites) = &self.cluster.sites_net {
            return sites.set_link(id, !cut);
        }
        for ((from, to), link) in &self.links {
            if *from == id || *to == id {
                link.set_cut(cut);
            }
        }
        Ok(())
    }

    /// Index of a running node in a working majority, to read from.
    async fn reachable(&self) -> anyhow::Result<usize> {
        wait_for(
            "a node in the majority answers",
            Duration::from_secs(30),
            || async {
                for i in 0..3 {
                    if !self.cluster.nodes[i].is_running() {
                        continue;
                    }
                    let Ok(mut a) = self.cluster.client(i).await else {
                        continue;
                    };
                    if a.state_digest(StateDigestRequest { stale: false })
                        .await
                        .is_ok()
                    {
                        return Some(i);
                    }
                }
                None
            },
        )
        .await
    }

    pub async fn queued(&self, quarantine: bool) -> anyhow::Result<Vec<QueuedMessage>> {
        let i = self.reachable().await?;
        let mut a = self.cluster.client(i).await?;
        let mut out = Vec::new();
        let mut page_token = String::new();
        loop {
            let r = a
                .queue_list(QueueListRequest {
                    quarantine,
                    page_size: 1000,
                    page_token: page_token.clone(),
                    ..Default::default()
                })
                .await?
                .into_inner();
            out.extend(r.messages);
            if r.next_page_token.is_empty() {
                return Ok(out);
            }
            page_token = r.next_page_token;
        }
    }

    /// Every node's digest of its state, once they all agree (or the last disagreement).
    pub async fn converge(&self) -> (bool, String) {
        let digests = match self.reachable().await {
            Ok(from) => self.cluster.digests(from).await,
            Err(e) => Err(e),
        };
        match digests {
            Ok(d) if d.windows(2).all(|w| w[0] == w[1]) => (true, d[0].clone()),
            Ok(d) => (
                false,
                format!("different states at one applied index: {d:?}"),
            ),
            Err(e) => (false, e.to_string()),
        }
    }

    /// Copies in the sink per drill id, and when each id's first copy was stored.
    pub fn holdings_in_sink(&self) -> (BTreeMap<u64, usize>, BTreeMap<u64, SystemTime>) {
        let (mut copies, mut first) = (BTreeMap::new(), BTreeMap::<u64, SystemTime>::new());
        let dir = self.sink_dir.path().join(RECIPIENT).join("new");
        for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
            let Ok(bytes) = std::fs::read(entry.path()) else {
                continue;
            };
            let Some(id) = load::drill_id(&String::from_utf8_lossy(&bytes)) else {
                continue;
            };
            *copies.entry(id).or_insert(0) += 1;
            if let Ok(at) = entry.metadata().and_then(|m| m.modified()) {
                let t = first.entry(id).or_insert(at);
                *t = (*t).min(at);
            }
        }
        (copies, first)
    }
}

/// What kept the sites apart in this run, and where the latency came from, for the report.
pub fn mode(namespaces: bool, latency: Duration, source: &str) -> String {
    let ms = latency.as_millis();
    if namespaces {
        format!(
            "netns: one network namespace per site, veth links to a bridge, partitions cut the link; \
             {ms} ms one-way latency between sites from {source}"
        )
    } else {
        format!(
            "loopback: sites on 127.x addresses; one fault-injecting TCP proxy per direction of each \
             link between sites, partitions cut in the proxies; {ms} ms one-way latency from {source}"
        )
    }
}
