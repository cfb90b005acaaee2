//! The filter run against this node's replica: through the CPU gate (parsing is CPU work),
//! reading the local indexes, never waiting on consensus (promise 4); and its symbols as
//! wire types. The SMTP acceptor and the admin `check` both judge through here.

use std::net::IpAddr;

use peage_mail::filter::{self, FilterInput, Judgement, Symbol};
use peage_proto::v1::FilterSymbol;

use crate::cpu;
use crate::state::StateStore;

/// What is judged: the envelope's part in the checks, and the message.
pub struct Judged {
    pub client_ip: IpAddr,
    pub helo: String,
    pub mail_from: String,
    pub message: Vec<u8>,
}

/// The filter panicked on a message (it must not: a bug to report).
#[derive(Debug, thiserror::Error)]
#[error("the filter failed: {0}")]
pub struct FilterFailed(String);

/// Judges a message with the local replica's lists, learned counts and policy; hands the
/// message back with the judgement.
pub async fn judge(
    state: &StateStore,
    judged: Judged,
) -> Result<(Judgement, Vec<u8>), FilterFailed> {
    let state = state.clone();
    cpu::run(move || {
        let input = FilterInput {
            client_ip: judged.client_ip,
            helo: &judged.helo,
            mail_from: &judged.mail_from,
            message: &judged.message,
        };
        let indexes = state.indexes();
        let j = filter::judge(&input, indexes, &indexes.policy().filter);
        (j, judged.message)
    })
    .await
    .map_err(|e| FilterFailed(e.to_string()))
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
