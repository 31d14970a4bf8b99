//! `socle bench`: times the read paths the dashboards rely on against the
//! naive alternative, on a throw-away SQLite database, in the same run.
//! Figures are ratios to that baseline, so they mean something on any machine.

use std::time::{Duration as StdDuration, Instant};

use anyhow::Context;
use chrono::{DateTime, Duration, TimeZone, Utc};
use clap::Args;
use socle_domain::{
    Attribute, AttributeName, Audience, BBox, Entity, EntityFilter, EntityId, EntityType, Geometry, NewOrganisation,
    Observation, ObservedValue, OfficialCode, OrganisationId, OrganisationKind, SeriesPoints, SeriesQuery, Step,
    TimeRange, UnitCode,
};
use socle_storage::rollup::Folded;
use socle_storage::{DynStore, StorageConfig};

use crate::config::Config;

#[derive(Args, Debug, Clone)]
pub struct BenchArgs {
    /// Entities spread over the territory (for the bounding-box query).
    #[arg(long, default_value_t = 10_000)]
    entities: u32,
    /// Days of 15-minute history for the meter.
    #[arg(long, default_value_t = 365)]
    days: u32,
    /// Timed repetitions of each query.
    #[arg(long, default_value_t = 30)]
    runs: u32,
}

struct Timing {
    median: StdDuration,
    p95: StdDuration,
}

async fn time<F, Fut, T>(runs: u32, mut f: F) -> anyhow::Result<(Timing, T)>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<T>>,
{
    let mut samples = Vec::new();
    let mut last = None;
    for _ in 0..runs.max(1) {
        let t = Instant::now();
        last = Some(f().await?);
        samples.push(t.elapsed());
    }
    samples.sort();
    let p95 = samples[((samples.len() * 95).div_ceil(100)).saturating_sub(1)];
    Ok((Timing { median: samples[samples.len() / 2], p95 }, last.context("no run")?))
}

fn ms(d: StdDuration) -> String {
    format!("{:.3} ms", d.as_secs_f64() * 1000.0)
}

pub async fn run(_config: &Config, args: BenchArgs) -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let store = socle_storage::open(&StorageConfig::Sqlite { path: dir.path().join("bench.db") }).await?;
    // A local midnight, so both paths cut the same days.
    let origin =
        chrono_tz::Europe::Paris.with_ymd_and_hms(2025, 1, 1, 0, 0, 0).single().context("origin")?.with_timezone(&Utc);
    let (meter, write_rate) = populate(&store, &args, origin).await?;
    let attribute = AttributeName::parse("consumption")?;
    let range = TimeRange::new(origin, origin + Duration::days(i64::from(args.days)))?;
    let day_query =
        SeriesQuery { entity: meter.clone(), attribute: attribute.clone(), range, step: Step::Day, limit: 100_000 };
    let raw_query = SeriesQuery { step: Step::Raw, limit: u32::MAX, ..day_query.clone() };
    let tz = chrono_tz::Europe::Paris;

    let (rollup_t, days) = time(args.runs, || async {
        match store.series(&day_query).await? {
            SeriesPoints::Buckets(b) => Ok(b.len()),
            SeriesPoints::Raw(_) => anyhow::bail!("expected buckets"),
        }
    })
    .await?;
    let (scan_t, scan_days) = time(args.runs, || async {
        // The baseline: read every raw point and aggregate per day.
        let SeriesPoints::Raw(points) = store.series(&raw_query).await? else { anyhow::bail!("expected raw points") };
        let mut folded = Folded::default();
        for p in &points {
            folded.add(0, p.t.timestamp_millis(), p.value.as_f64().unwrap_or_default(), tz);
        }
        Ok(folded.days.len())
    })
    .await?;
    anyhow::ensure!(days == scan_days, "rollups give {days} days, raw scan {scan_days}");

    let territory = territory_box();
    let small = BBox::new(territory.min_lon, territory.min_lat, territory.min_lon + 0.03, territory.min_lat + 0.03)?;
    let bbox_filter = EntityFilter { audience: Audience::System, bbox: Some(small), limit: 1000, ..Default::default() };
    let (bbox_t, found) = time(args.runs, || async { Ok(store.query_entities(&bbox_filter).await?.total) }).await?;
    let (bbox_scan_t, scan_found) = time(args.runs, || async {
        // The baseline: fetch every entity and test its location.
        let mut hits = 0u64;
        let mut offset = 0;
        loop {
            let page = store
                .query_entities(&EntityFilter { audience: Audience::System, limit: 1000, offset, ..Default::default() })
                .await?;
            hits +=
                page.items.iter().filter(|e| e.location.as_ref().is_some_and(|g| g.bbox().intersects(&small))).count()
                    as u64;
            offset += 1000;
            if offset >= page.total {
                break;
            }
        }
        Ok(hits)
    })
    .await?;
    anyhow::ensure!(found == scan_found, "index finds {found} entities, scan {scan_found}");
    let all_filter =
        EntityFilter { audience: Audience::System, bbox: Some(territory), limit: 1000, ..Default::default() };
    let (all_t, all) = time(args.runs, || async { Ok(store.query_entities(&all_filter).await?.total) }).await?;

    let stats = store.stats().await?;
    println!(
        "Socle bench — SQLite, {} entities, {} days of 15-minute points for one meter, {} runs each\n",
        args.entities, args.days, args.runs
    );
    println!("| query | Socle (median / p95) | baseline (median / p95) | baseline ÷ Socle |");
    println!("|---|---|---|---|");
    println!(
        "| {}-day daily aggregation, one meter ({days} days) | rollups: {} / {} | raw scan + fold: {} / {} | {:.1}× |",
        args.days,
        ms(rollup_t.median),
        ms(rollup_t.p95),
        ms(scan_t.median),
        ms(scan_t.p95),
        scan_t.median.as_secs_f64() / rollup_t.median.as_secs_f64()
    );
    println!(
        "| bbox of 3 km × 3 km ({found} entities) | R*Tree: {} / {} | full scan: {} / {} | {:.1}× |",
        ms(bbox_t.median),
        ms(bbox_t.p95),
        ms(bbox_scan_t.median),
        ms(bbox_scan_t.p95),
        bbox_scan_t.median.as_secs_f64() / bbox_t.median.as_secs_f64()
    );
    println!(
        "| bbox over all entities ({all} entities, first page of 1000) | R*Tree: {} / {} | | |",
        ms(all_t.median),
        ms(all_t.p95)
    );
    println!(
        "\nwrite: {write_rate:.0} observations/s (batches of 5,000, rollups included); database {:.1} MB",
        stats.bytes as f64 / 1e6
    );
    Ok(())
}

fn territory_box() -> BBox {
    BBox { min_lon: 0.2, min_lat: 46.5, max_lon: 0.6, max_lat: 46.8 }
}

/// Deterministic position of entity `i` in the territory (a low-discrepancy grid).
fn position(i: u32, b: &BBox) -> [f64; 2] {
    let x = (f64::from(i) * 0.618_033_988_75).fract();
    let y = (f64::from(i) * 0.754_877_666_2).fract();
    [b.min_lon + x * (b.max_lon - b.min_lon), b.min_lat + y * (b.max_lat - b.min_lat)]
}

async fn populate(store: &DynStore, args: &BenchArgs, origin: DateTime<Utc>) -> anyhow::Result<(EntityId, f64)> {
    let org = OrganisationId::parse("bench")?;
    store
        .upsert_organisation(&NewOrganisation {
            id: org.clone(),
            kind: OrganisationKind::Commune,
            name: "Banc d'essai".into(),
            code: OfficialCode::parse("99998")?,
            parent: None,
            population: None,
            timezone: chrono_tz::Europe::Paris,
            retention_days: None,
        })
        .await?;
    let b = territory_box();
    let ty = EntityType::parse("WasteContainer")?;
    for chunk in (0..args.entities).collect::<Vec<_>>().chunks(2000) {
        let entities = chunk
            .iter()
            .map(|i| {
                let mut e = Entity::new(EntityId::new(&ty, &format!("bench-{i}"))?, ty.clone(), org.clone());
                e.location = Some(Geometry::Point(position(*i, &b)));
                Ok(e.with("name", Attribute::property(format!("Conteneur {i}")))?)
            })
            .collect::<anyhow::Result<Vec<_>>>()?;
        store.upsert_entities(&entities).await?;
    }
    let meter_type = EntityType::parse("SmartMeteringObservation")?;
    let meter = EntityId::new(&meter_type, "bench-meter")?;
    store.upsert_entities(&[Entity::new(meter.clone(), meter_type, org)]).await?;
    let attribute = AttributeName::parse("consumption")?;
    let unit = UnitCode::parse("KWH")?;
    let points: Vec<Observation> = (0..i64::from(args.days) * 96)
        .map(|k| {
            let hour = (k / 4) % 24;
            let v = if (7..19).contains(&hour) { 4.0 } else { 1.0 } + (k % 7) as f64 * 0.1;
            Ok(Observation {
                entity: meter.clone(),
                attribute: attribute.clone(),
                observed_at: origin + Duration::minutes(15 * k),
                value: ObservedValue::number(v)?,
                unit_code: Some(unit.clone()),
            })
        })
        .collect::<anyhow::Result<_>>()?;
    let started = Instant::now();
    for batch in points.chunks(5000) {
        store.write_observations(batch).await?;
    }
    let rate = points.len() as f64 / started.elapsed().as_secs_f64();
    Ok((meter, rate))
}
