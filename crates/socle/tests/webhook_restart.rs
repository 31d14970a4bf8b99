//! Webhook deliveries survive a receiver that is down and a Socle restart: two
//! alerts fire through the ingestion path while the loopback receiver is down,
//! `socle serve` is killed (SIGKILL) after its first failed attempts, started
//! again, the receiver comes up, and every delivery arrives exactly once — no
//! delivery id twice, none missing. Both backends.

mod common;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chrono::Utc;
use common::{socle, Running};
use serde_json::json;
use socle_domain::{ApiToken, Entity, EntityId, EntityType, NewOrganisation, OfficialCode, OrganisationId};
use socle_domain::{OrganisationKind, TokenKind, TokenScope};
use socle_storage::testing::TestStore;
use socle_storage::{DeliveryFilter, DynStore, NewDevice, RuleRecord, StorageConfig, StoredWebhook};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

fn storage_args(t: &TestStore) -> Vec<String> {
    match &t.config {
        StorageConfig::Sqlite { path } => vec!["--data-dir".into(), path.parent().unwrap().display().to_string()],
        StorageConfig::Postgres { url, .. } => vec!["--postgres-url".into(), url.clone()],
    }
}

/// The territory, a fill rule, a webhook to `hook`, and an ingestion token (returned).
async fn prepare(s: &DynStore, hook: &str) -> String {
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
    for n in 1..=2 {
        let id = EntityId::new(&ty, &format!("bac-{n}")).unwrap();
        s.upsert_entities(&[Entity::new(id.clone(), ty.clone(), org.clone())]).await.unwrap();
        s.upsert_devices(&[NewDevice {
            dev_eui: format!("a84041000181c70{n}"),
            name: format!("bac-{n}"),
            model: "generic".into(),
            organisation: org.clone(),
            entity: id,
            mappings: json!([{"field": "fill", "attribute": "fillingLevel"}]),
        }])
        .await
        .unwrap();
    }
    let rule: socle_rules::Rule = serde_json::from_value(json!({
        "id": "bacs-pleins", "organisation": "commune-a", "label": {"fr": "Conteneur"},
        "target": {"type": "WasteContainer"}, "severity": "medium",
        "condition": {"type": "fill", "percent": 80.0, "clearPercent": 60.0},
    }))
    .unwrap();
    let now = Utc::now();
    s.upsert_rule(&RuleRecord {
        id: "bacs-pleins".into(),
        organisation: org.clone(),
        definition: serde_json::to_value(&rule).unwrap(),
        enabled: true,
        author: None,
        created_at: now,
        modified_at: now,
    })
    .await
    .unwrap();
    s.put_webhook(&StoredWebhook {
        id: uuid::Uuid::new_v4(),
        organisation: org.clone(),
        url: hook.into(),
        secret: "secret-de-test".into(),
        spec: json!({}),
        created_at: now,
        modified_at: now,
    })
    .await
    .unwrap();
    let secret = socle_api::policy::new_token_secret(TokenKind::Ingestion);
    let token = ApiToken {
        id: uuid::Uuid::new_v4(),
        kind: TokenKind::Ingestion,
        label: "test".into(),
        user: None,
        organisation: org,
        scope: TokenScope::Write,
        created_at: now,
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
        .env("SOCLE_NOTIFY__MAX_ATTEMPTS", "100")
        .env("SOCLE_NOTIFY__HTTP_TIMEOUT_SECS", "2")
        .args(storage_args(t))
        .args(["--listen", "127.0.0.1:0", "serve"]);
    let app = Running::spawn(cmd);
    let base = app.base_url(Duration::from_secs(60));
    (app, base)
}

/// A loopback webhook receiver: records the `Socle-Delivery` id of every request.
async fn receiver(listener: tokio::net::TcpListener, seen: Arc<Mutex<Vec<String>>>) {
    loop {
        let Ok((mut sock, _)) = listener.accept().await else { return };
        let seen = seen.clone();
        tokio::spawn(async move {
            let mut buf = Vec::new();
            let mut chunk = [0u8; 4096];
            // Headers, then the announced body.
            loop {
                let Ok(n) = sock.read(&mut chunk).await else { return };
                if n == 0 {
                    return;
                }
                buf.extend_from_slice(&chunk[..n]);
                let text = String::from_utf8_lossy(&buf).to_string();
                if let Some(end) = text.find("\r\n\r\n") {
                    let length = text[..end]
                        .lines()
                        .find_map(|l| {
                            l.to_ascii_lowercase().strip_prefix("content-length:").map(|v| v.trim().to_owned())
                        })
                        .and_then(|v| v.parse::<usize>().ok())
                        .unwrap_or(0);
                    if buf.len() >= end + 4 + length {
                        let id = text[..end]
                            .lines()
                            .find_map(|l| {
                                let (k, v) = l.split_once(':')?;
                                k.eq_ignore_ascii_case("socle-delivery").then(|| v.trim().to_owned())
                            })
                            .unwrap_or_default();
                        seen.lock().unwrap().push(id);
                        let _ =
                            sock.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\nconnection: close\r\n\r\n").await;
                        return;
                    }
                }
            }
        });
    }
}

async fn scenario(t: TestStore) {
    // A port for the receiver, free now and down until after the restart.
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let hook = format!("http://127.0.0.1:{port}/alertes");
    let token = prepare(&t.store, &hook).await;

    let (mut app, base) = start(&t);
    let http = reqwest::Client::new();
    for n in 1..=2 {
        let res = http
            .post(format!("{base}/ingest/generic"))
            .bearer_auth(&token)
            .json(&json!({"device": format!("bac-{n}"), "values": {"fill": 0.93}}))
            .send()
            .await
            .unwrap();
        assert!(res.status().is_success(), "{}", res.text().await.unwrap());
    }
    // Both alerts open, their webhook deliveries fail while the receiver is down.
    let webhooks = DeliveryFilter { channel: Some("webhook".into()), limit: 100, ..DeliveryFilter::default() };
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let rows = t.store.list_deliveries(&webhooks).await.unwrap();
        if rows.len() == 2 && rows.iter().all(|d| d.attempts >= 1 && d.last_error.is_some()) {
            assert!(rows.iter().all(|d| d.delivered_at.is_none()));
            break;
        }
        assert!(Instant::now() < deadline, "two failed webhook attempts expected: {rows:?}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    app.kill9();

    // Restart, then bring the receiver up.
    let (app, _) = start(&t);
    let seen = Arc::new(Mutex::new(Vec::new()));
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port)).await.unwrap();
    let server = tokio::spawn(receiver(listener, seen.clone()));
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let rows = t.store.list_deliveries(&webhooks).await.unwrap();
        if rows.iter().all(|d| d.delivered_at.is_some()) {
            break;
        }
        assert!(Instant::now() < deadline, "the deliveries were not completed: {rows:?}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // Give a duplicate the chance to show up.
    tokio::time::sleep(Duration::from_secs(4)).await;
    let rows = t.store.list_deliveries(&webhooks).await.unwrap();
    let mut counts: BTreeMap<String, usize> = BTreeMap::new();
    for id in seen.lock().unwrap().iter() {
        *counts.entry(id.clone()).or_default() += 1;
    }
    let expected: BTreeMap<String, usize> = rows.iter().map(|d| (d.delivery.id.to_string(), 1)).collect();
    assert_eq!(rows.len(), 2);
    assert_eq!(counts, expected, "each delivery arrives once, with its stable id");
    server.abort();
    drop(app);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_webhook_delivery_survives_a_restart() {
    scenario(TestStore::sqlite().await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_webhook_delivery_survives_a_restart() {
    scenario(TestStore::postgres().await).await;
}
