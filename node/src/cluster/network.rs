//! The client side of the peer service: openraft's network (AppendEntries, Vote,
//! InstallSnapshot) and the calls followers make to the leader (forwarded writes,
//! read-index). Every call carries the cluster secret.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use openraft::error::{
    InstallSnapshotError, NetworkError, RPCError, RaftError, RemoteError, Timeout, Unreachable,
};
use openraft::network::{Backoff, RPCOption, RPCTypes, RaftNetwork, RaftNetworkFactory};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, InstallSnapshotRequest, InstallSnapshotResponse,
    VoteRequest, VoteResponse,
};
use serde::de::DeserializeOwned;
use serde::Serialize;
use tonic::metadata::MetadataValue;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::{Channel, Endpoint};

use peage_proto::v1::raft_peer_client::RaftPeerClient;
use peage_proto::v1::{
    Blob, CountsReport, GetBlobRequest, RaftPayload, ReadIndexRequest, ResetCountsRequest,
};

use peage_mail::sync::lock;

use super::error::{Unavailable, WriteError};
use super::peer_error::status_error;
use super::peer_error::PeerCallError;
use super::protocol::{Committed, Forwarded, WriteOp};
use super::silence::{MemberReplication, PeerSilence};
use crate::clock::now_ms;
use crate::grpc_tls::{host_of, GrpcTls};
use crate::types::{NodeId, PeageNode, TypeConfig};

/// The metadata key peer calls carry the cluster secret in.
pub const SECRET_HEADER: &str = "x-peage-cluster-secret";
/// A leader's answer to a read-index call.
pub struct LeaderRead {
    pub index: u64,
    pub replication: BTreeMap<NodeId, MemberReplication>,
    /// Our clock when the call went out and when the answer came, and the leader's between.
    pub sent_ms: i64,
    pub leader_now_ms: i64,
    pub received_ms: i64,
}

/// Raft batches and snapshot chunks must fit; tonic's default of 4 MiB is too small.
pub const MAX_PEER_MESSAGE: usize = 64 << 20;

/// Reset streams a peer connection may have waiting, or remembered, before h2 closes it or
/// counts late frames for them as errors (its defaults are 20 and 10): callers cancel calls
/// routinely (see below), and the peer port is reached over private links only.
pub const MAX_RESET_STREAMS: usize = 1024;

#[derive(Clone)]
pub struct SecretInterceptor(MetadataValue<tonic::metadata::Ascii>);

impl tonic::service::Interceptor for SecretInterceptor {
    fn call(&mut self, mut req: tonic::Request<()>) -> Result<tonic::Request<()>, tonic::Status> {
        req.metadata_mut().insert(SECRET_HEADER, self.0.clone());
        Ok(req)
    }
}

pub(super) type PeerClient = RaftPeerClient<InterceptedService<Channel, SecretInterceptor>>;

/// Which connection to a peer a call travels on. Raft's own traffic has a connection of its
/// own so that it never queues behind message bodies, and so that the streams openraft
/// cancels (an append that outlives the heartbeat interval) are never counted against the
/// connection that carries the mail, or the reverse.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
enum Lane {
    /// AppendEntries, Vote, InstallSnapshot.
    Consensus,
    /// Forwarded writes, read-index, bodies.
    Mail,
}

/// One lazily connected channel per peer address and lane, shared by every caller.
#[derive(Clone)]
pub struct PeerClients {
    secret: SecretInterceptor,
    channels: Arc<Mutex<HashMap<(String, Lane), Channel>>>,
    /// Peer address → the address actually dialled (`cluster.peer_via`).
    via: Arc<BTreeMap<String, String>>,
    /// Mutual TLS with the cluster CA (`[tls]`); in clear without it.
    tls: Option<GrpcTls>,
}

impl PeerClients {
    pub fn new(secret: String, via: BTreeMap<String, String>, tls: Option<GrpcTls>) -> PeerClients {
        let value = MetadataValue::try_from(secret.as_str())
            .unwrap_or_else(|_| MetadataValue::from_static("invalid-secret"));
        PeerClients {
            secret: SecretInterceptor(value),
            channels: Arc::default(),
            via: Arc::new(via),
            tls,
        }
    }

    fn client(&self, addr: &str, lane: Lane) -> Result<PeerClient, PeerCallError> {
        let mut channels = lock(&self.channels);
        let key = (addr.to_owned(), lane);
        let channel = match channels.get(&key) {
            Some(c) => c.clone(),
            None => {
                let dial = self.via.get(addr).map_or(addr, String::as_str);
                let scheme = if self.tls.is_some() { "https" } else { "http" };
                let endpoint = Endpoint::from_shared(format!("{scheme}://{dial}"))
                    .map_err(|e| PeerCallError::Transport(format!("bad peer address {dial}: {e}")))?
                    .connect_timeout(Duration::from_millis(500))
                    .tcp_nodelay(true)
                    // Cancelling a call resets its stream, and cancelling is routine here
                    // (openraft drops an append that outlives the heartbeat interval). h2
                    // remembers 10 reset streams by default; the peer's late reply to a
                    // forgotten one counts as an error, and after 1,024 of those over the
                    // connection's life h2 closes it with every call on it. Remember more, and
                    // do not count: the other end is one of our own nodes.
                    .http2_max_concurrent_reset_streams(MAX_RESET_STREAMS)
                    .http2_max_local_error_reset_streams(None);
                // The certificate names the member's address, whatever is dialled to reach it.
                let endpoint = match &self.tls {
                    Some(tls) => endpoint
                        .tls_config(tls.peer_client(host_of(addr)))
                        .map_err(|e| PeerCallError::Transport(format!("TLS to {addr}: {e}")))?,
                    None => endpoint,
                };
                let c = endpoint.connect_lazy();
                channels.insert(key, c.clone());
                c
            }
        };
        Ok(
            RaftPeerClient::with_interceptor(channel, self.secret.clone())
                .max_decoding_message_size(MAX_PEER_MESSAGE)
                .max_encoding_message_size(MAX_PEER_MESSAGE),
        )
    }

    async fn call<Req: Serialize, Resp: DeserializeOwned>(
        &self,
        addr: &str,
        method: Method,
        req: &Req,
        timeout: Duration,
    ) -> Result<Resp, PeerCallError> {
        let data = bincode::serialize(req).map_err(|e| PeerCallError::Decode(e.to_string()))?;
        let mut client = self.client(addr, method.lane())?;
        let payload = RaftPayload { data };
        let fut = async move {
            match method {
                Method::AppendEntries => client.append_entries(payload).await,
                Method::Vote => client.vote(payload).await,
                Method::InstallSnapshot => client.install_snapshot(payload).await,
                Method::Forward => client.forward(payload).await,
            }
        };
        let reply = tokio::time::timeout(timeout, fut)
            .await
            .map_err(|_| PeerCallError::Timeout(timeout))?
            .map_err(status_error)?;
        bincode::deserialize(&reply.into_inner().data)
            .map_err(|e| PeerCallError::Decode(e.to_string()))
    }

    /// Sends a write to the leader and waits for its outcome; the leader refuses it once
    /// its own clock has passed `deadline_ms`.
    pub async fn forward(
        &self,
        leader: NodeId,
        addr: &str,
        op: &WriteOp,
        deadline_ms: i64,
        timeout: Duration,
    ) -> Result<Committed, WriteError> {
        let forwarded = Forwarded { op, deadline_ms };
        let r: Result<Result<Committed, WriteError>, PeerCallError> =
            self.call(addr, Method::Forward, &forwarded, timeout).await;
        match r {
            Ok(result) => result,
            Err(PeerCallError::Timeout(t)) => {
                Err(Unavailable::Timeout(t.as_millis() as u64).into())
            }
            Err(PeerCallError::NotConnected(reason)) => Err(Unavailable::LeaderNotConnected {
                leader,
                addr: addr.to_owned(),
                reason,
            }
            .into()),
            Err(e) => Err(Unavailable::LeaderUnreachable {
                leader,
                addr: addr.to_owned(),
                reason: e.to_string(),
            }
            .into()),
        }
    }

    /// Stores a body on a peer; Ok once the peer has fsynced it.
    pub async fn put_blob(
        &self,
        addr: &str,
        sha256: &str,
        data: Vec<u8>,
        queue_id: &str,
        timeout: Duration,
    ) -> Result<(), PeerCallError> {
        let req = Blob {
            sha256: sha256.to_owned(),
            data,
            queue_id: queue_id.to_owned(),
        };
        let call = |mut c: PeerClient| async move { c.put_blob(req).await };
        self.mail_call(addr, timeout, call).await.map(drop)
    }

    /// Tells a peer what this node counted for the rate limits.
    pub async fn share_counts(
        &self,
        addr: &str,
        report: CountsReport,
        timeout: Duration,
    ) -> Result<(), PeerCallError> {
        let call = |mut c: PeerClient| async move { c.share_counts(report).await };
        self.mail_call(addr, timeout, call).await.map(drop)
    }

    /// Tells a peer to forget every rate-limit count of `name`; how many it dropped.
    pub async fn reset_counts(
        &self,
        addr: &str,
        name: &str,
        timeout: Duration,
    ) -> Result<u64, PeerCallError> {
        let req = ResetCountsRequest {
            name: name.to_owned(),
        };
        let call = |mut c: PeerClient| async move { c.reset_counts(req).await };
        Ok(self.mail_call(addr, timeout, call).await?.dropped)
    }

    /// One call on the mail lane to the peer at `addr`, given `timeout` to answer.
    pub(super) async fn mail_call<R, F, Fut>(
        &self,
        addr: &str,
        timeout: Duration,
        call: F,
    ) -> Result<R, PeerCallError>
    where
        F: FnOnce(PeerClient) -> Fut,
        Fut: std::future::Future<Output = Result<tonic::Response<R>, tonic::Status>>,
    {
        let client = self.client(addr, Lane::Mail)?;
        let reply = tokio::time::timeout(timeout, call(client))
            .await
            .map_err(|_| PeerCallError::Timeout(timeout))?
            .map_err(status_error)?;
        Ok(reply.into_inner())
    }

    /// Reads a body from a peer that holds it.
    pub async fn get_blob(
        &self,
        addr: &str,
        sha256: &str,
        timeout: Duration,
    ) -> Result<Vec<u8>, PeerCallError> {
        let req = GetBlobRequest {
            sha256: sha256.to_owned(),
        };
        let call = |mut c: PeerClient| async move { c.get_blob(req).await };
        Ok(self.mail_call(addr, timeout, call).await?.data)
    }

    /// Asks the leader for the index a linearizable read must wait for, its view of each
    /// member's replication, and its clock.
    pub async fn read_index(
        &self,
        leader: NodeId,
        addr: &str,
        timeout: Duration,
    ) -> Result<LeaderRead, Unavailable> {
        let unreachable = |reason: String| Unavailable::LeaderUnreachable {
            leader,
            addr: addr.to_owned(),
            reason,
        };
        let mut client = self
            .client(addr, Lane::Mail)
            .map_err(|e| unreachable(e.to_string()))?;
        let sent_ms = now_ms();
        let reply = tokio::time::timeout(timeout, client.read_index(ReadIndexRequest {}))
            .await
            .map_err(|_| Unavailable::Timeout(timeout.as_millis() as u64))?;
        match reply {
            Ok(r) => {
                let r = r.into_inner();
                Ok(LeaderRead {
                    index: r.index,
                    replication: (r.matched.iter())
                        .map(|m| {
                            let (matched, silent_ms) = (m.index, m.silent_ms);
                            (m.node_id, MemberReplication { matched, silent_ms })
                        })
                        .collect(),
                    sent_ms,
                    leader_now_ms: r.leader_now_ms,
                    received_ms: now_ms(),
                })
            }
            // The leader answers its own refusals as FAILED_PRECONDITION: UNAVAILABLE is
            // the way to it (connection refused, reset, transport).
            Err(s) if s.code() == tonic::Code::Unavailable => {
                Err(unreachable(s.message().to_owned()))
            }
            Err(s) => Err(Unavailable::NoQuorum(s.message().to_owned())),
        }
    }
}

#[derive(Clone, Copy)]
enum Method {
    AppendEntries,
    Vote,
    InstallSnapshot,
    Forward,
}

impl Method {
    fn rpc_type(self) -> RPCTypes {
        match self {
            Method::AppendEntries | Method::Forward => RPCTypes::AppendEntries,
            Method::Vote => RPCTypes::Vote,
            Method::InstallSnapshot => RPCTypes::InstallSnapshot,
        }
    }

    fn lane(self) -> Lane {
        match self {
            Method::AppendEntries | Method::Vote | Method::InstallSnapshot => Lane::Consensus,
            Method::Forward => Lane::Mail,
        }
    }
}

/// Hands openraft one `PeerNetwork` per target.
pub struct NetworkFactory {
    me: NodeId,
    clients: PeerClients,
    /// How long replication waits before trying an unreachable peer again.
    retry_unreachable: Duration,
    silence: PeerSilence,
}

impl NetworkFactory {
    /// `retry_unreachable` should be the heartbeat interval: a peer that comes back hears
    /// from the leader within one, well inside its election timeout. (openraft's default
    /// of 500 ms outlasts a loopback election timeout: a follower restarted while the
    /// leader was backing off called an election and deposed a healthy leader.)
    pub fn new(
        me: NodeId,
        clients: PeerClients,
        retry_unreachable: Duration,
        silence: PeerSilence,
    ) -> NetworkFactory {
        NetworkFactory {
            me,
            clients,
            retry_unreachable,
            silence,
        }
    }
}

impl RaftNetworkFactory<TypeConfig> for NetworkFactory {
    type Network = PeerNetwork;

    async fn new_client(&mut self, target: NodeId, node: &PeageNode) -> PeerNetwork {
        PeerNetwork {
            me: self.me,
            target,
            addr: node.peer_addr.clone(),
            clients: self.clients.clone(),
            retry_unreachable: self.retry_unreachable,
            silence: self.silence.clone(),
        }
    }
}

pub struct PeerNetwork {
    me: NodeId,
    target: NodeId,
    addr: String,
    clients: PeerClients,
    retry_unreachable: Duration,
    silence: PeerSilence,
}

impl PeerNetwork {
    async fn raft_call<Req, Resp, E>(
        &self,
        method: Method,
        req: &Req,
        option: &RPCOption,
    ) -> Result<Resp, RPCError<NodeId, PeageNode, RaftError<NodeId, E>>>
    where
        Req: Serialize,
        Resp: DeserializeOwned,
        E: std::error::Error + DeserializeOwned,
    {
        let r: Result<Result<Resp, RaftError<NodeId, E>>, PeerCallError> = self
            .clients
            .call(&self.addr, method, req, option.hard_ttl())
            .await;
        match &r {
            Ok(_) => self.silence.answered(self.target, &self.addr),
            Err(e) => self.silence.failed(self.target, &self.addr, e),
        }
        match r {
            Ok(Ok(resp)) => Ok(resp),
            Ok(Err(e)) => Err(RPCError::RemoteError(RemoteError::new(self.target, e))),
            // A slow reply is not a dead peer: openraft backs off for 500 ms after
            // `Unreachable`, which stalled replication to a follower that was merely busy
            // (an append outliving the heartbeat interval under load).
            Err(PeerCallError::Timeout(timeout)) => Err(RPCError::Timeout(Timeout {
                action: method.rpc_type(),
                id: self.me,
                target: self.target,
                timeout,
            })),
            Err(e @ (PeerCallError::Transport(_) | PeerCallError::NotConnected(_))) => {
                Err(RPCError::Unreachable(Unreachable::new(&e)))
            }
            Err(e) => Err(RPCError::Network(NetworkError::new(&e))),
        }
    }
}

impl RaftNetwork<TypeConfig> for PeerNetwork {
    fn backoff(&self) -> Backoff {
        Backoff::new(std::iter::repeat(self.retry_unreachable))
    }

    async fn append_entries(
        &mut self,
        rpc: AppendEntriesRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<AppendEntriesResponse<NodeId>, RPCError<NodeId, PeageNode, RaftError<NodeId>>> {
        self.raft_call(Method::AppendEntries, &rpc, &option).await
    }

    async fn install_snapshot(
        &mut self,
        rpc: InstallSnapshotRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<
        InstallSnapshotResponse<NodeId>,
        RPCError<NodeId, PeageNode, RaftError<NodeId, InstallSnapshotError>>,
    > {
        self.raft_call(Method::InstallSnapshot, &rpc, &option).await
    }

    async fn vote(
        &mut self,
        rpc: VoteRequest<NodeId>,
        option: RPCOption,
    ) -> Result<VoteResponse<NodeId>, RPCError<NodeId, PeageNode, RaftError<NodeId>>> {
        self.raft_call(Method::Vote, &rpc, &option).await
    }
}
