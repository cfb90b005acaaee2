//! The routing table: local domains, their downstream routes (`smtp://HOST:PORT`) and how
//! their recipients are verified, validated and normalised before they are proposed,
//! applied (`DomainSet`, `DomainRemove`) and read back.

use std::collections::BTreeMap;

use rusqlite::{params, Connection, OptionalExtension, Transaction};

use peage_mail::lists::{normalize_entry, EntryKind, InvalidValue};
use peage_proto::v1::{DomainRemove, DomainSet};

use super::knowledge::{DigestLang, DigestSchedule, DmarcAction, DomainRoute, IndexChange, Verify};
use super::recipients;
use crate::types::Outcome;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InvalidRoute {
    #[error("route `{0}` must look like smtp://HOST:PORT")]
    Shape(String),
    #[error("route `{0}`: invalid port")]
    Port(String),
    #[error("route `{0}`: invalid host")]
    Host(String),
}

/// A local domain: lower-case, no trailing dot, ASCII.
pub fn normalize_domain(domain: &str) -> Result<String, InvalidValue> {
    normalize_entry(EntryKind::Domain, domain)
}

/// `smtp://HOST:PORT` with HOST an IP address (IPv6 in brackets) or a host name.
pub fn normalize_route(route: &str) -> Result<String, InvalidRoute> {
    let r = route.trim();
    let rest = r
        .strip_prefix("smtp://")
        .ok_or_else(|| InvalidRoute::Shape(r.to_owned()))?;
    let rest = rest.strip_suffix('/').unwrap_or(rest);
    let (host, port) = if let Some(v6) = rest.strip_prefix('[') {
        let (h, p) = v6
            .split_once("]:")
            .ok_or_else(|| InvalidRoute::Shape(r.to_owned()))?;
        h.parse::<std::net::Ipv6Addr>()
            .map_err(|_| InvalidRoute::Host(r.to_owned()))?;
        (format!("[{h}]"), p)
    } else {
        let (h, p) = rest
            .rsplit_once(':')
            .ok_or_else(|| InvalidRoute::Shape(r.to_owned()))?;
        let host = if h.parse::<std::net::Ipv4Addr>().is_ok() {
            h.to_owned()
        } else {
            normalize_domain(h).map_err(|_| InvalidRoute::Host(r.to_owned()))?
        };
        (host, p)
    };
    let port: u16 = port
        .parse()
        .ok()
        .filter(|p| *p > 0)
        .ok_or_else(|| InvalidRoute::Port(r.to_owned()))?;
    Ok(format!("smtp://{host}:{port}"))
}

pub fn apply_set(
    tx: &Transaction<'_>,
    d: DomainSet,
    changes: &mut Vec<IndexChange>,
) -> rusqlite::Result<Outcome> {
    let existed = tx
        .query_row(
            "SELECT 1 FROM domains WHERE domain = ?1",
            [&d.domain],
            |_| Ok(()),
        )
        .optional()?
        .is_some();
    // An unknown word (a newer release's) verifies nothing here rather than failing apply.
    let verify = Verify::parse(&d.verify).unwrap_or_default();
    let dmarc = DmarcAction::parse(&d.dmarc).unwrap_or_default();
    // Likewise an unknown language is English, and an unreadable schedule sends no digest.
    let lang = DigestLang::parse(&d.digest_lang).unwrap_or_default();
    let digest = DigestSchedule::parse(&d.digest_at);
    tx.execute(
        "INSERT INTO domains (domain, route, author, created_at_ms, verify, dmarc, portal,
                              digest_at, digest_lang)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)
         ON CONFLICT (domain) DO UPDATE SET route = excluded.route,
           author = excluded.author, created_at_ms = excluded.created_at_ms,
           verify = excluded.verify, dmarc = excluded.dmarc, portal = excluded.portal,
           digest_at = excluded.digest_at, digest_lang = excluded.digest_lang",
        params![
            d.domain,
            d.route,
            d.author,
            d.created_at_ms,
            verify.as_str(),
            dmarc.as_str(),
            d.portal,
            digest.map(|s| s.at()).unwrap_or_default(),
            lang.as_str(),
        ],
    )?;
    changes.push(IndexChange::RouteSet {
        domain: d.domain,
        route: DomainRoute {
            route: d.route,
            author: d.author,
            created_at_ms: d.created_at_ms,
            verify,
            dmarc,
            portal: d.portal,
            digest,
            lang,
        },
    });
    Ok(Outcome::DomainSet { created: !existed })
}

pub fn apply_remove(
    tx: &Transaction<'_>,
    d: DomainRemove,
    changes: &mut Vec<IndexChange>,
) -> rusqlite::Result<Outcome> {
    let removed = tx.execute("DELETE FROM domains WHERE domain = ?1", [&d.domain])? > 0;
    recipients::remove_domain(tx, &d.domain, changes)?;
    changes.push(IndexChange::RouteRemove { domain: d.domain });
    Ok(Outcome::DomainRemoved { removed })
}

/// The whole table, by domain.
pub fn query(conn: &Connection) -> rusqlite::Result<BTreeMap<String, DomainRoute>> {
    let mut stmt = conn.prepare_cached(
        "SELECT domain, route, author, created_at_ms, verify, dmarc, portal, digest_at,
                digest_lang
         FROM domains ORDER BY domain",
    )?;
    let rows = stmt.query_map([], |r| {
        Ok((
            r.get::<_, String>(0)?,
            DomainRoute {
                route: r.get(1)?,
                author: r.get(2)?,
                created_at_ms: r.get(3)?,
                verify: Verify::parse(&r.get::<_, String>(4)?).unwrap_or_default(),
                dmarc: DmarcAction::parse(&r.get::<_, String>(5)?).unwrap_or_default(),
                portal: r.get(6)?,
                digest: DigestSchedule::parse(&r.get::<_, String>(7)?),
                lang: DigestLang::parse(&r.get::<_, String>(8)?).unwrap_or_default(),
            },
        ))
    })?;
    rows.collect()
}

/// Every route in domain order, for the state digest.
pub fn digest_rows(conn: &Connection, out: &mut dyn FnMut(&[u8])) -> rusqlite::Result<()> {
    for (domain, r) in query(conn)? {
        // The row as releases before verification wrote it, unless verified: unchanged
        // data keeps its digest across an upgrade.
        let verify = match r.verify {
            Verify::None => String::new(),
            v => format!(":verify={}", v.as_str()),
        };
        let dmarc = match r.dmarc {
            DmarcAction::NodeDefault => String::new(),
            d => format!(":dmarc={}", d.as_str()),
        };
        let portal = if r.portal { ":portal" } else { "" };
        let digest = r
            .digest
            .map(|d| format!(":digest={}", d.at()))
            .unwrap_or_default();
        let lang = match r.lang {
            DigestLang::En => String::new(),
            other => format!(":lang={}", other.as_str()),
        };
        out(format!(
            "domain:{domain}:{}:{}:{}{verify}{dmarc}{portal}{digest}{lang}",
            r.route, r.author, r.created_at_ms
        )
        .as_bytes());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_are_validated_and_normalised() {
        assert_eq!(
            normalize_route("smtp://127.0.0.1:2626").unwrap(),
            "smtp://127.0.0.1:2626"
        );
        assert_eq!(
            normalize_route("smtp://MX.Example.TEST:25/").unwrap(),
            "smtp://mx.example.test:25"
        );
        assert_eq!(
            normalize_route("smtp://[2001:db8::1]:25").unwrap(),
            "smtp://[2001:db8::1]:25"
        );
        for bad in [
            "127.0.0.1:25",
            "http://x:25",
            "smtp://x",
            "smtp://x:0",
            "smtp://x:99999",
            "smtp://bad..host:25",
            "smtp://[::1:25",
        ] {
            assert!(normalize_route(bad).is_err(), "{bad}");
        }
    }
}
