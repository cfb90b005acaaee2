//! List values normalised and refused, and the index's lookups: CIDR matching,
//! subdomains, expiry, and the bloom-fronted sets through growth and removals.

use super::*;

fn entry(id: u64, kind: EntryKind, value: &str, expires: Option<i64>) -> ListEntry {
    ListEntry {
        id,
        list: ListName::Block,
        kind,
        value: normalize_entry(kind, value).unwrap(),
        reason: String::new(),
        author: "t".into(),
        created_at_ms: 0,
        expires_at_ms: expires,
        scope: String::new(),
    }
}

#[test]
fn normalises_and_rejects() {
    assert_eq!(
        normalize_entry(EntryKind::Ip, "203.0.113.0/24").unwrap(),
        "203.0.113.0/24"
    );
    assert_eq!(
        normalize_entry(EntryKind::Ip, "2001:DB8::/32").unwrap(),
        "2001:db8::/32"
    );
    assert_eq!(
        normalize_entry(EntryKind::Ip, "198.51.100.7").unwrap(),
        "198.51.100.7/32"
    );
    assert!(matches!(
        normalize_entry(EntryKind::Ip, "203.0.113.7/24"),
        Err(InvalidValue::HostBits { .. })
    ));
    assert!(normalize_entry(EntryKind::Ip, "300.1.1.1/8").is_err());
    assert!(normalize_entry(EntryKind::Ip, "10.0.0.0/33").is_err());
    assert_eq!(
        normalize_entry(EntryKind::Domain, "Bad.Example.").unwrap(),
        "bad.example"
    );
    assert!(normalize_entry(EntryKind::Domain, "bad..example").is_err());
    assert!(normalize_entry(EntryKind::Domain, "  ").is_err());
    assert_eq!(
        normalize_entry(EntryKind::Sender, "Spammer@Bad.Example").unwrap(),
        "spammer@bad.example"
    );
    assert!(normalize_entry(EntryKind::Sender, "no-at-sign").is_err());
    assert_eq!(
        normalize_entry(EntryKind::Url, "https://u@Evil.Example:8443/x?y").unwrap(),
        "evil.example"
    );
    assert_eq!(
        normalize_entry(EntryKind::Url, "http://[2001:db8::1]/").unwrap(),
        "2001:db8::1"
    );
}

#[test]
fn cidr_lookup_matches_inside_networks_only() {
    let mut idx = ListIndex::default();
    idx.upsert(entry(1, EntryKind::Ip, "203.0.113.0/24", None));
    idx.upsert(entry(2, EntryKind::Ip, "203.0.0.0/16", None));
    idx.upsert(entry(3, EntryKind::Ip, "2001:db8::/32", None));
    let ids = |idx: &ListIndex, p: &str| -> Vec<u64> {
        idx.check(EntryKind::Ip, p, 0)
            .into_iter()
            .map(|e| e.id)
            .collect()
    };
    assert_eq!(ids(&idx, "203.0.113.7"), vec![1, 2]);
    assert_eq!(ids(&idx, "203.0.5.1"), vec![2]);
    assert_eq!(ids(&idx, "198.51.100.1"), Vec::<u64>::new());
    assert_eq!(ids(&idx, "2001:db8:1::5"), vec![3]);
    assert_eq!(ids(&idx, "2001:db9::5"), Vec::<u64>::new());
    idx.remove(1);
    assert_eq!(ids(&idx, "203.0.113.7"), vec![2]);
}

#[test]
fn domain_matches_subdomains_and_expiry_stops_matching() {
    let mut idx = ListIndex::default();
    idx.upsert(entry(1, EntryKind::Domain, "bad.example", None));
    idx.upsert(entry(2, EntryKind::Domain, "tmp.example", Some(100)));
    assert_eq!(idx.check(EntryKind::Domain, "a.b.bad.example", 0).len(), 1);
    assert_eq!(idx.check(EntryKind::Domain, "notbad.example", 0).len(), 0);
    assert_eq!(idx.check(EntryKind::Domain, "tmp.example", 99).len(), 1);
    assert_eq!(idx.check(EntryKind::Domain, "tmp.example", 100).len(), 0);
    assert!(idx.has_expired(100));
    assert!(!idx.has_expired(99));
}

#[test]
fn bloomed_set_survives_growth_and_removals() {
    let mut idx = ListIndex::default();
    for i in 0..5000u64 {
        idx.upsert(entry(
            i,
            EntryKind::Sender,
            &format!("u{i}@x.example"),
            None,
        ));
    }
    for i in 0..4000u64 {
        idx.remove(i);
    }
    assert_eq!(idx.check(EntryKind::Sender, "u10@x.example", 0).len(), 0);
    assert_eq!(idx.check(EntryKind::Sender, "u4500@x.example", 0).len(), 1);
    assert_eq!(idx.len(), 1000);
}

#[test]
fn one_value_on_both_lists_and_entries_come_back_whole() {
    let mut idx = ListIndex::default();
    let allow = ListEntry {
        list: ListName::Allow,
        reason: "partner — ünïcode".into(),
        author: "ops".into(),
        created_at_ms: 7,
        scope: "a.example".into(),
        ..entry(1, EntryKind::Sender, "a@x.example", None)
    };
    let block = entry(2, EntryKind::Sender, "a@x.example", Some(50));
    idx.upsert(allow.clone());
    idx.upsert(block.clone());
    let found = idx.check(EntryKind::Sender, "a@x.example", 0);
    assert_eq!(found, [allow.clone(), block]);
    assert!(!idx.has_expired(49));
    assert!(idx.has_expired(50));
    assert_eq!(
        idx.check(EntryKind::Sender, "a@x.example", 50),
        std::slice::from_ref(&allow)
    );
    idx.remove(2);
    assert_eq!(idx.check(EntryKind::Sender, "a@x.example", 0), [allow]);
    assert!(!idx.has_expired(1_000));
    assert!(idx.check(EntryKind::Sender, "b@x.example", 0).is_empty());
}

type Matcher = Box<dyn Fn(&ListEntry) -> bool>;

/// Random upserts, updates and removals on a few thousand ids: every lookup answers what a
/// plain scan of the entries would.
#[test]
fn the_index_answers_like_a_plain_scan() {
    let mut seed = 7u64;
    let mut next = |n: u64| {
        seed = seed
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        (seed >> 33) % n
    };
    let value = |kind: EntryKind, i: u64| match kind {
        EntryKind::Ip => format!("10.{i}.0.0/16"),
        EntryKind::Domain => format!("d{i}.example"),
        EntryKind::Sender => format!("u{i}@x.example"),
        EntryKind::Url => format!("h{i}.example"),
    };
    let mut idx = ListIndex::default();
    let mut model = std::collections::BTreeMap::new();
    for step in 0..20_000i64 {
        let id = next(3000);
        if next(4) == 0 {
            idx.remove(id);
            model.remove(&id);
            continue;
        }
        let kind = EntryKind::ALL[next(4) as usize];
        let e = ListEntry {
            list: ListName::ALL[next(2) as usize],
            reason: format!("r{step}"),
            created_at_ms: step,
            scope: ["", "a.example", "u@b.example"][next(3) as usize].into(),
            ..entry(
                id,
                kind,
                &value(kind, next(50)),
                (next(3) == 0).then(|| next(100) as i64),
            )
        };
        idx.upsert(e.clone());
        model.insert(id, e);
    }
    assert_eq!(idx.len(), model.len());
    let now = 50;
    assert_eq!(
        idx.has_expired(now),
        model.values().any(|e| !e.is_live(now))
    );
    let mut found = 0;
    for kind in EntryKind::ALL {
        for i in 0..50 {
            let (probe, matches): (String, Matcher) = match kind {
                EntryKind::Ip => (
                    format!("10.{i}.1.1"),
                    Box::new(move |e| e.value == format!("10.{i}.0.0/16")),
                ),
                EntryKind::Domain => (
                    format!("a.d{i}.example"),
                    Box::new(move |e| e.value == format!("d{i}.example")),
                ),
                _ => (value(kind, i), Box::new(move |e| e.value == value(kind, i))),
            };
            let probe = normalize_probe(kind, &probe).unwrap();
            let expected: Vec<ListEntry> = (model.values())
                .filter(|e| e.kind == kind && e.is_live(now) && matches(e))
                .cloned()
                .collect();
            found += expected.len();
            assert_eq!(idx.check(kind, &probe, now), expected, "{kind:?} {probe}");
        }
    }
    assert!(found > 100, "the lookups should meet entries: {found}");
}

#[test]
fn scopes_are_normalised_and_an_entry_counts_only_within_its_scope() {
    assert_eq!(normalize_scope(" ").unwrap(), "");
    assert_eq!(normalize_scope("A.Example.").unwrap(), "a.example");
    assert_eq!(normalize_scope("Bob@A.example").unwrap(), "bob@a.example");
    assert!(normalize_scope("not a domain").is_err());
    let scoped = |scope: &str| ListEntry {
        scope: scope.into(),
        ..entry(1, EntryKind::Ip, "10.0.0.0/8", None)
    };
    let to = |rs: &[&str]| rs.iter().map(|r| r.to_string()).collect::<Vec<_>>();
    assert!(scoped("").applies_to(&to(&["x@b.example"])));
    assert!(scoped("").applies_to(&[]));
    let domain = scoped("a.example");
    assert!(domain.applies_to(&to(&["x@a.example", "y@mx.a.example"])));
    assert!(!domain.applies_to(&to(&["x@a.example", "y@b.example"])));
    assert!(!domain.applies_to(&to(&["x@nota.example"])));
    assert!(!domain.applies_to(&[]), "no recipient, no scoped entry");
    let mailbox = scoped("bob@a.example");
    assert!(mailbox.applies_to(&to(&["Bob@a.example"])));
    assert!(!mailbox.applies_to(&to(&["bob@a.example", "eve@a.example"])));
}
