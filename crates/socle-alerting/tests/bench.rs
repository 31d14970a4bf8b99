//! Ingest throughput with and without 100 active rules, through the real pipeline
//! and the alerting service on the commit feed (SQLite). Ignored by default; run with
//! `cargo test -p socle-alerting --test bench -- --ignored --nocapture`.
//! Reports the ratio; the requirement is less than 20 % overhead.

use std::time::Instant;

use chrono::{TimeDelta, Utc};
use serde_json::json;
use socle_alerting::AlertingConfig;
use socle_domain::{
    Attribute, Entity, EntityId, EntityType, NewOrganisation, OfficialCode, OrganisationId, OrganisationKind,
};
use socle_ingest::Device;
use socle_ingestion::{registry, Input, Pipeline, PipelineConfig, Source};
use socle_storage::testing::TestStore;
use socle_storage::{DynStore, RuleRecord};
use tokio_util::sync::CancellationToken;

const METERS: usize = 100;
const BODIES: usize = 600;
const PER_BODY: usize = 20;

async fn setup(s: &DynStore) {
    let org = OrganisationId::parse("commune-a").unwrap();
    s.upsert_organisation(&NewOrganisation {
        id: org.clone(),
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
    let ty = EntityType::parse("WaterMeter").unwrap();
    for i in 0..METERS {
        let id = EntityId::new(&ty, &format!("m{i}")).unwrap();
        let e = Entity::new(id.clone(), ty.clone(), org.clone())
            .with("name", Attribute::property(format!("m{i}")))
            .unwrap();
        s.upsert_entities(&[e]).await.unwrap();
        let device: Device = serde_json::from_value(json!({
            "devEui": format!("a8404100{i:08x}"), "name": format!("m{i}"), "model": "dragino-ldds75",
            "organisation": "commune-a", "entity": id.as_str(),
            "mappings": [{"field": "flow", "attribute": "flow"}, {"field": "batteryLevel", "attribute": "batteryLevel"}],
        }))
        .unwrap();
        s.upsert_devices(&[registry::to_new(&device)]).await.unwrap();
    }
}

async fn rules(s: &DynStore) {
    let now = Utc::now();
    for i in 0..100 {
        let condition = match i % 4 {
            0 => json!({"type": "threshold", "attribute": "flow", "direction": "above", "level": 5.0 + i as f64,
                        "minDurationSeconds": 600}),
            1 => json!({"type": "leak", "attribute": "flow", "level": 0.5 + i as f64 / 100.0, "nights": 3}),
            2 => json!({"type": "silence", "afterSeconds": 3600 * (1 + i)}),
            _ => json!({"type": "batteryLow", "percent": 10.0 + (i % 10) as f64, "scale": "percent"}),
        };
        let def = json!({"id": format!("r{i}"), "organisation": "commune-a", "label": {"fr": "Règle"},
                         "target": {"type": "WaterMeter"}, "condition": condition});
        let rule: socle_rules::Rule = serde_json::from_value(def).unwrap();
        s.upsert_rule(&RuleRecord {
            id: rule.id().to_string(),
            organisation: rule.organisation().clone(),
            definition: serde_json::to_value(&rule).unwrap(),
            enabled: true,
            author: None,
            created_at: now,
            modified_at: now,
        })
        .await
        .unwrap();
    }
}

/// Seconds to ingest every body (and, with alerting, to have evaluated them).
async fn run(with_rules: bool) -> f64 {
    let t = TestStore::sqlite().await;
    setup(&t.store).await;
    let pipeline = Pipeline::new(t.store.clone(), PipelineConfig::default());
    let token = CancellationToken::new();
    let service = if with_rules {
        rules(&t.store).await;
        let config = AlertingConfig { auto_tick: false, ..AlertingConfig::default() };
        Some(socle_alerting::start(t.store.clone(), pipeline.feed(), config, token.clone()).await.unwrap())
    } else {
        None
    };
    let base = Utc::now() - TimeDelta::days(20);
    let started = Instant::now();
    for b in 0..BODIES {
        let messages: Vec<_> = (0..PER_BODY)
            .map(|k| {
                let m = (b * PER_BODY + k) % METERS;
                let at = base + TimeDelta::minutes((b * PER_BODY + k) as i64);
                json!({"device": format!("m{m}"), "observedAt": at.to_rfc3339(),
                       "values": {"flow": ((b + k) % 13) as f64, "batteryLevel": 50.0}})
            })
            .collect();
        let body = serde_json::to_vec(&messages).unwrap();
        pipeline.ingest(Input::new(OrganisationId::parse("commune-a").unwrap(), Source::Generic, body)).await.unwrap();
    }
    if let Some((handle, _)) = &service {
        handle.flush().await.unwrap();
    }
    let secs = started.elapsed().as_secs_f64();
    token.cancel();
    if let Some((_, task)) = service {
        task.await.unwrap();
    }
    secs
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "benchmark"]
async fn ingest_throughput_with_and_without_100_rules() {
    let observations = (BODIES * PER_BODY * 2) as f64;
    // Alternate, twice each, so a background load affects both alike.
    let mut without = Vec::new();
    let mut with = Vec::new();
    for _ in 0..2 {
        without.push(run(false).await);
        with.push(run(true).await);
    }
    let best = |v: &[f64]| v.iter().copied().fold(f64::INFINITY, f64::min);
    let (a, b) = (best(&without), best(&with));
    println!(
        "without rules: {:.0} observations/s; with 100 rules: {:.0} observations/s; overhead {:.1} %",
        observations / a,
        observations / b,
        100.0 * (b - a) / a
    );
}
