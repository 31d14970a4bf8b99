//! NGSI-LD notifications exactly once through a crash: a real `socle serve`
//! with a loopback receiver; a subscription; a stream of updates through the
//! NGSI-LD API. Then the receiver stalls (it records a notification but
//! answers after Socle's timeout, so Socle sends it again), `socle serve` is
//! killed with SIGKILL while those retries are pending, changes are committed
//! while it is down (committed, never announced: what a crash between commit
//! and matching leaves), it is started again with the receiver down, and the
//! receiver comes back. Every change must reach the receiver under one
//! notification id per change: re-sends of an id happen (a receiver drops
//! them), a second id for the same change must not. Both backends.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chrono::Utc;
use common::{socle, Running};
use serde_json::{json, Value};
use socle_domain::{
    ApiToken, AttributeName, Email, Entity, EntityId, EntityType, NewOrganisation, Observation, ObservedValue,
    OfficialCode, OrganisationId, OrganisationKind, Role, TokenKind, TokenScope,
};
use socle_storage::testing::TestStore;
use socle_storage::{DynStore, StorageConfig};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const BIN: &str = "urn:ngsi-ld:WasteContainer:bac-1";

fn storage_args(t: &TestStore) -> Vec<String> {
    match &t.config {
        StorageConfig::Sqlite { path } => vec!["--data-dir".into(), path.parent().unwrap().display().to_string()],
        StorageConfig::Postgres { url, .. } => vec!["--postgres-url".into(), url.clone()],
    }
}

/// The commune, a bin, an agent with a write token (returned).
async fn prepare(s: &DynStore) -> String {
    let org = OrganisationId::parse("commune-a").unwrap();
    s.upsert_organisation(&NewOrganisation {
        id: org.clone(),
        kind: OrganisationKind::Commune,
        name: "Commune A".into(),
        code: OfficialCode::parse("86001").unwrap(),
        parent: None,
        population: None,
        timezone: chrono_tz::Europe::Paris,
        retention_days: None,
    })
    .await
    .unwrap();
    let ty = EntityType::parse("WasteContainer").unwrap();
    s.upsert_entities(&[Entity::new(EntityId::parse(BIN).unwrap(), ty, org.clone())]).await.unwrap();
    let user = s.create_user(&Email::parse("agent@commune-a.fr").unwrap(), "Agent", None).await.unwrap();
    s.grant(user.id, &org, Role::Agent).await.unwrap();
    let secret = socle_api::policy::new_token_secret(TokenKind::Personal);
    let token = ApiToken {
        id: uuid::Uuid::new_v4(),
        kind: TokenKind::Personal,
        label: "test".into(),
        user: Some(user.id),
        organisation: org,
        scope: TokenScope::Write,
        created_at: Utc::now(),
        expires_at: None,
        revoked_at: None,
    };
    s.create_token(&token, &socle_api::policy::hash_secret(&secret)).await.unwrap();
    secret
}

fn start(t: &TestStore) -> (Running, String) {
    let mut cmd = socle();
    cmd.env("SOCLE_NOTIFY__RETRY_BASE_SECS", "1")
        .env("SOCLE_NOTIFY__RETRY_MAX_SECS", "2")
        .env("SOCLE_NOTIFY__MAX_ATTEMPTS", "1000")
        .env("SOCLE_NOTIFY__HTTP_TIMEOUT_SECS", "2")
        .args(storage_args(t))
        .args(["--listen", "127.0.0.1:0", "serve"]);
    let app = Running::spawn(cmd);
    let base = app.base_url(Duration::from_secs(60));
    (app, base)
}

/// Notifications received: (notification id, filling level notified).
type Seen = Arc<Mutex<Vec<(String, f64)>>>;

/// A loopback receiver answering 204 to every complete request; while
/// `stall` is set it answers only after Socle has given up waiting.
async fn receiver(listener: tokio::net::TcpListener, seen: Seen, stall: Arc<AtomicBool>) {
    loop {
        let Ok((mut sock, _)) = listener.accept().await else { return };
        let (seen, stall) = (seen.clone(), stall.clone());
        tokio::spawn(async move {
            let mut buf = Vec::new();
            let mut chunk = [0u8; 8192];
            loop {
                let Ok(n) = sock.read(&mut chunk).await else { return };
                if n == 0 {
                    return;
                }
                buf.extend_from_slice(&chunk[..n]);
                let text = String::from_utf8_lossy(&buf).to_string();
                let Some(end) = text.find("\r\n\r\n") else { continue };
                let length = text[..end]
                    .lines()
                    .find_map(|l| l.to_ascii_lowercase().strip_prefix("content-length:").map(|v| v.trim().to_owned()))
                    .and_then(|v| v.parse::<usize>().ok())
                    .unwrap_or(0);
                if buf.len() < end + 4 + length {
                    continue;
                }
                let body: Value = serde_json::from_slice(&buf[end + 4..end + 4 + length]).unwrap_or(Value::Null);
                let id = body["id"].as_str().unwrap_or_default().to_owned();
                let level = body["data"][0]["fillingLevel"]["value"].as_f64().unwrap_or(f64::NAN);
                seen.lock().unwrap().push((id, level));
                if stall.load(Ordering::SeqCst) {
                    tokio::time::sleep(Duration::from_secs(5)).await;
                }
                let _ = sock.write_all(b"HTTP/1.1 204 No Content\r\nconnection: close\r\n\r\n").await;
                return;
            }
        });
    }
}

async fn update(http: &reqwest::Client, base: &str, token: &str, k: u32) {
    let body = json!({"fillingLevel": {"type": "Property", "value": f64::from(k) / 100.0,
                      "observedAt": Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true)}});
    let res = http
        .post(format!("{base}/ngsi-ld/v1/entities/{BIN}/attrs"))
        .bearer_auth(token)
        .header("content-type", "application/json")
        .body(body.to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 204, "update {k}: {}", res.text().await.unwrap());
    // Distinct instants: one change each.
    tokio::time::sleep(Duration::from_millis(5)).await;
}

async fn scenario(t: TestStore) {
    let token = prepare(&t.store).await;
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let seen: Seen = Arc::default();
    let stall = Arc::new(AtomicBool::new(false));
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port)).await.unwrap();
    let mut server = tokio::spawn(receiver(listener, seen.clone(), stall.clone()));

    let (mut app, base) = start(&t);
    let http = reqwest::Client::new();
    let sub = json!({
        "type": "Subscription",
        "id": "urn:ngsi-ld:Subscription:collecte",
        "entities": [{"type": "WasteContainer"}],
        "watchedAttributes": ["fillingLevel"],
        "notification": {"attributes": ["fillingLevel"], "endpoint": {"uri": format!("http://127.0.0.1:{port}/n")}},
    });
    let res = http
        .post(format!("{base}/ngsi-ld/v1/subscriptions"))
        .bearer_auth(&token)
        .header("content-type", "application/json")
        .body(sub.to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 201, "{}", res.text().await.unwrap());

    // A first stream, delivered as it comes.
    let mut sent = 0u32;
    for _ in 0..10 {
        sent += 1;
        update(&http, &base, &token, sent).await;
    }
    // The receiver stalls: it gets each notification, Socle times out and will send it again.
    stall.store(true, Ordering::SeqCst);
    for _ in 0..5 {
        sent += 1;
        update(&http, &base, &token, sent).await;
    }
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let rows = t.store.list_ngsi_notifications(Some("urn:ngsi-ld:Subscription:collecte"), 1000).await.unwrap();
        if rows.iter().filter(|r| r.last_error.is_some() && r.delivered_at.is_none()).count() >= 2 {
            break;
        }
        assert!(Instant::now() < deadline, "timed-out attempts were expected: {rows:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    app.kill9();
    let delivered_before_kill = seen.lock().unwrap().len();

    // Committed while Socle is down, never announced on its feed: only the catch-up can find them.
    for _ in 0..5 {
        sent += 1;
        let o = Observation {
            entity: EntityId::parse(BIN).unwrap(),
            attribute: AttributeName::parse("fillingLevel").unwrap(),
            observed_at: Utc::now(),
            value: ObservedValue::number(f64::from(sent) / 100.0).unwrap(),
            unit_code: None,
        };
        t.store.write_observations(&[o]).await.unwrap();
        tokio::time::sleep(Duration::from_millis(5)).await;
    }

    // Restarted with the receiver down: the next notifications fail and wait.
    server.abort();
    let _ = (&mut server).await;
    stall.store(false, Ordering::SeqCst);
    let restarted_at = Utc::now();
    let (app2, base) = start(&t);
    for _ in 0..10 {
        sent += 1;
        update(&http, &base, &token, sent).await;
    }
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let rows = t.store.list_ngsi_notifications(Some("urn:ngsi-ld:Subscription:collecte"), 1000).await.unwrap();
        if rows.iter().any(|r| r.created_at > restarted_at && r.last_error.is_some() && r.delivered_at.is_none()) {
            break;
        }
        assert!(Instant::now() < deadline, "a refused attempt was expected while the receiver is down: {rows:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // The receiver comes back; a last stream.
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port)).await.unwrap();
    let server = tokio::spawn(receiver(listener, seen.clone(), stall.clone()));
    for _ in 0..10 {
        sent += 1;
        update(&http, &base, &token, sent).await;
    }

    // Every change arrives: each level 0.01 … 0.40 at least once.
    let expected: BTreeSet<u32> = (1..=sent).collect();
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let got: BTreeSet<u32> = seen.lock().unwrap().iter().map(|(_, level)| (level * 100.0).round() as u32).collect();
        if expected.is_subset(&got) {
            break;
        }
        let missing: Vec<_> = expected.difference(&got).collect();
        assert!(Instant::now() < deadline, "changes never notified: {missing:?}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // Give a duplicate the chance to show up.
    tokio::time::sleep(Duration::from_secs(4)).await;
    let seen = seen.lock().unwrap().clone();
    let mut by_id: BTreeMap<&str, BTreeSet<u32>> = BTreeMap::new();
    for (id, level) in &seen {
        assert!(id.starts_with("urn:ngsi-ld:Notification:"), "{id}");
        by_id.entry(id).or_default().insert((level * 100.0).round() as u32);
    }
    // One id per change, one change per id: copies (same id) are what a receiver drops.
    assert_eq!(by_id.len(), sent as usize, "distinct notification ids");
    assert!(by_id.values().all(|levels| levels.len() == 1), "an id always carries the same change");
    let rows = t.store.list_ngsi_notifications(Some("urn:ngsi-ld:Subscription:collecte"), 1000).await.unwrap();
    assert_eq!(rows.len(), sent as usize, "one outbox row per change");
    assert!(rows.iter().all(|r| r.delivered_at.is_some()), "all delivered");
    let copies = seen.len() - by_id.len();
    assert!(copies >= 2, "the stalled notifications were sent again, under the same id");
    eprintln!(
        "{} notifications for {sent} changes ({copies} re-sent copies, {delivered_before_kill} delivered before SIGKILL)",
        seen.len()
    );
    // The subscription's status members counted the deliveries, failures included.
    let sub: Value = http
        .get(format!("{base}/ngsi-ld/v1/subscriptions/urn:ngsi-ld:Subscription:collecte"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(sub["notification"]["timesSent"].as_u64().unwrap() >= u64::from(sent), "{sub}");
    assert!(sub["notification"]["timesFailed"].as_u64().unwrap() >= 1, "{sub}");
    assert_eq!(sub["notification"]["status"], "ok", "{sub}");
    server.abort();
    drop(app2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_ngsi_notifications_exactly_once_through_a_restart() {
    scenario(TestStore::sqlite().await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_ngsi_notifications_exactly_once_through_a_restart() {
    scenario(TestStore::postgres().await).await;
}
