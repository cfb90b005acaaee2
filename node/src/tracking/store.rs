//! The tracking file: its schema, the writer thread's batched inserts, searches and
//! pruning. Synchronous writes are off: a crash loses the last events, never mail.

use std::borrow::Borrow;
use std::path::Path;
use std::sync::mpsc::Receiver;
use std::time::{Duration, Instant};

use rusqlite::types::Value;
use rusqlite::{params, Connection};

use peage_proto::v1::{Deferral, TrackEvent, TrackQuery};

/// Events inserted in one transaction at most.
const BATCH: usize = 1000;
/// How long the writer gathers events after the first before it inserts them.
const GATHER: Duration = Duration::from_millis(100);

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS events (
    id INTEGER PRIMARY KEY,
    at_ms INTEGER NOT NULL,
    node_id INTEGER NOT NULL,
    site TEXT NOT NULL,
    kind TEXT NOT NULL,
    queue_id TEXT NOT NULL,
    message_id TEXT NOT NULL,
    sender TEXT NOT NULL,
    -- Lower-case, each followed by a comma and the first preceded by one: `,a@x,b@y,`.
    recipients TEXT NOT NULL,
    client_ip TEXT NOT NULL,
    helo TEXT NOT NULL,
    verdict TEXT NOT NULL,
    score_milli INTEGER NOT NULL,
    detail TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS events_by_time ON events (at_ms);
CREATE INDEX IF NOT EXISTS events_by_queue_id ON events (queue_id);
CREATE INDEX IF NOT EXISTS events_by_message_id ON events (message_id);
CREATE INDEX IF NOT EXISTS events_by_client ON events (client_ip);
";

pub fn open(path: &Path) -> anyhow::Result<Connection> {
    let conn = Connection::open(path)
        .map_err(|e| anyhow::anyhow!("cannot open {}: {e}", path.display()))?;
    conn.busy_timeout(std::time::Duration::from_secs(5))?;
    conn.pragma_update(None, "journal_mode", "WAL")?;
    conn.pragma_update(None, "synchronous", "OFF")?;
    conn.execute_batch(SCHEMA)?;
    add_connection_columns(&conn)?;
    conn.execute_batch(super::rollup::SCHEMA)?;
    Ok(conn)
}

/// The columns added since the first version of the file, added to an older one.
fn add_connection_columns(conn: &Connection) -> rusqlite::Result<()> {
    let mut stmt = conn.prepare("SELECT name FROM pragma_table_info('events')")?;
    let names: Vec<String> = stmt
        .query_map([], |r| r.get(0))?
        .collect::<rusqlite::Result<_>>()?;
    for column in ["tls", "login", "rdns"] {
        if !names.iter().any(|n| n == column) {
            conn.execute_batch(&format!(
                "ALTER TABLE events ADD COLUMN {column} TEXT NOT NULL DEFAULT ''"
            ))?;
        }
    }
    Ok(())
}

/// Inserts what arrives on `events`, in batches, until every sender is gone.
pub fn write_batches<E: Borrow<TrackEvent>>(mut conn: Connection, events: Receiver<E>) {
    while let Ok(first) = events.recv() {
        let mut batch = vec![first];
        // Events come one or two at a time; each transaction rewrites every index page it
        // touches into the write-ahead log, so gathering them for a moment costs far less.
        let until = Instant::now() + GATHER;
        while batch.len() < BATCH {
            match events.recv_timeout(until.saturating_duration_since(Instant::now())) {
                Ok(e) => batch.push(e),
                Err(_) => break,
            }
        }
        if let Err(e) = insert(&mut conn, &batch) {
            tracing::warn!(error = %e, lost = batch.len(), "tracking events not written");
        }
    }
}

fn insert<E: Borrow<TrackEvent>>(conn: &mut Connection, batch: &[E]) -> rusqlite::Result<()> {
    let tx = conn.transaction()?;
    let mut rollup = super::rollup::Rollup::default();
    {
        let mut stmt = tx.prepare_cached(
            "INSERT INTO events (at_ms, node_id, site, kind, queue_id, message_id, sender,
               recipients, client_ip, helo, verdict, score_milli, detail, tls, login, rdns)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16)",
        )?;
        for e in batch {
            let e = e.borrow();
            let recipients: String = e
                .recipients
                .iter()
                .map(|r| format!("{},", r.to_lowercase()))
                .collect();
            stmt.execute(params![
                e.at_ms,
                e.node_id as i64,
                e.site,
                e.kind,
                e.queue_id,
                e.message_id,
                e.sender.to_lowercase(),
                format!(",{recipients}"),
                e.client_ip,
                e.helo,
                e.verdict,
                e.score_milli,
                e.detail,
                e.tls,
                e.login,
                e.rdns,
            ])?;
            rollup.add(e);
        }
    }
    rollup.write(&tx)?;
    tx.commit()
}

/// The largest page a search returns.
pub const MAX_LIMIT: u32 = 1000;

/// A query's limit as used: 100 when unset, at most `MAX_LIMIT`.
pub fn limit_of(query: &TrackQuery) -> usize {
    match query.limit {
        0 => 100,
        n => n.min(MAX_LIMIT) as usize,
    }
}

/// `LIKE` pattern text, lower-cased, with its wildcards escaped (`\` is the escape).
fn literal(text: &str) -> String {
    text.to_lowercase()
        .replace('\\', "\\\\")
        .replace('%', "\\%")
        .replace('_', "\\_")
}

/// A search's WHERE clauses and the values they bind, in order.
#[derive(Default)]
struct Filter {
    clauses: Vec<String>,
    values: Vec<Value>,
}

impl Filter {
    fn with(&mut self, clause: &'static str, values: impl IntoIterator<Item = Value>) {
        self.clauses.push(clause.to_owned());
        self.values.extend(values);
    }

    /// `clause` (one `?`) for each value, any of them matching.
    fn with_any(&mut self, clause: &str, values: Vec<Value>) {
        let any = vec![clause; values.len()].join(" OR ");
        self.clauses.push(format!("({any})"));
        self.values.extend(values);
    }
}

/// The events matching `q`, newest first.
pub fn search(conn: &Connection, q: &TrackQuery) -> anyhow::Result<Vec<TrackEvent>> {
    let mut f = Filter::default();
    let contains = |text: &str| Value::Text(format!("%{}%", literal(text)));
    if !q.sender.is_empty() {
        f.with("sender LIKE ? ESCAPE '\\'", [contains(&q.sender)]);
    }
    if !q.recipient.is_empty() {
        f.with("recipients LIKE ? ESCAPE '\\'", [contains(&q.recipient)]);
    }
    if !q.domain.is_empty() {
        let domain = literal(q.domain.trim().trim_start_matches('@'));
        let (as_sender, as_recipient) = (format!("%@{domain}"), format!("%@{domain},%"));
        f.with(
            "(sender LIKE ? ESCAPE '\\' OR recipients LIKE ? ESCAPE '\\')",
            [Value::Text(as_sender), Value::Text(as_recipient)],
        );
    }
    if !q.scope.is_empty() {
        let mut anywhere = Vec::new();
        for domain in &q.scope {
            let domain = literal(domain.trim());
            let (exact, below) = (format!("%@{domain},%"), format!("%.{domain},%"));
            anywhere.extend([Value::Text(exact), Value::Text(below)]);
        }
        f.with_any("recipients LIKE ? ESCAPE '\\'", anywhere);
    }
    for (clause, value) in [
        ("client_ip = ?", &q.client_ip),
        ("message_id = ?", &q.message_id),
        ("queue_id = ?", &q.queue_id),
        ("verdict = ?", &q.verdict),
    ] {
        if !value.is_empty() {
            let exact = value.trim().trim_matches(['<', '>']).to_owned();
            f.with(clause, [Value::Text(exact)]);
        }
    }
    for (clause, ms) in [
        ("at_ms >= ?", q.since_ms),
        ("at_ms <= ?", q.until_ms),
        ("at_ms < ?", q.before_ms),
    ] {
        if ms != 0 {
            f.with(clause, [Value::Integer(ms)]);
        }
    }
    let filter = match f.clauses.is_empty() {
        true => String::new(),
        false => format!("WHERE {}", f.clauses.join(" AND ")),
    };
    let mut values = f.values;
    values.push(Value::Integer(limit_of(q) as i64));
    let sql = format!(
        "SELECT at_ms, node_id, site, kind, queue_id, message_id, sender, recipients, client_ip,
           helo, verdict, score_milli, detail, tls, login, rdns
         FROM events {filter} ORDER BY at_ms DESC, id DESC LIMIT ?"
    );
    let mut stmt = conn.prepare(&sql)?;
    let rows = stmt.query_map(rusqlite::params_from_iter(values), |r| {
        let recipients: String = r.get(7)?;
        Ok(TrackEvent {
            at_ms: r.get(0)?,
            node_id: r.get::<_, i64>(1)? as u64,
            site: r.get(2)?,
            kind: r.get(3)?,
            queue_id: r.get(4)?,
            message_id: r.get(5)?,
            sender: r.get(6)?,
            recipients: recipients
                .split(',')
                .filter(|s| !s.is_empty())
                .map(str::to_owned)
                .collect(),
            client_ip: r.get(8)?,
            helo: r.get(9)?,
            verdict: r.get(10)?,
            score_milli: r.get(11)?,
            detail: r.get(12)?,
            tls: r.get(13)?,
            login: r.get(14)?,
            rdns: r.get(15)?,
            ..TrackEvent::default()
        })
    })?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

/// How many attempts at each of `queue_ids` failed here (those with any), and when and why
/// the last one did.
pub fn deferrals(conn: &Connection, queue_ids: &[String]) -> rusqlite::Result<Vec<Deferral>> {
    if queue_ids.is_empty() {
        return Ok(Vec::new());
    }
    let marks = vec!["?"; queue_ids.len()].join(", ");
    // With one max() in a query, SQLite takes a bare column from the row max() picked.
    let sql = format!(
        "SELECT queue_id, count(*), max(at_ms), detail FROM events
         WHERE kind = 'deferred' AND queue_id IN ({marks}) GROUP BY queue_id"
    );
    let mut stmt = conn.prepare(&sql)?;
    let rows = stmt.query_map(rusqlite::params_from_iter(queue_ids), |r| {
        Ok(Deferral {
            queue_id: r.get(0)?,
            count: r.get::<_, i64>(1)? as u32,
            last_at_ms: r.get(2)?,
            last_detail: r.get(3)?,
        })
    })?;
    rows.collect()
}

/// Deletes the events recorded before `before_ms`, and the statistics of the hours that
/// ended by then; how many events.
pub fn prune(conn: &Connection, before_ms: i64) -> rusqlite::Result<usize> {
    super::rollup::prune(conn, before_ms)?;
    conn.execute("DELETE FROM events WHERE at_ms < ?1", [before_ms])
}
