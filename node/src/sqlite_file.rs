//! SQLite files that cannot be read: damage told apart from other errors (a full disk, a
//! lock), found by SQLite's own check at open, and the file moved aside, kept for whoever
//! wants to look, so that the node can start again without it.

use std::path::{Path, PathBuf};

use rusqlite::Connection;

/// Whether `e` says the file is not a database, or a damaged one.
pub fn unreadable(e: &rusqlite::Error) -> bool {
    use rusqlite::ErrorCode::{DatabaseCorrupt, NotADatabase};
    matches!(e.sqlite_error_code(), Some(NotADatabase | DatabaseCorrupt))
}

/// SQLite's `quick_check` of every page and index of the open file (0.2 s for a million
/// rows here): damage that opening alone does not see, found before a query trips on it.
pub fn check_pages(conn: &Connection) -> rusqlite::Result<()> {
    let mut stmt = conn.prepare("PRAGMA quick_check")?;
    let findings: Vec<String> = stmt
        .query_map([], |r| r.get(0))?
        .collect::<rusqlite::Result<_>>()?;
    if findings.first().is_some_and(|f| f == "ok") {
        return Ok(());
    }
    Err(rusqlite::Error::SqliteFailure(
        rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_CORRUPT),
        Some(findings.join("; ")),
    ))
}

/// [`check_pages`] of the file at `path`, opened read-only.
pub fn check_file(path: &Path) -> rusqlite::Result<()> {
    let conn = Connection::open_with_flags(path, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)?;
    check_pages(&conn)
}

/// Renames the file at `path` (and its WAL and shared-memory files) out of the way, to
/// `<name>.unreadable-<unix seconds>`; returns the new name of the file. Copies set aside
/// before are deleted: a node restarted in a loop on a failing disk keeps one, not one a
/// restart.
pub fn set_aside(path: &Path) -> std::io::Result<PathBuf> {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let name = path.file_name().unwrap_or_default().to_string_lossy();
    let earlier = format!("{name}.unreadable-");
    let dir = path.parent().unwrap_or(Path::new("."));
    for old in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        if old.file_name().to_string_lossy().starts_with(&earlier) {
            let _ = std::fs::remove_file(old.path());
        }
    }
    let kept = path.with_file_name(format!("{name}.unreadable-{secs}"));
    for suffix in ["", "-wal", "-shm"] {
        let from = path.with_file_name(format!("{name}{suffix}"));
        if from.exists() {
            let to = path.with_file_name(format!("{name}.unreadable-{secs}{suffix}"));
            std::fs::rename(&from, &to).map_err(|e| {
                std::io::Error::new(
                    e.kind(),
                    format!("cannot move {} aside: {e}", from.display()),
                )
            })?;
        }
    }
    Ok(kept)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_damaged_page_is_found_and_the_file_set_aside() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.sqlite");
        let conn = Connection::open(&path).unwrap();
        conn.execute_batch(
            "CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT);
             CREATE INDEX t_v ON t (v);
             WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 5000)
             INSERT INTO t (v) SELECT printf('value %d', i) FROM n;",
        )
        .unwrap();
        check_pages(&conn).unwrap();
        drop(conn);
        // A page in the middle of the file overwritten: the header still reads.
        let mut bytes = std::fs::read(&path).unwrap();
        assert!(bytes.len() > 40_000, "{}", bytes.len());
        bytes[32_768..36_864].fill(0x5a);
        std::fs::write(&path, bytes).unwrap();
        let conn = Connection::open(&path).unwrap();
        let e = check_pages(&conn).unwrap_err();
        assert!(unreadable(&e), "{e}");
        drop(conn);

        std::fs::write(dir.path().join("x.sqlite.unreadable-1"), b"an earlier copy").unwrap();
        let kept = set_aside(&path).unwrap();
        assert!(!path.exists());
        assert!(!dir.path().join("x.sqlite.unreadable-1").exists());
        assert!(kept
            .file_name()
            .unwrap()
            .to_string_lossy()
            .starts_with("x.sqlite.unreadable-"));
        assert!(kept.exists());
    }
}
