//! What the status of a cluster says about it: role names, and warnings about where the
//! voters are.

use std::collections::BTreeMap;

use openraft::ServerState;

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

#[cfg(test)]
mod tests {
    use super::placement_warnings;

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
