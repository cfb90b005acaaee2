//! The SMTP listener: accepts connections as `admission` allows (limits in total and per
//! client network, idle sessions evicted when full), runs each one's session in its own
//! task (STARTTLS included), and drains them on shutdown.

use std::net::IpAddr;
use std::sync::Arc;

use tokio::io::AsyncWriteExt;
use tokio::net::TcpListener;

use super::admission::{Admissions, ConnectionLimits, Refused, Ticket};
use super::connection::{self, Ended};
use super::protocol::{Acceptor, SessionConfig, Tls, SMTP_SESSIONS};
use crate::shutdown::Shutdown;

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
    let admissions = Admissions::new(limits);
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
        let slot = match admissions.admit(ip) {
            Ok(slot) => slot,
            Err(why) => {
                let reply: &'static [u8] = match why {
                    Refused::PerNetwork => {
                        b"421 4.7.0 Too many connections from your network, try again later\r\n"
                    }
                    Refused::Full => b"421 4.7.0 Too many connections, try again later\r\n",
                };
                tokio::spawn(async move {
                    let _ = stream.write_all(reply).await;
                });
                continue;
            }
        };
        let (config, acceptor, shutdown, tls) = (
            config.clone(),
            acceptor.clone(),
            shutdown.clone(),
            tls.clone(),
        );
        metrics::counter!(SMTP_SESSIONS).increment(1);
        sessions.spawn(async move {
            let _ = stream.set_nodelay(true);
            let ticket = slot.ticket();
            if let Err(e) =
                run_connection(stream, ip, &config, &*acceptor, tls, ticket, shutdown).await
            {
                tracing::debug!(client = %ip, error = %e, "smtp session ended with an error");
            }
        });
    }
}

/// One connection's session, and its continuation inside TLS after STARTTLS (or its whole
/// session inside TLS, with implicit TLS).
async fn run_connection<A: Acceptor>(
    stream: tokio::net::TcpStream,
    ip: IpAddr,
    config: &SessionConfig,
    acceptor: &A,
    tls: Option<tokio_rustls::TlsAcceptor>,
    ticket: &Ticket,
    shutdown: Shutdown,
) -> std::io::Result<()> {
    let plain = match (&tls, config.implicit_tls) {
        (Some(_), true) => stream,
        (offered, _) => {
            let offer = if offered.is_some() {
                Tls::Offered
            } else {
                Tls::Unavailable
            };
            let ended = connection::serve(
                stream,
                ip,
                config,
                acceptor,
                offer,
                ticket,
                shutdown.clone(),
            )
            .await?;
            let Ended::StartTls(plain) = ended else {
                return Ok(());
            };
            plain
        }
    };
    let Some(tls) = tls else {
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
            connection::serve(secure, ip, config, acceptor, active, ticket, shutdown).await?;
            Ok(())
        }
        Ok(Err(e)) => Err(e),
        Err(_) => Err(std::io::Error::other("TLS handshake timed out")),
    }
}
