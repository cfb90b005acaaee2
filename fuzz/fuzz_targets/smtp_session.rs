//! The SMTP session on arbitrary client bytes: it must answer or close, never panic.
#![no_main]

use std::time::Duration;

use libfuzzer_sys::fuzz_target;
use peage_mail::shutdown::Shutdown;
use peage_mail::smtp::address::Recipient;
use peage_mail::smtp::connection::serve;
use peage_mail::smtp::{Acceptor, Envelope, Reply, SessionConfig, Tls};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

struct AcceptAll;

impl Acceptor for AcceptAll {
    async fn check_recipient(&self, rcpt: &Recipient, _login: Option<&str>) -> Result<(), Reply> {
        if rcpt.domain.ends_with(".test") {
            Ok(())
        } else {
            Err(Reply::new(550, "5.7.1 no"))
        }
    }
    async fn accept(&self, _: Envelope, _: Vec<u8>) -> Reply {
        Reply::new(250, "2.0.0 ok")
    }
}

fuzz_target!(|data: &[u8]| {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .start_paused(true)
        .build()
        .expect("runtime");
    rt.block_on(async {
        let (mut client, server) = tokio::io::duplex(1 << 16);
        let config = SessionConfig {
            max_message_bytes: 4096,
            command_timeout: Duration::from_secs(5),
            data_timeout: Duration::from_secs(5),
            ..SessionConfig::default()
        };
        let session = tokio::spawn(async move {
            let ticket = peage_mail::smtp::admission::Ticket::unlisted();
            let _ = serve(
                server,
                [192, 0, 2, 1].into(),
                &config,
                &AcceptAll,
                Tls::Unavailable,
                &ticket,
                Shutdown::never(),
            )
            .await;
        });
        // A client that talks before the banner is dropped at once: wait for it first.
        let mut banner = [0u8; 512];
        let _ = client.read(&mut banner).await;
        let _ = client.write_all(data).await;
        let _ = client.shutdown().await;
        let mut sink = Vec::new();
        let _ = client.read_to_end(&mut sink).await;
        let _ = session.await;
    });
});
