//! NGSI-LD benchmark (ignored; run in release):
//! `cargo test --release -p socle-api --test ngsi_bench -- --ignored --nocapture`.
//! Entity creations and attribute updates per second over HTTP, `GET
//! /entities` with type + q latency among 100,000 entities, and temporal
//! aggregation latency over one year of 15-minute data, on both backends.
//! Figures are printed, never asserted.

use std::time::{Duration as StdDuration, Instant};

use chrono::{DateTime, Duration, Utc};
use futures_util::StreamExt;
use serde_json::json;
use socle_api::policy::{hash_secret, new_token_secret};
use socle_api::AppState;
use socle_domain::{
    ApiToken, Attribute, AttributeName, Email, Entity, EntityId, EntityType, Geometry, NewOrganisation, Observation,
    ObservedValue, OfficialCode, OrganisationId, OrganisationKind, Role, TokenKind, TokenScope, UnitCode, Visibility,
};
use socle_storage::testing::TestStore;

const ENTITIES: u32 = 100_000;
const WRITES: u32 = 2_000;
const CONCURRENCY: usize = 8;

fn percentile(sorted: &[StdDuration], p: f64) -> f64 {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i].as_secs_f64() * 1000.0
}

async fn latencies(http: &reqwest::Client, secret: &str, url: &str, n: usize) -> (f64, f64, usize) {
    let mut times = Vec::new();
    let mut size = 0;
    for _ in 0..n {
        let t = Instant::now();
        let res = http.get(url).bearer_auth(secret).send().await.unwrap();
        assert!(res.status().is_success(), "{url}: {}", res.status());
        size = res.bytes().await.unwrap().len();
        times.push(t.elapsed());
    }
    times.sort();
    (percentile(&times, 0.5), percentile(&times, 0.95), size)
}

async fn bench(t: TestStore) {
    let s = t.store.clone();
    let org = OrganisationId::parse("commune-a").unwrap();
    s.upsert_organisation(&NewOrganisation {
        id: org.clone(),
        kind: OrganisationKind::Commune,
        name: "Commune A".into(),
        code: OfficialCode::parse("86001").unwrap(),
        parent: None,
        population: Some(30_000),
        timezone: chrono_tz::Europe::Paris,
        retention_days: None,
    })
    .await
    .unwrap();
    let user = s.create_user(&Email::parse("agent@a.fr").unwrap(), "Agent", None).await.unwrap();
    s.grant(user.id, &org, Role::Agent).await.unwrap();
    let secret = new_token_secret(TokenKind::Personal);
    let token = ApiToken {
        id: uuid::Uuid::new_v4(),
        kind: TokenKind::Personal,
        label: "bench".into(),
        user: Some(user.id),
        organisation: org.clone(),
        scope: TokenScope::Write,
        created_at: Utc::now(),
        expires_at: Some(Utc::now() + Duration::days(1)),
        revoked_at: None,
    };
    s.create_token(&token, &hash_secret(&secret)).await.unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}/ngsi-ld/v1", listener.local_addr().unwrap());
    let state = AppState::new(s.clone());
    tokio::spawn(socle_api::serve(listener, state, std::future::pending()));
    let http = reqwest::Client::new();

    // Creations over HTTP.
    let t0 = Instant::now();
    futures_util::stream::iter(0..WRITES)
        .map(|i| {
            let (http, base, secret) = (http.clone(), base.clone(), secret.clone());
            async move {
                let body = json!({"id": format!("urn:ngsi-ld:WasteContainer:w-{i}"), "type": "WasteContainer",
                    "location": {"type": "GeoProperty", "value": {"type": "Point", "coordinates": [0.3 + f64::from(i % 100) * 0.001, 46.5]}},
                    "fillingLevel": {"type": "Property", "value": 0.5, "unitCode": "C62", "observedAt": "2026-03-01T10:00:00Z"}});
                let res = http.post(format!("{base}/entities")).bearer_auth(&secret).json(&body).send().await.unwrap();
                assert_eq!(res.status(), 201);
            }
        })
        .buffer_unordered(CONCURRENCY)
        .collect::<Vec<_>>()
        .await;
    let creations = f64::from(WRITES) / t0.elapsed().as_secs_f64();

    // Attribute updates (each also an observation).
    let t0 = Instant::now();
    futures_util::stream::iter(0..WRITES)
        .map(|i| {
            let (http, base, secret) = (http.clone(), base.clone(), secret.clone());
            async move {
                let at = DateTime::parse_from_rfc3339("2026-03-01T11:00:00Z").unwrap() + Duration::seconds(i64::from(i));
                let body = json!({"fillingLevel": {"type": "Property", "value": 0.6, "unitCode": "C62", "observedAt": at.to_rfc3339()}});
                let res = http
                    .patch(format!("{base}/entities/urn:ngsi-ld:WasteContainer:w-{}/attrs", i % WRITES))
                    .bearer_auth(&secret)
                    .json(&body)
                    .send()
                    .await
                    .unwrap();
                assert_eq!(res.status(), 204);
            }
        })
        .buffer_unordered(CONCURRENCY)
        .collect::<Vec<_>>()
        .await;
    let updates = f64::from(WRITES) / t0.elapsed().as_secs_f64();

    // 100,000 entities (written directly: this measures reading them).
    let ty = EntityType::parse("Streetlight").unwrap();
    let t0 = Instant::now();
    for chunk in (0..ENTITIES).collect::<Vec<_>>().chunks(5_000) {
        let batch: Vec<Entity> = chunk
            .iter()
            .map(|i| {
                let mut e = Entity::new(EntityId::new(&ty, &format!("l-{i:06}")).unwrap(), ty.clone(), org.clone());
                e.visibility = Visibility::Public;
                e.location =
                    Some(Geometry::Point([0.2 + f64::from(i % 1000) * 0.0005, 46.4 + f64::from(i / 1000) * 0.0005]));
                e.with("powerState", Attribute::property(if i % 10 == 0 { "off" } else { "on" }))
                    .unwrap()
                    .with("illuminanceLevel", Attribute::property(f64::from(i % 100) / 100.0))
                    .unwrap()
            })
            .collect();
        s.upsert_entities(&batch).await.unwrap();
    }
    let seeded = t0.elapsed().as_secs_f64();
    let q = latencies(
        &http,
        &secret,
        &format!("{base}/entities?type=Streetlight&q=powerState==%22off%22;illuminanceLevel%3E0.5&limit=20&count=true"),
        20,
    )
    .await;
    let only_type =
        latencies(&http, &secret, &format!("{base}/entities?type=Streetlight&limit=20&count=true&offset=50000"), 20)
            .await;
    let geo = latencies(&http, &secret, &format!("{base}/entities?type=Streetlight&georel=near;maxDistance==200&geometry=Point&coordinates=%5B0.45,46.42%5D&q=powerState==on&limit=20"), 20).await;

    // One year of 15-minute data for one entity.
    let meter = EntityId::parse("urn:ngsi-ld:WasteContainer:w-0").unwrap();
    let start = DateTime::parse_from_rfc3339("2025-01-01T00:00:00Z").unwrap().with_timezone(&Utc);
    let points: Vec<Observation> = (0..365 * 96)
        .map(|k| Observation {
            entity: meter.clone(),
            attribute: AttributeName::parse("weight").unwrap(),
            observed_at: start + Duration::minutes(15 * k),
            value: ObservedValue::number((k % 97) as f64).unwrap(),
            unit_code: Some(UnitCode::parse("KGM").unwrap()),
        })
        .collect();
    for chunk in points.chunks(5_000) {
        s.write_observations(chunk).await.unwrap();
    }
    let year = "timerel=between&timeAt=2025-01-01T00:00:00Z&endTimeAt=2026-01-01T00:00:00Z&attrs=weight";
    let rollups = latencies(
        &http,
        &secret,
        &format!(
            "{base}/temporal/entities/{meter}?{year}&aggrMethods=sum,avg,min,max,totalCount&aggrPeriodDuration=P1D"
        ),
        10,
    )
    .await;
    let raw = latencies(&http, &secret, &format!("{base}/temporal/entities/{meter}?{year}&aggrMethods=sum,avg,stddev,sumsq,distinctCount&aggrPeriodDuration=P1D"), 10).await;
    let whole =
        latencies(&http, &secret, &format!("{base}/temporal/entities/{meter}?{year}&aggrMethods=avg,max"), 10).await;

    println!("\n## NGSI-LD benchmark — {}\n", t.backend());
    println!("| measure | figure |\n|---|---|");
    println!("| POST /entities ({WRITES}, {CONCURRENCY} concurrent) | {creations:.0} entities/s |");
    println!("| PATCH /entities/{{id}}/attrs (with observation) | {updates:.0} updates/s |");
    println!("| seeding {ENTITIES} entities (store, batches of 5,000) | {seeded:.1} s |");
    println!("| GET /entities type+q (2 terms), {ENTITIES} entities | p50 {:.1} ms, p95 {:.1} ms |", q.0, q.1);
    println!(
        "| GET /entities type only, offset 50,000 (SQL paging) | p50 {:.1} ms, p95 {:.1} ms |",
        only_type.0, only_type.1
    );
    println!("| GET /entities type+near 200 m+q | p50 {:.1} ms, p95 {:.1} ms |", geo.0, geo.1);
    println!(
        "| temporal P1D × 365, sum/avg/min/max/count (hourly rollups) | p50 {:.1} ms, p95 {:.1} ms ({} B) |",
        rollups.0, rollups.1, rollups.2
    );
    println!(
        "| temporal P1D × 365, stddev/sumsq/distinctCount (35,040 raw points) | p50 {:.1} ms, p95 {:.1} ms |",
        raw.0, raw.1
    );
    println!("| temporal whole year avg/max (rollups) | p50 {:.1} ms, p95 {:.1} ms |", whole.0, whole.1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "benchmark: run in release with --ignored --nocapture"]
async fn ngsi_benchmark_sqlite() {
    bench(TestStore::sqlite().await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "benchmark: run in release with --ignored --nocapture"]
async fn ngsi_benchmark_postgres() {
    bench(TestStore::postgres().await).await;
}
