//! A fault-injecting TCP proxy for one direction of one link between sites: it adds a fixed
//! one-way latency to every byte, and when cut it holds every byte back until healed
//! (connections stay open and silent, as across a WAN partition; nothing is reset). In front
//! of a downstream, it can also turn one site away.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;

/// A running proxy; stops (with every connection it carries) when dropped.
pub struct LinkProxy {
    cut: watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
}

impl LinkProxy {
    /// Listens on `listen` and forwards each connection to `target`, `latency` later.
    pub async fn start(listen: &str, target: &str, latency: Duration) -> anyhow::Result<LinkProxy> {
        LinkProxy::spawn(listen, target, latency, None).await
    }

    /// Forwards connections to `target` at once, but closes those coming from `refused`
    /// as soon as they are accepted: a downstream that one site cannot reach.
    pub async fn start_refusing(
        listen: &str,
        target: &str,
        refused: IpAddr,
    ) -> anyhow::Result<LinkProxy> {
        LinkProxy::spawn(listen, target, Duration::ZERO, Some(refused)).await
    }

    async fn spawn(
        listen: &str,
        target: &str,
        latency: Duration,
        refused: Option<IpAddr>,
    ) -> anyhow::Result<LinkProxy> {
        let listener = TcpListener::bind(listen).await?;
        let (cut, cut_rx) = watch::channel(false);
        let target: Arc<str> = target.into();
        let task = tokio::spawn(async move {
            let mut connections = tokio::task::JoinSet::new();
            while let Ok((client, from)) = listener.accept().await {
                if Some(from.ip()) == refused {
                    continue;
                }
                let (target, cut_rx) = (target.clone(), cut_rx.clone());
                connections.spawn(async move {
                    let mut healed = cut_rx.clone();
                    if healed.wait_for(|c| !*c).await.is_err() {
                        return;
                    }
                    let Ok(server) = TcpStream::connect(&*target).await else {
                        return;
                    };
                    let _ = client.set_nodelay(true);
                    let _ = server.set_nodelay(true);
                    let (cr, cw) = client.into_split();
                    let (sr, sw) = server.into_split();
                    tokio::select! {
                        _ = pipe(cr, sw, latency, cut_rx.clone()) => {}
                        _ = pipe(sr, cw, latency, cut_rx) => {}
                    }
                });
                // Reap finished connections so the set does not grow without bound.
                while connections.try_join_next().is_some() {}
            }
        });
        Ok(LinkProxy { cut, task })
    }

    /// Cuts (true) or heals (false) the link.
    pub fn set_cut(&self, cut: bool) {
        self.cut.send_replace(cut);
    }
}

impl Drop for LinkProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Copies one direction with a fixed delay, preserving order; while cut, bytes wait.
async fn pipe(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    latency: Duration,
    mut cut: watch::Receiver<bool>,
) {
    let (tx, mut rx) = mpsc::unbounded_channel::<(Instant, Vec<u8>)>();
    let writer = async move {
        while let Some((due, bytes)) = rx.recv().await {
            tokio::time::sleep_until(due).await;
            if to.write_all(&bytes).await.is_err() {
                return;
            }
        }
    };
    let reader = async move {
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            match from.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => {
                    if cut.wait_for(|c| !*c).await.is_err() {
                        return;
                    }
                    if tx
                        .send((Instant::now() + latency, buf[..n].to_vec()))
                        .is_err()
                    {
                        return;
                    }
                }
            }
        }
    };
    tokio::join!(reader, writer);
}
