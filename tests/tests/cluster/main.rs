//! Cluster core, tested on real `peage` processes on loopback: replication, leader loss,
//! restart, snapshot to a late learner, minority behaviour, determinism, bad input, a
//! full disk, a damaged state database and the signals a node is sent.

mod damaged_state;
mod disk_full;
mod membership;
mod refusals;
mod replication;
mod signals;
mod tls;

use peage_tests::v1::*;
use peage_tests::TestCluster;

pub async fn check(
    c: &TestCluster,
    i: usize,
    kind: EntryKind,
    value: &str,
    stale: bool,
) -> ListCheckReply {
    let mut a = c.client(i).await.unwrap();
    a.list_check(ListCheckRequest {
        kind: kind as i32,
        value: value.into(),
        stale,
    })
    .await
    .unwrap()
    .into_inner()
}

pub async fn digest(c: &TestCluster, i: usize) -> StateDigestReply {
    let mut a = c.client(i).await.unwrap();
    a.state_digest(StateDigestRequest { stale: true })
        .await
        .unwrap()
        .into_inner()
}
