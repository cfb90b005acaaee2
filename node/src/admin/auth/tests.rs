//! Tokens, roles and scopes: who may make which kind of request.

use std::collections::HashMap;
use std::sync::Arc;

use tonic::{Code, Request};

use super::*;

fn configured(name: &str, token: &str, role: Role, domains: &[&str]) -> TokenConfig {
    TokenConfig {
        name: name.into(),
        token: token.into(),
        role,
        domains: domains.iter().map(|d| d.to_string()).collect(),
    }
}

fn tokens() -> Tokens {
    let mut api = HashMap::new();
    for (secret, name, role, domains, expires_at_ms) in [
        ("desk-secret-0123456789", "desk", Role::Helpdesk, vec![], 0),
        (
            "a-admin-secret-0123456",
            "a-admin",
            Role::DomainAdmin,
            vec!["a.example".to_string()],
            0,
        ),
        ("old-secret-01234567890", "old", Role::Operator, vec![], 1),
    ] {
        let grant = Grant {
            name: name.into(),
            role,
            domains,
            expires_at_ms,
        };
        api.insert(secret_sha256(secret), grant);
    }
    Tokens::new(
        &[
            configured("ops", "admin-token-0123456789", Role::Operator, &[]),
            configured("grafana", "reader-token-0123456789", Role::Auditor, &[]),
        ],
        Arc::new(move |hash: &str| api.get(hash).cloned()),
    )
}

fn req(token: Option<&str>) -> Request<()> {
    let mut r = Request::new(());
    if let Some(t) = token {
        r.metadata_mut()
            .insert("authorization", format!("Bearer {t}").parse().unwrap());
    }
    r
}

fn code(token: &str, access: Access) -> Code {
    match tokens().authorize(&req(Some(token)), access) {
        Ok(_) => Code::Ok,
        Err(e) => e.code(),
    }
}

#[test]
fn each_role_makes_the_requests_its_job_needs_and_no_other() {
    use Access::*;
    let denied = Code::PermissionDenied;
    let table = [
        // operator, auditor, helpdesk, domain admin
        (ClusterRead, [Code::Ok, Code::Ok, Code::Ok, denied]),
        (Operate, [Code::Ok, denied, denied, denied]),
        (DomainRead, [Code::Ok, Code::Ok, Code::Ok, Code::Ok]),
        (ReadBody, [Code::Ok, denied, Code::Ok, Code::Ok]),
        (Release, [Code::Ok, denied, Code::Ok, Code::Ok]),
        (DomainWrite, [Code::Ok, denied, denied, Code::Ok]),
    ];
    let secrets = [
        "admin-token-0123456789",
        "reader-token-0123456789",
        "desk-secret-0123456789",
        "a-admin-secret-0123456",
    ];
    for (access, expected) in table {
        let got: Vec<Code> = secrets.iter().map(|s| code(s, access)).collect();
        assert_eq!(got, expected, "{access:?}");
    }
}

#[test]
fn unknown_missing_and_expired_tokens_are_unauthenticated() {
    let t = tokens();
    for r in [
        req(Some("wrong")),
        req(None),
        req(Some("old-secret-01234567890")),
    ] {
        let e = t.authorize(&r, Access::DomainRead).unwrap_err();
        assert_eq!(e.code(), Code::Unauthenticated, "{}", e.message());
    }
    let e = t
        .authorize(&req(Some("old-secret-01234567890")), Access::DomainRead)
        .unwrap_err();
    assert!(e.message().contains("`old` has expired"), "{}", e.message());
}

#[test]
fn a_refusal_names_the_token_its_role_and_what_the_request_needs() {
    let e = tokens()
        .authorize(&req(Some("desk-secret-0123456789")), Access::Operate)
        .unwrap_err();
    assert!(
        e.message().contains("`desk` is helpdesk"),
        "{}",
        e.message()
    );
    assert!(
        e.message().contains("needs an operator token"),
        "{}",
        e.message()
    );
    let e = tokens()
        .authorize(&req(Some("a-admin-secret-0123456")), Access::ClusterRead)
        .unwrap_err();
    assert!(
        e.message().contains("`a-admin` is domain-admin"),
        "{}",
        e.message()
    );
}

#[test]
fn a_bound_operator_is_held_to_its_domains() {
    let t = Tokens::new(
        &[configured(
            "reseller",
            "reseller-token-012345",
            Role::Operator,
            &["A.example"],
        )],
        Arc::new(|_: &str| None),
    );
    let caller = t
        .authorize(&req(Some("reseller-token-012345")), Access::DomainWrite)
        .unwrap();
    assert_eq!(caller.scope.domains(), ["a.example"]);
    let e = t
        .authorize(&req(Some("reseller-token-012345")), Access::Operate)
        .unwrap_err();
    assert!(
        e.message().contains("bound to a.example"),
        "{}",
        e.message()
    );
}

#[test]
fn a_scope_covers_its_domains_and_their_subdomains_only() {
    let s = Scope::new(&["a.example".into(), "C.Example.".into()]);
    assert!(s.covers_domain("a.example") && s.covers_domain("mx.a.example"));
    assert!(s.covers_domain("c.example"));
    assert!(!s.covers_domain("b.example") && !s.covers_domain("evila.example"));
    assert!(s.covers_address("Bob@A.Example") && !s.covers_address("bob@b.example"));
    assert!(!s.covers_address("no-at-sign"));
    let e = s.require_domain("b.example").unwrap_err();
    assert_eq!(e.code(), Code::PermissionDenied);
    assert!(
        e.message().contains("a.example, c.example"),
        "{}",
        e.message()
    );
    let all = Scope::default();
    assert!(all.is_everything() && all.covers_address("x@anything.example"));
}
