//! The SMTP listener: accepts connections within the limits (in total and per client IP),
//! runs each one's session in its own task (STARTTLS included), and drains them on
//! shutdown.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};

use tokio::io::AsyncWriteExt;
use tokio::net::TcpListener;

use super::connection::{self, Ended};
use super::protocol::{Acceptor, SessionConfig, Tls, SMTP_SESSIONS};
use crate::shutdown::Shutdown;
use crate::sync::lock;

/// Connection limits of a listener.
#[derive(Debug, Clone, Copy)]
pub struct ConnectionLimits {
    pub max_connections: usize,
    pub max_per_ip: usize,
}

impl Default for ConnectionLimits {
    fn default() -> Self {
        ConnectionLimits {
            max_connections: 1000,
            max_per_ip: 20,
        }
    }
}

/// Counts open connections; a slot is released when its guard drops.
#[derive(Default)]
struct Slots {
    total: usize,
    per_ip: HashMap<IpAddr, usize>,
}

struct SlotGuard {
    slots: Arc<Mutex<Slots>>,
    ip: IpAddr,
}

impl Drop for SlotGuard {
    fn drop(&mut self) {
        let mut s = lock(&self.slots);
        s.total -= 1;
        if let Some(n) = s.per_ip.get_mut(&self.ip) {
            *n -= 1;
            if *n == 0 {
                s.per_ip.remove(&self.ip);
            }
        }
    }
}

fn take_slot(slots: &Arc<Mutex<Slots>>, ip: IpAddr, limits: ConnectionLimits) -> Option<SlotGuard> {
    let mut s = lock(slots);
    let mine = s.per_ip.get(&ip).copied().unwrap_or(0);
    if s.total >= limits.max_connections || mine >= limits.max_per_ip {
        return None;
    }
    s.total += 1;
    *s.per_ip.entry(ip).or_default() += 1;
    Some(SlotGuard {
        slots: slots.clone(),
        ip,
    })
}

/// How long a stopping listener lets its sessions finish (a message being committed gets
/// its reply; idle sessions are told `421` at once).
const STOP_GRACE: std::time::Duration = std::time::Duration::from_secs(15);

/// Accepts connections until `shutdown`, then waits (up to a grace period) for the
/// sessions in progress; each session runs in its own task, so a slow or hostile client
/// never holds up another.
pub async fn serve<A: Acceptor>(
    listener: TcpListener,
    config: Arc<SessionConfig>,
    limits: ConnectionLimits,
    acceptor: Arc<A>,
    tls: Option<tokio_rustls::TlsAcceptor>,
    mut shutdown: Shutdown,
) {
    let slots = Arc::new(Mutex::new(Slots::default()));
    let mut sessions = tokio::task::JoinSet::new();
    loop {
        while sessions.try_join_next().is_some() {}
        let (mut stream, peer) = tokio::select! {
            r = listener.accept() => match r {
                Ok(c) => c,
                Err(e) => {
                    // Out of file descriptors and the like: log and keep serving.
                    tracing::warn!(error = %e, "smtp accept failed");
                    continue;
                }
            },
            _ = shutdown.wait() => {
                let finish = async { while sessions.join_next().await.is_some() {} };
                if tokio::time::timeout(STOP_GRACE, finish).await.is_err() {
                    tracing::warn!("stopping with SMTP sessions still open");
                }
                return;
            }
        };
        let ip = peer.ip();
        let Some(slot) = take_slot(&slots, ip, limits) else {
            tokio::spawn(async move {
                let _ = stream
                    .write_all(b"421 4.7.0 Too many connections, try again later\r\n")
                    .await;
            });
            continue;
        };
        let (config, acceptor, shutdown, tls) = (
            config.clone(),
            acceptor.clone(),
            shutdown.clone(),
            tls.clone(),
        );
        metrics::counter!(SMTP_SESSIONS).increment(1);
        sessions.spawn(async move {
            let _slot = slot;
            let _ = stream.set_nodelay(true);
            if let Err(e) = run_connection(stream, ip, &config, &*acceptor, tls, shutdown).await {
                tracing::debug!(client = %ip, error = %e, "smtp session ended with an error");
            }
        });
    }
}

/// One connection's session, and its continuation inside TLS after STARTTLS.
async fn run_connection<A: Acceptor>(
    stream: tokio::net::TcpStream,
    ip: IpAddr,
    config: &SessionConfig,
    acceptor: &A,
    tls: Option<tokio_rustls::TlsAcceptor>,
    shutdown: Shutdown,
) -> std::io::Result<()> {
    let offer = if tls.is_some() {
        Tls::Offered
    } else {
        Tls::Unavailable
    };
    let ended = connection::serve(stream, ip, config, acceptor, offer, shutdown.clone()).await?;
    let (Ended::StartTls(plain), Some(tls)) = (ended, tls) else {
        return Ok(());
    };
    // The handshake gets the command timeout: a client that stalls it holds nothing but
    // its own slot.
    match tokio::time::timeout(config.command_timeout, tls.accept(plain)).await {
        Ok(Ok(secure)) => {
            let (_, session) = secure.get_ref();
            let active = Tls::Active {
                version: session
                    .protocol_version()
                    .and_then(|v| v.as_str())
                    .unwrap_or("TLS"),
                cipher: session
                    .negotiated_cipher_suite()
                    .and_then(|c| c.suite().as_str())
                    .unwrap_or("unknown"),
            };
            connection::serve(secure, ip, config, acceptor, active, shutdown).await?;
            Ok(())
        }
        Ok(Err(e)) => Err(e),
        Err(_) => Err(std::io::Error::other("TLS handshake timed out")),
    }
}
