//! Waiting for a condition with a deadline and a reason, never sleep-and-hope.

use std::future::Future;
use std::time::{Duration, Instant};

use anyhow::bail;

/// Polls `check` until it returns `Some`, or fails after `timeout` naming `reason`.
pub async fn wait_for<T, F, Fut>(reason: &str, timeout: Duration, mut check: F) -> anyhow::Result<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = check().await {
            return Ok(v);
        }
        if Instant::now() > deadline {
            bail!("timed out after {timeout:?} waiting for: {reason}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
