//! Recipient verification by callout, for local domains verified that way: the domain's
//! downstream is asked `MAIL FROM:<>` / `RCPT TO:<mailbox>` (then `QUIT`, no message), and
//! its answer — valid, or refused for good — is cached cluster-wide (`CalloutResults`
//! through Raft) until it expires, so every site answers the next `RCPT` for that mailbox
//! without asking again. A downstream that cannot answer now decides nothing.

use std::time::Duration;

use mail_send::smtp::message::Parameters;
use peage_mail::smtp::address::smtp_path;
use peage_proto::v1::{command, CalloutResult, CalloutResults};

use super::delivery::send::{classify, connect, Downstream};
use crate::clock::now_ms;
use crate::cluster::Cluster;

/// Callouts made, by answer (`valid`, `invalid`, `unknown`), and answers from the cache.
pub const CALLOUTS: &str = "peage_smtp_callouts_total";

/// What the downstream said about a mailbox.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer {
    Valid,
    /// Refused for good (5xx), with the downstream's reply.
    Invalid(String),
    /// No answer to go by (unreachable, 4xx, timeout): the mailbox is taken unverified.
    Unknown(String),
}

/// How callouts are made and how long their answers hold.
#[derive(Clone)]
pub struct Callout {
    pub downstream: Downstream,
    /// The whole callout, connection included.
    pub timeout: Duration,
    pub valid_for: Duration,
    pub invalid_for: Duration,
}

impl Callout {
    /// The answer for `address` (lower-cased) on `route`: the cluster's cached one while it
    /// holds, else the downstream's, cached for the other sites in the background.
    pub async fn ask(&self, cluster: &Cluster, route: &str, address: &str) -> Answer {
        let now = now_ms();
        if let Some(valid) = cluster.state().indexes().callout_answer(address, now) {
            metrics::counter!(CALLOUTS, "answer" => "cached").increment(1);
            return if valid {
                Answer::Valid
            } else {
                Answer::Invalid("refused by the downstream (cached)".into())
            };
        }
        let asked = tokio::time::timeout(self.timeout, self.rcpt(route, address));
        let answer = asked
            .await
            .unwrap_or_else(|_| Answer::Unknown(format!("no answer within {:?}", self.timeout)));
        let (label, holds) = match &answer {
            Answer::Valid => ("valid", Some((true, self.valid_for))),
            Answer::Invalid(_) => ("invalid", Some((false, self.invalid_for))),
            Answer::Unknown(_) => ("unknown", None),
        };
        metrics::counter!(CALLOUTS, "answer" => label).increment(1);
        if let Some((valid, ttl)) = holds {
            let result = CalloutResult {
                address: address.to_owned(),
                valid,
                expires_at_ms: now + ttl.as_millis() as i64,
            };
            let record = command::Kind::CalloutResults(CalloutResults {
                results: vec![result],
                now_ms: now,
            });
            let cluster = cluster.clone();
            // The client has its answer; the cache is for the next RCPT, wherever it comes.
            tokio::spawn(async move {
                if let Err(e) = cluster.propose_when_convenient(record).await {
                    tracing::debug!(error = %e, "callout answer not cached");
                }
            });
        }
        answer
    }

    async fn rcpt(&self, route: &str, address: &str) -> Answer {
        let Some(path) = smtp_path(address) else {
            return Answer::Invalid("the address cannot be written as an SMTP path".into());
        };
        let (params, mut client) = match connect(&self.downstream, route).await {
            Ok(c) => (c.mail_parameters("", [address]), c.client),
            Err(refused) => return Answer::Unknown(refused.why),
        };
        let answer = match client.mail_from("", &params).await {
            Err(e) => Answer::Unknown(classify(&e).1),
            Ok(()) => match client.rcpt_to(&path, &Parameters::default()).await {
                Ok(()) => Answer::Valid,
                Err(e) => match classify(&e) {
                    (true, why) => Answer::Invalid(why),
                    (false, why) => Answer::Unknown(why),
                },
            },
        };
        let _ = client.quit().await;
        answer
    }
}
