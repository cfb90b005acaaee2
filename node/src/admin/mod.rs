//! The admin gRPC service: bearer-token auth with roles, request validation, status and
//! membership, block/allow lists. Writes go through the cluster (forwarded to the leader);
//! reads wait for a linearizable barrier unless `stale` is asked for.

mod auth;
mod convert;

use std::time::{SystemTime, UNIX_EPOCH};

use tonic::{Request, Response, Status};

use peage_proto::v1::admin_server::Admin;
use peage_proto::v1::*;

use crate::cluster::{self, Cluster, LeaderOp, WriteError};
use crate::config::{Config, Role};
use crate::state::lists::{self, EntryKind};
use crate::state::routing;
use crate::state::{ListFilter, Outcome};
pub use auth::Tokens;
use convert::{entry_to_proto, queued_to_proto, read_info, write_status};

pub struct AdminService {
    cluster: Cluster,
    tokens: Tokens,
    max_reason_bytes: usize,
    /// The delivery lease a released message starts with.
    lease: std::time::Duration,
}

impl AdminService {
    pub fn new(cluster: Cluster, config: &Config) -> AdminService {
        AdminService {
            cluster,
            tokens: Tokens::new(&config.admin.tokens),
            max_reason_bytes: config.lists.max_reason_bytes,
            lease: std::time::Duration::from_secs(config.spool.lease_secs),
        }
    }
}

pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

fn parse_kind(kind: i32) -> Result<EntryKind, Status> {
    EntryKind::from_i32(kind).ok_or_else(|| {
        Status::invalid_argument(format!(
            "unknown entry kind {kind}: expected ip, domain, sender or url"
        ))
    })
}

fn parse_list(list: i32) -> Result<lists::ListName, Status> {
    lists::ListName::from_i32(list).ok_or_else(|| {
        Status::invalid_argument(format!("unknown list {list}: expected block or allow"))
    })
}

/// The list, kind and normalised value of a request naming one entry.
fn parse_entry(
    list: i32,
    kind: i32,
    value: &str,
) -> Result<(lists::ListName, EntryKind, String), Status> {
    let list = parse_list(list)?;
    let kind = parse_kind(kind)?;
    let value =
        lists::normalize_entry(kind, value).map_err(|e| Status::invalid_argument(e.to_string()))?;
    Ok((list, kind, value))
}

fn parse_node_addr(key: &str, addr: &str) -> Result<(), Status> {
    addr.parse::<std::net::SocketAddr>()
        .map(|_| ())
        .map_err(|_| Status::invalid_argument(format!("{key} `{addr}` is not an IP:port address")))
}

impl AdminService {
    async fn members(&self, with_matched: bool) -> Vec<Member> {
        let m = self.cluster.metrics();
        let matched = if with_matched {
            self.cluster.matched_indexes().await
        } else {
            Default::default()
        };
        let membership = m.membership_config.membership();
        let voters: std::collections::BTreeSet<u64> = membership.voter_ids().collect();
        membership
            .nodes()
            .map(|(id, node)| Member {
                node_id: *id,
                site: node.site.clone(),
                peer_addr: node.peer_addr.clone(),
                admin_addr: node.admin_addr.clone(),
                voter: voters.contains(id),
                matched_index: matched.get(id).copied(),
            })
            .collect()
    }

    async fn find_message(&self, id: &str) -> Result<crate::state::spool::SpooledMessage, Status> {
        self.cluster
            .state()
            .spooled()
            .await
            .map_err(|e| Status::internal(e.to_string()))?
            .into_iter()
            .find(|m| m.queue_id == id)
            .ok_or_else(|| Status::not_found(format!("no message {id}")))
    }

    /// An operator's change to one message (admin role): proposes `make(queue_id)`.
    async fn message_action(
        &self,
        req: Request<MessageRef>,
        what: &str,
        make: impl FnOnce(String) -> command::Kind,
    ) -> Result<Response<MessageActionReply>, Status> {
        self.tokens.authorize(&req, Role::Admin)?;
        let id = req.into_inner().queue_id;
        if id.is_empty() || id.len() > 64 {
            return Err(Status::invalid_argument(
                "queue_id must be 1 to 64 characters",
            ));
        }
        match self
            .cluster
            .propose(make(id.clone()))
            .await
            .map_err(write_status)?
        {
            (log_index, Outcome::SpoolChanged { found: true }) => {
                Ok(Response::new(MessageActionReply {
                    log_index,
                    learned: String::new(),
                }))
            }
            (_, Outcome::SpoolChanged { found: false }) => {
                Err(Status::not_found(format!("no {what} {id}")))
            }
            (_, other) => Err(write_status(WriteError::Refused(format!("{other:?}")))),
        }
    }

    /// Teaches the classifier `message` as `class`, through Raft; (log index, change,
    /// fingerprint).
    async fn learn_message(
        &self,
        message: &[u8],
        class: peage_mail::bayes::Class,
        author: String,
    ) -> Result<(u64, crate::state::apply::LearnChange, String), Status> {
        let body = message.to_vec();
        let tokens = tokio::task::spawn_blocking(move || peage_mail::bayes::tokens(&body))
            .await
            .map_err(|e| Status::internal(e.to_string()))?
            .ok_or_else(|| Status::invalid_argument("the message cannot be parsed"))?;
        let fingerprint = tokens.fingerprint();
        let learn = BayesLearn {
            fingerprint: fingerprint.clone(),
            class: class.as_str().to_owned(),
            tokens: tokens.0,
            author,
        };
        match self
            .cluster
            .propose(command::Kind::BayesLearn(learn))
            .await
            .map_err(write_status)?
        {
            (index, Outcome::Learned { change }) => Ok((index, change, fingerprint)),
            (_, other) => Err(write_status(WriteError::Refused(format!("{other:?}")))),
        }
    }

    async fn membership_change(&self, op: LeaderOp) -> Result<Response<MembershipReply>, Status> {
        let done = self.cluster.submit(op).await.map_err(write_status)?;
        Ok(Response::new(MembershipReply {
            log_index: done.log_index,
            members: self.members(false).await,
        }))
    }
}

#[tonic::async_trait]
impl Admin for AdminService {
    async fn status(&self, req: Request<StatusRequest>) -> Result<Response<StatusReply>, Status> {
        self.tokens.authorize(&req, Role::ReadOnly)?;
        let m = self.cluster.metrics();
        let members = self.members(true).await;
        let voters: Vec<(u64, String)> = members
            .iter()
            .filter(|m| m.voter)
            .map(|m| (m.node_id, m.site.clone()))
            .collect();
        let mut warnings = cluster::placement_warnings(&voters);
        if m.current_leader.is_none() {
            warnings.push("no leader is known: this node cannot reach a majority".into());
        }
        let (learned_spam, learned_ham, learned_tokens, learned_table_bytes) =
            self.cluster.state().bayes_counts();
        Ok(Response::new(StatusReply {
            node_id: self.cluster.id(),
            site: self.cluster.site().to_owned(),
            role: cluster::role_name(m.state).to_owned(),
            leader_id: m.current_leader,
            term: m.current_term,
            last_applied: m.last_applied.map_or(0, |l| l.index),
            last_log_index: m.last_log_index.unwrap_or(0),
            snapshot_index: m.snapshot.map_or(0, |l| l.index),
            purged_index: m.purged.map_or(0, |l| l.index),
            members,
            warnings,
            read: Some(read_info(self.cluster.id(), &self.cluster.freshness(true))),
            millis_since_quorum_ack: m.millis_since_quorum_ack,
            learned_spam,
            learned_ham,
            learned_tokens,
            learned_table_bytes,
        }))
    }

    async fn add_learner(
        &self,
        req: Request<AddLearnerRequest>,
    ) -> Result<Response<MembershipReply>, Status> {
        self.tokens.authorize(&req, Role::Admin)?;
        let r = req.into_inner();
        if r.node_id == 0 {
            return Err(Status::invalid_argument("node_id must be 1 or more"));
        }
        parse_node_addr("peer_addr", &r.peer_addr)?;
        parse_node_addr("admin_addr", &r.admin_addr)?;
        if r.site.trim().is_empty() {
            return Err(Status::invalid_argument("site must not be empty"));
        }
        if self
            .cluster
            .metrics()
            .membership_config
            .membership()
            .get_node(&r.node_id)
            .is_some()
        {
            return Err(Status::already_exists(format!(
                "node {} is already a member",
                r.node_id
            )));
        }
        self.membership_change(LeaderOp::AddLearner {
            id: r.node_id,
            node: cluster::PeageNode {
                site: r.site,
                peer_addr: r.peer_addr,
                admin_addr: r.admin_addr,
            },
        })
        .await
    }

    async fn promote_voter(
        &self,
        req: Request<PromoteVoterRequest>,
    ) -> Result<Response<MembershipReply>, Status> {
        self.tokens.authorize(&req, Role::Admin)?;
        let id = req.into_inner().node_id;
        self.membership_change(LeaderOp::Promote { id }).await
    }

    async fn remove_node(
        &self,
        req: Request<RemoveNodeRequest>,
    ) -> Result<Response<MembershipReply>, Status> {
        self.tokens.authorize(&req, Role::Admin)?;
        let id = req.into_inner().node_id;
        self.membership_change(LeaderOp::Remove { id }).await
    }

    async fn list_add(
        &self,
        req: Request<ListAddRequest>,
    ) -> Result<Response<ListAddReply>, Status> {
        let author = self.tokens.authorize(&req, Role::Admin)?;
        let r = req.into_inner();
        let (list, kind, value) = parse_entry(r.list, r.kind, &r.value)?;
        if r.reason.len() > self.max_reason_bytes {
            return Err(Status::invalid_argument(format!(
                "reason is {} bytes; at most {} are allowed",
                r.reason.len(),
                self.max_reason_bytes
            )));
        }
        let created_at_ms = now_ms();
        let expires_at_ms = match r.ttl_secs {
            None => None,
            Some(0) => return Err(Status::invalid_argument("ttl must be at least 1 second")),
            Some(ttl) => Some(
                i64::try_from(ttl)
                    .ok()
                    .and_then(|t| t.checked_mul(1000))
                    .and_then(|t| t.checked_add(created_at_ms))
                    .ok_or_else(|| Status::invalid_argument("ttl is too large"))?,
            ),
        };
        let add = ListAdd {
            list: list as i32,
            kind: kind as i32,
            value: value.clone(),
            reason: r.reason.clone(),
            author: author.clone(),
            created_at_ms,
            expires_at_ms,
        };
        let (log_index, outcome) = self
            .cluster
            .propose(command::Kind::ListAdd(add))
            .await
            .map_err(write_status)?;
        match outcome {
            Outcome::ListAdded { entry_id, created } => Ok(Response::new(ListAddReply {
                entry: Some(entry_to_proto(&lists::ListEntry {
                    id: entry_id,
                    list,
                    kind,
                    value,
                    reason: r.reason,
                    author,
                    created_at_ms,
                    expires_at_ms,
                })),
                created,
                log_index,
            })),
            other => Err(write_status(WriteError::Refused(format!("{other:?}")))),
        }
    }

    async fn list_remove(
        &self,
        req: Request<ListRemoveRequest>,
    ) -> Result<Response<ListRemoveReply>, Status> {
        self.tokens.authorize(&req, Role::Admin)?;
        let r = req.into_inner();
        let (list, kind, value) = parse_entry(r.list, r.kind, &r.value)?;
        let (log_index, outcome) = self
            .cluster
            .propose(command::Kind::ListRemove(ListRemove {
                list: list as i32,
                kind: kind as i32,
                value: value.clone(),
            }))
            .await
            .map_err(write_status)?;
        match outcome {
            Outcome::ListRemoved { removed: 0 } => Err(Status::not_found(format!(
                "no {} entry `{value}` on the {} list",
                kind.as_str(),
                list.as_str()
            ))),
            Outcome::ListRemoved { removed } => {
                Ok(Response::new(ListRemoveReply { removed, log_index }))
            }
            other => Err(write_status(WriteError::Refused(format!("{other:?}")))),
        }
    }

    async fn list_query(
        &self,
        req: Request<ListQueryRequest>,
    ) -> Result<Response<ListQueryReply>, Status> {
        self.tokens.authorize(&req, Role::ReadOnly)?;
        let r = req.into_inner();
        let list = match r.list {
            0 => None,
            l => Some(parse_list(l)?),
        };
        let kind = match r.kind {
            0 => None,
            k => Some(parse_kind(k)?),
        };
        if r.page_size > 1000 {
            return Err(Status::invalid_argument("page_size is at most 1000"));
        }
        if r.contains.len() > 512 {
            return Err(Status::invalid_argument("contains is at most 512 bytes"));
        }
        let fresh = self
            .cluster
            .read_barrier(r.stale)
            .await
            .map_err(write_status)?;
        let page = self
            .cluster
            .state()
            .list_entries(ListFilter {
                list,
                kind,
                contains: r.contains,
                after_id: r.page_token,
                limit: if r.page_size == 0 { 100 } else { r.page_size },
            })
            .await
            .map_err(|e| Status::internal(e.to_string()))?;
        Ok(Response::new(ListQueryReply {
            entries: page.entries.iter().map(entry_to_proto).collect(),
            next_page_token: page.next_after,
            read: Some(read_info(self.cluster.id(), &fresh)),
        }))
    }

    async fn list_check(
        &self,
        req: Request<ListCheckRequest>,
    ) -> Result<Response<ListCheckReply>, Status> {
        self.tokens.authorize(&req, Role::ReadOnly)?;
        let r = req.into_inner();
        let kind = parse_kind(r.kind)?;
        let probe = lists::normalize_probe(kind, &r.value)
            .map_err(|e| Status::invalid_argument(e.to_string()))?;
        let fresh = self
            .cluster
            .read_barrier(r.stale)
            .await
            .map_err(write_status)?;
        let matches = self.cluster.state().check(kind, &probe, now_ms());
        Ok(Response::new(ListCheckReply {
            matches: matches.iter().map(entry_to_proto).collect(),
            normalized: probe,
            read: Some(read_info(self.cluster.id(), &fresh)),
        }))
    }

    async fn domain_set(
        &self,
        req: Request<DomainSetRequest>,
    ) -> Result<Response<DomainSetReply>, Status> {
        let author = self.tokens.authorize(&req, Role::Admin)?;
        let r = req.into_inner();
        let domain = routing::normalize_domain(&r.domain)
            .map_err(|e| Status::invalid_argument(e.to_string()))?;
        let route = routing::normalize_route(&r.route)
            .map_err(|e| Status::invalid_argument(e.to_string()))?;
        let created_at_ms = now_ms();
        let set = DomainSet {
            domain: domain.clone(),
            route: route.clone(),
            author: author.clone(),
            created_at_ms,
        };
        let (log_index, outcome) = self
            .cluster
            .propose(command::Kind::DomainSet(set))
            .await
            .map_err(write_status)?;
        match outcome {
            Outcome::DomainSet { created } => Ok(Response::new(DomainSetReply {
                domain: Some(Domain {
                    domain,
                    route,
                    author,
                    created_at_ms,
                }),
                created,
                log_index,
            })),
            other => Err(write_status(WriteError::Refused(format!("{other:?}")))),
        }
    }

    async fn domain_remove(
        &self,
        req: Request<DomainRemoveRequest>,
    ) -> Result<Response<DomainRemoveReply>, Status> {
        self.tokens.authorize(&req, Role::Admin)?;
        let domain = routing::normalize_domain(&req.into_inner().domain)
            .map_err(|e| Status::invalid_argument(e.to_string()))?;
        let (log_index, outcome) = self
            .cluster
            .propose(command::Kind::DomainRemove(DomainRemove {
                domain: domain.clone(),
            }))
            .await
            .map_err(write_status)?;
        match outcome {
            Outcome::DomainRemoved { removed: true } => {
                Ok(Response::new(DomainRemoveReply { log_index }))
            }
            Outcome::DomainRemoved { removed: false } => Err(Status::not_found(format!(
                "`{domain}` is not a local domain"
            ))),
            other => Err(write_status(WriteError::Refused(format!("{other:?}")))),
        }
    }

    async fn domain_list(
        &self,
        req: Request<DomainListRequest>,
    ) -> Result<Response<DomainListReply>, Status> {
        self.tokens.authorize(&req, Role::ReadOnly)?;
        let fresh = self
            .cluster
            .read_barrier(req.into_inner().stale)
            .await
            .map_err(write_status)?;
        let domains = self
            .cluster
            .state()
            .domains()
            .into_iter()
            .map(|(domain, r)| Domain {
                domain,
                route: r.route,
                author: r.author,
                created_at_ms: r.created_at_ms,
            })
            .collect();
        Ok(Response::new(DomainListReply {
            domains,
            read: Some(read_info(self.cluster.id(), &fresh)),
        }))
    }

    async fn check_message(
        &self,
        req: Request<CheckMessageRequest>,
    ) -> Result<Response<CheckMessageReply>, Status> {
        self.tokens.authorize(&req, Role::ReadOnly)?;
        let r = req.into_inner();
        let client_ip: std::net::IpAddr = if r.client_ip.is_empty() {
            std::net::IpAddr::from([127, 0, 0, 1])
        } else {
            r.client_ip.parse().map_err(|_| {
                Status::invalid_argument(format!(
                    "client_ip `{}` is not an IP address",
                    r.client_ip
                ))
            })?
        };
        let state = self.cluster.state().clone();
        let judgement = tokio::task::spawn_blocking(move || {
            let input = crate::filter::FilterInput {
                client_ip,
                helo: &r.helo,
                mail_from: &r.mail_from,
                message: &r.message,
            };
            crate::filter::judge(&input, &state, &state.policy())
        })
        .await
        .map_err(|e| Status::internal(format!("the filter failed: {e}")))?;
        Ok(Response::new(CheckMessageReply {
            verdict: judgement.verdict.as_str().to_owned(),
            score_milli: judgement.total_milli,
            symbols: judgement
                .symbols
                .into_iter()
                .map(|s| FilterSymbol {
                    name: s.name,
                    score_milli: s.score_milli,
                    reason: s.reason,
                })
                .collect(),
        }))
    }

    async fn policy_get(
        &self,
        req: Request<PolicyGetRequest>,
    ) -> Result<Response<PolicyReply>, Status> {
        self.tokens.authorize(&req, Role::ReadOnly)?;
        let p = self.cluster.state().policy();
        Ok(Response::new(PolicyReply {
            quarantine_at_milli: p.quarantine_at_milli,
            reject_at_milli: p.reject_at_milli,
        }))
    }

    async fn policy_set(
        &self,
        req: Request<PolicySetRequest>,
    ) -> Result<Response<PolicyReply>, Status> {
        self.tokens.authorize(&req, Role::Admin)?;
        let r = req.into_inner();
        let current = self.cluster.state().policy();
        let milli = |points: f64, current: i64, key: &str| -> Result<i64, Status> {
            if points == 0.0 {
                return Ok(current);
            }
            if !points.is_finite() || points.abs() > 1e9 {
                return Err(Status::invalid_argument(format!(
                    "{key} must be a finite number of points"
                )));
            }
            Ok((points * 1000.0).round() as i64)
        };
        let q = milli(
            r.quarantine_at,
            current.quarantine_at_milli,
            "quarantine_at",
        )?;
        let j = milli(r.reject_at, current.reject_at_milli, "reject_at")?;
        if q >= j {
            return Err(Status::invalid_argument(
                "the quarantine threshold must be below the reject threshold",
            ));
        }
        let set = PolicySet {
            quarantine_at_milli: q,
            reject_at_milli: j,
        };
        match self
            .cluster
            .propose(command::Kind::PolicySet(set))
            .await
            .map_err(write_status)?
        {
            (_, Outcome::PolicySet) => Ok(Response::new(PolicyReply {
                quarantine_at_milli: q,
                reject_at_milli: j,
            })),
            (_, other) => Err(write_status(WriteError::Refused(format!("{other:?}")))),
        }
    }

    async fn queue_list(
        &self,
        req: Request<QueueListRequest>,
    ) -> Result<Response<QueueListReply>, Status> {
        self.tokens.authorize(&req, Role::ReadOnly)?;
        let r = req.into_inner();
        if r.page_size > 1000 {
            return Err(Status::invalid_argument("page_size is at most 1000"));
        }
        let limit = if r.page_size == 0 {
            100
        } else {
            r.page_size as usize
        };
        let fresh = self
            .cluster
            .read_barrier(r.stale)
            .await
            .map_err(write_status)?;
        let (rcpt, sender) = (r.recipient.to_lowercase(), r.sender.to_lowercase());
        let mut matching: Vec<_> = self
            .cluster
            .state()
            .spooled()
            .await
            .map_err(|e| Status::internal(e.to_string()))?
            .into_iter()
            .filter(|m| m.is_quarantined() == r.quarantine)
            .filter(|m| {
                rcpt.is_empty() || m.rcpt_to.iter().any(|x| x.to_lowercase().contains(&rcpt))
            })
            .filter(|m| sender.is_empty() || m.mail_from.to_lowercase().contains(&sender))
            .filter(|m| m.accepted_at_ms >= r.since_ms)
            .filter(|m| r.verdict.is_empty() || m.verdict == r.verdict)
            .filter(|m| r.page_token.is_empty() || m.queue_id > r.page_token)
            .collect();
        matching.sort_by(|a, b| a.queue_id.cmp(&b.queue_id));
        let next_page_token = if matching.len() > limit {
            matching.truncate(limit);
            matching
                .last()
                .map(|m| m.queue_id.clone())
                .unwrap_or_default()
        } else {
            String::new()
        };
        Ok(Response::new(QueueListReply {
            messages: matching.into_iter().map(queued_to_proto).collect(),
            read: Some(read_info(self.cluster.id(), &fresh)),
            next_page_token,
        }))
    }

    async fn message_show(
        &self,
        req: Request<MessageRef>,
    ) -> Result<Response<MessageShowReply>, Status> {
        self.tokens.authorize(&req, Role::ReadOnly)?;
        let id = req.into_inner().queue_id;
        self.cluster
            .read_barrier(false)
            .await
            .map_err(write_status)?;
        let m = self.find_message(&id).await?;
        let body = crate::spool::delivery::body_of(&self.cluster, &m)
            .await
            .map_err(Status::unavailable)?;
        Ok(Response::new(MessageShowReply {
            message: Some(queued_to_proto(m)),
            body,
        }))
    }

    /// Releases a quarantined message and, unless `no_learn`, teaches the classifier it was
    /// ham: an operator's release is the correction of a false positive.
    async fn message_release(
        &self,
        req: Request<MessageRef>,
    ) -> Result<Response<MessageActionReply>, Status> {
        let author = self.tokens.authorize(&req, Role::Admin)?;
        let (queue_id, no_learn) = (req.get_ref().queue_id.clone(), req.get_ref().no_learn);
        // The body first: once released, the message may be delivered and gone.
        let body = if no_learn {
            None
        } else {
            match self.find_message(&queue_id).await {
                Ok(m) => crate::spool::delivery::body_of(&self.cluster, &m)
                    .await
                    .ok(),
                Err(_) => None,
            }
        };
        let (owner, lease_until_ms) = (self.cluster.id(), now_ms() + self.lease.as_millis() as i64);
        let mut reply = self
            .message_action(req, "quarantined message", |queue_id| {
                command::Kind::SpoolRelease(SpoolRelease {
                    queue_id,
                    owner,
                    lease_until_ms,
                })
            })
            .await?;
        if let Some(body) = body {
            let (_, change, _) = self
                .learn_message(&body, peage_mail::bayes::Class::Ham, author)
                .await?;
            reply.get_mut().learned = learn_change_name(change).to_owned();
        }
        Ok(reply)
    }

    async fn learn(&self, req: Request<LearnRequest>) -> Result<Response<LearnReply>, Status> {
        let author = self.tokens.authorize(&req, Role::Admin)?;
        let r = req.into_inner();
        let class = peage_mail::bayes::Class::parse(&r.class).ok_or_else(|| {
            Status::invalid_argument(format!("class must be spam or ham, not {:?}", r.class))
        })?;
        if r.message.is_empty() {
            return Err(Status::invalid_argument("the message is empty"));
        }
        let (log_index, change, fingerprint) =
            self.learn_message(&r.message, class, author).await?;
        self.cluster.wait_applied(log_index).await;
        let (spam_messages, ham_messages, tokens, _) = self.cluster.state().bayes_counts();
        Ok(Response::new(LearnReply {
            change: learn_change_name(change).to_owned(),
            fingerprint,
            log_index,
            spam_messages,
            ham_messages,
            tokens,
        }))
    }

    async fn message_drop(
        &self,
        req: Request<MessageRef>,
    ) -> Result<Response<MessageActionReply>, Status> {
        self.message_action(req, "message", |queue_id| {
            command::Kind::SpoolDrop(SpoolDrop { queue_id })
        })
        .await
    }

    async fn message_retry(
        &self,
        req: Request<MessageRef>,
    ) -> Result<Response<MessageActionReply>, Status> {
        self.message_action(req, "message", |queue_id| {
            command::Kind::SpoolRetry(SpoolRetry { queue_id })
        })
        .await
    }

    async fn state_digest(
        &self,
        req: Request<StateDigestRequest>,
    ) -> Result<Response<StateDigestReply>, Status> {
        self.tokens.authorize(&req, Role::ReadOnly)?;
        let fresh = self
            .cluster
            .read_barrier(req.into_inner().stale)
            .await
            .map_err(write_status)?;
        let (sha256, applied_index, list_entries) = self
            .cluster
            .state()
            .digest()
            .await
            .map_err(|e| Status::internal(e.to_string()))?;
        Ok(Response::new(StateDigestReply {
            sha256,
            applied_index,
            list_entries,
            read: Some(read_info(self.cluster.id(), &fresh)),
        }))
    }

    async fn trigger_snapshot(
        &self,
        req: Request<TriggerSnapshotRequest>,
    ) -> Result<Response<TriggerSnapshotReply>, Status> {
        self.tokens.authorize(&req, Role::Admin)?;
        let raft = self.cluster.raft();
        let target = self.cluster.state().applied_index();
        raft.trigger()
            .snapshot()
            .await
            .map_err(|e| Status::internal(e.to_string()))?;
        let m = raft
            .wait(Some(std::time::Duration::from_secs(30)))
            .metrics(
                |m| m.snapshot.is_some_and(|l| l.index >= target),
                "snapshot covers the applied index",
            )
            .await;
        let index = match m {
            Ok(m) => m.snapshot.map_or(0, |l| l.index),
            Err(e) => {
                return Err(Status::deadline_exceeded(format!(
                    "snapshot not built: {e}"
                )))
            }
        };
        Ok(Response::new(TriggerSnapshotReply {
            snapshot_index: index,
        }))
    }
}

fn learn_change_name(change: crate::state::apply::LearnChange) -> &'static str {
    use crate::state::apply::LearnChange;
    match change {
        LearnChange::New => "new",
        LearnChange::Unchanged => "unchanged",
        LearnChange::Moved => "moved",
    }
}
