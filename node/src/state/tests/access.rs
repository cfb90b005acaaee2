//! API tokens and the audit log as applied: a token is found by its secret's hash until
//! replaced or removed; audit records are listed newest first with filters and forgotten
//! past the retention the newest record carries.

use peage_proto::v1::{command, AuditListRequest, AuditRecord, TokenRemove, TokenSet};

use super::super::tokens::Role;
use super::super::StateStore;
use super::apply_all;
use super::workload::entry;

fn set(name: &str, hash: &str, role: &str) -> command::Kind {
    command::Kind::TokenSet(TokenSet {
        name: name.into(),
        role: role.into(),
        domains: vec!["a.example".into()],
        secret_sha256: hash.into(),
        author: "ops".into(),
        created_at_ms: 1,
        expires_at_ms: 0,
    })
}

#[tokio::test]
async fn a_token_is_found_by_its_hash_until_replaced_or_removed() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = StateStore::open(dir.path()).unwrap();
    apply_all(
        &mut store,
        &[entry(1, vec![set("acme", "h1", "domain-admin")])],
        1,
    )
    .await;
    let grant = store.indexes().token("h1").unwrap();
    assert_eq!(
        (grant.name.as_str(), grant.role),
        ("acme", Role::DomainAdmin)
    );
    assert_eq!(grant.domains, ["a.example"]);
    // A new secret for the same name: the old one stops working.
    apply_all(
        &mut store,
        &[entry(2, vec![set("acme", "h2", "helpdesk")])],
        1,
    )
    .await;
    assert!(store.indexes().token("h1").is_none());
    assert_eq!(store.indexes().token("h2").unwrap().role, Role::Helpdesk);
    // Two names cannot share a secret; an unknown role is refused.
    let e = entry(
        3,
        vec![set("other", "h2", "operator"), set("x", "h3", "root")],
    );
    apply_all(&mut store, &[e], 1).await;
    assert_eq!(store.indexes().token("h2").unwrap().name, "acme");
    assert!(store.indexes().token("h3").is_none());
    let rm = command::Kind::TokenRemove(TokenRemove {
        name: "acme".into(),
    });
    apply_all(&mut store, &[entry(4, vec![rm])], 1).await;
    assert!(store.indexes().token("h2").is_none());
    assert!(store.tokens().await.unwrap().is_empty());
    // Reopened from disk: the same (nothing).
    drop(store);
    let store = StateStore::open(dir.path()).unwrap();
    assert!(store.indexes().token("h2").is_none());
}

fn record(at_ms: i64, token: &str, outcome: &str, keep_since_ms: i64) -> command::Kind {
    command::Kind::AuditRecord(AuditRecord {
        at_ms,
        token: token.into(),
        role: "operator".into(),
        client: "127.0.0.1:5000".into(),
        node_id: 1,
        action: "PolicySet".into(),
        target: "quarantine at 6".into(),
        outcome: outcome.into(),
        keep_since_ms,
    })
}

#[tokio::test]
async fn audit_records_are_listed_newest_first_and_forgotten_past_retention() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = StateStore::open(dir.path()).unwrap();
    let e = entry(
        1,
        vec![
            record(1_000, "ops", "ok", 0),
            record(2_000, "desk", "PermissionDenied: no", 0),
            record(3_000, "ops", "ok", 0),
        ],
    );
    apply_all(&mut store, &[e], 1).await;
    let all = store.audit(AuditListRequest::default()).await.unwrap();
    let times: Vec<i64> = all.iter().map(|e| e.at_ms).collect();
    assert_eq!(times, [3_000, 2_000, 1_000]);
    let failed = store
        .audit(AuditListRequest {
            failed_only: true,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(failed.len(), 1);
    assert_eq!(failed[0].token, "desk");
    let by = store
        .audit(AuditListRequest {
            token: "ops".into(),
            action: "policyset".into(),
            since_ms: 2_500,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(by.len(), 1, "{by:?}");
    // A record carrying a retention cut-off of 2,500 forgets the two older ones.
    apply_all(
        &mut store,
        &[entry(2, vec![record(4_000, "ops", "ok", 2_500)])],
        1,
    )
    .await;
    let left: Vec<i64> = store
        .audit(AuditListRequest::default())
        .await
        .unwrap()
        .iter()
        .map(|e| e.at_ms)
        .collect();
    assert_eq!(left, [4_000, 3_000]);
}
