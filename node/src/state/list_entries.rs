//! The block and allow lists' rows: applying `ListAdd` / `ListRemove` / `ListSweep`, and
//! reading them back (pages for `list ls`, every entry for the index and the digest).

use rusqlite::{params, Connection, OptionalExtension, Transaction};

use peage_mail::lists::{EntryKind, ListEntry, ListName};
use peage_proto::v1::{ListAdd, ListRemove, ListSweep};

use super::knowledge::IndexChange;
use crate::types::Outcome;

/// One page of `list ls`.
pub struct ListPage {
    pub entries: Vec<ListEntry>,
    /// The id to continue after, or 0 when this was the last page.
    pub next_after: u64,
}

/// A filter for `list ls`.
#[derive(Default, Clone)]
pub struct ListFilter {
    pub list: Option<ListName>,
    pub kind: Option<EntryKind>,
    pub contains: String,
    pub after_id: u64,
    pub limit: u32,
    /// Only entries scoped within these domains (a domain, its subdomains, its
    /// mailboxes); none: every entry, the cluster's included.
    pub scopes: Vec<String>,
}

pub fn apply_add(
    tx: &Transaction<'_>,
    add: ListAdd,
    changes: &mut Vec<IndexChange>,
) -> rusqlite::Result<Outcome> {
    let (Some(list), Some(kind)) = (ListName::from_i32(add.list), EntryKind::from_i32(add.kind))
    else {
        return Ok(Outcome::Refused("unknown list or kind".into()));
    };
    let existing: Option<i64> = tx
        .query_row(
            "SELECT id FROM list_entries
             WHERE list = ?1 AND kind = ?2 AND value = ?3 AND scope = ?4",
            params![list as i32, kind as i32, add.value, add.scope],
            |r| r.get(0),
        )
        .optional()?;
    let id: i64 = tx.query_row(
        "INSERT INTO list_entries
           (list, kind, value, reason, author, created_at_ms, expires_at_ms, scope)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)
         ON CONFLICT (list, kind, value, scope) DO UPDATE SET
           reason = excluded.reason, author = excluded.author,
           created_at_ms = excluded.created_at_ms, expires_at_ms = excluded.expires_at_ms
         RETURNING id",
        params![
            list as i32,
            kind as i32,
            add.value,
            add.reason,
            add.author,
            add.created_at_ms,
            add.expires_at_ms,
            add.scope
        ],
        |r| r.get(0),
    )?;
    let id = id as u64;
    changes.push(IndexChange::Upsert(ListEntry {
        id,
        list,
        kind,
        value: add.value,
        reason: add.reason,
        author: add.author,
        created_at_ms: add.created_at_ms,
        expires_at_ms: add.expires_at_ms,
        scope: add.scope,
    }));
    Ok(Outcome::ListAdded {
        entry_id: id,
        created: existing.is_none(),
    })
}

pub fn apply_remove(
    tx: &Transaction<'_>,
    rm: ListRemove,
    changes: &mut Vec<IndexChange>,
) -> rusqlite::Result<Outcome> {
    let removed = delete_returning(
        tx,
        "DELETE FROM list_entries
         WHERE list = ?1 AND kind = ?2 AND value = ?3 AND scope = ?4 RETURNING id",
        params![rm.list, rm.kind, rm.value, rm.scope],
        changes,
    )?;
    Ok(Outcome::ListRemoved { removed })
}

/// Deletes what expired by the `now_ms` the leader wrote into the sweep.
pub fn apply_sweep(
    tx: &Transaction<'_>,
    sweep: ListSweep,
    changes: &mut Vec<IndexChange>,
) -> rusqlite::Result<Outcome> {
    let removed = delete_returning(
        tx,
        "DELETE FROM list_entries WHERE expires_at_ms IS NOT NULL AND expires_at_ms <= ?1 RETURNING id",
        params![sweep.now_ms],
        changes,
    )?;
    Ok(Outcome::Swept { removed })
}

/// Runs a `DELETE … RETURNING id`; the index forgets every id it returns.
fn delete_returning(
    tx: &Transaction<'_>,
    sql: &str,
    params: impl rusqlite::Params,
    changes: &mut Vec<IndexChange>,
) -> rusqlite::Result<u32> {
    let mut stmt = tx.prepare_cached(sql)?;
    let ids: Vec<u64> = stmt
        .query_map(params, |r| r.get::<_, i64>(0))?
        .map(|id| id.map(|id| id as u64))
        .collect::<Result<_, _>>()?;
    changes.extend(ids.iter().map(|id| IndexChange::Remove(*id)));
    Ok(ids.len() as u32)
}

/// The entries matching `filter`, by id; at most `limit` of them.
pub fn query(
    conn: &Connection,
    filter: &ListFilter,
    limit: Option<usize>,
) -> rusqlite::Result<Vec<ListEntry>> {
    let mut stmt = conn.prepare_cached(
        "SELECT id, list, kind, value, reason, author, created_at_ms, expires_at_ms, scope
         FROM list_entries
         WHERE id > ?1 AND (?2 = 0 OR list = ?2) AND (?3 = 0 OR kind = ?3)
           AND (?4 = '' OR instr(lower(value), lower(?4)) > 0)
           AND (?6 = '[]' OR (scope != '' AND EXISTS (
                SELECT 1 FROM json_each(?6) AS d
                WHERE substr(scope, instr(scope, '@') + 1) = d.value
                   OR substr(substr(scope, instr(scope, '@') + 1), -length(d.value) - 1)
                      = '.' || d.value)))
         ORDER BY id LIMIT ?5",
    )?;
    let rows = stmt.query_map(
        params![
            filter.after_id as i64,
            filter.list.map_or(0, |l| l as i32),
            filter.kind.map_or(0, |k| k as i32),
            filter.contains,
            limit.map_or(-1, |l| l as i64),
            super::schema::to_json(&filter.scopes),
        ],
        |r| {
            let list: i32 = r.get(1)?;
            let kind: i32 = r.get(2)?;
            Ok((
                list,
                kind,
                ListEntry {
                    id: r.get::<_, i64>(0)? as u64,
                    list: ListName::Block,
                    kind: EntryKind::Ip,
                    value: r.get(3)?,
                    reason: r.get(4)?,
                    author: r.get(5)?,
                    created_at_ms: r.get(6)?,
                    expires_at_ms: r.get(7)?,
                    scope: r.get(8)?,
                },
            ))
        },
    )?;
    let mut out = Vec::new();
    for row in rows {
        let (list, kind, mut e) = row?;
        // Rows are only written by apply, which checked both; skip anything else.
        let (Some(list), Some(kind)) = (ListName::from_i32(list), EntryKind::from_i32(kind)) else {
            continue;
        };
        e.list = list;
        e.kind = kind;
        out.push(e);
    }
    Ok(out)
}

/// One page of entries: one more than asked is read, to tell whether another page follows.
pub fn page(conn: &Connection, filter: &ListFilter) -> rusqlite::Result<ListPage> {
    let limit = filter.limit.clamp(1, 1000) as usize;
    let mut entries = query(conn, filter, Some(limit + 1))?;
    let next_after = if entries.len() > limit {
        entries.truncate(limit);
        entries.last().map_or(0, |e| e.id)
    } else {
        0
    };
    Ok(ListPage {
        entries,
        next_after,
    })
}

/// Every entry, each field length-prefixed, and the id sequence, for the state digest;
/// returns how many entries there are.
pub fn digest_rows(conn: &Connection, out: &mut dyn FnMut(&[u8])) -> rusqlite::Result<u64> {
    let entries = query(conn, &ListFilter::default(), None)?;
    for e in &entries {
        for field in [
            e.id.to_string(),
            (e.list as i32).to_string(),
            (e.kind as i32).to_string(),
            e.value.clone(),
            e.reason.clone(),
            e.author.clone(),
            e.created_at_ms.to_string(),
            format!("{:?}", e.expires_at_ms),
        ] {
            out(&(field.len() as u64).to_le_bytes());
            out(field.as_bytes());
        }
        // The cluster's entries hash as they did before scopes: digests stay comparable.
        if !e.scope.is_empty() {
            out(format!("scope:{}", e.scope).as_bytes());
        }
    }
    let seq: Option<i64> = conn
        .query_row(
            "SELECT seq FROM sqlite_sequence WHERE name = 'list_entries'",
            [],
            |r| r.get(0),
        )
        .optional()?;
    out(format!("seq:{seq:?}").as_bytes());
    Ok(entries.len() as u64)
}
