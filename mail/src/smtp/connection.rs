//! One client connection: reads with the session's timeouts, hands the bytes to the
//! session, writes its replies, and ends it on QUIT, a timeout, too many errors, STARTTLS
//! or shutdown (answered `421 4.3.0`).

use std::net::IpAddr;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use super::protocol::{Acceptor, Reply, SessionConfig, Tls};
use super::session::{Next, Session};
use crate::shutdown::Shutdown;

/// How a connection's session ended.
pub enum Ended<S> {
    Closed,
    /// The client asked for STARTTLS and got `220`: the caller wraps the stream in TLS and
    /// runs a new session with `Tls::Active`. Bytes pipelined after STARTTLS are dropped.
    StartTls(S),
}

/// Runs a session over `stream` to its end.
pub async fn serve<S, A>(
    mut stream: S,
    client_ip: IpAddr,
    config: &SessionConfig,
    acceptor: &A,
    tls: Tls,
    mut shutdown: Shutdown,
) -> std::io::Result<Ended<S>>
where
    S: AsyncRead + AsyncWrite + Unpin,
    A: Acceptor,
{
    let host = &config.hostname;
    let mut session = Session::new(config, acceptor, client_ip, tls);
    let mut out = session.greeting();
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        if !out.is_empty() {
            stream.write_all(&out).await?;
            stream.flush().await?;
            out.clear();
        }
        let n = tokio::select! {
            r = tokio::time::timeout(session.read_timeout(), stream.read(&mut buf)) => match r {
                Ok(r) => r?,
                Err(_) => {
                    Reply::new(421, format!("4.4.2 {host} timeout, closing connection"))
                        .write_to(&mut out);
                    return close(stream, &out).await;
                }
            },
            _ = shutdown.wait() => {
                Reply::new(421, format!("4.3.0 {host} shutting down, try again later"))
                    .write_to(&mut out);
                return close(stream, &out).await;
            }
        };
        if n == 0 {
            return Ok(Ended::Closed);
        }
        match session.ingest(&buf[..n], &mut out).await {
            Next::Read => {}
            Next::Close => return close(stream, &out).await,
            Next::StartTls => {
                stream.write_all(&out).await?;
                stream.flush().await?;
                return Ok(Ended::StartTls(stream));
            }
        }
    }
}

/// Writes the last replies; the caller drops the stream.
async fn close<S: AsyncWrite + Unpin>(mut stream: S, out: &[u8]) -> std::io::Result<Ended<S>> {
    stream.write_all(out).await?;
    stream.flush().await?;
    Ok(Ended::Closed)
}
