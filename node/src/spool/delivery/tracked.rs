//! What a delivery attempt tells message tracking: the recipients delivered, each one
//! bounced with its reply, and those deferred with why.

use peage_proto::v1::TrackEvent;

use super::send::AttemptResult;
use crate::state::spool::SpooledMessage;
use crate::tracking::{event_of, Tracking};

pub fn record_attempt(tracking: &Tracking, m: &SpooledMessage, result: &AttemptResult) {
    let event = |kind: &str, recipients: Vec<String>, detail: String| TrackEvent {
        message_id: result.message_id.clone(),
        ..event_of(m, kind, recipients, detail)
    };
    let failed = |rcpt: &String| result.failed.iter().any(|(r, _)| r == rcpt);
    let delivered: Vec<String> = result.done.iter().filter(|r| !failed(r)).cloned().collect();
    if !delivered.is_empty() {
        tracking.record(event(
            "delivered",
            delivered,
            "accepted by the downstream".into(),
        ));
    }
    for (rcpt, why) in &result.failed {
        tracking.record(event("bounced", vec![rcpt.clone()], why.clone()));
    }
    if let Some((_, why)) = result.retry.first() {
        let rcpts = result.retry.iter().map(|(r, _)| r.clone()).collect();
        tracking.record(event("deferred", rcpts, why.clone()));
    }
}
