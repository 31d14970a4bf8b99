//! Notifications delivered to real receivers on loopback: a webhook receiver
//! that is down for a while while Socle "restarts" (the notifier is dropped
//! and rebuilt on the same SQLite file), an SMTP server (aiosmtpd), an SMS
//! gateway, and a Web Push service that decrypts what it receives with the
//! user agent's keys and checks the VAPID JWT. Quiet hours and escalation
//! with our own `AlertStatus`.

use std::collections::{HashMap, HashSet};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use chrono::{TimeZone, Utc};
use socle_domain::{Email, EntityId, NewOrganisation, OfficialCode, OrganisationId, OrganisationKind, UserId};
use socle_notify::webpush::{b64, decrypt, verify_vapid};
use socle_notify::{
    AlertNotice, AlertStatus, NoticeKind, Notifier, NotifyConfig, Severity, SmsGateway, SmtpSecurity, SmtpSettings,
    Visibility,
};
use socle_storage::testing::TestStore;
use socle_storage::{DeliveryFilter, DynStore, PushSubscriptionRecord, StoredSubscription, StoredWebhook};

struct Allowed(HashSet<UserId>);

#[async_trait]
impl Visibility for Allowed {
    async fn may_see(&self, user: UserId, _: &AlertNotice) -> bool {
        self.0.contains(&user)
    }
}

#[derive(Default)]
struct Acknowledged(Mutex<HashSet<String>>);

#[async_trait]
impl AlertStatus for Acknowledged {
    async fn is_acknowledged_or_resolved(&self, alert_id: &str) -> bool {
        self.0.lock().unwrap().contains(alert_id)
    }
}

fn config() -> NotifyConfig {
    NotifyConfig {
        public_url: "https://socle.test".into(),
        retry_base: Duration::from_millis(50),
        retry_max: Duration::from_millis(200),
        max_attempts: 1000,
        lease: Duration::from_secs(30),
        poll_interval: Duration::from_millis(50),
        http_timeout: Duration::from_secs(5),
        ..Default::default()
    }
}

async fn organisation(s: &DynStore) {
    s.upsert_organisation(&NewOrganisation {
        id: OrganisationId::parse("commune-a").unwrap(),
        kind: OrganisationKind::Commune,
        name: "Commune A".into(),
        code: OfficialCode::parse("86001").unwrap(),
        parent: None,
        population: Some(1200),
        timezone: chrono_tz::Europe::Paris,
        retention_days: None,
    })
    .await
    .unwrap();
}

async fn person(s: &DynStore, email: &str) -> UserId {
    s.create_user(&Email::parse(email).unwrap(), email, None).await.unwrap().id
}

async fn subscribe(s: &DynStore, user: UserId, spec: serde_json::Value) {
    let now = Utc::now();
    s.put_subscription(&StoredSubscription { id: uuid::Uuid::new_v4(), user, spec, created_at: now, modified_at: now })
        .await
        .unwrap();
}

fn notice(alert: &str, severity: Severity) -> AlertNotice {
    AlertNotice {
        alert_id: alert.into(),
        change: NoticeKind::Opened,
        organisation: OrganisationId::parse("commune-a").unwrap(),
        entity_id: EntityId::parse("urn:ngsi-ld:WaterMeter:nord").unwrap(),
        entity_name: "Compteur secteur Nord".into(),
        domain: "eau".into(),
        severity,
        title_fr: "Fuite suspectée".into(),
        title_en: "Suspected leak".into(),
        since: Utc.with_ymd_and_hms(2026, 11, 29, 23, 12, 0).unwrap(),
        last_value: Some((4.2, Some("MQH".into()))),
        location: Some((0.34, 46.58)),
    }
}

fn notifier(s: &DynStore, cfg: NotifyConfig, allowed: &[UserId], status: Arc<Acknowledged>) -> Notifier {
    let vapid = socle_notify::VapidKey::generate();
    Notifier::new(s.clone(), cfg, vapid, Arc::new(Allowed(allowed.iter().copied().collect())), status).unwrap()
}

/// Runs delivery rounds until nothing is pending, at most `rounds` times.
async fn drain(n: &Notifier, s: &DynStore, rounds: usize) -> usize {
    let pending = DeliveryFilter { pending: true, limit: 1000, ..Default::default() };
    for _ in 0..rounds {
        n.deliver_due().await.unwrap();
        if s.list_deliveries(&pending).await.unwrap().is_empty() {
            return 0;
        }
        tokio::time::sleep(Duration::from_millis(60)).await;
    }
    s.list_deliveries(&pending).await.unwrap().len()
}

type Received = Arc<Mutex<Vec<(HeaderMap, Bytes)>>>;

async fn record(State(r): State<Received>, headers: HeaderMap, body: Bytes) -> StatusCode {
    r.lock().unwrap().push((headers, body));
    StatusCode::NO_CONTENT
}

async fn serve(listener: tokio::net::TcpListener, app: axum::Router) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        axum::serve(listener, app).await.unwrap();
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webhooks_survive_a_receiver_down_and_a_restart_without_duplicates() {
    let t = TestStore::sqlite().await;
    organisation(&t.store).await;
    // The receiver's address, then nobody listening there for a while.
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let secret = "whsec_test";
    let now = Utc::now();
    t.store
        .put_webhook(&StoredWebhook {
            id: uuid::Uuid::new_v4(),
            organisation: OrganisationId::parse("commune-a").unwrap(),
            url: format!("http://127.0.0.1:{port}/hook"),
            secret: secret.into(),
            spec: serde_json::json!({"domains": ["eau"], "minSeverity": "medium"}),
            created_at: now,
            modified_at: now,
        })
        .await
        .unwrap();
    let first = notifier(&t.store, config(), &[], Arc::default());
    let alerts: Vec<String> = (0..6).map(|i| format!("alert-{i}")).collect();
    for a in &alerts {
        assert_eq!(first.notify(&notice(a, Severity::High)).await.unwrap(), 1);
    }
    // Filtered out: another domain, a lower severity.
    let mut air = notice("alert-air", Severity::High);
    air.domain = "air".into();
    assert_eq!(first.notify(&air).await.unwrap(), 0);
    assert_eq!(first.notify(&notice("alert-low", Severity::Low)).await.unwrap(), 0);
    // The same notice again: the same delivery id, nothing new.
    first.notify(&notice("alert-0", Severity::High)).await.unwrap();

    // Receiver down: attempts fail, are recorded, and rescheduled.
    for _ in 0..3 {
        first.deliver_due().await.unwrap();
        tokio::time::sleep(Duration::from_millis(120)).await;
    }
    let all = DeliveryFilter { channel: Some("webhook".into()), limit: 100, ..Default::default() };
    let rows = t.store.list_deliveries(&all).await.unwrap();
    assert_eq!(rows.len(), alerts.len());
    assert!(rows.iter().all(|d| d.attempts >= 2 && d.delivered_at.is_none() && d.last_error.is_some()), "{rows:?}");

    // "Restart": the notifier and the store are dropped, a new process opens the same file.
    drop(first);
    let config_store = t.reopen().await.unwrap();
    let second = notifier(&config_store, config(), &[], Arc::default());

    // The receiver comes up.
    let received: Received = Arc::default();
    let app = axum::Router::new().route("/hook", axum::routing::post(record)).with_state(received.clone());
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port)).await.unwrap();
    let server = serve(listener, app).await;
    assert_eq!(drain(&second, &config_store, 100).await, 0, "every delivery eventually made");

    let got = received.lock().unwrap().clone();
    let mut ids = HashSet::new();
    let mut alerts_seen = HashSet::new();
    for (headers, body) in &got {
        let id = headers["socle-delivery"].to_str().unwrap().to_owned();
        assert!(ids.insert(id.clone()), "delivery {id} received twice");
        let sig = headers["socle-signature"].to_str().unwrap();
        assert!(socle_notify::webhook::verify(secret, sig, body).is_some(), "signature of {id}");
        let json: serde_json::Value = serde_json::from_slice(body).unwrap();
        assert_eq!(json["deliveryId"], id.as_str());
        assert_eq!(json["severity"], "high");
        assert_eq!(json["link"], "https://socle.test/carte?entite=urn:ngsi-ld:WaterMeter:nord");
        assert_eq!(json["lastValue"]["unitCode"], "MQH");
        alerts_seen.insert(json["alertId"].as_str().unwrap().to_owned());
    }
    assert_eq!(got.len(), alerts.len());
    assert_eq!(alerts_seen, alerts.iter().cloned().collect());
    let rows = config_store.list_deliveries(&all).await.unwrap();
    assert!(rows.iter().all(|d| d.delivered_at.is_some()));
    server.abort();
}

struct Process(Child);
impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// Subject and text of each message in a maildir, decoded by Python's e-mail parser.
fn read_maildir(dir: &std::path::Path) -> Vec<(String, String, String)> {
    let Ok(entries) = std::fs::read_dir(dir.join("new")) else { return Vec::new() };
    entries
        .filter_map(|e| {
            let out = Command::new("python3")
                .args([
                    "-c",
                    "import email,sys\nfrom email.header import decode_header, make_header\n\
                     m=email.message_from_binary_file(open(sys.argv[1],'rb'))\n\
                     print(str(make_header(decode_header(m['Subject']))))\nprint(m['To'])\n\
                     print(m.get_payload(decode=True).decode())",
                ])
                .arg(e.ok()?.path())
                .output()
                .ok()?;
            let text = String::from_utf8(out.stdout).ok()?;
            let mut lines = text.splitn(3, '\n');
            Some((lines.next()?.to_owned(), lines.next()?.to_owned(), lines.next()?.to_owned()))
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn email_through_a_real_smtp_server_and_sms_through_the_gateway() {
    let ok = Command::new("python3").args(["-c", "import aiosmtpd"]).status().is_ok_and(|s| s.success());
    assert!(ok, "the SMTP sink is missing: `pip install aiosmtpd` (./scripts/test does it)");
    let dir = tempfile::tempdir().unwrap();
    let maildir = dir.path().join("mail");
    let smtp_port = free_port();
    let _smtp = Process(
        Command::new("python3")
            .args(["-m", "aiosmtpd", "-n", "-l", &format!("127.0.0.1:{smtp_port}"), "-c", "aiosmtpd.handlers.Mailbox"])
            .arg(&maildir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("python3 -m aiosmtpd"),
    );
    for _ in 0..300 {
        if std::net::TcpStream::connect(("127.0.0.1", smtp_port)).is_ok() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let sms: Received = Arc::default();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let sms_url = format!("http://{}/sms", listener.local_addr().unwrap());
    let server =
        serve(listener, axum::Router::new().route("/sms", axum::routing::post(record)).with_state(sms.clone())).await;

    let t = TestStore::postgres().await;
    organisation(&t.store).await;
    let camille = person(&t.store, "camille@commune-a.fr").await;
    let outsider = person(&t.store, "outsider@ailleurs.fr").await;
    let spec = serde_json::json!({"channels": {"email": true, "sms": "+33612345678"}, "domains": ["eau"], "minSeverity": "high"});
    subscribe(&t.store, camille, spec.clone()).await;
    // The same subscription for someone who may not see the entity: nothing for them.
    subscribe(&t.store, outsider, spec).await;
    let cfg = NotifyConfig {
        smtp: Some(SmtpSettings {
            host: "127.0.0.1".into(),
            port: smtp_port,
            security: SmtpSecurity::None,
            username: None,
            password: None,
            from: "Socle <socle@commune-a.fr>".into(),
        }),
        sms: Some(SmsGateway {
            url: sms_url,
            auth_header: Some(("Authorization".into(), "Bearer gateway-key".into())),
            body_template: r#"{"to": "{to}", "message": "{text}", "sender": "Socle"}"#.into(),
        }),
        ..config()
    };
    let n = notifier(&t.store, cfg, &[camille], Arc::default());
    assert_eq!(n.notify(&notice("alert-mail", Severity::High)).await.unwrap(), 2);
    assert_eq!(drain(&n, &t.store, 100).await, 0);

    let mails = read_maildir(&maildir);
    assert_eq!(mails.len(), 1, "{mails:?}");
    let (subject, to, body) = &mails[0];
    assert_eq!(subject, "[Socle] Alerte élevée — Fuite suspectée — Compteur secteur Nord");
    assert_eq!(to, "camille@commune-a.fr");
    assert!(body.contains("Depuis le 30/11/2026 à 00:12"), "{body}");
    assert!(body.contains("4,2\u{a0}m³/h"), "{body}");
    assert!(body.contains("https://socle.test/carte?entite=urn:ngsi-ld:WaterMeter:nord"), "{body}");

    let texts = sms.lock().unwrap().clone();
    assert_eq!(texts.len(), 1);
    assert_eq!(texts[0].0["authorization"], "Bearer gateway-key");
    let json: serde_json::Value = serde_json::from_slice(&texts[0].1).unwrap();
    assert_eq!(json["to"], "+33612345678");
    assert!(json["message"].as_str().unwrap().starts_with("Alerte élevée : Fuite suspectée — Compteur secteur Nord"));
    server.abort();
}

type Pushed = Arc<Mutex<Vec<(String, serde_json::Value, serde_json::Value)>>>;

/// A push service: decrypts with the user agent's keys (as the browser
/// would) and checks the VAPID JWT (as the push service would).
async fn push_service(
    State((pushed, ua, auth)): State<(Pushed, p256::SecretKey, Vec<u8>)>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> StatusCode {
    if id == "gone" {
        return StatusCode::GONE;
    }
    if headers.get("content-encoding").and_then(|v| v.to_str().ok()) != Some("aes128gcm") {
        return StatusCode::BAD_REQUEST;
    }
    let Some((k, claims)) = headers.get("authorization").and_then(|v| v.to_str().ok()).and_then(verify_vapid) else {
        return StatusCode::UNAUTHORIZED;
    };
    let Ok(plain) = decrypt(&body, &ua, &auth) else { return StatusCode::BAD_REQUEST };
    pushed.lock().unwrap().push((k, claims, serde_json::from_slice(&plain).unwrap()));
    StatusCode::CREATED
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn web_push_reaches_a_loopback_push_service_encrypted_and_vapid_signed() {
    let t = TestStore::sqlite().await;
    organisation(&t.store).await;
    let camille = person(&t.store, "camille@commune-a.fr").await;
    subscribe(&t.store, camille, serde_json::json!({"channels": {"webpush": true}})).await;
    let ua = p256::SecretKey::from_slice(&[7u8; 32]).unwrap();
    let auth = vec![9u8; 16];
    let pushed: Pushed = Arc::default();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let origin = format!("http://{}", listener.local_addr().unwrap());
    let app = axum::Router::new().route("/push/{id}", axum::routing::post(push_service)).with_state((
        pushed.clone(),
        ua.clone(),
        auth.clone(),
    ));
    let server = serve(listener, app).await;
    use p256::elliptic_curve::sec1::ToSec1Point;
    let ua_public = b64(ua.public_key().to_sec1_point(false).as_bytes());
    let mut ids = HashMap::new();
    for name in ["phone", "gone"] {
        let record = PushSubscriptionRecord {
            id: uuid::Uuid::new_v4(),
            user: camille,
            endpoint: format!("{origin}/push/{name}"),
            p256dh: ua_public.clone(),
            auth: b64(&auth),
            created_at: Utc::now(),
        };
        ids.insert(name, t.store.put_push_subscription(&record).await.unwrap());
    }
    let cfg = NotifyConfig { vapid_subject: "mailto:exploitation@commune-a.fr".into(), ..config() };
    let n = notifier(&t.store, cfg, &[camille], Arc::default());
    assert_eq!(n.notify(&notice("alert-push", Severity::Critical)).await.unwrap(), 2);
    assert_eq!(drain(&n, &t.store, 50).await, 0);

    let got = pushed.lock().unwrap().clone();
    assert_eq!(got.len(), 1);
    let (k, claims, payload) = &got[0];
    assert_eq!(k, &n.vapid_public_key());
    assert_eq!(claims["aud"], origin.as_str());
    assert_eq!(claims["sub"], "mailto:exploitation@commune-a.fr");
    assert!(claims["exp"].as_i64().unwrap() > Utc::now().timestamp());
    assert_eq!(payload["title"], "[Socle] Alerte critique — Fuite suspectée — Compteur secteur Nord");
    assert_eq!(payload["url"], "https://socle.test/carte?entite=urn:ngsi-ld:WaterMeter:nord");
    assert_eq!(payload["alertId"], "alert-push");
    // The push service said the other subscription is gone: it is removed, its delivery given up.
    assert!(t.store.push_subscription(ids["gone"]).await.unwrap().is_none());
    let failed = t
        .store
        .list_deliveries(&DeliveryFilter { channel: Some("webpush".into()), limit: 10, ..Default::default() })
        .await
        .unwrap();
    assert_eq!(failed.iter().filter(|d| d.failed_at.is_some()).count(), 1);
    server.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn quiet_hours_defer_non_critical_alerts_and_escalation_follows_acknowledgement() {
    let t = TestStore::sqlite().await;
    organisation(&t.store).await;
    let (agent, chief) = (person(&t.store, "agent@commune-a.fr").await, person(&t.store, "chef@commune-a.fr").await);
    subscribe(
        &t.store,
        agent,
        serde_json::json!({
            "channels": {"email": true},
            "quietHours": {"from": "22:00", "to": "07:00"},
            "escalation": {"afterMinutes": 30, "to": chief.0},
        }),
    )
    .await;
    let status = Arc::new(Acknowledged::default());
    let n = notifier(&t.store, config(), &[agent, chief], status.clone());
    // 23:30 in Paris (UTC+1 in January).
    let night = Utc.with_ymd_and_hms(2026, 1, 15, 22, 30, 0).unwrap();
    let morning = Utc.with_ymd_and_hms(2026, 1, 16, 6, 0, 0).unwrap();
    for (alert, severity) in [("high", Severity::High), ("critical", Severity::Critical)] {
        n.notify_at(&notice(alert, severity), night).await.unwrap();
    }
    let rows = |alert: &'static str, channel: &'static str| {
        let s = t.store.clone();
        async move {
            s.list_deliveries(&DeliveryFilter {
                alert_id: Some(alert.into()),
                channel: Some(channel.into()),
                limit: 10,
                ..Default::default()
            })
            .await
            .unwrap()
        }
    };
    assert_eq!(rows("high", "email").await[0].delivery.due_at, morning, "deferred to 07:00 local");
    assert_eq!(rows("critical", "email").await[0].delivery.due_at, night, "critical goes through");
    let check = &rows("high", "escalation").await[0];
    assert_eq!(check.delivery.due_at, night + chrono::Duration::minutes(30));
    assert_eq!(check.delivery.recipient, chief.to_string());

    // The critical alert is acknowledged in time; the other one is not.
    status.0.lock().unwrap().insert("critical".into());
    n.deliver_due_at(night + chrono::Duration::minutes(31)).await.unwrap();
    assert!(rows("high", "escalation").await[0].delivered_at.is_some());
    assert!(rows("critical", "escalation").await[0].delivered_at.is_some());
    let escalated: Vec<_> =
        rows("high", "email").await.into_iter().filter(|d| d.delivery.recipient == chief.to_string()).collect();
    assert_eq!(escalated.len(), 1, "the chief is told about the unacknowledged alert");
    let subject = escalated[0].delivery.payload["subject"].as_str().unwrap();
    assert_eq!(subject, "[Socle] Alerte élevée non acquittée — Fuite suspectée — Compteur secteur Nord");
    let critical_to_chief =
        rows("critical", "email").await.into_iter().filter(|d| d.delivery.recipient == chief.to_string()).count();
    assert_eq!(critical_to_chief, 0, "an acknowledged alert is not escalated");
}
