//! The state database's schema, versioned from the first table: migration N brings
//! `PRAGMA user_version` from N-1 to N, inside one transaction. Also the `meta` rows every
//! applied batch writes (the last applied log id and the membership), and the JSON that
//! list-valued columns hold.

use std::path::Path;

use openraft::LogId;
use rusqlite::{params, Connection, OptionalExtension, Transaction};

use crate::sqlite_file;
use crate::types::{Membership, NodeId};

const MIGRATIONS: &[&str] = &[
    // 1: metadata (last applied log id, membership) and the block/allow lists.
    "CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
     CREATE TABLE list_entries (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        list INTEGER NOT NULL,
        kind INTEGER NOT NULL,
        value TEXT NOT NULL,
        reason TEXT NOT NULL,
        author TEXT NOT NULL,
        created_at_ms INTEGER NOT NULL,
        expires_at_ms INTEGER,
        UNIQUE (list, kind, value)
     );
     CREATE INDEX list_entries_expiry ON list_entries (expires_at_ms)
        WHERE expires_at_ms IS NOT NULL;",
    // 2: the routing table (local domains and their downstream route).
    "CREATE TABLE domains (
        domain TEXT PRIMARY KEY,
        route TEXT NOT NULL,
        author TEXT NOT NULL,
        created_at_ms INTEGER NOT NULL
     );",
    // 3: the spool of accepted messages; recipients as a JSON array, holders likewise.
    "CREATE TABLE spool (
        queue_id TEXT PRIMARY KEY,
        mail_from TEXT NOT NULL,
        rcpt_to TEXT NOT NULL,
        client_ip TEXT NOT NULL,
        helo TEXT NOT NULL,
        body_sha256 TEXT NOT NULL,
        size INTEGER NOT NULL,
        holders TEXT NOT NULL,
        owner INTEGER NOT NULL,
        accepted_at_ms INTEGER NOT NULL,
        lease_until_ms INTEGER NOT NULL
     );",
    // 4: the filter's verdict on spooled messages, and the replicated policy.
    "ALTER TABLE spool ADD COLUMN verdict TEXT NOT NULL DEFAULT 'deliver';
     ALTER TABLE spool ADD COLUMN score_milli INTEGER NOT NULL DEFAULT 0;
     ALTER TABLE spool ADD COLUMN symbols TEXT NOT NULL DEFAULT '[]';
     CREATE TABLE policy (key TEXT PRIMARY KEY, value INTEGER NOT NULL);",
    // 5: operator-requested retries; the owner resets its backoff when this changes.
    "ALTER TABLE spool ADD COLUMN retry_gen INTEGER NOT NULL DEFAULT 0;",
    // 6: the classifier: per-token counts, and each learned message (its class and tokens,
    // so that learning it the other way can take its counts back).
    "CREATE TABLE bayes_tokens (
        token INTEGER PRIMARY KEY,
        spam INTEGER NOT NULL,
        ham INTEGER NOT NULL
     );
     CREATE TABLE bayes_learned (
        fingerprint TEXT PRIMARY KEY,
        class TEXT NOT NULL,
        tokens BLOB NOT NULL,
        author TEXT NOT NULL
     );",
    // 7: reputation and bulk evidence, in thousandths of a message.
    "CREATE TABLE evidence (
        key TEXT PRIMARY KEY,
        ham INTEGER NOT NULL,
        spam INTEGER NOT NULL,
        reject INTEGER NOT NULL
     );",
    // 8: finding quarantined messages past their retention without reading the spool.
    "CREATE INDEX spool_by_verdict_and_age ON spool (verdict, accepted_at_ms);",
    // 9: how often an owner whose attempts kept failing handed a message to another node.
    "ALTER TABLE spool ADD COLUMN handoffs INTEGER NOT NULL DEFAULT 0;",
    // 10: the logistic classifier: its weights that are not zero, trained at apply; each
    // learned message's features and where rehearsal stands in each class.
    "CREATE TABLE logistic_weights (bucket INTEGER PRIMARY KEY, weight REAL NOT NULL);
     ALTER TABLE bayes_learned ADD COLUMN features BLOB NOT NULL DEFAULT x'';
     CREATE INDEX bayes_learned_by_class ON bayes_learned (class, fingerprint);
     CREATE TABLE logistic_cursor (class TEXT PRIMARY KEY, fingerprint TEXT NOT NULL);",
    // 11: recipient verification: how each local domain's RCPT addresses are checked, and
    // the valid mailboxes of domains verified by list.
    "ALTER TABLE domains ADD COLUMN verify TEXT NOT NULL DEFAULT 'none';
     CREATE TABLE recipients (
        address TEXT PRIMARY KEY,
        domain TEXT NOT NULL,
        author TEXT NOT NULL,
        created_at_ms INTEGER NOT NULL
     );
     CREATE INDEX recipients_by_domain ON recipients (domain, address);",
    // 12: the callout cache: what downstreams answered for mailboxes of domains verified by
    // callout, and until when it holds.
    "CREATE TABLE callouts (
        address TEXT PRIMARY KEY,
        valid INTEGER NOT NULL,
        expires_at_ms INTEGER NOT NULL
     );
     CREATE INDEX callouts_by_expiry ON callouts (expires_at_ms);",
    // 13: what a failing DMARC policy does to each local domain's mail ('' = the node's).
    "ALTER TABLE domains ADD COLUMN dmarc TEXT NOT NULL DEFAULT '';",
    // 14: submission accounts: Argon2id hashes, and the domains each may send as (JSON).
    "CREATE TABLE users (
        login TEXT PRIMARY KEY,
        password_hash TEXT NOT NULL,
        domains TEXT NOT NULL,
        author TEXT NOT NULL,
        created_at_ms INTEGER NOT NULL
     );",
    // 15: outbound abuse: spam verdicts per account, and locked accounts (how often locked).
    "CREATE TABLE outbound_strikes (
        login TEXT NOT NULL,
        at_ms INTEGER NOT NULL,
        queue_id TEXT NOT NULL,
        why TEXT NOT NULL
     );
     CREATE INDEX outbound_strikes_by_login ON outbound_strikes (login, at_ms);
     CREATE TABLE identity_locks (
        login TEXT PRIMARY KEY,
        reason TEXT NOT NULL,
        locked_at_ms INTEGER NOT NULL,
        until_ms INTEGER NOT NULL,
        locks INTEGER NOT NULL,
        author TEXT NOT NULL
     );",
    // 16: DKIM keys of hosted domains (PKCS#8), the active one signing.
    "CREATE TABLE dkim_keys (
        domain TEXT NOT NULL,
        selector TEXT NOT NULL,
        algorithm TEXT NOT NULL,
        private_key BLOB NOT NULL,
        public_key TEXT NOT NULL,
        active INTEGER NOT NULL,
        author TEXT NOT NULL,
        created_at_ms INTEGER NOT NULL,
        PRIMARY KEY (domain, selector)
     );",
    // 17: principals trusted by network (JSON list), and where each one's identity comes
    // from; strikes of several kinds (malware, invalid recipients, hard bounces).
    "ALTER TABLE users ADD COLUMN networks TEXT NOT NULL DEFAULT '[]';
     ALTER TABLE users ADD COLUMN identity TEXT NOT NULL DEFAULT 'login';
     ALTER TABLE outbound_strikes ADD COLUMN kind TEXT NOT NULL DEFAULT 'spam';",
    // 18: admin API tokens made through the API (the SHA-256 of each secret), and the
    // audit log of admin writes.
    "CREATE TABLE admin_tokens (
        name TEXT PRIMARY KEY,
        role TEXT NOT NULL,
        domains TEXT NOT NULL,
        secret_sha256 TEXT NOT NULL UNIQUE,
        author TEXT NOT NULL,
        created_at_ms INTEGER NOT NULL,
        expires_at_ms INTEGER NOT NULL
     );
     CREATE TABLE audit_log (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        at_ms INTEGER NOT NULL,
        token TEXT NOT NULL,
        role TEXT NOT NULL,
        client TEXT NOT NULL,
        node_id INTEGER NOT NULL,
        action TEXT NOT NULL,
        target TEXT NOT NULL,
        outcome TEXT NOT NULL
     );
     CREATE INDEX audit_log_by_time ON audit_log (at_ms);",
    // 19: list entries of a domain's or a mailbox's own (`scope`; empty: the cluster's).
    // The table is rebuilt for the wider UNIQUE; ids and the id sequence are kept.
    "CREATE TABLE list_entries_19 (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        list INTEGER NOT NULL,
        kind INTEGER NOT NULL,
        value TEXT NOT NULL,
        reason TEXT NOT NULL,
        author TEXT NOT NULL,
        created_at_ms INTEGER NOT NULL,
        expires_at_ms INTEGER,
        scope TEXT NOT NULL DEFAULT '',
        UNIQUE (list, kind, value, scope)
     );
     INSERT INTO list_entries_19
        (id, list, kind, value, reason, author, created_at_ms, expires_at_ms)
        SELECT id, list, kind, value, reason, author, created_at_ms, expires_at_ms
        FROM list_entries;
     DELETE FROM sqlite_sequence WHERE name = 'list_entries_19';
     INSERT INTO sqlite_sequence (name, seq)
        SELECT 'list_entries_19', seq FROM sqlite_sequence WHERE name = 'list_entries';
     DROP TABLE list_entries;
     ALTER TABLE list_entries_19 RENAME TO list_entries;
     CREATE INDEX list_entries_expiry ON list_entries (expires_at_ms)
        WHERE expires_at_ms IS NOT NULL;
     CREATE INDEX list_entries_scope ON list_entries (scope) WHERE scope != '';",
    // 20: the portal's signing key (one row), and whether each domain's mailbox owners
    // may use the portal.
    "CREATE TABLE portal_key (
        id INTEGER PRIMARY KEY CHECK (id = 1),
        key BLOB NOT NULL
     );
     ALTER TABLE domains ADD COLUMN portal INTEGER NOT NULL DEFAULT 0;",
    // 21: each domain's daily digest of held mail ("HH:MM" UTC, empty for none), and the
    // digests sent, one row each, keyed so that a digest goes out once.
    "ALTER TABLE domains ADD COLUMN digest_at TEXT NOT NULL DEFAULT '';
     ALTER TABLE domains ADD COLUMN digest_lang TEXT NOT NULL DEFAULT 'en';
     CREATE TABLE digests_sent (
        key TEXT PRIMARY KEY,
        recipient TEXT NOT NULL,
        up_to_ms INTEGER NOT NULL,
        queue_id TEXT NOT NULL,
        sent_at_ms INTEGER NOT NULL
     );
     CREATE INDEX digests_sent_recipient ON digests_sent (recipient, up_to_ms);",
];

/// The schema version this release writes.
pub const SCHEMA_VERSION: usize = MIGRATIONS.len();

/// Statements kept prepared (`execute_cached`): every statement an apply runs, with room.
const STATEMENT_CACHE: usize = 64;

/// Runs `sql` through the connection's statement cache: an apply runs the same few
/// statements for every message, and parsing them each time was a visible share of a
/// node's CPU under load.
pub fn execute_cached(
    conn: &Connection,
    sql: &str,
    params: impl rusqlite::Params,
) -> rusqlite::Result<usize> {
    conn.prepare_cached(sql)?.execute(params)
}

/// Opens the database in WAL mode and brings its schema up to date.
pub fn open(path: &Path) -> rusqlite::Result<Connection> {
    let mut conn = Connection::open(path)?;
    conn.pragma_update(None, "journal_mode", "WAL")?;
    // NORMAL: a crash may lose the last transactions, which the Raft log replays.
    conn.pragma_update(None, "synchronous", "NORMAL")?;
    // A checkpoint leaves the write-ahead file at its largest size otherwise: cut it back.
    conn.pragma_update(None, "journal_size_limit", 1 << 20)?;
    conn.set_prepared_statement_cache_capacity(STATEMENT_CACHE);
    migrate(&mut conn)?;
    Ok(conn)
}

/// The last applied log id and the membership it left.
pub type Applied = (Option<LogId<NodeId>>, Membership);

/// As [`open`], with every page checked and the last applied log id read: an `Err` that
/// [`sqlite_file::unreadable`] accepts when the file is damaged.
pub fn open_checked(path: &Path) -> rusqlite::Result<(Connection, Applied)> {
    let conn = open(path)?;
    sqlite_file::check_pages(&conn)?;
    let applied = read_applied(&conn)?;
    Ok((conn, applied))
}

fn migrate(conn: &mut Connection) -> rusqlite::Result<()> {
    let current = conn.query_row("PRAGMA user_version", [], |r| r.get::<_, i64>(0))? as usize;
    if current > SCHEMA_VERSION {
        return Err(rusqlite::Error::InvalidParameterName(format!(
            "state database schema version {current} is newer than this release's {SCHEMA_VERSION}"
        )));
    }
    for (i, sql) in MIGRATIONS.iter().enumerate().skip(current) {
        let tx = conn.transaction()?;
        tx.execute_batch(sql)?;
        tx.pragma_update(None, "user_version", (i + 1) as i64)?;
        tx.commit()?;
    }
    Ok(())
}

/// The last applied log id and membership, as the database holds them.
pub fn read_applied(conn: &Connection) -> rusqlite::Result<Applied> {
    let get = |key: &str| -> rusqlite::Result<Option<String>> {
        conn.query_row("SELECT value FROM meta WHERE key = ?1", [key], |r| r.get(0))
            .optional()
    };
    let last = match get("last_applied")? {
        Some(s) => from_json(&s)?,
        None => None,
    };
    let membership = match get("membership")? {
        Some(s) => from_json(&s)?,
        None => Membership::default(),
    };
    Ok((last, membership))
}

/// Records, in the apply transaction, what the batch brought the database up to.
pub fn write_applied(
    tx: &Transaction<'_>,
    last: &Option<LogId<NodeId>>,
    membership: &Membership,
) -> rusqlite::Result<()> {
    execute_cached(
        tx,
        "INSERT INTO meta (key, value) VALUES ('last_applied', ?1), ('membership', ?2)
         ON CONFLICT (key) DO UPDATE SET value = excluded.value",
        params![to_json(last), to_json(membership)],
    )?;
    Ok(())
}

/// Log ids, memberships and lists of strings and numbers are plain data: serialising them
/// to JSON cannot fail.
pub fn to_json<T: serde::Serialize>(value: &T) -> String {
    serde_json::to_string(value).expect("plain data serialises to JSON")
}

/// A JSON column read back; a row that does not parse is a conversion error, not a panic.
pub fn from_json<T: serde::de::DeserializeOwned>(text: &str) -> rusqlite::Result<T> {
    serde_json::from_str(text).map_err(|e| {
        rusqlite::Error::FromSqlConversionFailure(0, rusqlite::types::Type::Text, Box::new(e))
    })
}

#[cfg(test)]
mod tests {
    #[test]
    fn migrates_from_empty_and_is_idempotent() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("s.sqlite");
        drop(super::open(&p).unwrap());
        let conn = super::open(&p).unwrap();
        let v = conn
            .query_row("PRAGMA user_version", [], |r| r.get::<_, i64>(0))
            .unwrap() as usize;
        assert_eq!(v, super::SCHEMA_VERSION);
    }

    /// Migration 19 rebuilds the list table: ids, rows and the id sequence stay as they
    /// were (the digest covers the sequence), and one value can then have several scopes.
    #[test]
    fn the_list_table_rebuild_keeps_ids_and_the_sequence() {
        let mut conn = rusqlite::Connection::open_in_memory().unwrap();
        for (i, sql) in super::MIGRATIONS.iter().enumerate().take(18) {
            conn.execute_batch(sql).unwrap();
            conn.pragma_update(None, "user_version", (i + 1) as i64)
                .unwrap();
        }
        let add = "INSERT INTO list_entries (list, kind, value, reason, author, created_at_ms)
                   VALUES (1, 2, ?1, 'r', 'ops', 5)";
        for v in ["a.example", "b.example", "c.example", "d.example"] {
            conn.execute(add, [v]).unwrap();
        }
        conn.execute("DELETE FROM list_entries WHERE id IN (2, 4)", [])
            .unwrap();
        super::migrate(&mut conn).unwrap();
        let rows: Vec<(i64, String, String)> = conn
            .prepare("SELECT id, value, scope FROM list_entries ORDER BY id")
            .unwrap()
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        let unscoped = |id: i64, v: &str| (id, v.to_owned(), String::new());
        assert_eq!(rows, [unscoped(1, "a.example"), unscoped(3, "c.example")]);
        let add_scoped = "INSERT INTO list_entries
             (list, kind, value, reason, author, created_at_ms, scope)
             VALUES (1, 2, 'a.example', '', 'acme', 6, 'acme.example') RETURNING id";
        let id: i64 = conn.query_row(add_scoped, [], |r| r.get(0)).unwrap();
        assert_eq!(
            id, 5,
            "the sequence went on from 4, not from the highest id left"
        );
    }
}
