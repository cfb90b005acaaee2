//! The config parses with its defaults, refuses unknown keys and bad values naming the
//! key, and the shipped examples (local and production sites) are valid.

use std::collections::HashSet;

use super::*;

const GOOD: &str = r#"
[node]
id = 1
site = "paris"
[listen]
admin = "127.0.0.1:50051"
peer = "127.0.0.1:50052"
[cluster]
secret = "0123456789abcdef"
bootstrap = true
members = [{ id = 1, site = "paris", peer = "127.0.0.1:50052", admin = "127.0.0.1:50051" }]
"#;

/// Why `text` is refused.
fn refusal(text: &str) -> String {
    Config::parse(text, Path::new("x.toml"))
        .unwrap_err()
        .to_string()
}

/// The production examples are complete, and refused until their secrets are replaced.
#[test]
fn the_site_examples_parse_once_their_secrets_are_set() {
    for site in ["paris", "roubaix", "ariege"] {
        let path = PathBuf::from(format!(
            "{}/../ops/sites/{site}.toml",
            env!("CARGO_MANIFEST_DIR")
        ));
        let text = std::fs::read_to_string(&path).unwrap();
        let e = Config::parse(&text, &path).unwrap_err().to_string();
        assert!(
            e.contains("cluster.secret") && e.contains("CHANGE-ME"),
            "{e}"
        );
        let filled = text.replace("CHANGE-ME-", "site-");
        let c = Config::parse(&filled, &path).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(c.node.site, site);
        assert_eq!(c.cluster.members.len(), 3);
        let sites: HashSet<&str> = c.cluster.members.iter().map(|m| m.site.as_str()).collect();
        assert_eq!(sites.len(), 3, "one voter per site");
        assert!(c.smtp.tls_cert.is_some() && c.listen.metrics.is_some());
        assert!(c.admin.tokens.iter().any(|t| t.role == Role::Auditor));
    }
}

#[test]
fn good_config_parses_with_defaults() {
    let c = Config::parse(GOOD, Path::new("x.toml")).unwrap();
    assert_eq!(c.node.site, "paris");
    assert_eq!(c.raft.commit_timeout_ms, 5000);
}

#[test]
fn unknown_key_is_reported() {
    let text = GOOD.replace("[listen]", "[listen]\nadmn = 1");
    let e = refusal(&text);
    assert!(e.contains("admn"), "{e}");
}

#[test]
fn errors_name_the_key() {
    let text = GOOD.replace("0123456789abcdef", "short");
    let e = refusal(&text);
    assert!(e.contains("cluster.secret"), "{e}");
    let text = GOOD.replace(
        "peer = \"127.0.0.1:50052\", admin",
        "peer = \"nowhere\", admin",
    );
    let e = refusal(&text);
    assert!(e.contains("cluster.members[0].peer"), "{e}");
    let text = format!("{GOOD}\n[smtp]\nmax_data_memory_mb = 10\n");
    let e = refusal(&text);
    assert!(
        e.contains("smtp.max_data_memory_mb") && e.contains("max_message_bytes"),
        "{e}"
    );
}

#[test]
fn embedded_local_configs_are_valid() {
    for (name, text) in crate::tools::dev::LOCAL_CONFIGS {
        Config::parse(text, Path::new(name)).unwrap();
    }
}

#[test]
fn blocklists_parse_and_a_bad_one_names_its_key() {
    let zone = "\n[[dns.blocklists]]\nzone = \"zen.example\"\nchecks = \"ip\"\nsymbol = \"ZEN\"\nscore = 3.5\ncodes = { \"127.0.0.4\" = { symbol = \"ZEN_XBL\", score = 6.0 } }\n";
    let c = Config::parse(&format!("{GOOD}{zone}"), Path::new("x.toml")).unwrap();
    assert_eq!(c.dns.blocklists.len(), 1);
    assert_eq!(c.dns.blocklists[0].codes["127.0.0.4"].symbol, "ZEN_XBL");
    let bad = zone.replace("\"127.0.0.4\"", "\"10.0.0.1\"");
    let e = refusal(&format!("{GOOD}{bad}"));
    assert!(e.contains("dns.blocklists[0].codes.\"10.0.0.1\""), "{e}");
    let off = format!("{GOOD}\n[dns]\nauthenticate = false\n{zone}");
    let e = refusal(&off);
    assert!(
        e.contains("dns.blocklists") && e.contains("authenticate"),
        "{e}"
    );
}

#[test]
fn outbound_limit_overrides_parse() {
    let text = format!(
        "{GOOD}\n[outbound.limit_overrides]\n\"shop.example\" = [100, 1000, 5000]\n\"boss@shop.example\" = [0, 0, 0]\n"
    );
    let c = Config::parse(&text, Path::new("x.toml")).unwrap();
    assert_eq!(
        c.outbound.limit_overrides["shop.example"],
        [100, 1000, 5000]
    );
    assert_eq!(
        c.outbound.max_messages_per_minute, 60,
        "the rest keeps its defaults"
    );
}

/// A duration past ten years is refused by its key, wherever the key is: added to a clock
/// in milliseconds it would wrap, and a retention that ends before it began bounces
/// everything.
#[test]
fn durations_longer_than_ten_years_are_refused_by_their_key() {
    let ten_years_secs = 10 * 365 * 86_400;
    for (section, key, value) in [
        ("spool", "retention_secs", i64::MAX.to_string()),
        ("spool", "lease_secs", (ten_years_secs + 1).to_string()),
        ("raft", "commit_timeout_ms", i64::MAX.to_string()),
        ("portal", "link_days", "3651".into()),
    ] {
        let text = format!("{GOOD}\n[{section}]\n{key} = {value}\n");
        let e = refusal(&text);
        assert!(
            e.contains(&format!("{section}.{key}")) && e.contains("ten years"),
            "{e}"
        );
    }
    let text = format!("{GOOD}\n[spool]\nretention_secs = {ten_years_secs}\n");
    let c = Config::parse(&text, Path::new("x.toml")).unwrap();
    assert_eq!(c.spool.retention_secs, ten_years_secs as u64);
}
