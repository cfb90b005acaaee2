//! A sending MTA's connection (mail-send), as the load generators open them: from a given
//! source address, with Nagle's algorithm off as MTAs run it.

use std::net::IpAddr;
use std::sync::LazyLock;
use std::time::Duration;

use mail_send::smtp::tls::build_tls_connector;
use mail_send::{SmtpClient, SmtpClientBuilder};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

/// Built once: building one parses the system's root certificates, costing the load
/// generator more CPU per connection than the SMTP dialogue it measures.
static TLS: LazyLock<TlsConnector> =
    LazyLock::new(|| build_tls_connector(true).expect("a TLS connector without verification"));

/// A plain SMTP connection to `host:port` from `source`, greeted and EHLO'd as `helo`.
pub async fn connect(
    host: &str,
    port: u16,
    source: IpAddr,
    helo: &str,
    timeout: Duration,
) -> mail_send::Result<SmtpClient<TcpStream>> {
    let client = SmtpClientBuilder::new_with_tls_connector(host.to_owned(), port, TLS.clone())
        .implicit_tls(false)
        .helo_host(helo)
        .local_ip(source)
        .timeout(timeout)
        .connect_plain()
        .await?;
    // Otherwise the end-of-data line waits for the server's delayed ACK of the body (40 ms).
    client.stream.set_nodelay(true)?;
    Ok(client)
}
