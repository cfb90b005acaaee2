//! CPU-bound work (parsing and scoring messages) off the async workers, at most one job per
//! core at a time.
//!
//! Why a gate and not the bare blocking pool: the pool grows to hundreds of threads, one per
//! waiting SMTP session, and the OS shares the cores between threads evenly. Under a few hundred
//! sessions the two runtime workers, which carry Raft's heartbeats and replication, then got a
//! sliver of the CPU; appends missed openraft's timeout (the heartbeat interval), the peer
//! connections reset, and the cluster lost its quorum. With the gate, the workers always
//! compete with no more filter threads than there are cores; the other jobs wait their turn,
//! which only lengthens the time to the 250.

use std::sync::LazyLock;

use tokio::sync::Semaphore;

static CPU_SLOTS: LazyLock<Semaphore> = LazyLock::new(|| Semaphore::new(cores()));

/// The cores this process may use (1 if the OS cannot tell).
pub fn cores() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// A CPU-bound job that panicked.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct JobFailed(String);

/// Runs `job` on the blocking pool once a core is free, and returns its result.
pub async fn run<T, F>(job: F) -> Result<T, JobFailed>
where
    F: FnOnce() -> T + Send + 'static,
    T: Send + 'static,
{
    // The semaphore is never closed, so acquiring only waits.
    let _slot = CPU_SLOTS
        .acquire()
        .await
        .map_err(|e| JobFailed(e.to_string()))?;
    tokio::task::spawn_blocking(job)
        .await
        .map_err(|e| JobFailed(e.to_string()))
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;
    use std::time::Duration;

    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn no_more_jobs_run_at_once_than_there_are_cores() {
        let running = Arc::new(AtomicUsize::new(0));
        let most = Arc::new(AtomicUsize::new(0));
        let jobs: Vec<_> = (0..4 * cores() + 4)
            .map(|_| {
                let (running, most) = (running.clone(), most.clone());
                tokio::spawn(run(move || {
                    let now = running.fetch_add(1, Ordering::SeqCst) + 1;
                    most.fetch_max(now, Ordering::SeqCst);
                    // Long enough for the others to pile up behind the gate if it leaked.
                    std::thread::sleep(Duration::from_millis(20));
                    running.fetch_sub(1, Ordering::SeqCst);
                }))
            })
            .collect();
        for job in jobs {
            job.await.unwrap().unwrap();
        }
        let most = most.load(Ordering::SeqCst);
        assert!(
            most >= 1 && most <= cores(),
            "{most} jobs ran at once on {} cores",
            cores()
        );
    }

    #[tokio::test]
    async fn a_panicking_job_is_an_error_not_a_crash() {
        let r = run(|| -> u32 { panic!("bad message") }).await;
        assert!(
            r.unwrap_err().to_string().contains("panic"),
            "the panic is reported"
        );
        assert_eq!(run(|| 7).await.unwrap(), 7, "the slot was given back");
    }
}
