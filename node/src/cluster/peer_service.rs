//! The server side of the peer service: Raft RPCs handed to openraft, writes forwarded by
//! followers, and read-index requests. Calls without the cluster secret are refused.

use serde::de::DeserializeOwned;
use serde::Serialize;
use tonic::{Request, Response, Status};

use peage_proto::v1::raft_peer_server::{RaftPeer, RaftPeerServer};
use peage_proto::v1::{
    Blob, CountsAck, CountsReport, DeferralQuery, Deferrals, GetBlobRequest, MatchedIndex,
    PutBlobReply, RaftPayload, ReadIndexReply, ReadIndexRequest, ResetCountsReply,
    ResetCountsRequest, StatsQuery, StatsRows, TrackEvents, TrackQuery,
};

use super::error::{Unavailable, WriteError};
use super::network::{MAX_PEER_MESSAGE, SECRET_HEADER};
use super::protocol::{Committed, Forwarded, WriteOp};
use super::Cluster;
use crate::blobs::BlobError;
use crate::clock::now_ms;
use crate::secret::constant_time_eq;
use crate::types::TypeConfig;

pub struct PeerService {
    cluster: Cluster,
}

/// The peer service wrapped in the check of the cluster secret.
pub fn server(
    cluster: Cluster,
    secret: String,
) -> tonic::service::interceptor::InterceptedService<
    RaftPeerServer<PeerService>,
    impl tonic::service::Interceptor + Clone,
> {
    let check = move |req: Request<()>| -> Result<Request<()>, Status> {
        let given = req
            .metadata()
            .get(SECRET_HEADER)
            .map(|v| v.as_bytes())
            .unwrap_or_default();
        if constant_time_eq(given, secret.as_bytes()) {
            Ok(req)
        } else {
            Err(Status::unauthenticated(
                "peer call without the right cluster secret",
            ))
        }
    };
    let svc = RaftPeerServer::new(PeerService { cluster })
        .max_decoding_message_size(MAX_PEER_MESSAGE)
        .max_encoding_message_size(MAX_PEER_MESSAGE);
    tonic::service::interceptor::InterceptedService::new(svc, check)
}

fn blob_status(e: BlobError) -> Status {
    match e {
        BlobError::BadHash(_) | BlobError::Mismatch(_) => Status::invalid_argument(e.to_string()),
        BlobError::Io(_) => Status::internal(e.to_string()),
    }
}

fn decode<T: DeserializeOwned>(req: Request<RaftPayload>) -> Result<T, Status> {
    bincode::deserialize(&req.into_inner().data)
        .map_err(|e| Status::invalid_argument(format!("undecodable peer payload: {e}")))
}

fn encode<T: Serialize>(value: &T) -> Result<Response<RaftPayload>, Status> {
    bincode::serialize(value)
        .map(|data| Response::new(RaftPayload { data }))
        .map_err(|e| Status::internal(format!("cannot encode reply: {e}")))
}

#[tonic::async_trait]
impl RaftPeer for PeerService {
    async fn append_entries(
        &self,
        req: Request<RaftPayload>,
    ) -> Result<Response<RaftPayload>, Status> {
        let rpc: openraft::raft::AppendEntriesRequest<TypeConfig> = decode(req)?;
        self.cluster
            .record_leader_contact(rpc.leader_commit.map(|l| l.index));
        encode(&self.cluster.raft().append_entries(rpc).await)
    }

    async fn vote(&self, req: Request<RaftPayload>) -> Result<Response<RaftPayload>, Status> {
        encode(&self.cluster.raft().vote(decode(req)?).await)
    }

    async fn install_snapshot(
        &self,
        req: Request<RaftPayload>,
    ) -> Result<Response<RaftPayload>, Status> {
        self.cluster.record_leader_contact(None);
        encode(&self.cluster.raft().install_snapshot(decode(req)?).await)
    }

    async fn forward(&self, req: Request<RaftPayload>) -> Result<Response<RaftPayload>, Status> {
        let f: Forwarded = decode(req)?;
        let late_ms = now_ms() - f.deadline_ms;
        if late_ms >= 0 {
            let refused: Result<Committed, WriteError> = Err(Unavailable::Timeout(0).into());
            tracing::warn!(
                late_ms,
                "refused a forwarded write that arrived after its deadline"
            );
            return encode(&refused);
        }
        let written = match f.op {
            WriteOp::Commands(batch) => self.cluster.write_forwarded(batch).await,
            op => self.cluster.write_here(op).await,
        };
        encode(&written)
    }

    async fn put_blob(&self, req: Request<Blob>) -> Result<Response<PutBlobReply>, Status> {
        let blob = req.into_inner();
        self.cluster
            .blobs()
            .put(
                blob.sha256,
                std::sync::Arc::new(blob.data),
                Some(blob.queue_id).filter(|id| !id.is_empty()),
            )
            .await
            .map_err(blob_status)?;
        Ok(Response::new(PutBlobReply {}))
    }

    async fn share_counts(
        &self,
        req: Request<CountsReport>,
    ) -> Result<Response<CountsAck>, Status> {
        self.cluster.shared_counts().heard(req.into_inner());
        Ok(Response::new(CountsAck {}))
    }

    async fn reset_counts(
        &self,
        req: Request<ResetCountsRequest>,
    ) -> Result<Response<ResetCountsReply>, Status> {
        let dropped = self.cluster.shared_counts().forget(&req.into_inner().name);
        Ok(Response::new(ResetCountsReply {
            dropped: dropped as u64,
        }))
    }

    async fn track_search(
        &self,
        req: Request<TrackQuery>,
    ) -> Result<Response<TrackEvents>, Status> {
        let events = self
            .cluster
            .tracking()
            .search(req.into_inner())
            .await
            .map_err(|e| Status::internal(format!("tracking search: {e}")))?;
        Ok(Response::new(TrackEvents { events }))
    }

    async fn deferral_search(
        &self,
        req: Request<DeferralQuery>,
    ) -> Result<Response<Deferrals>, Status> {
        let ids = req.into_inner().queue_ids;
        if ids.len() > crate::tracking::MAX_LIMIT as usize {
            return Err(Status::invalid_argument(format!(
                "{} queue ids: at most {} a search",
                ids.len(),
                crate::tracking::MAX_LIMIT
            )));
        }
        let deferrals = self
            .cluster
            .tracking()
            .deferrals(ids)
            .await
            .map_err(|e| Status::internal(format!("deferral search: {e}")))?;
        Ok(Response::new(Deferrals { deferrals }))
    }

    async fn stats_search(&self, req: Request<StatsQuery>) -> Result<Response<StatsRows>, Status> {
        let rows = self
            .cluster
            .tracking()
            .stats(req.into_inner())
            .await
            .map_err(|e| Status::internal(format!("statistics search: {e}")))?;
        Ok(Response::new(rows))
    }

    async fn get_blob(&self, req: Request<GetBlobRequest>) -> Result<Response<Blob>, Status> {
        let hash = req.into_inner().sha256;
        match self.cluster.blobs().get(&hash).await.map_err(blob_status)? {
            Some(data) => Ok(Response::new(Blob {
                sha256: hash,
                data,
                queue_id: String::new(),
            })),
            None => Err(Status::not_found(format!("no blob {hash} here"))),
        }
    }

    async fn read_index(
        &self,
        _req: Request<ReadIndexRequest>,
    ) -> Result<Response<ReadIndexReply>, Status> {
        let index = self
            .cluster
            .leader_read_index()
            .await
            .map_err(|e| Status::failed_precondition(e.to_string()))?;
        let matched = self
            .cluster
            .replication_here()
            .unwrap_or_default()
            .into_iter()
            .map(|(node_id, r)| MatchedIndex {
                node_id,
                index: r.matched,
                silent_ms: r.silent_ms,
            })
            .collect();
        Ok(Response::new(ReadIndexReply {
            index,
            matched,
            leader_now_ms: now_ms(),
        }))
    }
}
