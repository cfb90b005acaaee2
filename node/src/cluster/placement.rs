//! What the status of a cluster says about it: role names, and warnings about where the
//! voters are and about members the leader cannot reach or that lag behind it.

use std::collections::BTreeMap;

use openraft::ServerState;

use super::read::FAR_BEHIND;
use super::silence::MemberReplication;
use crate::types::NodeId;

/// A role name for status output.
pub fn role_name(state: ServerState) -> &'static str {
    match state {
        ServerState::Leader => "leader",
        ServerState::Follower => "follower",
        ServerState::Learner => "learner",
        ServerState::Candidate => "candidate",
        ServerState::Shutdown => "shutdown",
    }
}

/// Warnings about where the voters are: a site holding a majority of them takes the quorum
/// down with it.
pub fn placement_warnings(voters: &[(NodeId, String)]) -> Vec<String> {
    let mut by_site: BTreeMap<&str, usize> = BTreeMap::new();
    for (_, site) in voters {
        *by_site.entry(site.as_str()).or_default() += 1;
    }
    let total = voters.len();
    let mut warnings = Vec::new();
    if total > 1 {
        for (site, n) in by_site {
            if n * 2 > total {
                warnings.push(format!(
                    "site {site} holds {n} of {total} voters: losing that site loses the quorum"
                ));
            }
        }
    }
    if total == 2 {
        warnings.push("2 voters: losing either one loses the quorum; use 3 or more".into());
    }
    warnings
}

/// A member as the replication warnings see it.
pub struct Replica<'a> {
    pub id: NodeId,
    pub site: &'a str,
    pub voter: bool,
    pub replication: MemberReplication,
}

/// Warnings about members that do not answer the leader, or lag far behind it; from the
/// leader's figures (`replicas` is empty when no leader gave them).
pub fn replication_warnings(replicas: &[Replica<'_>]) -> Vec<String> {
    let newest = replicas
        .iter()
        .map(|r| r.replication.matched)
        .max()
        .unwrap_or(0);
    let voters = replicas.iter().filter(|r| r.voter).count();
    let answering = (replicas.iter())
        .filter(|r| r.voter && r.replication.silent_ms.is_none())
        .count();
    let mut warnings = Vec::new();
    for r in replicas {
        let who = format!("node {} ({})", r.id, r.site);
        match r.replication.silent_ms {
            Some(ms) => {
                let mut w = format!(
                    "{who} has not answered the leader for {}: it receives nothing",
                    for_how_long(ms)
                );
                if r.voter && answering == voters / 2 + 1 {
                    w.push_str("; one more voter down loses the quorum");
                }
                warnings.push(w);
            }
            None if newest - r.replication.matched > FAR_BEHIND => warnings.push(format!(
                "{who} is {} entries behind the leader (catching up)",
                newest - r.replication.matched
            )),
            None => {}
        }
    }
    warnings
}

/// A duration for operators: `850 ms`, `12.3 s`, `4 min 10 s`, `2 h 5 min`.
fn for_how_long(ms: u64) -> String {
    let s = ms / 1000;
    match ms {
        0..1_000 => format!("{ms} ms"),
        1_000..60_000 => format!("{:.1} s", ms as f64 / 1000.0),
        60_000..3_600_000 => format!("{} min {} s", s / 60, s % 60),
        _ => format!("{} h {} min", s / 3600, s / 60 % 60),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn replica(id: NodeId, site: &str, matched: u64, silent_ms: Option<u64>) -> Replica<'_> {
        Replica {
            id,
            site,
            voter: true,
            replication: MemberReplication { matched, silent_ms },
        }
    }

    #[test]
    fn warns_of_a_member_that_does_not_answer_and_of_one_far_behind() {
        let healthy = [
            replica(1, "paris", 5_000, None),
            replica(2, "roubaix", 4_990, None),
            replica(3, "ariege", 5_000, None),
        ];
        assert!(replication_warnings(&healthy).is_empty());

        let one_down = [
            replica(1, "paris", 5_000, None),
            replica(2, "roubaix", 2_000, None),
            replica(3, "ariege", 4_000, Some(12_345)),
        ];
        assert_eq!(
            replication_warnings(&one_down),
            [
                "node 2 (roubaix) is 3000 entries behind the leader (catching up)",
                "node 3 (ariege) has not answered the leader for 12.3 s: it receives nothing; \
                 one more voter down loses the quorum",
            ]
        );

        // Five voters, one down: losing one more still leaves a majority.
        let mut five: Vec<Replica> = (1..=5).map(|i| replica(i, "x", 10, None)).collect();
        five[4].replication.silent_ms = Some(90_000);
        assert_eq!(
            replication_warnings(&five),
            ["node 5 (x) has not answered the leader for 1 min 30 s: it receives nothing"]
        );
        assert!(replication_warnings(&[]).is_empty());
    }

    #[test]
    fn durations_read_as_operators_say_them() {
        assert_eq!(for_how_long(850), "850 ms");
        assert_eq!(for_how_long(12_345), "12.3 s");
        assert_eq!(for_how_long(250_000), "4 min 10 s");
        assert_eq!(for_how_long(7_500_000), "2 h 5 min");
    }

    #[test]
    fn warns_when_one_site_holds_a_majority() {
        let spread = vec![
            (1, "paris".into()),
            (2, "roubaix".into()),
            (3, "ariege".into()),
        ];
        assert!(placement_warnings(&spread).is_empty());
        let lopsided = vec![
            (1, "paris".into()),
            (2, "paris".into()),
            (3, "ariege".into()),
        ];
        let w = placement_warnings(&lopsided);
        assert_eq!(w.len(), 1);
        assert!(w[0].contains("paris"), "{w:?}");
    }
}
