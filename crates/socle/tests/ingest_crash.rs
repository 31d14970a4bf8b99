//! Killing `socle serve` with SIGKILL while network servers push frames
//! over HTTP, from several connections at once: after a restart, every frame
//! that was answered 2xx is stored, none twice, and sending everything again
//! stores nothing new for them. Both backends.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, Utc};
use common::{socle, Running};
use socle_api::policy::{hash_secret, new_token_secret};
use socle_domain::{
    ApiToken, AttributeName, Entity, EntityId, EntityType, NewOrganisation, OfficialCode, OrganisationId,
    OrganisationKind, SeriesPoints, SeriesQuery, Step, TimeRange, TokenKind, TokenScope,
};
use socle_storage::testing::TestStore;
use socle_storage::{DynStore, NewDevice, StorageConfig};

const EUI: &str = "a84041000181c7e2";
const POSTERS: u64 = 4;
const ENTITY: &str = "urn:ngsi-ld:WasteContainer:crash";

/// Frame number and answer (`Some(duplicate)` on 2xx).
type Answers = Vec<(u64, Option<bool>)>;

fn storage_args(t: &TestStore) -> Vec<String> {
    match &t.config {
        StorageConfig::Sqlite { path } => vec!["--data-dir".into(), path.parent().unwrap().display().to_string()],
        StorageConfig::Postgres { url, .. } => vec!["--postgres-url".into(), url.clone()],
    }
}

fn t0() -> DateTime<Utc> {
    "2026-01-01T00:00:00Z".parse().unwrap()
}

/// Frame `n`: its own deduplication id, counter and instant (n seconds after t0).
fn frame(n: u64) -> String {
    let at = t0() + chrono::Duration::seconds(n as i64);
    serde_json::json!({
        "deduplicationId": format!("crash-{n}"),
        "time": at.to_rfc3339(),
        "deviceInfo": {"devEui": EUI, "deviceName": "crash", "applicationId": "app"},
        "devAddr": "260b1c4f",
        "fCnt": n,
        "fPort": 2,
        "data": "DQoH6QAAAAE=",
        "object": {"Bat": 3.0 + (n % 100) as f64 / 100.0, "Distance": 500 + n % 1000},
        "rxInfo": [{"rssi": -90, "snr": 7.0}],
    })
    .to_string()
}

async fn setup(s: &DynStore) -> String {
    s.upsert_organisation(&NewOrganisation {
        id: OrganisationId::parse("commune-crash").unwrap(),
        kind: OrganisationKind::Commune,
        name: "Crash".into(),
        code: OfficialCode::parse("99998").unwrap(),
        parent: None,
        population: None,
        timezone: chrono_tz::Europe::Paris,
        retention_days: None,
    })
    .await
    .unwrap();
    let org = OrganisationId::parse("commune-crash").unwrap();
    let e = Entity::new(EntityId::parse(ENTITY).unwrap(), EntityType::parse("WasteContainer").unwrap(), org.clone());
    s.upsert_entities(&[e]).await.unwrap();
    s.upsert_devices(&[NewDevice {
        dev_eui: EUI.into(),
        name: "crash".into(),
        model: "dragino-ldds75".into(),
        organisation: org.clone(),
        entity: EntityId::parse(ENTITY).unwrap(),
        mappings: serde_json::json!([
            {"field": "Bat", "attribute": "batteryVoltage", "unitCode": "VLT"},
            {"field": "Distance", "attribute": "distance", "unitCode": "MMT"},
        ]),
    }])
    .await
    .unwrap();
    let secret = new_token_secret(TokenKind::Ingestion);
    let token = ApiToken {
        id: uuid::Uuid::new_v4(),
        kind: TokenKind::Ingestion,
        label: "crash".into(),
        user: None,
        organisation: org,
        scope: TokenScope::Write,
        created_at: Utc::now(),
        expires_at: None,
        revoked_at: None,
    };
    s.create_token(&token, &hash_secret(&secret)).await.unwrap();
    secret
}

/// Answer to one POST: `Some(duplicate flag)` on 2xx, `None` otherwise
/// (connection refused or reset, or an error status).
fn post(client: &reqwest::blocking::Client, base: &str, token: &str, n: u64) -> Option<bool> {
    let res = client
        .post(format!("{base}/ingest/chirpstack?event=up"))
        .bearer_auth(token)
        .header("content-type", "application/json")
        .body(frame(n))
        .send()
        .ok()?;
    if !res.status().is_success() {
        return None;
    }
    let json: serde_json::Value = res.json().ok()?;
    json["duplicate"].as_bool()
}

fn serve(t: &TestStore) -> (Running, String) {
    let mut cmd = socle();
    cmd.args(storage_args(t)).args(["--listen", "127.0.0.1:0", "serve"]);
    let child = Running::spawn(cmd);
    let base = child.base_url(Duration::from_secs(60));
    (child, base)
}

/// Instants of the stored points of a series, with how many points each has.
async fn stored(store: &DynStore, attribute: &str) -> BTreeMap<DateTime<Utc>, u32> {
    let q = SeriesQuery {
        entity: EntityId::parse(ENTITY).unwrap(),
        attribute: AttributeName::parse(attribute).unwrap(),
        range: TimeRange::new(t0(), t0() + chrono::Duration::days(3650)).unwrap(),
        step: Step::Raw,
        limit: u32::MAX,
    };
    let mut out = BTreeMap::new();
    match store.series(&q).await {
        Ok(SeriesPoints::Raw(points)) => {
            for p in points {
                *out.entry(p.t).or_insert(0) += 1;
            }
        }
        Err(socle_storage::StoreError::UnknownSeries { .. }) => {}
        other => panic!("{other:?}"),
    }
    out
}

async fn kill_during_ingest(t: TestStore) {
    let token = setup(&t.store).await;
    let mut attempted: BTreeSet<u64> = BTreeSet::new();
    let mut acknowledged: BTreeSet<u64> = BTreeSet::new();
    for round in 0..2u64 {
        let (mut child, base) = serve(&t);
        let stop = Arc::new(AtomicBool::new(false));
        let results: Arc<Mutex<Answers>> = Arc::default();
        let posters: Vec<_> = (0..POSTERS)
            .map(|p| {
                let (stop, results, base, token) = (stop.clone(), results.clone(), base.clone(), token.clone());
                std::thread::spawn(move || {
                    let client = reqwest::blocking::Client::builder().timeout(Duration::from_secs(20)).build().unwrap();
                    // Frames of this round and poster: disjoint numbers.
                    for k in 0.. {
                        let n = round * 1_000_000 + p * 100_000 + k;
                        let answer = post(&client, &base, &token, n);
                        results.lock().unwrap().push((n, answer));
                        if answer.is_none() || stop.load(Ordering::Relaxed) {
                            return;
                        }
                    }
                })
            })
            .collect();
        // Let the posters get a good number of frames through, then kill mid-stream.
        common::eventually(Duration::from_secs(60), "acknowledged frames", || {
            (results.lock().unwrap().iter().filter(|(_, a)| a.is_some()).count() >= 150).then_some(())
        });
        std::thread::sleep(Duration::from_millis(23 * (round + 1)));
        child.kill9();
        stop.store(true, Ordering::Relaxed);
        for p in posters {
            p.join().unwrap();
        }
        for (n, answer) in results.lock().unwrap().iter() {
            attempted.insert(*n);
            if let Some(duplicate) = answer {
                assert!(!duplicate, "round {round}: frame {n} was new when first sent");
                acknowledged.insert(*n);
            }
        }

        // What the killed process acknowledged is in the database, once.
        let store = t.reopen().await.expect("reopen after SIGKILL");
        let points = stored(&store, "batteryVoltage").await;
        for n in &acknowledged {
            let at = t0() + chrono::Duration::seconds(*n as i64);
            assert_eq!(points.get(&at), Some(&1), "round {round}: acknowledged frame {n} is stored once");
        }
        let health = store.device(EUI).await.unwrap().unwrap().health;
        assert_eq!(health.frames_received, points.len() as u64, "round {round}: no frame counted twice");
        assert!(store.check_consistency().await.unwrap().problems.is_empty(), "round {round}");
    }

    // A restarted Socle receives everything again (a network server replaying
    // its queue): every acknowledged frame is recognised, the rest completed.
    let (_child, base) = serve(&t);
    let (base2, token2, attempted2) = (base.clone(), token.clone(), attempted.clone());
    let answers: Answers = tokio::task::spawn_blocking(move || {
        let client = reqwest::blocking::Client::builder().timeout(Duration::from_secs(20)).build().unwrap();
        attempted2.iter().map(|n| (*n, post(&client, &base2, &token2, *n))).collect()
    })
    .await
    .unwrap();
    for (n, answer) in &answers {
        let duplicate = answer.unwrap_or_else(|| panic!("frame {n} refused after restart"));
        if acknowledged.contains(n) {
            assert!(duplicate, "acknowledged frame {n} must be recognised after the restart");
        }
    }
    let store = t.reopen().await.unwrap();
    for attribute in ["batteryVoltage", "distance"] {
        let points = stored(&store, attribute).await;
        assert_eq!(points.len(), attempted.len(), "{attribute}: every frame stored");
        assert!(points.values().all(|c| *c == 1), "{attribute}: none twice");
    }
    let health = store.device(EUI).await.unwrap().unwrap().health;
    assert_eq!(health.frames_received, attempted.len() as u64);
    assert!(store.check_consistency().await.unwrap().problems.is_empty());
    println!(
        "{} frames sent, {} acknowledged before a SIGKILL, all stored once after restarts",
        attempted.len(),
        acknowledged.len()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_sigkill_during_http_ingest_loses_and_doubles_nothing() {
    kill_during_ingest(TestStore::sqlite().await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_sigkill_during_http_ingest_loses_and_doubles_nothing() {
    kill_during_ingest(TestStore::postgres().await).await;
}
