//! Prometheus metrics: the names every module records under, the process-wide recorder,
//! and timing observations. The endpoint that serves them is `health`.
//!
//! Counters and histograms are recorded where things happen (SMTP replies, verdicts,
//! delivery attempts, commits, snapshots) with the `metrics` macros; they cost nothing when
//! no recorder is installed (a node without `listen.metrics`, unit tests).

use std::sync::OnceLock;
use std::time::Duration;

use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

pub use peage_mail::smtp::{SMTP_EVICTED, SMTP_REPLIES, SMTP_SESSIONS};
pub const VERDICTS: &str = "peage_filter_verdicts_total";
pub const DELIVERY_ATTEMPTS: &str = "peage_delivery_attempts_total";
pub const DELIVERY_THROTTLED: &str = "peage_delivery_throttled_total";
/// Connections opened to downstreams, by `tls` (`starttls`, `plain`, or `fallback`: the
/// handshake failed and plain text was used).
pub const DELIVERY_CONNECTIONS: &str = "peage_delivery_connections_total";
/// Failed recipients not bounced because the sender was not proved (it may be forged).
pub const BOUNCES_WITHHELD: &str = "peage_delivery_bounces_withheld_total";
/// Takeover and hand-off commands committed (`how`), and the messages they moved.
pub const DELIVERY_MOVE_COMMANDS: &str = "peage_delivery_move_commands_total";
pub const DELIVERY_MOVED: &str = "peage_delivery_moved_total";
pub const LEADER_CHANGES: &str = "peage_raft_leader_changes_total";
pub const COMMIT_SECONDS: &str = "peage_raft_commit_seconds";
/// Time to the 250 by stage: `filter`, `body` (a majority fsynced it), `commit` (the record).
pub const ACCEPT_STAGE_SECONDS: &str = "peage_accept_stage_seconds";
pub const SNAPSHOT_BUILD_SECONDS: &str = "peage_snapshot_build_seconds";
pub const SNAPSHOT_BYTES: &str = "peage_snapshot_bytes";
pub const SPOOL_MESSAGES: &str = "peage_spool_messages";
pub const SPOOL_OLDEST_AGE_SECONDS: &str = "peage_spool_oldest_age_seconds";
pub const BLOBS_DELETED: &str = "peage_blobs_deleted_total";
pub const BLOB_BYTES: &str = "peage_blob_bytes";
pub const DATA_FREE_BYTES: &str = "peage_data_free_bytes";
pub const DATA_MIN_FREE_BYTES: &str = "peage_data_min_free_bytes";
pub const BODY_JOURNAL_SYNCS: &str = "peage_body_journal_syncs_total";
pub const BODY_JOURNAL_BODIES: &str = "peage_body_journal_bodies_total";
/// Bytes of bodies durable in the body journal and read from memory until its checkpoint.
pub const BODY_JOURNAL_PENDING_BYTES: &str = "peage_body_journal_pending_bytes";
/// Quarantine digests by `outcome` (`sent`, `already`: sent before, `failed`), and the
/// leader's completed rounds over the domains whose digest time has come.
pub const DIGESTS: &str = "peage_digests_total";
pub const DIGEST_ROUNDS: &str = "peage_digest_rounds_total";
/// The leader's clock minus this node's, as last measured, and how far off that may be.
pub const CLOCK_OFFSET_MS: &str = "peage_clock_offset_ms";
pub const CLOCK_OFFSET_UNCERTAINTY_MS: &str = "peage_clock_offset_uncertainty_ms";

static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();

/// Installs the process-wide recorder once; later calls return the same handle.
pub fn install() -> anyhow::Result<PrometheusHandle> {
    if let Some(h) = HANDLE.get() {
        return Ok(h.clone());
    }
    let seconds = [
        0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
    ];
    let handle = PrometheusBuilder::new()
        .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), &seconds)?
        .install_recorder()?;
    Ok(HANDLE.get_or_init(|| handle).clone())
}

/// Observes a duration under `name` (seconds).
pub fn observe(name: &'static str, took: Duration) {
    metrics::histogram!(name).record(took.as_secs_f64());
}

/// Observes the time since `since` under `name`, labelled `stage`.
pub fn observe_stage(name: &'static str, stage: &'static str, since: std::time::Instant) {
    metrics::histogram!(name, "stage" => stage).record(since.elapsed().as_secs_f64());
}
