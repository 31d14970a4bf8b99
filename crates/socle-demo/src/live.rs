//! Live mode: the territory keeps producing observations as time passes.
//!
//! Live points are exactly the points the backfill would write for the same
//! instants (same grid, same values), so live and history never disagree,
//! consumption sums stay exact, and a later backfill over a live period only
//! finds duplicates. Each series reports at its own phase in the hour, so
//! writes are spread out: a few points every few seconds, bursts at dusk
//! and dawn when whole streets switch.

use std::future::Future;
use std::sync::Arc;

use chrono::{DateTime, Duration, Utc};
use socle_domain::{Observation, WriteOutcome};
use socle_storage::DynStore;
use tracing::{debug, info, warn};

use crate::territory::Territory;

/// The longest span one tick generates. After a pause (a laptop lid closed)
/// the generator catches up one hour per tick instead of all at once.
const MAX_STEP: Duration = Duration::hours(1);
/// Points kept for retry while the sink fails, at most.
const MAX_PENDING: usize = 50_000;

/// Where live observations go: the store directly today, the ingestion
/// pipeline (decoding, rules, alerts) once it exists.
pub trait ObservationSink: Send {
    fn accept(&mut self, batch: &[Observation]) -> impl Future<Output = anyhow::Result<WriteOutcome>> + Send;
}

impl ObservationSink for DynStore {
    async fn accept(&mut self, batch: &[Observation]) -> anyhow::Result<WriteOutcome> {
        Ok(self.write_observations(batch).await?)
    }
}

/// Produces, tick after tick, the observations that became due.
#[derive(Debug, Clone)]
pub struct LiveGenerator {
    territory: Arc<Territory>,
    cursor: DateTime<Utc>,
}

impl LiveGenerator {
    /// Starts generating from `since` (typically the end of the backfill).
    pub fn new(territory: Arc<Territory>, since: DateTime<Utc>) -> Self {
        Self { territory, cursor: since }
    }

    /// Up to where observations have been produced (exclusive).
    pub fn cursor(&self) -> DateTime<Utc> {
        self.cursor
    }

    /// The observations of `[cursor, now)` (at most one hour of them),
    /// oldest first; advances the cursor.
    pub fn tick(&mut self, now: DateTime<Utc>) -> Vec<Observation> {
        if now <= self.cursor {
            return Vec::new();
        }
        let to = self.cursor.checked_add_signed(MAX_STEP).map_or(now, |limit| now.min(limit));
        let mut out: Vec<Observation> =
            self.territory.series.iter().flat_map(|s| s.observations(self.cursor, to)).collect();
        out.sort_by_key(|o| o.observed_at);
        self.cursor = to;
        out
    }
}

/// What a live run did before it was stopped.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LiveReport {
    pub ticks: u64,
    pub outcome: WriteOutcome,
    pub failed_writes: u64,
}

/// Feeds `sink` every `every` until `shutdown` resolves. A failed write is
/// logged and retried at the next tick; the demo never stops on it.
pub async fn run_live<S: ObservationSink>(
    mut sink: S,
    territory: Arc<Territory>,
    since: DateTime<Utc>,
    every: std::time::Duration,
    shutdown: impl Future<Output = ()>,
) -> LiveReport {
    // tokio's interval refuses a zero period.
    let every = every.max(std::time::Duration::from_millis(100));
    let mut generator = LiveGenerator::new(territory, since);
    let mut interval = tokio::time::interval(every);
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut report = LiveReport::default();
    let mut pending: Vec<Observation> = Vec::new();
    tokio::pin!(shutdown);
    info!(since = %since, every_ms = every.as_millis() as u64, "demo live generation started");
    loop {
        tokio::select! {
            _ = &mut shutdown => break,
            _ = interval.tick() => {}
        }
        report.ticks += 1;
        pending.extend(generator.tick(Utc::now()));
        if pending.is_empty() {
            continue;
        }
        match sink.accept(&pending).await {
            Ok(outcome) => {
                debug!(points = pending.len(), stored = outcome.stored, "demo live points written");
                report.outcome += outcome;
                pending.clear();
            }
            Err(error) => {
                report.failed_writes += 1;
                if pending.len() > MAX_PENDING {
                    let dropped = pending.len() - MAX_PENDING;
                    pending.drain(..dropped);
                    warn!(dropped, "demo live backlog too long; oldest points dropped");
                }
                warn!(
                    error = format!("{error:#}"),
                    pending = pending.len(),
                    "demo live write failed; retrying next tick"
                );
            }
        }
    }
    info!(ticks = report.ticks, stored = report.outcome.stored, "demo live generation stopped");
    report
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn ticks_continue_the_history_without_overlap() {
        let anchor = Utc.with_ymd_and_hms(2026, 1, 15, 10, 0, 0).unwrap();
        let territory = Arc::new(Territory::generate(anchor));
        let mut live = LiveGenerator::new(territory.clone(), anchor);
        let mut ticked = Vec::new();
        let mut now = anchor;
        for _ in 0..180 {
            now += Duration::seconds(5);
            let batch = live.tick(now);
            ticked.extend(batch);
        }
        let expected: usize = territory.series.iter().map(|s| s.observations(anchor, now).len()).sum();
        assert_eq!(ticked.len(), expected);
        // 15 minutes of live: every quarter-hourly series reported once or so.
        assert!(ticked.len() > 50, "{}", ticked.len());
        // Catching up after a pause is bounded.
        let later = live.tick(now + Duration::days(2));
        assert!(later.iter().all(|o| o.observed_at < now + MAX_STEP));
        assert_eq!(live.cursor(), now + MAX_STEP);
    }
}
