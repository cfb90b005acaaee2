//! Request validation: every argument checked and normalised before anything is proposed,
//! so nothing invalid reaches the log; each refusal is INVALID_ARGUMENT naming the field.

use std::net::{IpAddr, SocketAddr};

use tonic::Status;

use peage_mail::lists::{normalize_entry, EntryKind, ListName};

/// Most entries or messages one page may hold.
pub const MAX_PAGE: u32 = 1000;
/// The page size when none is asked for.
pub const DEFAULT_PAGE: u32 = 100;
/// Longest `contains` filter of `list ls`.
const MAX_CONTAINS_BYTES: usize = 512;
/// Longest queue id (ours are 16 hex digits).
const MAX_QUEUE_ID: usize = 64;

pub fn invalid(message: impl Into<String>) -> Status {
    Status::invalid_argument(message.into())
}

pub fn kind(kind: i32) -> Result<EntryKind, Status> {
    EntryKind::from_i32(kind).ok_or_else(|| {
        invalid(format!(
            "unknown entry kind {kind}: expected ip, domain, sender or url"
        ))
    })
}

pub fn list(list: i32) -> Result<ListName, Status> {
    ListName::from_i32(list)
        .ok_or_else(|| invalid(format!("unknown list {list}: expected block or allow")))
}

/// 0 means "any" in filters.
pub fn optional<T>(value: i32, parse: fn(i32) -> Result<T, Status>) -> Result<Option<T>, Status> {
    match value {
        0 => Ok(None),
        v => parse(v).map(Some),
    }
}

/// The list, kind and normalised value of a request naming one entry.
pub fn entry(l: i32, k: i32, value: &str) -> Result<(ListName, EntryKind, String), Status> {
    let (l, k) = (list(l)?, kind(k)?);
    let value = normalize_entry(k, value).map_err(|e| invalid(e.to_string()))?;
    Ok((l, k, value))
}

pub fn reason(reason: &str, max_bytes: usize) -> Result<(), Status> {
    if reason.len() > max_bytes {
        return Err(invalid(format!(
            "reason is {} bytes; at most {max_bytes} are allowed",
            reason.len()
        )));
    }
    Ok(())
}

/// When an entry created at `created_at_ms` with this time to live expires.
pub fn expiry(ttl_secs: Option<u64>, created_at_ms: i64) -> Result<Option<i64>, Status> {
    match ttl_secs {
        None => Ok(None),
        Some(0) => Err(invalid("ttl must be at least 1 second")),
        Some(ttl) => i64::try_from(ttl)
            .ok()
            .and_then(|t| t.checked_mul(1000))
            .and_then(|t| t.checked_add(created_at_ms))
            .map(Some)
            .ok_or_else(|| invalid("ttl is too large")),
    }
}

/// The page size asked for, or the default.
pub fn page_size(size: u32) -> Result<u32, Status> {
    match size {
        0 => Ok(DEFAULT_PAGE),
        s if s > MAX_PAGE => Err(invalid(format!("page_size is at most {MAX_PAGE}"))),
        s => Ok(s),
    }
}

pub fn contains(text: &str) -> Result<(), Status> {
    if text.len() > MAX_CONTAINS_BYTES {
        return Err(invalid(format!(
            "contains is at most {MAX_CONTAINS_BYTES} bytes"
        )));
    }
    Ok(())
}

pub fn queue_id(id: &str) -> Result<(), Status> {
    if id.is_empty() || id.len() > MAX_QUEUE_ID {
        return Err(invalid(format!(
            "queue_id must be 1 to {MAX_QUEUE_ID} characters"
        )));
    }
    Ok(())
}

pub fn node_addr(key: &str, addr: &str) -> Result<(), Status> {
    addr.parse::<SocketAddr>()
        .map(|_| ())
        .map_err(|_| invalid(format!("{key} `{addr}` is not an IP:port address")))
}

/// The client IP a message is scored with; loopback when none is given.
pub fn client_ip(ip: &str) -> Result<IpAddr, Status> {
    if ip.is_empty() {
        return Ok(IpAddr::from([127, 0, 0, 1]));
    }
    ip.parse()
        .map_err(|_| invalid(format!("client_ip `{ip}` is not an IP address")))
}

/// A threshold in points as milli-points; 0 keeps `current`.
pub fn threshold(points: f64, current: i64, key: &str) -> Result<i64, Status> {
    if points == 0.0 {
        return Ok(current);
    }
    if !points.is_finite() || points.abs() > 1e9 {
        return Err(invalid(format!("{key} must be a finite number of points")));
    }
    Ok((points * 1000.0).round() as i64)
}

/// Longest quarantine retention accepted: ten years.
const MAX_RETENTION_SECS: u64 = 3650 * 86_400;

/// A quarantine retention in seconds as milliseconds; 0 keeps the current one.
pub fn retention(secs: u64) -> Result<i64, Status> {
    if secs > MAX_RETENTION_SECS {
        return Err(invalid(format!(
            "quarantine_retention_secs is at most {MAX_RETENTION_SECS} (ten years)"
        )));
    }
    Ok(secs as i64 * 1000)
}
