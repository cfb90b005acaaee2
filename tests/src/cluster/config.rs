//! A test node's configuration, written with the node's own config types (serialised to
//! TOML), so a change to the config is a compile error here rather than a node that
//! refuses to start.

use std::collections::BTreeMap;
use std::path::Path;

use peage_node::config::{
    AdminSection, ClusterSection, Config, DnsSection, EvidenceSection, ListenSection, ListsSection,
    MemberConfig, NodeSection, OutboundSection, PortalSection, RaftSection, Role, SmtpSection,
    SpoolSection, TokenConfig,
};

use super::{TestCluster, ADMIN_TOKEN, READ_TOKEN, SECRET, SITES};

/// Where node `id` of a cluster on `net` listens: admin, peer, SMTP and metrics.
fn node_addr(net: &str, id: u64, port: u16) -> String {
    format!("{net}.{id}:{port}")
}

fn parse<T: std::str::FromStr>(addr: String) -> T
where
    T::Err: std::fmt::Debug,
{
    addr.parse().expect("test addresses are well formed")
}

impl TestCluster {
    /// The three initial voters, one per site.
    fn initial_members(&self) -> Vec<MemberConfig> {
        (1..=3)
            .map(|id| MemberConfig {
                id,
                site: SITES[id as usize - 1].to_owned(),
                peer: node_addr(&self.net, id, 50052),
                admin: node_addr(&self.net, id, 50051),
            })
            .collect()
    }

    /// With proxied peers, where node `from` dials each other voter.
    fn peer_via(&self, from: u64) -> BTreeMap<String, String> {
        if !self.tuning.proxied_peers {
            return BTreeMap::new();
        }
        (1..=3)
            .filter(|&to| to != from)
            .map(|to| (node_addr(&self.net, to, 50052), self.link_addr(from, to)))
            .collect()
    }

    /// Writes node `id`'s config to `path`, `edit` applied, as TOML checked by parsing it
    /// back the way the node will.
    pub(super) fn write_node_config(
        &self,
        id: u64,
        site: &str,
        bootstrap: bool,
        path: &Path,
        edit: impl FnOnce(&mut Config),
    ) -> anyhow::Result<()> {
        let mut config = self.node_config(id, site, bootstrap)?;
        edit(&mut config);
        let text = toml::to_string(&config)?;
        Config::parse(&text, path)?;
        std::fs::write(path, text)?;
        Ok(())
    }

    /// Rewrites node `i`'s config with `edit` applied, before the node (re)starts: what one
    /// node alone is configured with (the seed routes of a fresh cluster, say).
    pub fn edit_node_config(&self, i: usize, edit: impl FnOnce(&mut Config)) -> anyhow::Result<()> {
        let n = &self.nodes[i];
        self.write_node_config(n.id, &n.site, n.bootstrap, &n.config, edit)
    }

    /// Node `id`'s config; `bootstrap` nodes are the three initial voters, others join
    /// later as learners.
    fn node_config(&self, id: u64, site: &str, bootstrap: bool) -> anyhow::Result<Config> {
        let t = &self.tuning;
        let ip = format!("{}.{id}", self.net);
        Ok(Config {
            tls: self.node_tls(id)?,
            outbound: OutboundSection {
                notify: Some("abuse@example.test".into()),
                // The sinks a test starts listen there.
                mx_port: 2626,
                ..t.outbound.clone()
            },
            node: NodeSection {
                id,
                site: site.to_owned(),
                data_dir: None,
            },
            listen: ListenSection {
                admin: parse(format!("{ip}:50051")),
                peer: parse(format!("{ip}:50052")),
                smtp: Some(parse(format!("{ip}:2525"))),
                // Submission needs the STARTTLS certificate `Tuning::tls` makes.
                submission: t.tls.then(|| parse(format!("{ip}:587"))),
                submissions: t.tls.then(|| parse(format!("{ip}:465"))),
                metrics: Some(parse(format!("{ip}:9090"))),
                portal: t.tls.then(|| parse(format!("{ip}:8443"))),
            },
            cluster: ClusterSection {
                secret: SECRET.into(),
                bootstrap,
                members: if bootstrap {
                    self.initial_members()
                } else {
                    Vec::new()
                },
                peer_via: self.peer_via(id),
            },
            raft: RaftSection {
                heartbeat_interval_ms: t.heartbeat_ms,
                election_timeout_min_ms: t.election_timeout_ms,
                election_timeout_max_ms: t.election_timeout_ms * 4 / 3,
                quorum_lost_after_ms: t.quorum_lost_after_ms,
                snapshot_after_entries: t.snapshot_after_entries,
                keep_entries_after_snapshot: t.keep_entries_after_snapshot,
                commit_timeout_ms: t.commit_timeout_ms,
                ..RaftSection::default()
            },
            admin: AdminSection {
                tokens: vec![
                    token("test-admin", ADMIN_TOKEN, Role::Operator),
                    token("test-reader", READ_TOKEN, Role::Auditor),
                ],
                ..AdminSection::default()
            },
            lists: ListsSection {
                sweep_interval_ms: t.sweep_interval_ms,
                ..ListsSection::default()
            },
            smtp: self.smtp_section(id)?,
            spool: SpoolSection {
                bounce_route: Some(format!("smtp://{}.200:2626", self.net)),
                // Each node delivers from its own address, as each site would.
                bind_address: Some(format!("{}.{id}", self.net).parse()?),
                lease_secs: t.lease_secs,
                retention_secs: t.retention_secs,
                delivery_tick_ms: 100,
                retry_first_ms: t.retry_first_ms,
                retry_max_secs: t.retry_first_ms.div_ceil(1000).max(2),
                connect_timeout_secs: 5,
                max_connections_per_route: t.max_connections_per_route,
                body_timeout_ms: t.body_timeout_ms,
                body_sweep_secs: 1,
                body_grace_secs: t.body_grace_secs.unwrap_or_else(|| {
                    (2 * (t.body_timeout_ms + t.commit_timeout_ms)).div_ceil(1000)
                }),
                ..SpoolSection::default()
            },
            evidence: EvidenceSection {
                flush_ms: 200,
                ..EvidenceSection::default()
            },
            dns: DnsSection {
                authenticate: t.dns_server.is_some(),
                servers: t.dns_server.into_iter().collect(),
                blocklists: t.blocklists.clone(),
                ..DnsSection::default()
            },
            tracking: Default::default(),
            portal: PortalSection {
                digest_check_ms: 200,
                digest_pause_ms: t.digest_pause_ms,
                ..PortalSection::default()
            },
        })
    }

    /// The SMTP section: with a self-signed certificate when `tuning.tls` asks for it.
    fn smtp_section(&self, id: u64) -> anyhow::Result<SmtpSection> {
        if !self.tuning.tls {
            return Ok(SmtpSection::default());
        }
        let cert = rcgen::generate_simple_self_signed(vec![format!("{}.{id}", self.net)])?;
        let (c, k) = (
            self.dir.path().join(format!("cert{id}.pem")),
            self.dir.path().join(format!("key{id}.pem")),
        );
        std::fs::write(&c, cert.cert.pem())?;
        std::fs::write(&k, cert.signing_key.serialize_pem())?;
        Ok(SmtpSection {
            tls_cert: Some(c),
            tls_key: Some(k),
            ..SmtpSection::default()
        })
    }
}

fn token(name: &str, token: &str, role: Role) -> TokenConfig {
    TokenConfig {
        name: name.into(),
        token: token.into(),
        role,
        domains: Vec::new(),
    }
}
