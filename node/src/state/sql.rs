//! `peagectl sql`: one read-only query over this node's replicated state, for operators. A
//! connection of its own, opened read-only, whose authorizer allows only reading (SELECT,
//! column reads, functions, recursive CTEs: no write, ATTACH or PRAGMA), a time limit
//! enforced by SQLite's progress handler, and row, value and reply size limits past which
//! the query is refused — one query must not take the node's memory.

use std::time::{Duration, Instant};

use rusqlite::hooks::{AuthAction, AuthContext, Authorization};
use rusqlite::limits::Limit;
use rusqlite::types::ValueRef;
use rusqlite::{Connection, OpenFlags};

use super::{StateStore, DB_FILE};

/// The longest string or blob a query may make (SQLite's own default is a gigabyte).
const MAX_VALUE_BYTES: i32 = 16 << 20;
/// The most text one reply carries (the memory one query may hold; under the 4 MiB a gRPC
/// client reads by default).
pub const MAX_REPLY_BYTES: usize = 3 << 20;

/// What a query returned: column names and rows as text.
#[derive(Debug)]
pub struct QueryResult {
    pub columns: Vec<String>,
    pub rows: Vec<Vec<String>>,
}

/// Why a query was not answered.
#[derive(Debug, thiserror::Error)]
pub enum SqlError {
    #[error("refused: {0}")]
    Refused(String),
    #[error("stopped after the time limit of {0:?}")]
    TimedOut(Duration),
    #[error("more than {0} rows: add a LIMIT or a WHERE, or raise --max-rows")]
    TooManyRows(usize),
    #[error("the reply would pass {} MiB: select fewer rows or columns, or shorten them with substr() or length()", .0 >> 20)]
    TooLarge(usize),
    #[error("{0}")]
    Sqlite(#[from] rusqlite::Error),
}

/// What the authorizer lets a query do: read, nothing else.
fn reads_only(ctx: AuthContext<'_>) -> Authorization {
    match ctx.action {
        AuthAction::Select
        | AuthAction::Read { .. }
        | AuthAction::Function { .. }
        | AuthAction::Recursive => Authorization::Allow,
        _ => Authorization::Deny,
    }
}

/// A value as operators read it.
fn text_of(v: ValueRef<'_>) -> String {
    match v {
        ValueRef::Null => "NULL".into(),
        ValueRef::Integer(i) => i.to_string(),
        ValueRef::Real(f) => f.to_string(),
        ValueRef::Text(t) => String::from_utf8_lossy(t).into_owned(),
        ValueRef::Blob(b) => format!(
            "x'{}' ({} bytes)",
            hex::encode(&b[..b.len().min(32)]),
            b.len()
        ),
    }
}

impl StateStore {
    /// Runs `sql`, one read-only statement, within `time_limit`, returning at most
    /// `max_rows` rows.
    pub fn read_only_query(
        &self,
        sql: &str,
        max_rows: usize,
        time_limit: Duration,
    ) -> Result<QueryResult, SqlError> {
        let flags = OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX;
        let mut conn = Connection::open_with_flags(self.inner.dir.join(DB_FILE), flags)?;
        conn.authorizer(Some(reads_only))?;
        conn.set_limit(Limit::SQLITE_LIMIT_LENGTH, MAX_VALUE_BYTES)?;
        let started = Instant::now();
        conn.progress_handler(1000, Some(move || started.elapsed() > time_limit))?;
        let mut stmt = conn.prepare(sql).map_err(|e| match e {
            rusqlite::Error::SqliteFailure(f, _)
                if f.code == rusqlite::ErrorCode::AuthorizationForStatementDenied =>
            {
                SqlError::Refused("only reading (SELECT) is allowed".into())
            }
            rusqlite::Error::MultipleStatement => {
                SqlError::Refused("one statement at a time".into())
            }
            e => SqlError::Sqlite(e),
        })?;
        if !stmt.readonly() {
            return Err(SqlError::Refused("only reading (SELECT) is allowed".into()));
        }
        let columns: Vec<String> = stmt.column_names().map(str::to_owned).collect();
        let mut rows = stmt.query([])?;
        let mut out = Vec::new();
        let mut reply_bytes = 0;
        loop {
            let row = match rows.next() {
                Ok(Some(row)) => row,
                Ok(None) => break,
                Err(rusqlite::Error::SqliteFailure(f, _))
                    if f.code == rusqlite::ErrorCode::OperationInterrupted =>
                {
                    return Err(SqlError::TimedOut(time_limit))
                }
                Err(e) => return Err(e.into()),
            };
            if out.len() == max_rows {
                return Err(SqlError::TooManyRows(max_rows));
            }
            let values: Vec<String> = (0..columns.len())
                .map(|i| row.get_ref(i).map_or_else(|e| e.to_string(), text_of))
                .collect();
            reply_bytes += values.iter().map(String::len).sum::<usize>();
            if reply_bytes > MAX_REPLY_BYTES {
                return Err(SqlError::TooLarge(MAX_REPLY_BYTES));
            }
            out.push(values);
        }
        Ok(QueryResult { columns, rows: out })
    }
}
