//! Sites as separate network hosts: one Linux network namespace per site, each joined to a
//! bridge in the host's namespace by a veth pair. Taking a site's veth down cuts it off from
//! everything (the other sites, clients, the downstream), as losing its uplink would. Needs
//! root and `ip netns`; [`available`] says whether this machine allows it.

use std::process::Command;

use anyhow::{bail, Context};

/// The sites' private network: `{net}.{id}` inside each site's namespace, and on the
/// bridge `{net}.254` (proxies), `{net}.200` (downstream sink) and `{net}.100`–`.119`
/// (load generator sources).
pub struct SiteNetwork {
    tag: String,
    pub net: String,
    sites: Vec<u64>,
}

/// The host addresses clients may send from, on the bridge.
pub const CLIENT_SOURCES: u64 = 20;

fn ip(args: &[&str]) -> anyhow::Result<()> {
    let out = Command::new("ip")
        .args(args)
        .output()
        .context("cannot run `ip` (iproute2)")?;
    if !out.status.success() {
        bail!(
            "ip {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(())
}

/// Whether namespaces can be made here: root, `ip` present, and a throwaway one works.
pub fn available() -> bool {
    // SAFETY: geteuid(2) has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        return false;
    }
    let probe = format!("pgprobe{}", std::process::id());
    let ok = ip(&["netns", "add", &probe]).is_ok();
    if ok {
        let _ = ip(&["netns", "del", &probe]);
    }
    ok
}

/// Deletes what a drill or test killed before it could clean up left behind: namespaces,
/// links and bridges tagged `pg{PID}x…` whose process is gone.
pub fn remove_orphans() {
    let Ok(out) = Command::new("ip").args(["-o", "link", "show"]).output() else {
        return;
    };
    let links = String::from_utf8_lossy(&out.stdout).into_owned();
    let namespaces = Command::new("ip")
        .args(["netns", "list"])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
        .unwrap_or_default();
    let dead = |name: &str| -> bool {
        let Some(pid) = name
            .strip_prefix("pg")
            .and_then(|r| r.split('x').next())
            .and_then(|p| p.parse::<i32>().ok())
        else {
            return false;
        };
        // SAFETY: kill(2) with signal 0 only checks whether the process exists.
        unsafe { libc::kill(pid, 0) != 0 }
    };
    for ns in namespaces
        .lines()
        .filter_map(|l| l.split_whitespace().next())
    {
        if dead(ns) {
            let _ = ip(&["netns", "del", ns]);
        }
    }
    for link in links.lines().filter_map(|l| l.split(": ").nth(1)) {
        let name = link.split('@').next().unwrap_or(link);
        if dead(name) {
            let _ = ip(&["link", "del", name]);
        }
    }
}

impl SiteNetwork {
    /// Creates the bridge and one namespace per site id on `net` (a /24 like `10.77.3`).
    pub fn create(net: &str, tag: &str, sites: &[u64]) -> anyhow::Result<SiteNetwork> {
        let me = SiteNetwork {
            tag: tag.to_owned(),
            net: net.to_owned(),
            sites: Vec::new(),
        };
        let mut me = me;
        let bridge = me.bridge();
        ip(&["link", "add", &bridge, "type", "bridge"])?;
        ip(&["addr", "add", &format!("{net}.254/24"), "dev", &bridge])?;
        ip(&["addr", "add", &format!("{net}.200/32"), "dev", &bridge])?;
        for s in 0..CLIENT_SOURCES {
            ip(&[
                "addr",
                "add",
                &format!("{net}.{}/32", 100 + s),
                "dev",
                &bridge,
            ])?;
        }
        ip(&["link", "set", &bridge, "up"])?;
        for &id in sites {
            let (ns, host, inner) = (me.namespace(id), me.host_link(id), format!("{tag}n{id}"));
            ip(&["netns", "add", &ns])?;
            me.sites.push(id);
            ip(&["link", "add", &host, "type", "veth", "peer", "name", &inner])?;
            ip(&["link", "set", &host, "master", &bridge])?;
            ip(&["link", "set", &host, "up"])?;
            ip(&["link", "set", &inner, "netns", &ns])?;
            ip(&[
                "-n",
                &ns,
                "addr",
                "add",
                &format!("{net}.{id}/24"),
                "dev",
                &inner,
            ])?;
            ip(&["-n", &ns, "link", "set", &inner, "up"])?;
            ip(&["-n", &ns, "link", "set", "lo", "up"])?;
        }
        Ok(me)
    }

    fn bridge(&self) -> String {
        format!("{}b", self.tag)
    }

    fn host_link(&self, id: u64) -> String {
        format!("{}h{id}", self.tag)
    }

    pub fn namespace(&self, id: u64) -> String {
        format!("{}-site{id}", self.tag)
    }

    /// Delays every packet into each site by `latency` with tc netem on the site links
    /// (so `latency` one way between any two sites); the error says why not (a kernel
    /// without sch_netem answers "Specified qdisc kind is unknown").
    pub fn add_latency(&self, latency: std::time::Duration) -> anyhow::Result<()> {
        let delay = format!("{}us", latency.as_micros());
        for &id in &self.sites {
            let link = self.host_link(id);
            Command::new("tc")
                .arg("-V")
                .output()
                .context("tc (iproute2) is not installed")?;
            let out = Command::new("tc")
                .args([
                    "qdisc", "add", "dev", &link, "root", "netem", "delay", &delay,
                ])
                .output()?;
            if !out.status.success() {
                bail!("tc netem: {}", String::from_utf8_lossy(&out.stderr).trim());
            }
        }
        Ok(())
    }

    /// Cuts (`up = false`) or restores site `id`'s only link.
    pub fn set_link(&self, id: u64, up: bool) -> anyhow::Result<()> {
        ip(&[
            "link",
            "set",
            &self.host_link(id),
            if up { "up" } else { "down" },
        ])
    }
}

impl Drop for SiteNetwork {
    fn drop(&mut self) {
        for &id in &self.sites {
            let _ = ip(&["link", "del", &self.host_link(id)]);
            let _ = ip(&["netns", "del", &self.namespace(id)]);
        }
        let _ = ip(&["link", "del", &self.bridge()]);
    }
}
