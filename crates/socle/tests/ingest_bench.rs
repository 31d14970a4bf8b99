//! Ingestion throughput of the real `socle serve` over HTTP and MQTT: uplinks/s,
//! observations/s and the server's CPU-seconds per million observations, with
//! the network server's decoding and with Socle's codec. A measurement, not a
//! check: `cargo test -p socle --test ingest_bench -- --ignored --nocapture`.

mod common;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::Utc;
use common::{socle, Running};
use socle_api::policy::{hash_secret, new_token_secret};
use socle_domain::{
    ApiToken, Entity, EntityId, EntityType, NewOrganisation, OfficialCode, OrganisationId, OrganisationKind, TokenKind,
    TokenScope,
};
use socle_storage::testing::TestStore;
use socle_storage::{NewDevice, StorageConfig};

/// Devices, each feeding its own container: frames of one device queue on
/// its rows (rollups, current values, health), as they would in reality
/// where a device sends a frame every few minutes.
const DEVICES: u64 = 100;
const POSTERS: u64 = 8;
const SECONDS: u64 = 8;
/// Frames published on MQTT in one go.
const MQTT_FRAMES: u64 = 10_000;

fn b64(bytes: &[u8]) -> String {
    const A: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let n = chunk.iter().enumerate().fold(0u32, |n, (i, b)| n | u32::from(*b) << (16 - 8 * i));
        for i in 0..4 {
            out.push(if i <= chunk.len() { A[(n >> (18 - 6 * i) & 63) as usize] as char } else { '=' });
        }
    }
    out
}

fn eui(i: u64) -> String {
    format!("a8404100{i:08x}")
}

fn entity(i: u64) -> EntityId {
    EntityId::parse(&format!("urn:ngsi-ld:WasteContainer:bench-{i}")).unwrap()
}

fn frame(n: u64, with_object: bool) -> String {
    let at = chrono::DateTime::<Utc>::from_timestamp(1_767_225_600 + (n / DEVICES * 600) as i64, 0).unwrap();
    let distance = 300 + (n % 2000) as u16;
    let [d0, d1] = distance.to_be_bytes();
    let mut v = serde_json::json!({
        "deduplicationId": format!("bench-{n}"),
        "time": at.to_rfc3339(),
        "deviceInfo": {"devEui": eui(n % DEVICES), "deviceName": "bench"},
        "devAddr": "260b1c4f", "fCnt": n, "fPort": 2,
        "data": b64(&[0x0d, 0x0a, d0, d1, 0, 0, 0xd7, 1]),
        "rxInfo": [{"rssi": -97, "snr": 6.5}],
    });
    if with_object {
        v["object"] = serde_json::json!({"Bat": 3.338, "Distance": distance, "TempC_DS18B20": "21.50"});
    }
    v.to_string()
}

/// utime + stime of a process, in seconds.
fn cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let after = stat.rsplit_once(')').map_or("", |(_, a)| a);
    let f: Vec<&str> = after.split_whitespace().collect();
    let ticks: f64 = f.get(11).and_then(|u| u.parse::<f64>().ok()).unwrap_or(0.0)
        + f.get(12).and_then(|s| s.parse::<f64>().ok()).unwrap_or(0.0);
    ticks / 100.0
}

async fn bench(t: TestStore) {
    let s = &t.store;
    let org = OrganisationId::parse("commune-bench").unwrap();
    s.upsert_organisation(&NewOrganisation {
        id: org.clone(),
        kind: OrganisationKind::Commune,
        name: "Bench".into(),
        code: OfficialCode::parse("99997").unwrap(),
        parent: None,
        population: None,
        timezone: chrono_tz::Europe::Paris,
        retention_days: None,
    })
    .await
    .unwrap();
    let entities: Vec<Entity> = (0..DEVICES)
        .map(|i| {
            Entity::new(entity(i), EntityType::parse("WasteContainer").unwrap(), org.clone())
                .with("depth", socle_domain::Attribute::property(2500))
                .unwrap()
        })
        .collect();
    s.upsert_entities(&entities).await.unwrap();
    let devices: Vec<NewDevice> = (0..DEVICES)
        .map(|i| NewDevice {
            dev_eui: eui(i),
            name: format!("bench-{i}"),
            model: "dragino-ldds75".into(),
            organisation: org.clone(),
            entity: entity(i),
            mappings: serde_json::json!([
                {"field": "Distance", "attribute": "fillingLevel", "unitCode": "P1",
                 "transform": {"type": "expression", "formula": "100 - 100 * value / depth"}, "range": [0, 100]},
                {"field": "Bat", "attribute": "batteryVoltage", "unitCode": "VLT"},
                {"field": "TempC_DS18B20", "attribute": "temperature", "unitCode": "CEL", "kind": "number"},
            ]),
        })
        .collect();
    s.upsert_devices(&devices).await.unwrap();
    let secret = new_token_secret(TokenKind::Ingestion);
    let token = ApiToken {
        id: uuid::Uuid::new_v4(),
        kind: TokenKind::Ingestion,
        label: "bench".into(),
        user: None,
        organisation: org,
        scope: TokenScope::Write,
        created_at: Utc::now(),
        expires_at: None,
        revoked_at: None,
    };
    s.create_token(&token, &hash_secret(&secret)).await.unwrap();

    // MQTT: a private Mosquitto the server subscribes to, as to ChirpStack's broker.
    let broker = socle_mqtt::testing::Broker::start();
    let config = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(
        config.path(),
        format!(
            "[[mqtt.subscriptions]]\nhost = \"127.0.0.1\"\nport = {}\nclient_id = \"socle-bench\"\n\
             organisation = \"commune-bench\"\nnetwork = \"chirpstack\"\n",
            broker.port
        ),
    )
    .unwrap();
    let mut cmd = socle();
    cmd.arg("--config").arg(config.path());
    match &t.config {
        StorageConfig::Sqlite { path } => cmd.args(["--data-dir", path.parent().unwrap().to_str().unwrap()]),
        StorageConfig::Postgres { url, .. } => cmd.args(["--postgres-url", url]),
    };
    cmd.args(["--listen", "127.0.0.1:0", "serve"]);
    let child = Running::spawn(cmd);
    let base = child.base_url(Duration::from_secs(60));
    let pid = child.child.id();
    let next = Arc::new(AtomicU64::new(0));
    for with_object in [true, false] {
        let stop = Arc::new(AtomicBool::new(false));
        let done = Arc::new(AtomicU64::new(0));
        let cpu0 = cpu_seconds(pid);
        let started = Instant::now();
        let posters: Vec<_> = (0..POSTERS)
            .map(|_| {
                let (stop, done, next, base, secret) =
                    (stop.clone(), done.clone(), next.clone(), base.clone(), secret.clone());
                std::thread::spawn(move || {
                    let client = reqwest::blocking::Client::new();
                    while !stop.load(Ordering::Relaxed) {
                        let n = next.fetch_add(1, Ordering::Relaxed);
                        let res = client
                            .post(format!("{base}/ingest/chirpstack?event=up"))
                            .bearer_auth(&secret)
                            .body(frame(n, with_object))
                            .send()
                            .unwrap();
                        assert!(res.status().is_success(), "{}", res.text().unwrap_or_default());
                        done.fetch_add(1, Ordering::Relaxed);
                    }
                })
            })
            .collect();
        tokio::time::sleep(Duration::from_secs(SECONDS)).await;
        stop.store(true, Ordering::Relaxed);
        for p in posters {
            p.join().unwrap();
        }
        let elapsed = started.elapsed().as_secs_f64();
        let cpu = cpu_seconds(pid) - cpu0;
        let uplinks = done.load(Ordering::Relaxed) as f64;
        let observations = uplinks * 3.0;
        println!(
            "{} ({}): {:.0} uplinks/s, {:.0} observations/s, server CPU {:.1} s per million observations ({:.0} % of one core)",
            s.backend(),
            if with_object { "decoded by the network server" } else { "decoded by Socle's codec" },
            uplinks / elapsed,
            observations / elapsed,
            cpu / observations * 1e6,
            cpu / elapsed * 100.0
        );
    }
    // The same kind of frames (decoded by the network server) on MQTT, QoS 1:
    // published as fast as the broker takes them, timed until all are stored.
    let count = MQTT_FRAMES;
    let first = next.fetch_add(count, Ordering::Relaxed);
    let messages: Vec<(String, Vec<u8>)> = (first..first + count)
        .map(|n| (format!("application/bench/device/{}/event/up", eui(n % DEVICES)), frame(n, true).into_bytes()))
        .collect();
    let stored = |base: String| async move {
        tokio::task::spawn_blocking(move || {
            let text = reqwest::blocking::get(format!("{base}/metrics")).unwrap().text().unwrap();
            let name = r#"socle_ingest_bodies_total{source="chirpstack-mqtt",result="stored"}"#;
            text.lines().find_map(|l| l.strip_prefix(name)?.trim().parse::<f64>().ok()).unwrap_or(0.0) as u64
        })
        .await
        .unwrap()
    };
    let cpu0 = cpu_seconds(pid);
    let started = Instant::now();
    // In chunks: `publish_all` queues a chunk before reading the broker's acknowledgements.
    for (i, chunk) in messages.chunks(1_000).enumerate() {
        socle_mqtt::testing::publish_all(broker.port, &format!("bench-publisher-{i}"), chunk).await;
    }
    while stored(base.clone()).await < count {
        assert!(started.elapsed() < Duration::from_secs(600), "MQTT frames not all stored");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let elapsed = started.elapsed().as_secs_f64();
    let cpu = cpu_seconds(pid) - cpu0;
    let observations = count as f64 * 3.0;
    println!(
        "{} (MQTT, decoded by the network server): {:.0} uplinks/s, {:.0} observations/s, server CPU {:.1} s per million observations ({:.0} % of one core)",
        s.backend(),
        count as f64 / elapsed,
        observations / elapsed,
        cpu / observations * 1e6,
        cpu / elapsed * 100.0
    );

    let store = t.reopen().await.unwrap();
    assert!(store.check_consistency().await.unwrap().problems.is_empty());
    drop(child);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "measurement, not a check"]
async fn sqlite_ingest_throughput() {
    bench(TestStore::sqlite().await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "measurement, not a check"]
async fn postgres_ingest_throughput() {
    bench(TestStore::postgres().await).await;
}
