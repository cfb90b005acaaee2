//! The filter run against this node's replica: through the CPU gate (parsing is CPU work),
//! reading the local indexes, never waiting on consensus (promise 4); and its symbols as
//! wire types. The SMTP acceptor and the admin `check` both judge through here.

use std::net::IpAddr;

use peage_mail::filter::{self, FilterInput, Judgement, Symbol, Verdict};
use peage_mail::trust::Authenticated;
use peage_proto::v1::FilterSymbol;

use crate::auth::{Authentication, Authenticator};
use crate::cpu;
use crate::state::StateStore;

/// What is judged: the envelope's part in the checks, and the message.
pub struct Judged {
    pub client_ip: IpAddr,
    pub helo: String,
    pub mail_from: String,
    pub message: Vec<u8>,
    /// What sender authentication proved (nothing when it did not run).
    pub proved: Authenticated,
    /// The envelope recipients (`local@domain`): whose own list entries count.
    pub recipients: Vec<String>,
}

/// Authenticates the sender when the node does (`dns.authenticate`), and records in
/// `judged` the names that proved, which the filter then credits.
pub async fn authenticate(
    auth: Option<&Authenticator>,
    judged: &mut Judged,
) -> Option<Authentication> {
    let found = auth?
        .check(
            judged.client_ip,
            &judged.helo,
            &judged.mail_from,
            &judged.message,
        )
        .await;
    judged.proved = found.proved.clone();
    Some(found)
}

/// The filter panicked on a message (it must not: a bug to report).
#[derive(Debug, thiserror::Error)]
#[error("the filter failed: {0}")]
pub struct FilterFailed(String);

/// Judges a message with the local replica's lists, learned counts and policy, and hands
/// the message back with the judgement. A panic in the filter is caught on the blocking
/// thread so that the message comes back even then: a filter bug must never lose mail.
pub async fn judge(
    state: &StateStore,
    judged: Judged,
) -> Result<(Result<Judgement, FilterFailed>, Vec<u8>), cpu::JobFailed> {
    let state = state.clone();
    cpu::run(move || {
        let judgement = caught(|| {
            let input = FilterInput {
                client_ip: judged.client_ip,
                helo: &judged.helo,
                mail_from: &judged.mail_from,
                message: &judged.message,
                proved: &judged.proved,
                recipients: &judged.recipients,
            };
            let indexes = state.indexes();
            filter::judge(&input, indexes, &indexes.policy().filter)
        });
        (judgement, judged.message)
    })
    .await
}

/// Runs the filter, turning a panic in it into an error (with the panic's message).
fn caught(filter: impl FnOnce() -> Judgement) -> Result<Judgement, FilterFailed> {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(filter)).map_err(|panic| {
        let why = panic
            .downcast_ref::<&str>()
            .map(|s| (*s).to_owned())
            .or_else(|| panic.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "a panic without a message".into());
        FilterFailed(why)
    })
}

/// The symbol of a message held because the filter failed on it.
pub const FILTER_ERROR: &str = "FILTER_ERROR";

/// The verdict on a message the filter failed on: held for an operator, not passed or lost.
pub fn held_for_filter_failure() -> Judgement {
    Judgement {
        symbols: vec![Symbol {
            name: FILTER_ERROR.into(),
            score_milli: 0,
            reason: "the filter failed on this message".into(),
        }],
        verdict: Verdict::Quarantine,
        total_milli: 0,
        evidence_keys: Vec::new(),
    }
}

/// The one conversion of the filter's symbols to the wire.
pub fn wire_symbols(symbols: &[Symbol]) -> Vec<FilterSymbol> {
    symbols
        .iter()
        .map(|s| FilterSymbol {
            name: s.name.clone(),
            score_milli: s.score_milli,
            reason: s.reason.clone(),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_panicking_filter_hands_the_message_back_with_the_panic_message() {
        let message = b"Subject: x\r\n\r\nthe whole body\r\n".to_vec();
        let held = message.clone();
        let (judgement, back) = cpu::run(move || {
            let j = caught(|| panic!("index out of bounds in a rule"));
            (j, held)
        })
        .await
        .expect("the job itself completes");
        assert_eq!(back, message, "nothing of the message is lost");
        let e = judgement.expect_err("the panic is an error");
        assert!(
            e.to_string().contains("index out of bounds in a rule"),
            "{e}"
        );
    }
}
