//! The drill's invariant checker: from what the load generator was told (per message) and
//! what the sink and the quarantine hold at the end, count the outcomes and name every
//! broken promise. Pure, so that its own tests can feed it a lost and a duplicated message.

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;

use peage_mail::filter::Verdict;

use crate::corpus::ExpectedVerdict;

/// What the sending client saw for one message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SendOutcome {
    /// `250`: the cluster owes a delivery or a quarantine.
    Accepted,
    /// A `4xx` (the client would retry later).
    Deferred(u16, String),
    /// A `5xx`.
    Refused(u16, String),
    /// No SMTP answer at all: connection refused or cut (the site is down).
    Unreachable(String),
}

/// One message sent during the drill.
#[derive(Debug, Clone)]
pub struct Sent {
    pub id: u64,
    /// The verdicts the filter may give this message, worked out before the drill.
    pub expected: ExpectedVerdict,
    pub outcome: SendOutcome,
}

/// What the end of the drill holds: copies in the sink per message id, and the ids held in
/// quarantine.
#[derive(Debug, Default)]
pub struct Holdings {
    pub delivered: BTreeMap<u64, usize>,
    pub quarantined: BTreeSet<u64>,
}

#[derive(Debug, Default, Serialize, PartialEq, Eq)]
pub struct Counts {
    pub sent: usize,
    pub accepted_250: usize,
    pub deferred_4xx: usize,
    pub refused_5xx: usize,
    /// 5xx that the filter's verdict does not explain: caused by the fault.
    pub fault_5xx: usize,
    pub unreachable: usize,
    /// Distinct messages in the sink.
    pub delivered: usize,
    pub quarantined: usize,
    /// Accepted, and neither delivered nor quarantined.
    pub lost: usize,
    /// Extra copies in the sink, beyond the first of each message.
    pub duplicated: usize,
    /// Delivered or quarantined although its verdict said otherwise.
    pub wrong_verdict: usize,
    /// Kept although the client was not told `250` (the reply was lost or came as a 4xx
    /// after the commit): a sender retrying it makes a duplicate, as RFC 1047 describes.
    pub kept_without_250: usize,
}

/// The checker's findings.
#[derive(Debug)]
pub struct Findings {
    pub counts: Counts,
    /// Each broken invariant, with how many messages and the first ids.
    pub violations: Vec<String>,
    /// Ids delivered more than once (not a broken invariant: counted and shown).
    pub duplicated_ids: Vec<u64>,
}

/// Counts the outcomes and names each broken invariant.
pub fn check(sent: &[Sent], held: &Holdings) -> Findings {
    let mut c = Counts {
        sent: sent.len(),
        ..Counts::default()
    };
    let mut examples: BTreeMap<&str, Vec<u64>> = BTreeMap::new();
    for s in sent {
        let copies = held.delivered.get(&s.id).copied().unwrap_or(0);
        let quarantined = held.quarantined.contains(&s.id);
        c.delivered += usize::from(copies > 0);
        c.quarantined += usize::from(quarantined);
        c.duplicated += copies.saturating_sub(1);
        if copies > 1 {
            examples.entry("duplicated").or_default().push(s.id);
        }
        match &s.outcome {
            SendOutcome::Accepted => {
                c.accepted_250 += 1;
                if copies == 0 && !quarantined {
                    c.lost += 1;
                    examples.entry("lost").or_default().push(s.id);
                } else if (copies > 0 && !s.expected.allows(Verdict::Deliver))
                    || (quarantined && !s.expected.allows(Verdict::Quarantine))
                {
                    c.wrong_verdict += 1;
                    examples.entry("wrong verdict").or_default().push(s.id);
                }
            }
            SendOutcome::Deferred(..) => c.deferred_4xx += 1,
            SendOutcome::Refused(code, text) => {
                c.refused_5xx += 1;
                let policy =
                    *code == 550 && text.starts_with("5.7.1") && s.expected.allows(Verdict::Reject);
                if !policy {
                    c.fault_5xx += 1;
                    examples
                        .entry("5xx not explained by the verdict")
                        .or_default()
                        .push(s.id);
                }
            }
            SendOutcome::Unreachable(_) => c.unreachable += 1,
        }
        if !matches!(s.outcome, SendOutcome::Accepted) && (copies > 0 || quarantined) {
            c.kept_without_250 += 1;
        }
    }
    let duplicated_ids = examples.remove("duplicated").unwrap_or_default();
    let violations = examples
        .into_iter()
        .map(|(what, ids)| describe(what, &ids))
        .collect();
    Findings {
        counts: c,
        violations,
        duplicated_ids,
    }
}

fn describe(what: &str, ids: &[u64]) -> String {
    let shown: Vec<String> = ids.iter().take(10).map(u64::to_string).collect();
    format!("{what}: {} message(s), ids {}", ids.len(), shown.join(", "))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sent(id: u64, expected: Verdict, outcome: SendOutcome) -> Sent {
        Sent {
            id,
            expected: ExpectedVerdict::exactly(expected),
            outcome,
        }
    }

    fn healthy() -> (Vec<Sent>, Holdings) {
        let sent = vec![
            sent(1, Verdict::Deliver, SendOutcome::Accepted),
            sent(2, Verdict::Quarantine, SendOutcome::Accepted),
            sent(
                3,
                Verdict::Reject,
                SendOutcome::Refused(550, "5.7.1 Rejected: GTUBE".into()),
            ),
            sent(
                4,
                Verdict::Deliver,
                SendOutcome::Deferred(451, "4.4.1 no quorum".into()),
            ),
            sent(
                5,
                Verdict::Deliver,
                SendOutcome::Unreachable("connection refused".into()),
            ),
        ];
        let mut held = Holdings::default();
        held.delivered.insert(1, 1);
        held.quarantined.insert(2);
        (sent, held)
    }

    #[test]
    fn a_clean_run_breaks_nothing_and_counts_each_outcome() {
        let (sent, held) = healthy();
        let Findings {
            counts: c,
            violations,
            ..
        } = check(&sent, &held);
        assert!(violations.is_empty(), "{violations:?}");
        assert_eq!(
            c,
            Counts {
                sent: 5,
                accepted_250: 2,
                deferred_4xx: 1,
                refused_5xx: 1,
                fault_5xx: 0,
                unreachable: 1,
                delivered: 1,
                quarantined: 1,
                lost: 0,
                duplicated: 0,
                wrong_verdict: 0,
                kept_without_250: 0,
            }
        );
    }

    #[test]
    fn an_accepted_message_that_never_arrives_is_lost() {
        let (sent, mut held) = healthy();
        held.delivered.remove(&1);
        let Findings {
            counts: c,
            violations,
            ..
        } = check(&sent, &held);
        assert_eq!(c.lost, 1);
        assert_eq!(violations, vec!["lost: 1 message(s), ids 1".to_owned()]);
    }

    #[test]
    fn a_second_copy_is_counted_as_a_duplicate_but_is_not_a_loss() {
        let (sent, mut held) = healthy();
        held.delivered.insert(1, 3);
        let Findings {
            counts: c,
            violations,
            ..
        } = check(&sent, &held);
        let f = check(&sent, &held);
        assert_eq!(f.duplicated_ids, vec![1]);
        assert_eq!(c.duplicated, 2);
        assert_eq!(c.delivered, 1);
        assert_eq!(c.lost, 0);
        assert!(violations.is_empty(), "{violations:?}");
    }

    #[test]
    fn a_5xx_for_a_message_the_filter_accepts_is_blamed_on_the_fault() {
        let (mut sent, held) = healthy();
        sent[3].outcome = SendOutcome::Refused(554, "5.3.0 internal error".into());
        let Findings {
            counts: c,
            violations,
            ..
        } = check(&sent, &held);
        assert_eq!(c.fault_5xx, 1);
        assert_eq!(
            violations,
            vec!["5xx not explained by the verdict: 1 message(s), ids 4".to_owned()]
        );
    }

    #[test]
    fn quarantining_a_message_whose_verdict_was_deliver_is_a_wrong_verdict() {
        let (sent, mut held) = healthy();
        held.delivered.remove(&1);
        held.quarantined.insert(1);
        let Findings {
            counts: c,
            violations,
            ..
        } = check(&sent, &held);
        assert_eq!(c.wrong_verdict, 1);
        assert_eq!(c.lost, 0);
        assert_eq!(violations.len(), 1, "{violations:?}");
    }

    #[test]
    fn a_message_kept_after_a_4xx_is_counted_as_a_duplicate_risk_not_a_loss() {
        let (sent, mut held) = healthy();
        held.delivered.insert(4, 1);
        let Findings {
            counts: c,
            violations,
            ..
        } = check(&sent, &held);
        assert_eq!(c.kept_without_250, 1);
        assert!(violations.is_empty(), "{violations:?}");
    }

    #[test]
    fn a_verdict_the_clusters_evidence_can_reach_is_not_wrong() {
        let (mut sent, mut held) = healthy();
        // Delivered without evidence; a poor reputation may make it quarantined.
        sent[0].expected = ExpectedVerdict {
            lowest: Verdict::Deliver,
            highest: Verdict::Quarantine,
        };
        held.delivered.remove(&1);
        held.quarantined.insert(1);
        // Quarantined without evidence; bulk and reputation together may make it rejected.
        sent[1].expected = ExpectedVerdict {
            lowest: Verdict::Quarantine,
            highest: Verdict::Reject,
        };
        sent[1].outcome = SendOutcome::Refused(550, "5.7.1 Rejected: bulk".into());
        held.quarantined.remove(&2);
        let f = check(&sent, &held);
        assert!(f.violations.is_empty(), "{:?}", f.violations);
        assert_eq!((f.counts.wrong_verdict, f.counts.fault_5xx), (0, 0));
        // Out of reach it is still wrong: a reject for what evidence can only quarantine.
        sent[0].outcome = SendOutcome::Refused(550, "5.7.1 Rejected: bulk".into());
        held.quarantined.remove(&1);
        assert_eq!(check(&sent, &held).counts.fault_5xx, 1);
    }
}
