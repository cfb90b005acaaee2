//! The quarantine digests sent: one row per digest, written in the same apply as the
//! digest's `SpoolPut`. Its key makes a digest go out once whichever leader proposes it
//! (a second `SpoolPut` with the same key is refused), and each recipient's newest row says
//! up to when its held mail was already listed. Rows older than the quarantine's retention
//! go with the messages they listed.

use rusqlite::{params, Connection, OptionalExtension, Transaction};

use peage_proto::v1::DigestSent;

/// Records `sent` for the spooled message `queue_id` (the caller asked `was_sent` first).
pub fn record(
    tx: &Transaction<'_>,
    sent: &DigestSent,
    queue_id: &str,
    at_ms: i64,
) -> rusqlite::Result<()> {
    tx.execute(
        "INSERT INTO digests_sent (key, recipient, up_to_ms, queue_id, sent_at_ms)
         VALUES (?1, ?2, ?3, ?4, ?5) ON CONFLICT (key) DO NOTHING",
        params![sent.key, sent.recipient, sent.up_to_ms, queue_id, at_ms],
    )?;
    Ok(())
}

/// Whether a digest with `key` was sent.
pub fn was_sent(conn: &Connection, key: &str) -> rusqlite::Result<bool> {
    conn.prepare_cached("SELECT 1 FROM digests_sent WHERE key = ?1")?
        .query_row([key], |_| Ok(()))
        .optional()
        .map(|row| row.is_some())
}

/// Up to when `recipient`'s held mail was listed by its digests (0: never).
pub fn listed_up_to(conn: &Connection, recipient: &str) -> rusqlite::Result<i64> {
    conn.prepare_cached("SELECT MAX(up_to_ms) FROM digests_sent WHERE recipient = ?1")?
        .query_row([recipient], |r| r.get::<_, Option<i64>>(0))
        .map(Option::unwrap_or_default)
}

/// Forgets the digests that listed only mail accepted before `before_ms` (which the
/// quarantine's retention has removed).
pub fn forget_before(tx: &Transaction<'_>, before_ms: i64) -> rusqlite::Result<usize> {
    tx.execute("DELETE FROM digests_sent WHERE up_to_ms < ?1", [before_ms])
}

pub fn digest_rows(conn: &Connection, out: &mut dyn FnMut(&[u8])) -> rusqlite::Result<()> {
    let mut stmt = conn.prepare_cached(
        "SELECT key, recipient, up_to_ms, queue_id, sent_at_ms FROM digests_sent ORDER BY key",
    )?;
    let mut rows = stmt.query([])?;
    while let Some(r) = rows.next()? {
        let (key, recipient, up_to, queue_id, at): (String, String, i64, String, i64) =
            (r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?);
        out(format!("digest_sent:{key}:{recipient}:{up_to}:{queue_id}:{at}").as_bytes());
    }
    Ok(())
}
