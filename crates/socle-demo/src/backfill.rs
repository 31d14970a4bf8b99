//! Loading the demo territory into a store: organisations and entities
//! (`setup`), then history (`backfill`).

use std::collections::HashMap;
use std::time::Instant;

use anyhow::Context;
use chrono::{DateTime, Duration, DurationRound, SecondsFormat, Utc};
use socle_domain::{AttributeName, EntityId, Observation, SeriesInfo, WriteOutcome};
use socle_storage::DynStore;
use tracing::{debug, info};

use crate::series::SeriesSpec;
use crate::territory::Territory;

/// Where the scenario anchor is kept, so that restarts replay the same story.
pub const ANCHOR_KEY: &str = "demo.anchor";

/// Entities per `upsert_entities` transaction.
const ENTITY_CHUNK: usize = 250;
/// Observations per `write_observations` transaction: large enough to
/// amortise the transaction, small enough to keep memory and lock time low.
const BATCH: usize = 10_000;

/// Reads the anchor (or records `now` as the anchor on the first run),
/// generates the territory and upserts its organisations and entities.
/// Safe to run at every start.
pub async fn setup(store: &DynStore, now: DateTime<Utc>) -> anyhow::Result<Territory> {
    let anchor = match store.get_meta(ANCHOR_KEY).await.context("reading the demo anchor")? {
        Some(stored) => DateTime::parse_from_rfc3339(stored.trim())
            .with_context(|| format!("the stored {ANCHOR_KEY} {stored:?} is not an RFC 3339 instant"))?
            .with_timezone(&Utc),
        None => {
            // Whole seconds: the anchor is shown to people and read back.
            let anchor = now.duration_trunc(Duration::seconds(1)).unwrap_or(now);
            store
                .set_meta(ANCHOR_KEY, &anchor.to_rfc3339_opts(SecondsFormat::Secs, true))
                .await
                .context("recording the demo anchor")?;
            info!(%anchor, "demo territory anchored");
            anchor
        }
    };
    let territory = Territory::generate(anchor);
    for org in &territory.organisations {
        store.upsert_organisation(org).await.with_context(|| format!("creating organisation {}", org.id))?;
    }
    let entities = territory.entities_at(now);
    for chunk in entities.chunks(ENTITY_CHUNK) {
        store.upsert_entities(chunk).await.context("creating the demo entities")?;
    }
    let devices: Vec<_> = territory.devices().into_iter().map(|d| d.device).collect();
    for chunk in devices.chunks(ENTITY_CHUNK) {
        store.upsert_devices(chunk).await.context("registering the demo devices")?;
    }
    info!(
        %anchor,
        devices = devices.len(),
        organisations = territory.organisations.len(),
        entities = entities.len(),
        series = territory.series.len(),
        "demo territory ready"
    );
    Ok(territory)
}

/// What a backfill did.
#[derive(Debug, Clone, PartialEq)]
pub struct BackfillReport {
    pub from: DateTime<Utc>,
    /// The end of the history written (exclusive): where live generation
    /// should start.
    pub until: DateTime<Utc>,
    pub series: usize,
    /// Series that already had their points over the whole range.
    pub series_up_to_date: usize,
    pub generated: u64,
    pub outcome: WriteOutcome,
    pub elapsed: std::time::Duration,
}

/// Writes the history of `[now - days, now)`, energy meters first so that
/// their whole history exists within seconds. For each series, only the
/// ranges before its first stored point and after its last one are
/// generated; whatever overlaps is a duplicate the store ignores.
pub async fn backfill(
    store: &DynStore,
    territory: &Territory,
    now: DateTime<Utc>,
    days: u32,
) -> anyhow::Result<BackfillReport> {
    let started = Instant::now();
    let from = now
        .checked_sub_signed(Duration::days(i64::from(days)))
        .with_context(|| format!("{days} days of history reach before the calendar starts"))?;
    let mut report = BackfillReport {
        from,
        until: now,
        series: territory.series.len(),
        series_up_to_date: 0,
        generated: 0,
        outcome: WriteOutcome::default(),
        elapsed: std::time::Duration::ZERO,
    };
    let mut order: Vec<&SeriesSpec> = territory.series.iter().collect();
    // A stable sort keeps each entity's series together, so its stored
    // series are listed once.
    order.sort_by_key(|s| priority(s));

    let mut batch: Vec<Observation> = Vec::with_capacity(BATCH * 2);
    let mut stored: Option<(EntityId, HashMap<AttributeName, SeriesInfo>)> = None;
    for (done, s) in order.iter().enumerate() {
        if stored.as_ref().is_none_or(|(id, _)| *id != s.entity) {
            let infos =
                store.list_series(&s.entity).await.with_context(|| format!("listing the series of {}", s.entity))?;
            stored = Some((s.entity.clone(), infos.into_iter().map(|i| (i.attribute.clone(), i)).collect()));
        }
        let info = stored.as_ref().and_then(|(_, m)| m.get(&s.attribute));
        let ranges = missing_ranges(info, from, now);
        let before = batch.len();
        for (a, b) in ranges {
            batch.extend(s.observations(a, b));
        }
        let added = batch.len() - before;
        if added == 0 {
            report.series_up_to_date += 1;
        }
        report.generated += added as u64;
        if batch.len() >= BATCH {
            flush(store, &mut batch, &mut report.outcome).await?;
            info!(
                stored = report.outcome.stored,
                duplicates = report.outcome.duplicates,
                progress = format!("{} %", (done + 1) * 100 / order.len().max(1)),
                "demo backfill"
            );
        }
    }
    flush(store, &mut batch, &mut report.outcome).await?;
    report.elapsed = started.elapsed();
    info!(
        generated = report.generated,
        stored = report.outcome.stored,
        duplicates = report.outcome.duplicates,
        up_to_date = report.series_up_to_date,
        seconds = report.elapsed.as_secs_f64(),
        "demo backfill done"
    );
    Ok(report)
}

/// How far back last year's daily history goes: thirteen months, so that
/// the last thirty days have their "same period last year" within the
/// communes' 400-day retention.
pub const LAST_YEAR_DAYS: i64 = 396;

/// Writes one point a day, from [`LAST_YEAR_DAYS`] ago up to the day the
/// recent (hourly) history starts, for the series that have a daily history
/// (energy meters, outdoor temperature): what "the same period last year,
/// degree-day corrected" needs, at a 24th of the cost of hourly points.
/// Run after [`backfill`]; a series whose daily history is already there is
/// skipped, so it is cheap at every restart.
pub async fn backfill_last_year(store: &DynStore, territory: &Territory, now: DateTime<Utc>) -> anyhow::Result<u64> {
    let started = Instant::now();
    let first_day = crate::calendar::Local::of(now - Duration::days(LAST_YEAR_DAYS)).date;
    let mut batch: Vec<Observation> = Vec::with_capacity(BATCH * 2);
    let mut written = WriteOutcome::default();
    let mut stored: Option<(EntityId, HashMap<AttributeName, SeriesInfo>)> = None;
    for s in territory.series.iter().filter(|s| s.has_daily_history()) {
        if stored.as_ref().is_none_or(|(id, _)| *id != s.entity) {
            let infos =
                store.list_series(&s.entity).await.with_context(|| format!("listing the series of {}", s.entity))?;
            stored = Some((s.entity.clone(), infos.into_iter().map(|i| (i.attribute.clone(), i)).collect()));
        }
        let first = stored.as_ref().and_then(|(_, m)| m.get(&s.attribute)).and_then(|i| i.first_at);
        // Up to the day before the first stored point, whose day bucket holds hourly points.
        let until = first.map_or_else(|| crate::calendar::Local::of(now).date, |t| crate::calendar::Local::of(t).date);
        batch.extend(s.daily_observations(first_day, until));
        if batch.len() >= BATCH {
            flush(store, &mut batch, &mut written).await?;
        }
    }
    flush(store, &mut batch, &mut written).await?;
    info!(stored = written.stored, seconds = started.elapsed().as_secs_f64(), "demo history of last year done");
    Ok(written.stored)
}

async fn flush(store: &DynStore, batch: &mut Vec<Observation>, total: &mut WriteOutcome) -> anyhow::Result<()> {
    if batch.is_empty() {
        return Ok(());
    }
    let outcome = store.write_observations(batch).await.context("writing demo observations")?;
    debug!(points = batch.len(), stored = outcome.stored, "demo batch written");
    *total += outcome;
    batch.clear();
    Ok(())
}

/// Meters first (the energy views need whole histories), then what the
/// hypervisor shows most, street lights last (the most series, the least
/// looked at one by one).
fn priority(s: &SeriesSpec) -> u8 {
    if s.is_meter() {
        return 0;
    }
    match s.entity_type.as_str() {
        "Building" => 1,
        "WaterConsumptionObserved" => 2,
        "FloodMonitoring" => 3,
        "StreetlightControlCabinet" => 4,
        "AirQualityObserved" => 5,
        "WasteContainer" => 6,
        "ParkingSpot" => 7,
        _ => 8,
    }
}

/// The parts of `[from, to)` a series may lack: before its first stored
/// point and after its last one. Holes in between are not looked for: they
/// only happen if the process stopped mid-way, and a cheap restart matters
/// more than filling them.
fn missing_ranges(
    info: Option<&SeriesInfo>,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> Vec<(DateTime<Utc>, DateTime<Utc>)> {
    let (Some(first), Some(last)) = (info.and_then(|i| i.first_at), info.and_then(|i| i.last_at)) else {
        return vec![(from, to)];
    };
    let mut ranges = Vec::with_capacity(2);
    if first > from {
        ranges.push((from, first.min(to)));
    }
    let after = (last + Duration::milliseconds(1)).max(from);
    if after < to {
        ranges.push((after, to));
    }
    ranges
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn missing_ranges_skip_what_is_stored() {
        let t = |h| Utc.with_ymd_and_hms(2026, 1, 10, h, 0, 0).unwrap();
        let info = |first, last| SeriesInfo {
            attribute: AttributeName::parse("flow").unwrap(),
            numeric: true,
            unit_code: None,
            first_at: Some(first),
            last_at: Some(last),
        };
        assert_eq!(missing_ranges(None, t(0), t(10)), vec![(t(0), t(10))]);
        assert_eq!(
            missing_ranges(Some(&info(t(0), t(9))), t(0), t(10)),
            vec![(t(9) + Duration::milliseconds(1), t(10))]
        );
        assert_eq!(
            missing_ranges(Some(&info(t(3), t(5))), t(0), t(10)),
            vec![(t(0), t(3)), (t(5) + Duration::milliseconds(1), t(10))]
        );
        assert!(missing_ranges(Some(&info(t(0), t(12))), t(0), t(10)).is_empty());
    }
}
