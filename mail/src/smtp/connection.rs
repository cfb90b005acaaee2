//! One client connection: reads with the session's timeouts (shorter under stress, never
//! past the session's deadline, never slower than the minimum data rate), hands the bytes
//! to the session, writes its replies, and ends it on QUIT, a timeout, too many errors,
//! STARTTLS, eviction to make room for another client, or shutdown (answered `421`).

use std::net::IpAddr;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::time::Instant;

use super::admission::Ticket;
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

/// Why the connection stops reading.
enum Cut {
    Idle,
    Deadline,
    TooSlow,
}

/// Runs a session over `stream` to its end.
pub async fn serve<S, A>(
    mut stream: S,
    client_ip: IpAddr,
    config: &SessionConfig,
    acceptor: &A,
    tls: Tls,
    ticket: &Ticket,
    mut shutdown: Shutdown,
) -> std::io::Result<Ended<S>>
where
    S: AsyncRead + AsyncWrite + Unpin,
    A: Acceptor,
{
    let host = &config.hostname;
    let deadline = Instant::now() + config.session_deadline;
    let mut session = Session::new(config, acceptor, client_ip, tls);
    let mut buf = vec![0u8; 16 * 1024];
    let mut out = session.greeting();
    if !out.is_empty() && talks_first(&mut stream, &mut buf, config, ticket).await {
        tracing::debug!(client = %client_ip, "client talked before the greeting");
        out.clear();
        Reply::new(554, format!("5.5.1 {host} protocol error: talked first")).write_to(&mut out);
        return close(stream, &out).await;
    }
    // When the message now coming in began, and how many bytes of it have arrived.
    let mut data_since: Option<(Instant, u64)> = None;
    loop {
        if !out.is_empty() {
            stream.write_all(&out).await?;
            stream.flush().await?;
            out.clear();
        }
        let idle_since = Instant::now();
        let n = loop {
            // Re-judged at least every few seconds: a session that began before the listener
            // came under stress gets the stress timeout too.
            let (until, cut) =
                read_until(&session, config, ticket, idle_since, deadline, data_since);
            let slice = until
                .saturating_duration_since(Instant::now())
                .min(config.stress_command_timeout);
            tokio::select! {
                r = tokio::time::timeout(slice, stream.read(&mut buf)) => match r {
                    Ok(r) => break r?,
                    Err(_) if Instant::now() < until => continue,
                    Err(_) => {
                        let why = match cut {
                            Cut::Idle => "timeout",
                            Cut::Deadline => "session too long",
                            Cut::TooSlow => "message arriving too slowly",
                        };
                        Reply::new(421, format!("4.4.2 {host} {why}, closing connection"))
                            .write_to(&mut out);
                        return close(stream, &out).await;
                    }
                },
                _ = ticket.evicted(), if !session.in_data() => {
                    Reply::new(421, format!("4.7.0 {host} too many connections, closing idle session"))
                        .write_to(&mut out);
                    return close(stream, &out).await;
                }
                _ = shutdown.wait() => {
                    Reply::new(421, format!("4.3.0 {host} shutting down, try again later"))
                        .write_to(&mut out);
                    return close(stream, &out).await;
                }
            }
        };
        if n == 0 {
            return Ok(Ended::Closed);
        }
        let next = session.ingest(&buf[..n], &mut out).await;
        let in_data = session.in_data();
        ticket.set_in_data(in_data);
        data_since = match (in_data, data_since) {
            (true, None) => Some((Instant::now(), 0)),
            (true, Some((since, bytes))) => Some((since, bytes + n as u64)),
            (false, _) => None,
        };
        match next {
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

/// Until when the client may stay silent, and what it means when it does: the idle timeout
/// from `idle_since` (cut to seconds under stress, outside DATA), but never past the
/// session's deadline nor past the time by which a message must have reached the minimum
/// rate.
fn read_until<A: Acceptor>(
    session: &Session<'_, A>,
    config: &SessionConfig,
    ticket: &Ticket,
    idle_since: Instant,
    deadline: Instant,
    data_since: Option<(Instant, u64)>,
) -> (Instant, Cut) {
    let mut idle = session.read_timeout();
    if ticket.stressed() && !session.in_data() {
        idle = idle.min(config.stress_command_timeout);
    }
    let mut until = (idle_since + idle, Cut::Idle);
    if deadline < until.0 {
        until = (deadline, Cut::Deadline);
    }
    if let Some((since, bytes)) = data_since {
        // The time at which what has arrived would be just at the minimum rate; past the
        // grace, the message must have got further by then.
        let rate = config.min_data_rate.max(1);
        let due = since + config.data_grace + Duration::from_secs(bytes / rate);
        if due < until.0 {
            until = (due, Cut::TooSlow);
        }
    }
    until
}

/// Whether the client sent anything before the banner (RFC 5321 §4.3.1: it must wait):
/// under stress the banner waits a moment to find out, otherwise only what is already
/// there is looked at.
async fn talks_first<S: AsyncRead + Unpin>(
    stream: &mut S,
    buf: &mut [u8],
    config: &SessionConfig,
    ticket: &Ticket,
) -> bool {
    let pause = if ticket.stressed() {
        config.stress_greet_pause
    } else {
        Duration::ZERO
    };
    matches!(
        tokio::time::timeout(pause, stream.read(buf)).await,
        Ok(Ok(n)) if n > 0
    )
}

/// Writes the last replies; the caller drops the stream.
async fn close<S: AsyncWrite + Unpin>(mut stream: S, out: &[u8]) -> std::io::Result<Ended<S>> {
    stream.write_all(out).await?;
    stream.flush().await?;
    Ok(Ended::Closed)
}
