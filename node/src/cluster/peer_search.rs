//! The searches a node asks its peers for on the mail lane: tracking events, hourly
//! statistics and failed delivery attempts, each from the peer's own tracking store.

use std::time::Duration;

use peage_proto::v1::{Deferral, DeferralQuery, StatsQuery, StatsRows, TrackEvent, TrackQuery};

use super::network::{PeerClient, PeerClients};
use super::peer_error::PeerCallError;

impl PeerClients {
    /// The tracking events a peer recorded that match `query`.
    pub async fn track_search(
        &self,
        addr: &str,
        query: TrackQuery,
        timeout: Duration,
    ) -> Result<Vec<TrackEvent>, PeerCallError> {
        let call = |mut c: PeerClient| async move { c.track_search(query).await };
        Ok(self.mail_call(addr, timeout, call).await?.events)
    }

    /// The hourly statistics a peer rolled up that match `query`.
    pub async fn stats_search(
        &self,
        addr: &str,
        query: StatsQuery,
        timeout: Duration,
    ) -> Result<StatsRows, PeerCallError> {
        let call = |mut c: PeerClient| async move { c.stats_search(query).await };
        self.mail_call(addr, timeout, call).await
    }

    /// The attempts at `queue_ids` that failed at a peer.
    pub async fn deferral_search(
        &self,
        addr: &str,
        queue_ids: Vec<String>,
        timeout: Duration,
    ) -> Result<Vec<Deferral>, PeerCallError> {
        let query = DeferralQuery { queue_ids };
        let call = |mut c: PeerClient| async move { c.deferral_search(query).await };
        Ok(self.mail_call(addr, timeout, call).await?.deferrals)
    }
}
