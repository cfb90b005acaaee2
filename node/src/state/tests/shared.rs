//! A message held for several mailboxes, taken apart: one recipient's part released
//! becomes a message of its own, the others' stays held; one recipient's part removed
//! leaves the others'; the whole message goes with its last recipient.

use openraft::storage::RaftStateMachine;
use peage_proto::v1::{command, SpoolDrop, SpoolPut, SpoolRelease};

use super::super::StateStore;
use super::workload::entry;
use crate::types::Outcome;

const ANN: &str = "ann@a.example";
const BOB: &str = "bob@b.example";
const CAT: &str = "cat@b.example";

fn held_for(rcpts: &[&str]) -> command::Kind {
    command::Kind::SpoolPut(SpoolPut {
        queue_id: "HELD".into(),
        mail_from: "x@spam.example".into(),
        rcpt_to: rcpts.iter().map(|r| r.to_string()).collect(),
        body_sha256: "ab".repeat(32),
        accepted_at_ms: 10,
        verdict: "quarantine".into(),
        ..SpoolPut::default()
    })
}

fn release(rcpts: &[&str], split: &str) -> command::Kind {
    command::Kind::SpoolRelease(SpoolRelease {
        queue_id: "HELD".into(),
        owner: 2,
        lease_until_ms: 99,
        rcpt_to: rcpts.iter().map(|r| r.to_string()).collect(),
        split_queue_id: split.into(),
    })
}

fn drop_for(rcpts: &[&str]) -> command::Kind {
    command::Kind::SpoolDrop(SpoolDrop {
        queue_id: "HELD".into(),
        rcpt_to: rcpts.iter().map(|r| r.to_string()).collect(),
    })
}

#[tokio::test]
async fn one_recipient_s_part_is_released_or_removed_and_the_others_stays_held() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = StateStore::open(dir.path()).unwrap();
    let cmds = vec![
        held_for(&[ANN, BOB, CAT]),
        release(&[ANN], "PART"),
        // Nobody's part: nothing changes.
        release(&["eve@a.example"], "NONE"),
        // The split id taken: refused, nothing changes.
        release(&[BOB], "PART"),
    ];
    let out = store.apply(vec![entry(1, cmds)]).await.unwrap();
    let out = &out[0].0;
    assert_eq!(out[1], Outcome::SpoolChanged { found: true });
    assert_eq!(out[2], Outcome::SpoolChanged { found: false });
    assert!(matches!(&out[3], Outcome::Refused(_)), "{out:?}");
    let spool = store.spool();
    let part = spool.get("PART").unwrap();
    assert_eq!(
        (part.rcpt_to.as_slice(), part.verdict.as_str(), part.owner),
        ([ANN.to_owned()].as_slice(), "released", 2)
    );
    assert_eq!(part.body_sha256, "ab".repeat(32));
    let held = spool.get("HELD").unwrap();
    assert_eq!(held.rcpt_to, [BOB, CAT]);
    assert_eq!(held.verdict, "quarantine");
    assert!(spool.get("NONE").is_none());

    let cmds = vec![drop_for(&[BOB])];
    let out = store.apply(vec![entry(2, cmds)]).await.unwrap();
    assert_eq!(out[0].0[0], Outcome::SpoolChanged { found: true });
    assert_eq!(store.spool().get("HELD").unwrap().rcpt_to, [CAT]);
    // The last recipient's part released: nothing is left held.
    let out = store
        .apply(vec![entry(3, vec![release(&[CAT], "LAST")])])
        .await
        .unwrap();
    assert_eq!(out[0].0[0], Outcome::SpoolChanged { found: true });
    assert!(store.spool().get("LAST").is_some());
    assert!(store.spool().get("HELD").is_none());
}
