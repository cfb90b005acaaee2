//! TLS between sites: a cluster whose nodes hold certificates of a CA of its own elects,
//! replicates and answers peagectl over TLS; a caller without a certificate the cluster CA
//! signed never reaches the peer service, whatever secret it carries; the admin API speaks
//! TLS only.

use std::time::Duration;

use peage_node::cluster::network::SECRET_HEADER;
use peage_node::tools::cert;
use peage_tests::v1::raft_peer_client::RaftPeerClient;
use peage_tests::v1::ReadIndexRequest;
use peage_tests::{TestCluster, Tuning, SECRET};
use tonic::transport::{Certificate, ClientTlsConfig, Endpoint, Identity};

/// One ReadIndex call to node `i`'s peer service with the cluster secret, over `tls` (in
/// clear when `None`): `Ok` when the service answered (whatever it said: a status it sends
/// carries gRPC headers), the transport's error when the call never reached it.
async fn peer_call(c: &TestCluster, i: usize, tls: Option<ClientTlsConfig>) -> Result<(), String> {
    let scheme = if tls.is_some() { "https" } else { "http" };
    let mut endpoint = Endpoint::from_shared(format!("{scheme}://{}", c.nodes[i].peer_addr()))
        .unwrap()
        .connect_timeout(Duration::from_secs(3))
        .timeout(Duration::from_secs(5));
    if let Some(tls) = tls {
        endpoint = endpoint.tls_config(tls).unwrap();
    }
    let channel = endpoint.connect().await.map_err(|e| format!("{e:?}"))?;
    let mut client = RaftPeerClient::new(channel);
    let mut request = tonic::Request::new(ReadIndexRequest {});
    request
        .metadata_mut()
        .insert(SECRET_HEADER, SECRET.parse().unwrap());
    match client.read_index(request).await {
        Ok(_) => Ok(()),
        Err(status) if status.metadata().contains_key("content-type") => Ok(()),
        Err(status) => Err(format!("{status:?}")),
    }
}

#[tokio::test]
async fn nodes_talk_tls_and_refuse_a_peer_without_a_cluster_certificate() {
    let c = TestCluster::start(Tuning {
        grpc_tls: true,
        ..Tuning::default()
    })
    .await
    .unwrap();
    // Elected and replicating over mutual TLS: a write reaches every node.
    c.route_local_domain().await.unwrap();
    let out = c.peagectl(2, &["status"]);
    assert!(out.status.success(), "{out:?}");
    assert!(c.nodes[2].admin_url().starts_with("https://"));

    let ca = std::fs::read_to_string(c.ca_path().unwrap()).unwrap();
    let host = c.nodes[0].ip.clone();
    let trusting = || {
        ClientTlsConfig::new()
            .ca_certificate(Certificate::from_pem(&ca))
            .domain_name(host.clone())
    };
    // In clear: no TLS, no service.
    let e = peer_call(&c, 0, None).await.unwrap_err();
    assert!(!e.is_empty());
    // TLS without a client certificate: refused in the handshake.
    let e = peer_call(&c, 0, Some(trusting())).await.unwrap_err();
    assert!(!e.is_empty());
    // A certificate from another CA, for the right address: refused too.
    let other_ca = cert::new_ca().unwrap();
    let stranger =
        cert::node_certificate(&other_ca.key_pem, "stranger", std::slice::from_ref(&host)).unwrap();
    let identity = Identity::from_pem(&stranger.cert_pem, &stranger.key_pem);
    let e = peer_call(&c, 0, Some(trusting().identity(identity)))
        .await
        .unwrap_err();
    assert!(!e.is_empty());
    // A certificate of the cluster's CA gets through: the refusals above were the certificate.
    let dir = c.dir.path().join("tls");
    let member = Identity::from_pem(
        std::fs::read(dir.join("node2.pem")).unwrap(),
        std::fs::read(dir.join("node2.key")).unwrap(),
    );
    peer_call(&c, 0, Some(trusting().identity(member)))
        .await
        .unwrap();

    // The admin API: TLS only, and peagectl says what it needs.
    let http = c.nodes[1].admin_url().replace("https://", "http://");
    let out = std::process::Command::new(peage_tests::bin("peagectl"))
        .args([
            "--addr",
            &http,
            "--token",
            peage_tests::ADMIN_TOKEN,
            "status",
        ])
        .output()
        .unwrap();
    assert!(!out.status.success(), "{out:?}");
    let out = std::process::Command::new(peage_tests::bin("peagectl"))
        .args(["--addr", &c.nodes[1].admin_url(), "status"])
        .env_remove("PEAGE_CA")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && stderr.contains("--ca"), "{stderr}");
}
