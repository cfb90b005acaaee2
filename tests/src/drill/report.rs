//! What a drill found, printed for people or serialised as JSON.

use std::collections::BTreeMap;

use serde::Serialize;

use super::check::Counts;
use super::options::Scenario;

#[derive(Debug, Serialize)]
pub struct Report {
    pub scenario: Scenario,
    pub mode: String,
    pub corpus: String,
    pub duration_secs: f64,
    pub rate: f64,
    #[serde(flatten)]
    pub counts: Counts,
    /// The longest wait, over the faults, from a fault to the next `250`.
    pub writes_resumed_ms: Option<u64>,
    /// From the heal to the delivery of the last message accepted before it (0 when all
    /// were delivered by then); `None` when the queue did not empty in time.
    pub drained_ms: Option<u64>,
    /// From the fault to the delivery of the last message accepted before it and still
    /// undelivered then (the mail the fault held back: a dead site's, or the downstream's).
    pub held_delivered_ms: Option<u64>,
    pub converged: bool,
    pub state_sha256: String,
    pub events: Vec<String>,
    pub violations: Vec<String>,
    /// Messages that arrived more than once.
    pub duplicated_ids: Vec<u64>,
    /// What clients were told instead of `250`, with how often.
    pub refusals: BTreeMap<String, usize>,
    pub passed: bool,
}

impl Report {
    pub fn print(&self) {
        let c = &self.counts;
        println!(
            "drill {:?}: {}",
            self.scenario,
            if self.passed { "PASSED" } else { "FAILED" }
        );
        println!("  mode:        {}", self.mode);
        println!("  corpus:      {}", self.corpus);
        println!(
            "  load:        {:.1} s at {} msg/s",
            self.duration_secs, self.rate
        );
        for e in &self.events {
            println!("  event:       {e}");
        }
        println!(
            "  sent {} | 250 {} | 4xx {} | 5xx {} (not explained by the verdict: {}) | unreachable {}",
            c.sent, c.accepted_250, c.deferred_4xx, c.refused_5xx, c.fault_5xx, c.unreachable
        );
        println!(
            "  delivered {} | quarantined {} | lost {} | duplicated {} | wrong verdict {} | kept without 250 {}",
            c.delivered, c.quarantined, c.lost, c.duplicated, c.wrong_verdict, c.kept_without_250
        );
        let ms = |v: Option<u64>| v.map_or_else(|| "n/a".to_owned(), |v| format!("{v} ms"));
        println!("  writes resumed after: {}", ms(self.writes_resumed_ms));
        println!(
            "  held mail drained after: {} from the heal; mail held at the fault delivered after: {} from the fault",
            ms(self.drained_ms),
            ms(self.held_delivered_ms)
        );
        println!(
            "  states converged: {} ({})",
            self.converged, self.state_sha256
        );
        if !self.duplicated_ids.is_empty() {
            let ids: Vec<String> = self
                .duplicated_ids
                .iter()
                .take(20)
                .map(u64::to_string)
                .collect();
            println!("  duplicated ids: {}", ids.join(", "));
        }
        for (why, n) in &self.refusals {
            println!("  not 250 ({n}×): {why}");
        }
        for v in &self.violations {
            println!("  VIOLATION: {v}");
        }
    }
}
