//! Message tracking: the events this node saw happen to the messages it handled (recipients
//! refused, messages rejected, accepted, quarantined, released, delivered, deferred,
//! bounced, expired, taken over, handed off; with the client, HELO, TLS and login), kept
//! in a local SQLite file beside the replicated state — not through Raft: one row per event would make
//! the log carry every delivery twice — and searched by the node an operator asks, which
//! fans the query out to its peers. Recording never waits on the disk: events go to a
//! writer thread that inserts them in batches; past its queue they are dropped and counted.
//! Events older than the retention are deleted every hour. The same events are rolled up
//! into hourly statistics (see `rollup`) and counted in the node's Prometheus metrics.

mod rollup;
mod store;

pub use rollup::{HOUR_MS, MAIL_COUNTED, MAIL_REASONS};
pub use store::{limit_of, MAX_LIMIT};

use std::path::Path;
use std::sync::mpsc::{sync_channel, SyncSender, TrySendError};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use peage_proto::v1::{Deferral, StatsQuery, StatsRows, TrackEvent, TrackQuery};

use crate::clock::now_ms;
use crate::sqlite_file;
use crate::state::spool::{identity_in, SpooledMessage};
use crate::types::NodeId;

/// Events waiting for the writer before new ones are dropped. Boxed: a bounded channel
/// lays out every slot up front, and 65,536 slots of a whole `TrackEvent` (some 400 bytes)
/// were 26 MB of every node's memory from its start.
const QUEUE: usize = 65_536;
/// Events dropped because the writer could not keep up.
pub const TRACKING_DROPPED: &str = "peage_tracking_events_dropped_total";

/// This node's tracking store.
#[derive(Clone)]
pub struct Tracking {
    inner: Arc<Inner>,
}

struct Inner {
    node_id: NodeId,
    site: String,
    queue: SyncSender<Box<TrackEvent>>,
    /// For searches and pruning (the writer has its own connection).
    reader: Mutex<rusqlite::Connection>,
    retention: Duration,
}

impl Tracking {
    /// Opens (or creates) `dir/tracking.sqlite` and starts its writer thread.
    pub fn open(
        dir: &Path,
        node_id: NodeId,
        site: &str,
        retention: Duration,
    ) -> anyhow::Result<Tracking> {
        let path = dir.join("tracking.sqlite");
        // The history is this node's alone and no mail depends on it: one that cannot be
        // read is kept aside for whoever wants to look, and a new one starts, rather than
        // keeping the node (and its MX) down.
        let checked = store::open(&path).and_then(|conn| {
            sqlite_file::check_pages(&conn)?;
            Ok(conn)
        });
        let writer = match checked {
            Err(e) if e.downcast_ref().is_some_and(sqlite_file::unreadable) => {
                let kept = sqlite_file::set_aside(&path)?;
                tracing::error!(
                    error = %e,
                    kept = %kept.display(),
                    "the tracking store cannot be read: kept aside, a new history starts"
                );
                store::open(&path)?
            }
            opened => opened?,
        };
        let reader = store::open(&path)?;
        let (queue, events) = sync_channel(QUEUE);
        std::thread::Builder::new()
            .name("tracking-writer".into())
            .spawn(move || store::write_batches(writer, events))?;
        Ok(Tracking {
            inner: Arc::new(Inner {
                node_id,
                site: site.to_owned(),
                queue,
                reader: Mutex::new(reader),
                retention,
            }),
        })
    }

    /// Records `event` (stamped with this node and now); never blocks.
    pub fn record(&self, mut event: TrackEvent) {
        event.at_ms = now_ms();
        event.node_id = self.inner.node_id;
        event.site = self.inner.site.clone();
        rollup::observe(&event);
        match self.inner.queue.try_send(Box::new(event)) {
            Ok(()) => {}
            Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) => {
                metrics::counter!(TRACKING_DROPPED).increment(1);
            }
        }
    }

    /// The events recorded here that match `query`, newest first, at most its limit.
    pub async fn search(&self, query: TrackQuery) -> anyhow::Result<Vec<TrackEvent>> {
        let this = self.clone();
        tokio::task::spawn_blocking(move || {
            let conn = peage_mail::sync::lock(&this.inner.reader);
            store::search(&conn, &query)
        })
        .await?
    }

    /// The attempts at `queue_ids` that failed here (`store::deferrals`).
    pub async fn deferrals(&self, queue_ids: Vec<String>) -> anyhow::Result<Vec<Deferral>> {
        let this = self.clone();
        tokio::task::spawn_blocking(move || {
            let conn = peage_mail::sync::lock(&this.inner.reader);
            Ok(store::deferrals(&conn, &queue_ids)?)
        })
        .await?
    }

    /// This node's hourly statistics that match `query`.
    pub async fn stats(&self, query: StatsQuery) -> anyhow::Result<StatsRows> {
        let this = self.clone();
        tokio::task::spawn_blocking(move || {
            let conn = peage_mail::sync::lock(&this.inner.reader);
            Ok(rollup::search(&conn, &query)?)
        })
        .await?
    }

    /// Deletes the events past the retention; how many.
    pub async fn prune(&self) -> anyhow::Result<usize> {
        let this = self.clone();
        let before = now_ms() - this.inner.retention.as_millis() as i64;
        tokio::task::spawn_blocking(move || {
            let conn = peage_mail::sync::lock(&this.inner.reader);
            Ok(store::prune(&conn, before)?)
        })
        .await?
    }
}

/// Writes `events` as they are (their own times, nodes and sites) into `dir`'s store, with
/// their statistics, while no node has it open: history for benchmarks and tests.
pub fn write_history(dir: &Path, events: impl Iterator<Item = TrackEvent>) -> anyhow::Result<()> {
    let conn = store::open(&dir.join("tracking.sqlite"))?;
    let (queue, batches) = sync_channel(QUEUE);
    let writer = std::thread::spawn(move || store::write_batches(conn, batches));
    for event in events {
        queue.send(Box::new(event))?;
    }
    drop(queue);
    writer
        .join()
        .map_err(|_| anyhow::anyhow!("the tracking writer panicked"))
}

/// What happened to `recipients` of a spooled message, as tracking records it.
pub fn event_of(
    m: &SpooledMessage,
    kind: &str,
    recipients: Vec<String>,
    detail: String,
) -> TrackEvent {
    TrackEvent {
        kind: kind.into(),
        queue_id: m.queue_id.clone(),
        sender: m.mail_from.clone(),
        recipients,
        client_ip: m.client_ip.clone(),
        helo: m.helo.clone(),
        verdict: m.verdict.clone(),
        score_milli: m.score_milli,
        detail,
        size: m.size,
        outbound: identity_in(&m.symbols).is_some(),
        ..TrackEvent::default()
    }
}

/// Prunes every `every` until `stop`.
pub async fn prune_every(
    tracking: Tracking,
    every: Duration,
    mut stop: peage_mail::shutdown::Shutdown,
) {
    let mut tick = tokio::time::interval(every);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = stop.wait() => return,
        }
        match tracking.prune().await {
            Ok(0) => {}
            Ok(n) => tracing::info!(removed = n, "tracking events past their retention removed"),
            Err(e) => tracing::warn!(error = %e, "tracking events not pruned"),
        }
    }
}

/// The Message-ID a message's header section names (without angle brackets), if any.
pub fn message_id_of(message: &[u8]) -> String {
    let head = &message[..message.len().min(64 * 1024)];
    let parsed = mail_parser::MessageParser::new().parse_headers(head);
    parsed
        .and_then(|m| m.message_id().map(str::to_owned))
        .unwrap_or_default()
}

#[cfg(test)]
mod tests;
