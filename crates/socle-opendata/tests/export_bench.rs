//! Benchmark (ignored; run with `cargo test --release -p socle-opendata --test
//! export_bench -- --ignored --nocapture`): one million records exported as CSV the
//! way `…/exports/csv` does it — read from SQLite in chunks of 1,000, filtered by the
//! query, encoded — reporting MB/s and the resident memory during the export, which
//! must not follow the dataset's size.

use std::time::Instant;

use chrono::Utc;
use serde_json::json;
use socle_domain::{NewOrganisation, OfficialCode, OrganisationId, OrganisationKind, Visibility};
use socle_opendata::export::{Encoder, Format};
use socle_opendata::odsql::{Query, QueryParams};
use socle_opendata::schema::{Field, FieldType, Schema};
use socle_storage::{StoredDataset, StoredRecord};

const RECORDS: i64 = 1_000_000;

fn status_kib(key: &str) -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with(key))
                .and_then(|l| l.split_whitespace().nth(1).and_then(|n| n.parse().ok()))
        })
        .unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "benchmark: run in release on purpose"]
async fn export_a_million_records_as_csv() {
    let t = socle_storage::testing::TestStore::sqlite().await;
    let s = &t.store;
    s.upsert_organisation(&NewOrganisation {
        id: OrganisationId::parse("commune-a").unwrap(),
        kind: OrganisationKind::Commune,
        name: "A".into(),
        code: OfficialCode::parse("86001").unwrap(),
        parent: None,
        population: None,
        timezone: chrono_tz::Europe::Paris,
        retention_days: None,
    })
    .await
    .unwrap();
    let schema = Schema::new(vec![
        Field::new("compteur", "Compteur", FieldType::Text),
        Field::new("date", "Date", FieldType::Date),
        Field::new("kwh", "Consommation (kWh)", FieldType::Double),
        Field::new("geo_point_2d", "Position", FieldType::GeoPoint2d),
    ]);
    let fields = serde_json::to_value(&schema.fields).unwrap();
    let now = Utc::now();
    s.put_dataset(&StoredDataset {
        id: "conso".into(),
        uid: "da_conso".into(),
        organisation: OrganisationId::parse("commune-a").unwrap(),
        visibility: Visibility::Public,
        shared_with: vec![],
        metadata: json!({"title": "Consommations"}),
        fields: fields.clone(),
        records_count: 0,
        data_modified_at: None,
        created_at: now,
        modified_at: now,
    })
    .await
    .unwrap();
    let records: Vec<StoredRecord> = (1..=RECORDS)
        .map(|i| StoredRecord {
            row: i,
            id: format!("r{i}"),
            data: serde_json::from_value(json!({
                "compteur": format!("PDL-{:06}", i % 5000),
                "date": format!("2025-{:02}-{:02}", 1 + i % 12, 1 + i % 28),
                "kwh": (i % 997) as f64 * 0.37,
                "geo_point_2d": {"lon": 0.5 + (i % 100) as f64 / 1000.0, "lat": 46.4 + (i % 77) as f64 / 1000.0},
            }))
            .unwrap(),
        })
        .collect();
    let load = Instant::now();
    s.replace_records("conso", &fields, &records, now).await.unwrap();
    let load = load.elapsed();
    drop(records);
    // Loading held the million records in memory (VmHWM keeps that peak): what matters
    // is the resident size while exporting, sampled at every chunk.
    let rss_before = status_kib("VmRSS:");
    let mut rss_max = rss_before;

    let query = Query::build(&schema, &QueryParams::default()).unwrap();
    let mut encoder = Encoder::new(
        Format::parse("csv", None, false).unwrap(),
        &schema,
        schema.fields.iter().map(|f| f.name.clone()).collect(),
        chrono_tz::UTC,
    )
    .unwrap();
    let start = Instant::now();
    let mut bytes = encoder.begin().len();
    let (mut after, mut rows) = (0, 0u64);
    loop {
        let chunk = s.records_chunk("conso", after, 1_000).await.unwrap();
        let Some(last) = chunk.last() else { break };
        after = last.row;
        rss_max = rss_max.max(status_kib("VmRSS:"));
        for r in &chunk {
            if query.matches(&r.data) {
                bytes += encoder.record(&query.project(&r.data)).unwrap().len();
                rows += 1;
            }
        }
    }
    bytes += encoder.end().unwrap().len();
    let elapsed = start.elapsed().as_secs_f64();
    assert_eq!(rows, RECORDS as u64);
    println!(
        "loaded {RECORDS} records in {:.1} s; exported {rows} rows, {:.1} MB of CSV in {elapsed:.2} s: {:.1} MB/s, {:.0} rows/s; RSS before the export {} MiB, at most {} MiB during it (peak of the whole run {} MiB, the load included)",
        load.as_secs_f64(),
        bytes as f64 / 1e6,
        bytes as f64 / 1e6 / elapsed,
        rows as f64 / elapsed,
        rss_before / 1024,
        rss_max / 1024,
        status_kib("VmHWM:") / 1024
    );
}
