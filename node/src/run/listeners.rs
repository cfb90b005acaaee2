//! The sockets a node serves, bound before anything else starts, so that a taken port is
//! reported (named by its config key) before storage is touched.

use std::net::SocketAddr;

use anyhow::Context;
use tokio::net::TcpListener;

use crate::config::Config;

/// The sockets a node serves, bound before anything else starts.
pub struct Listeners {
    pub peer: TcpListener,
    pub admin: TcpListener,
    pub smtp: Option<TcpListener>,
    /// Submission: STARTTLS (587) and implicit TLS (465).
    pub submission: [Option<TcpListener>; 2],
    pub metrics: Option<TcpListener>,
    pub portal: Option<TcpListener>,
}

impl Listeners {
    pub async fn bind(config: &Config) -> anyhow::Result<Listeners> {
        let l = &config.listen;
        Ok(Listeners {
            peer: bind("listen.peer", l.peer).await?,
            admin: bind("listen.admin", l.admin).await?,
            smtp: bind_optional("listen.smtp", l.smtp).await?,
            submission: [
                bind_optional("listen.submission", l.submission).await?,
                bind_optional("listen.submissions", l.submissions).await?,
            ],
            metrics: bind_optional("listen.metrics", l.metrics).await?,
            portal: bind_optional("listen.portal", l.portal).await?,
        })
    }
}

async fn bind(key: &str, addr: SocketAddr) -> anyhow::Result<TcpListener> {
    TcpListener::bind(addr)
        .await
        .with_context(|| format!("cannot listen on {key} {addr}"))
}

async fn bind_optional(key: &str, addr: Option<SocketAddr>) -> anyhow::Result<Option<TcpListener>> {
    match addr {
        Some(addr) => Ok(Some(bind(key, addr).await?)),
        None => Ok(None),
    }
}
