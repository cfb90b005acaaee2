//! Message tracking for operators: the contacted node asks every member (itself locally)
//! for the events that match, merges them newest first, and names the members that did not
//! answer — so one message's story reads as one timeline across the sites that are up.

use std::time::Duration;

use futures::future::join_all;
use tonic::Status;

use peage_proto::v1::{TrackEvent, TrackQuery, TrackReply};

use super::auth::Scope;
use super::scoped;
use super::service::AdminService;
use super::validate::invalid;
use crate::tracking::{limit_of, MAX_LIMIT};

/// How long a peer has to answer a search.
const PEER_TIMEOUT: Duration = Duration::from_secs(5);

/// The events matching `q` within the caller's domains: each node searches only those
/// (`scope` travels with the query), and recipients out of scope are left out here.
pub async fn track(
    svc: &AdminService,
    scope: &Scope,
    mut q: TrackQuery,
) -> Result<TrackReply, Status> {
    q.scope = scope.domains().to_vec();
    if q.limit > MAX_LIMIT {
        return Err(invalid(format!("limit: at most {MAX_LIMIT}")));
    }
    if q.until_ms != 0 && q.since_ms > q.until_ms {
        return Err(invalid("since is after until"));
    }
    let cluster = &svc.cluster;
    let metrics = cluster.metrics();
    let members: Vec<_> = metrics
        .membership_config
        .membership()
        .nodes()
        .map(|(id, node)| (*id, node.clone()))
        .collect();
    let searches = members.iter().map(|(id, node)| {
        let q = q.clone();
        async move {
            let found = if *id == cluster.id() {
                cluster
                    .tracking()
                    .search(q)
                    .await
                    .map_err(|e| e.to_string())
            } else {
                let peers = cluster.peers();
                let asked = peers.track_search(&node.peer_addr, q, PEER_TIMEOUT);
                asked.await.map_err(|e| e.to_string())
            };
            (*id, node.site.clone(), found)
        }
    });
    let mut events: Vec<TrackEvent> = Vec::new();
    let mut unreachable = Vec::new();
    for (id, site, found) in join_all(searches).await {
        match found {
            Ok(found) => events.extend(
                found
                    .into_iter()
                    .filter_map(|e| scoped::event(scope, &q, e)),
            ),
            Err(e) => {
                tracing::info!(node = id, error = %e, "tracking search not answered");
                unreachable.push(format!("{id} ({site})"));
            }
        }
    }
    events.sort_by(|a, b| b.at_ms.cmp(&a.at_ms).then(a.node_id.cmp(&b.node_id)));
    let limit = limit_of(&q);
    let next_before_ms = match events.len() > limit {
        true => {
            events.truncate(limit);
            events.last().map_or(0, |e| e.at_ms)
        }
        false => 0,
    };
    Ok(TrackReply {
        events,
        unreachable,
        next_before_ms,
    })
}
