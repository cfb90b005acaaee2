//! Message tracking for operators: the contacted node asks every member (itself locally)
//! for the events that match, merges them newest first, and names the members that did not
//! answer — so one message's story reads as one timeline across the sites that are up.

use std::future::Future;
use std::time::Duration;

use futures::future::{join_all, Either};
use futures::TryFutureExt;
use tonic::Status;

use peage_proto::v1::{TrackEvent, TrackQuery, TrackReply};

use super::auth::Scope;
use super::scoped;
use super::service::AdminService;
use super::validate::invalid;
use crate::tracking::{limit_of, MAX_LIMIT};

/// How long a peer has to answer a search.
pub const PEER_TIMEOUT: Duration = Duration::from_secs(5);

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
    let searched = ask_members(
        svc,
        &q,
        |q| svc.cluster.tracking().search(q),
        |addr, q| async move {
            let peers = svc.cluster.peers();
            peers.track_search(&addr, q, PEER_TIMEOUT).await
        },
    );
    let (found, unreachable) = searched.await;
    let mut events: Vec<TrackEvent> = found
        .into_iter()
        .flatten()
        .filter_map(|e| scoped::event(scope, &q, e))
        .collect();
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

/// Asks every member for what `q` finds — this node through `local`, the others through
/// `remote` with their peer address — and gathers the answers, naming the members that gave
/// none (`ID (site)`).
pub async fn ask_members<Q, T, L, LF, LE, R, RF, RE>(
    svc: &AdminService,
    q: &Q,
    local: L,
    remote: R,
) -> (Vec<T>, Vec<String>)
where
    Q: Clone,
    L: Fn(Q) -> LF,
    LF: Future<Output = Result<T, LE>>,
    LE: std::fmt::Display,
    R: Fn(String, Q) -> RF,
    RF: Future<Output = Result<T, RE>>,
    RE: std::fmt::Display,
{
    let cluster = &svc.cluster;
    let members: Vec<_> = cluster
        .metrics()
        .membership_config
        .membership()
        .nodes()
        .map(|(id, node)| (*id, node.clone()))
        .collect();
    let asked = members.iter().map(|(id, node)| {
        let answer = match *id == cluster.id() {
            true => Either::Left(local(q.clone()).map_err(|e| e.to_string())),
            false => {
                Either::Right(remote(node.peer_addr.clone(), q.clone()).map_err(|e| e.to_string()))
            }
        };
        async move { (*id, &node.site, answer.await) }
    });
    let mut answers = Vec::new();
    let mut unreachable = Vec::new();
    for (id, site, answer) in join_all(asked).await {
        match answer {
            Ok(answer) => answers.push(answer),
            Err(e) => {
                tracing::info!(node = id, error = %e, "cluster-wide search not answered");
                unreachable.push(format!("{id} ({site})"));
            }
        }
    }
    (answers, unreachable)
}
