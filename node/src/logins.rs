//! SMTP AUTH against the replicated submission accounts: Argon2id verification on the
//! blocking pool, at most two at a time (each takes tens of milliseconds of a core and
//! 19 MiB), failures throttled per client address and per login (a guesser gets `454` for
//! the rest of the window, and every failure waits a second), and recent successes
//! remembered for a few minutes so that a client that logs in for every message costs one
//! hash, not one per message.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use argon2::password_hash::rand_core::OsRng;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::Argon2;
use sha2::{Digest, Sha256};
use tokio::sync::Semaphore;

use peage_mail::smtp::Reply;
use peage_mail::sync::lock;

use crate::state::StateStore;

/// Failed logins counted per client address and per login before both are refused.
pub const MAX_FAILURES: u32 = 5;
/// How long failures are remembered, and a refused address or login waits.
pub const FAILURE_WINDOW: Duration = Duration::from_secs(600);
/// Each failure's answer waits this long (a guesser's rate, not a user's).
const FAILURE_DELAY: Duration = Duration::from_secs(1);
/// A success is remembered this long (the same login and password skip the hash).
const SUCCESS_MEMORY: Duration = Duration::from_secs(300);
/// Logins counted as AUTH results (`ok`, `failed`, `throttled`).
pub const AUTH_RESULTS: &str = "peage_smtp_auth_total";

/// An Argon2id PHC string for `password` (OWASP's parameters, the crate's default).
pub fn hash_password(password: &str) -> anyhow::Result<String> {
    let salt = SaltString::generate(&mut OsRng);
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| anyhow::anyhow!("cannot hash the password: {e}"))
}

fn verify(password: &str, hash: &str) -> bool {
    PasswordHash::new(hash)
        .map(|parsed| {
            Argon2::default()
                .verify_password(password.as_bytes(), &parsed)
                .is_ok()
        })
        .unwrap_or(false)
}

#[derive(Default)]
struct Memory {
    /// Failures by client address and by login: how many, since when.
    failures: HashMap<String, (u32, Instant)>,
    /// sha256(login, password, hash) of recent successes, until when they count.
    successes: HashMap<[u8; 32], Instant>,
}

/// Checks logins for the submission listeners.
#[derive(Clone)]
pub struct Logins {
    state: StateStore,
    hashing: Arc<Semaphore>,
    memory: Arc<Mutex<Memory>>,
}

impl Logins {
    pub fn new(state: StateStore) -> Logins {
        Logins {
            state,
            hashing: Arc::new(Semaphore::new(2)),
            memory: Arc::default(),
        }
    }

    /// `Ok` when `password` is `login`'s; the SMTP reply otherwise.
    pub async fn check(&self, client_ip: IpAddr, login: &str, password: &str) -> Result<(), Reply> {
        let login = login.trim().to_lowercase();
        let keys = [format!("ip:{client_ip}"), format!("login:{login}")];
        if self.throttled(&keys) {
            metrics::counter!(AUTH_RESULTS, "result" => "throttled").increment(1);
            return Err(Reply::new(
                454,
                "4.7.0 Too many failed logins; try again later",
            ));
        }
        let account = self.state.indexes().account(&login);
        let ok = match account {
            None => false,
            Some(account) => self.verified(&login, password, account.password_hash).await,
        };
        if ok {
            metrics::counter!(AUTH_RESULTS, "result" => "ok").increment(1);
            return Ok(());
        }
        metrics::counter!(AUTH_RESULTS, "result" => "failed").increment(1);
        self.failed(&keys);
        tracing::info!(client = %client_ip, %login, "SMTP AUTH failed");
        tokio::time::sleep(FAILURE_DELAY).await;
        Err(Reply::new(535, "5.7.8 Authentication credentials invalid"))
    }

    async fn verified(&self, login: &str, password: &str, hash: String) -> bool {
        let mut digest = Sha256::new();
        for part in [login, password, hash.as_str()] {
            digest.update((part.len() as u64).to_le_bytes());
            digest.update(part.as_bytes());
        }
        let key: [u8; 32] = digest.finalize().into();
        let now = Instant::now();
        if lock(&self.memory)
            .successes
            .get(&key)
            .is_some_and(|until| *until > now)
        {
            return true;
        }
        let Ok(_permit) = self.hashing.acquire().await else {
            return false;
        };
        let password = password.to_owned();
        let ok = tokio::task::spawn_blocking(move || verify(&password, &hash))
            .await
            .unwrap_or(false);
        if ok {
            let mut memory = lock(&self.memory);
            memory.successes.retain(|_, until| *until > now);
            memory.successes.insert(key, now + SUCCESS_MEMORY);
        }
        ok
    }

    fn throttled(&self, keys: &[String]) -> bool {
        let memory = lock(&self.memory);
        keys.iter().any(|k| {
            memory
                .failures
                .get(k)
                .is_some_and(|(n, since)| *n >= MAX_FAILURES && since.elapsed() < FAILURE_WINDOW)
        })
    }

    fn failed(&self, keys: &[String]) {
        let mut memory = lock(&self.memory);
        let now = Instant::now();
        memory
            .failures
            .retain(|_, (_, since)| now.duration_since(*since) < FAILURE_WINDOW);
        for k in keys {
            let entry = memory.failures.entry(k.clone()).or_insert((0, now));
            entry.0 += 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{hash_password, verify};

    #[test]
    fn a_hash_verifies_its_password_only() {
        let hash = hash_password("correct horse battery").unwrap();
        assert!(hash.starts_with("$argon2id$"), "{hash}");
        assert!(verify("correct horse battery", &hash));
        assert!(!verify("correct horse", &hash));
        assert!(!verify("correct horse battery", "not a hash"));
        assert_ne!(
            hash,
            hash_password("correct horse battery").unwrap(),
            "salted"
        );
    }
}
