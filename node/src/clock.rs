//! The wall clock, read in this one place. Apply never calls it: the leader writes the
//! times it decides by into the entries (promise 6), and everything else that needs "now"
//! (leases, expiry, timestamps of new records) asks here.

use std::time::{SystemTime, UNIX_EPOCH};

/// Milliseconds since the Unix epoch (0 if the clock is before it).
pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}
