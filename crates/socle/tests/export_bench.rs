//! Export throughput and memory of the real `socle serve` over HTTP: a dataset of
//! 100,000 and one of 1,000,000 records exported as CSV, JSONL, Parquet and XLSX,
//! reporting MB/s and the server's peak resident memory (VmHWM) against its idle
//! resident memory, measured in the same server process, one fresh server per export.
//! A measurement, not a check:
//! `cargo test --release -p socle --test export_bench -- --ignored --nocapture`.

mod common;

use std::time::{Duration, Instant};

use chrono::Utc;
use common::{socle, Running};
use serde_json::json;
use socle_domain::{NewOrganisation, OfficialCode, OrganisationId, OrganisationKind, Visibility};
use socle_storage::testing::TestStore;
use socle_storage::{StorageConfig, StoredDataset, StoredRecord};

fn status_kib(pid: u32, key: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with(key))
                .and_then(|l| l.split_whitespace().nth(1).and_then(|n| n.parse().ok()))
        })
        .unwrap_or(0)
}

/// Resets the peak resident size the kernel keeps for the process (VmHWM).
fn reset_peak(pid: u32) {
    std::fs::write(format!("/proc/{pid}/clear_refs"), "5").expect("clear_refs (same user as the server)");
}

/// A year of daily readings of building meters, as the live dataset publishes them.
async fn seed(t: &TestStore, id: &str, n: i64) {
    let fields = json!([
        {"name": "date", "label": "Date", "type": "date"},
        {"name": "commune", "label": "Commune", "type": "text", "facet": true},
        {"name": "compteur", "label": "Compteur", "type": "text"},
        {"name": "type_energie", "label": "Type d'énergie", "type": "text", "facet": true},
        {"name": "consommation", "label": "Consommation (kWh)", "type": "double"},
        {"name": "mesures", "label": "Mesures", "type": "int"},
        {"name": "geo_point_2d", "label": "Position", "type": "geo_point_2d"},
    ]);
    let now = Utc::now();
    t.store
        .put_dataset(&StoredDataset {
            id: id.into(),
            uid: format!("da_{}", id.replace('-', "")),
            organisation: OrganisationId::parse("commune-bench").unwrap(),
            visibility: Visibility::Public,
            shared_with: vec![],
            metadata: json!({"title": id}),
            fields: fields.clone(),
            records_count: 0,
            data_modified_at: None,
            created_at: now,
            modified_at: now,
        })
        .await
        .unwrap();
    let records: Vec<StoredRecord> = (1..=n)
        .map(|i| StoredRecord {
            row: i,
            id: format!("r{i}"),
            data: serde_json::from_value(json!({
                "date": format!("2025-{:02}-{:02}", 1 + i % 12, 1 + i % 28),
                "commune": format!("Commune {}", i % 40),
                "compteur": format!("PDL-{:06}", i % 5000),
                "type_energie": if i % 2 == 0 { "électricité" } else { "gaz" },
                "consommation": (i % 997) as f64 * 0.37,
                "mesures": 24,
                "geo_point_2d": {"lon": 0.5 + (i % 100) as f64 / 1000.0, "lat": 46.4 + (i % 77) as f64 / 1000.0},
            }))
            .unwrap(),
        })
        .collect();
    t.store.replace_records(id, &fields, &records, now).await.unwrap();
}

async fn bench(t: TestStore) {
    t.store
        .upsert_organisation(&NewOrganisation {
            id: OrganisationId::parse("commune-bench").unwrap(),
            kind: OrganisationKind::Commune,
            name: "Bench".into(),
            code: OfficialCode::parse("99996").unwrap(),
            parent: None,
            population: None,
            timezone: chrono_tz::Europe::Paris,
            retention_days: None,
        })
        .await
        .unwrap();
    let sizes = [("releves-100k", 100_000i64), ("releves-1m", 1_000_000)];
    for (id, n) in sizes {
        seed(&t, id, n).await;
    }
    // A fresh server for each export: its idle size and its peak are measured in the same
    // process, and no export inherits memory the allocator kept from another.
    for (id, n) in sizes {
        for format in ["csv", "jsonl", "parquet", "xlsx"] {
            let mut cmd = socle();
            match &t.config {
                StorageConfig::Sqlite { path } => cmd.args(["--data-dir", path.parent().unwrap().to_str().unwrap()]),
                StorageConfig::Postgres { url, .. } => cmd.args(["--postgres-url", url]),
            };
            cmd.args(["--listen", "127.0.0.1:0", "serve"]);
            let child = Running::spawn(cmd);
            let base = child.base_url(Duration::from_secs(60));
            let pid = child.child.id();
            let http = reqwest::Client::new();
            // Warm up (the first requests allocate the pools), then measure the idle server.
            for _ in 0..3 {
                http.get(format!("{base}/api/explore/v2.1/catalog/datasets"))
                    .send()
                    .await
                    .unwrap()
                    .text()
                    .await
                    .unwrap();
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
            let idle = status_kib(pid, "VmRSS:");
            reset_peak(pid);
            let started = Instant::now();
            let mut res = http
                .get(format!("{base}/api/explore/v2.1/catalog/datasets/{id}/exports/{format}"))
                .send()
                .await
                .unwrap();
            assert!(res.status().is_success(), "{id} {format}: {}", res.status());
            let first_byte = started.elapsed();
            let mut bytes = 0usize;
            while let Some(chunk) = res.chunk().await.unwrap() {
                bytes += chunk.len();
            }
            let elapsed = started.elapsed().as_secs_f64();
            let peak = status_kib(pid, "VmHWM:");
            println!(
                "{} {n:>9} records {format:>7}: {:>7.1} MB in {elapsed:>6.2} s = {:>6.1} MB/s, {:>8.0} records/s, first byte after {:.2} s; server idle RSS {} MiB, peak {} MiB (+{} MiB)",
                t.store.backend(),
                bytes as f64 / 1e6,
                bytes as f64 / 1e6 / elapsed,
                n as f64 / elapsed,
                first_byte.as_secs_f64(),
                idle / 1024,
                peak / 1024,
                peak.saturating_sub(idle) / 1024,
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "benchmark: run in release on purpose"]
async fn sqlite_export_bench() {
    bench(TestStore::sqlite().await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "benchmark: run in release on purpose"]
async fn postgres_export_bench() {
    bench(TestStore::postgres().await).await;
}
