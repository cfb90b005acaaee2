//! `peagectl sql`: a read-only query over the contacted node's replicated state, after a
//! read barrier like every read, run on the blocking pool with the time and row limits.

use std::time::Duration;

use tonic::Status;

use peage_proto::v1::{SqlReply, SqlRequest, SqlRow};

use super::service::AdminService;
use super::validate::invalid;
use crate::state::sql::SqlError;

/// The longest a query may run.
pub const TIME_LIMIT: Duration = Duration::from_secs(5);
/// The most rows one reply carries.
const MAX_ROWS: u32 = 10_000;

pub async fn query(svc: &AdminService, r: SqlRequest) -> Result<SqlReply, Status> {
    if r.query.trim().is_empty() {
        return Err(invalid(
            "an SQL query, e.g. SELECT domain, route FROM domains",
        ));
    }
    if r.max_rows > MAX_ROWS {
        return Err(invalid(format!("max_rows: at most {MAX_ROWS}")));
    }
    let max_rows = match r.max_rows {
        0 => 1000,
        n => n as usize,
    };
    let read = svc.read_barrier(r.stale).await?;
    let state = svc.cluster.state().clone();
    let result =
        tokio::task::spawn_blocking(move || state.read_only_query(&r.query, max_rows, TIME_LIMIT))
            .await
            .map_err(|e| Status::internal(e.to_string()))?
            .map_err(|e| match e {
                SqlError::Refused(_) => Status::permission_denied(e.to_string()),
                SqlError::TimedOut(_) => Status::deadline_exceeded(e.to_string()),
                SqlError::TooManyRows(_) | SqlError::TooLarge(_) => {
                    Status::resource_exhausted(e.to_string())
                }
                SqlError::Sqlite(e) => Status::invalid_argument(e.to_string()),
            })?;
    Ok(SqlReply {
        columns: result.columns,
        rows: result
            .rows
            .into_iter()
            .map(|values| SqlRow { values })
            .collect(),
        read: Some(read),
    })
}
