//! `peage-bench submit`: the outbound path — clients log in on the submission port
//! (STARTTLS, AUTH PLAIN) and send as a hosted account whose domain has a DKIM key, so each
//! message is authenticated, filtered, signed and spooled before its `250`.

use std::time::{Duration, Instant};

use mail_send::smtp::message::Message;
use mail_send::smtp::tls::build_tls_connector;
use mail_send::SmtpClientBuilder;
use tokio_rustls::TlsConnector;

use peage_node::config::OutboundSection;
use peage_tests::{TestCluster, Tuning};

const PASSWORD: &str = "correct-horse-battery";

fn message(n: usize) -> Vec<u8> {
    format!(
        "From: <alice@shop.example>\r\nTo: <bob@elsewhere.example>\r\nSubject: order {n}\r\n\
         Date: Sun, 06 Dec 2026 10:00:00 +0000\r\nMessage-ID: <order-{n}@shop.example>\r\n\r\n\
         Hello Bob, your order {n} has shipped; it should reach you within three working days.\r\n"
    )
    .into_bytes()
}

pub async fn submit_bench(clients: Vec<usize>, seconds: u64) -> anyhow::Result<()> {
    let c = TestCluster::start(Tuning {
        tls: true,
        snapshot_after_entries: 20_000,
        outbound: OutboundSection {
            max_messages_per_minute: 0,
            max_messages_per_hour: 0,
            max_messages_per_day: 0,
            max_recipients: [0, 0, 0],
            max_distinct_recipients_per_day: 0,
            ..OutboundSection::default()
        },
        ..Tuning::default()
    })
    .await?;
    c.route_local_domain().await?;
    let sink_dir = tempfile::tempdir()?;
    let _sink = peage_tests::SinkProcess::start(&c.sink_addr(), sink_dir.path()).await?;
    c.add_account("alice@shop.example", "shop.example", PASSWORD)?;
    let out = c.peagectl(
        0,
        &["dkim", "generate", "shop.example", "--algorithm", "rsa"],
    );
    anyhow::ensure!(out.status.success(), "dkim generate: {out:?}");
    c.peagectl(1, &["dkim", "ls"]);
    c.peagectl(2, &["dkim", "ls"]);
    // The test certificate is self-signed: encryption is what counts here.
    let tls = build_tls_connector(true).map_err(anyhow::Error::msg)?;
    println!("| clients | accepted/s | p50 ms | p99 ms | 250 | errors |");
    println!("|---:|---:|---:|---:|---:|---:|");
    for n in clients {
        let deadline = Instant::now() + Duration::from_secs(seconds);
        let tasks: Vec<_> = (0..n)
            .map(|t| {
                let (host, _) = c.nodes[t % 3].smtp_addr();
                tokio::spawn(client(host, t, deadline, tls.clone()))
            })
            .collect();
        let started = Instant::now();
        let (mut all, mut errors) = (Vec::new(), 0);
        for t in tasks {
            let (l, e) = t.await?;
            all.extend(l);
            errors += e;
        }
        let (rate, p50, p99) = crate::rate_and_percentiles(&mut all, started.elapsed());
        println!(
            "| {n} | {rate:.1} | {p50:.1} | {p99:.1} | {} | {errors} |",
            all.len()
        );
    }
    Ok(())
}

/// One submission client: a connection (STARTTLS, AUTH), ten messages on it, again.
async fn client(
    host: String,
    t: usize,
    deadline: Instant,
    tls: TlsConnector,
) -> (Vec<Duration>, u64) {
    let (mut lat, mut errors) = (Vec::new(), 0u64);
    let mut i = t * 7919;
    while Instant::now() < deadline {
        let builder = SmtpClientBuilder::new_with_tls_connector(host.clone(), 587, tls.clone())
            .implicit_tls(false)
            .helo_host("client.example")
            .credentials(("alice@shop.example".to_owned(), PASSWORD.to_owned()))
            .timeout(Duration::from_secs(60));
        let connecting = builder.connect();
        let Ok(mut client) = connecting.await else {
            errors += 1;
            continue;
        };
        // As MTAs run: otherwise the end-of-data line waits for the delayed ACK (40 ms).
        let _ = client.stream.get_ref().0.set_nodelay(true);
        for _ in 0..10 {
            if Instant::now() >= deadline {
                break;
            }
            i += 1;
            let body = message(i);
            let msg = Message::new(
                "alice@shop.example",
                ["bob@elsewhere.example"],
                body.as_slice(),
            );
            let start = Instant::now();
            match client.send(msg).await {
                Ok(_) => lat.push(start.elapsed()),
                Err(_) => {
                    errors += 1;
                    break;
                }
            }
        }
        let _ = client.quit().await;
    }
    (lat, errors)
}
