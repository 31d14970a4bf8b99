//! From a notice to outbox rows, and from due rows to deliveries.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use serde::{Deserialize, Serialize};
use socle_domain::UserId;
use socle_storage::{Delivery, DynStore, NewDelivery, StoreError, StoredSubscription};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::channels::{classify, http_client, Failure, Mailer};
use crate::subscription::Language;
use crate::text::{render, Message};
use crate::webhook::{signature, DELIVERY_HEADER, SIGNATURE_HEADER};
use crate::webpush::{self, unb64};
use crate::{
    AlertNotice, AlertStatus, NoticeKind, SmsGateway, SmtpSettings, SubscriptionSpec, VapidKey, Visibility, WebhookSpec,
};

/// Where the VAPID key is kept when no file is configured.
const VAPID_META_KEY: &str = "notify.vapid_private_key";
/// Namespace of delivery ids: the same notice to the same recipient on the
/// same channel always gets the same id, so notifying twice stores it once.
const DELIVERY_NAMESPACE: Uuid = Uuid::from_u128(0x5d0c_1e00_0000_4e0f_8a1d_50c1_e000_0007);

#[derive(Debug, thiserror::Error)]
pub enum NotifyError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("VAPID key file {path}: {reason}")]
    VapidFile { path: String, reason: String },
    #[error("notification settings: {0}")]
    Config(String),
}

/// Settings of notifications (`[notify]`, with `[smtp]` and `public_url`).
#[derive(Debug, Clone)]
pub struct NotifyConfig {
    /// Links in notifications point there (`{public_url}/carte?entite=…`).
    pub public_url: String,
    pub smtp: Option<SmtpSettings>,
    pub sms: Option<SmsGateway>,
    /// Per HTTP attempt (webhook, push, SMS gateway).
    pub http_timeout: Duration,
    /// The VAPID `sub` claim: a `mailto:` or https contact for push services.
    pub vapid_subject: String,
    /// First retry delay; doubled at each attempt up to `retry_max`.
    pub retry_base: Duration,
    pub retry_max: Duration,
    /// Attempts before a delivery is given up.
    pub max_attempts: u32,
    /// How long a claimed delivery is hidden from other workers.
    pub lease: Duration,
    /// How often the worker looks for due rows when nothing wakes it.
    pub poll_interval: Duration,
    pub batch: u32,
}

impl Default for NotifyConfig {
    fn default() -> Self {
        Self {
            public_url: "http://localhost:8080".into(),
            smtp: None,
            sms: None,
            http_timeout: Duration::from_secs(10),
            vapid_subject: "mailto:admin@localhost".into(),
            retry_base: Duration::from_secs(30),
            retry_max: Duration::from_secs(3600),
            max_attempts: 12,
            lease: Duration::from_secs(120),
            poll_interval: Duration::from_secs(5),
            batch: 32,
        }
    }
}

/// What an `escalation` row carries: the notice and whose subscription asked for it.
#[derive(Debug, Serialize, Deserialize)]
struct EscalationCheck {
    notice: AlertNotice,
    language: Language,
}

/// What a Web Push message says; the service worker shows `title` and `body`
/// and opens `url` on click.
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PushPayload {
    pub title: String,
    pub body: String,
    pub url: String,
    pub alert_id: String,
    pub delivery_id: Uuid,
}

/// Notifications: [`Notifier::notify`] decides, [`Notifier::run`] delivers.
#[derive(Clone)]
pub struct Notifier {
    inner: Arc<Inner>,
}

struct Inner {
    store: DynStore,
    config: NotifyConfig,
    visibility: Arc<dyn Visibility>,
    status: Arc<dyn AlertStatus>,
    vapid: VapidKey,
    mailer: Option<Mailer>,
    http: reqwest::Client,
    wake: tokio::sync::Notify,
}

fn delivery_id(n: &AlertNotice, channel: &str, recipient: &str) -> Uuid {
    let name = format!("{}|{}|{}|{channel}|{recipient}", n.alert_id, n.change.as_str(), n.since.timestamp_millis());
    Uuid::new_v5(&DELIVERY_NAMESPACE, name.as_bytes())
}

impl Notifier {
    pub fn new(
        store: DynStore,
        config: NotifyConfig,
        vapid: VapidKey,
        visibility: Arc<dyn Visibility>,
        status: Arc<dyn AlertStatus>,
    ) -> Result<Self, NotifyError> {
        let mailer = config.smtp.as_ref().map(Mailer::new).transpose().map_err(NotifyError::Config)?;
        let http = http_client(config.http_timeout);
        Ok(Self {
            inner: Arc::new(Inner {
                store,
                config,
                visibility,
                status,
                vapid,
                mailer,
                http,
                wake: tokio::sync::Notify::new(),
            }),
        })
    }

    /// The VAPID key: read from `file` (created with a new key, readable by
    /// its owner only, when missing), or kept in the store when no file is
    /// configured, so every instance sharing a PostgreSQL database uses one key.
    pub async fn load_vapid(store: &DynStore, file: Option<&Path>) -> Result<VapidKey, NotifyError> {
        if let Some(path) = file {
            let err = |reason: String| NotifyError::VapidFile { path: path.display().to_string(), reason };
            return match std::fs::read_to_string(path) {
                Ok(text) => {
                    VapidKey::from_private(&text).ok_or_else(|| err("not a base64url P-256 private key".into()))
                }
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                    let key = VapidKey::generate();
                    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
                        std::fs::create_dir_all(dir).map_err(|e| err(e.to_string()))?;
                    }
                    write_private(path, &key.private_b64()).map_err(|e| err(e.to_string()))?;
                    tracing::info!(path = %path.display(), "generated the VAPID key pair for Web Push");
                    Ok(key)
                }
                Err(e) => Err(err(e.to_string())),
            };
        }
        if let Some(key) = store.get_meta(VAPID_META_KEY).await?.and_then(|k| VapidKey::from_private(&k)) {
            return Ok(key);
        }
        let key = VapidKey::generate();
        store.set_meta(VAPID_META_KEY, &key.private_b64()).await?;
        // Two instances starting together may both have generated one: keep what was stored last.
        let stored = store.get_meta(VAPID_META_KEY).await?.and_then(|k| VapidKey::from_private(&k));
        Ok(stored.unwrap_or(key))
    }

    /// The public VAPID key, for browsers (`applicationServerKey`).
    pub fn vapid_public_key(&self) -> String {
        self.inner.vapid.public_key()
    }

    /// Decides who hears about `notice` and writes one outbox row per
    /// delivery (channel + recipient), plus a deferred escalation check per
    /// subscription that asks for one, all in one transaction. Returns the rows written.
    pub async fn notify(&self, notice: &AlertNotice) -> Result<usize, NotifyError> {
        self.notify_at(notice, Utc::now()).await
    }

    /// [`Notifier::notify`] as decided at `now` (tests of quiet hours).
    pub async fn notify_at(&self, notice: &AlertNotice, now: DateTime<Utc>) -> Result<usize, NotifyError> {
        let rows = self.plan(notice, now).await?;
        self.inner.store.enqueue_deliveries(&rows).await?;
        self.inner.wake.notify_one();
        Ok(rows.len())
    }

    async fn organisation_tz(&self, notice: &AlertNotice) -> Result<Tz, NotifyError> {
        Ok(self.inner.store.organisation(&notice.organisation).await?.map_or(chrono_tz::Europe::Paris, |o| o.timezone))
    }

    async fn plan(&self, n: &AlertNotice, now: DateTime<Utc>) -> Result<Vec<NewDelivery>, NotifyError> {
        let s = &self.inner;
        let tz = self.organisation_tz(n).await?;
        let mut rows: HashMap<Uuid, NewDelivery> = HashMap::new();
        let mut add = |row: NewDelivery| {
            // Two subscriptions of one person reaching the same channel: one delivery, the earliest.
            let e = rows.entry(row.id).or_insert_with(|| row.clone());
            e.due_at = e.due_at.min(row.due_at);
        };
        let mut visible: HashMap<UserId, bool> = HashMap::new();
        for sub in s.store.list_subscriptions(None).await? {
            let Some(spec) = parse_spec(&sub) else { continue };
            if !spec.matches(n) {
                continue;
            }
            let may_see = match visible.get(&sub.user) {
                Some(v) => *v,
                None => {
                    let v = s.visibility.may_see(sub.user, n).await;
                    visible.insert(sub.user, v);
                    v
                }
            };
            if !may_see {
                continue;
            }
            let due = spec.due_at(now, n.severity, tz);
            let message = render(n, spec.language, &s.config.public_url, tz);
            for row in self.person_rows(n, sub.user, &spec.channels, &message, due).await? {
                add(row);
            }
            if let (NoticeKind::Opened, Some(esc)) = (n.change, &spec.escalation) {
                let target = esc.to.to_string();
                let check = EscalationCheck { notice: n.clone(), language: spec.language };
                add(NewDelivery {
                    id: delivery_id(n, "escalation", &target),
                    channel: "escalation".into(),
                    recipient: target,
                    alert_id: n.alert_id.clone(),
                    payload: serde_json::to_value(&check).unwrap_or_default(),
                    due_at: now + chrono::Duration::minutes(i64::from(esc.after_minutes)),
                });
            }
        }
        for hook in s.store.list_webhooks(Some(std::slice::from_ref(&n.organisation))).await? {
            let Ok(spec) = serde_json::from_value::<WebhookSpec>(hook.spec.clone()) else { continue };
            if !spec.matches(n) {
                continue;
            }
            let recipient = hook.id.to_string();
            let id = delivery_id(n, "webhook", &recipient);
            add(NewDelivery {
                id,
                channel: "webhook".into(),
                recipient,
                alert_id: n.alert_id.clone(),
                payload: webhook_body(n, id, &s.config.public_url),
                due_at: now,
            });
        }
        let mut rows: Vec<NewDelivery> = rows.into_values().collect();
        rows.sort_by_key(|r| (r.due_at, r.id));
        Ok(rows)
    }

    /// The rows that reach one person on the chosen channels.
    async fn person_rows(
        &self,
        n: &AlertNotice,
        user: UserId,
        channels: &crate::Channels,
        m: &Message,
        due: DateTime<Utc>,
    ) -> Result<Vec<NewDelivery>, NotifyError> {
        let mut out = Vec::new();
        let mut row = |channel: &str, recipient: String, payload: serde_json::Value| {
            out.push(NewDelivery {
                id: delivery_id(n, channel, &recipient),
                channel: channel.into(),
                recipient,
                alert_id: n.alert_id.clone(),
                payload,
                due_at: due,
            })
        };
        if channels.email {
            row("email", user.to_string(), serde_json::json!({"subject": m.subject, "body": m.body}));
        }
        if let Some(phone) = &channels.sms {
            row("sms", phone.clone(), serde_json::json!({"text": m.short}));
        }
        if channels.webpush {
            for p in self.inner.store.list_push_subscriptions(user).await? {
                row(
                    "webpush",
                    p.id.to_string(),
                    serde_json::json!({"title": m.subject, "body": m.short, "url": m.link}),
                );
            }
        }
        Ok(out)
    }

    /// Delivers every row due now, once; returns how many were attempted.
    /// [`Notifier::run`] calls it in a loop; tests call it directly.
    pub async fn deliver_due(&self) -> Result<usize, NotifyError> {
        self.deliver_due_at(Utc::now()).await
    }

    /// [`Notifier::deliver_due`] as if it were `now` (tests of delays: quiet hours, escalation).
    pub async fn deliver_due_at(&self, now: DateTime<Utc>) -> Result<usize, NotifyError> {
        let s = &self.inner;
        let lease = now + chrono::Duration::from_std(s.config.lease).unwrap_or(chrono::Duration::minutes(2));
        let claimed = s.store.claim_deliveries(now, lease, s.config.batch).await?;
        let count = claimed.len();
        let mut tasks = tokio::task::JoinSet::new();
        for d in claimed {
            let me = self.clone();
            tasks.spawn(async move { me.attempt(d).await });
        }
        while let Some(done) = tasks.join_next().await {
            if let Ok(Err(e)) = done {
                tracing::warn!(error = %e, "could not record a delivery's outcome");
            }
        }
        Ok(count)
    }

    /// Delivers due rows until `cancel`: woken by [`Notifier::notify`], else every `poll_interval`.
    pub async fn run(&self, cancel: CancellationToken) {
        loop {
            let busy = match self.deliver_due().await {
                Ok(n) => n > 0,
                Err(e) => {
                    tracing::warn!(error = %e, "notification delivery round failed");
                    false
                }
            };
            if busy {
                if cancel.is_cancelled() {
                    return;
                }
                continue;
            }
            tokio::select! {
                _ = cancel.cancelled() => return,
                _ = self.inner.wake.notified() => {}
                _ = tokio::time::sleep(self.inner.config.poll_interval) => {}
            }
        }
    }

    async fn attempt(&self, d: Delivery) -> Result<(), StoreError> {
        let s = &self.inner;
        let id = d.delivery.id;
        let outcome = match d.delivery.channel.as_str() {
            "email" => self.send_email(&d).await,
            "sms" => self.send_sms(&d).await,
            "webpush" => self.send_push(&d).await,
            "webhook" => self.send_webhook(&d).await,
            "escalation" => self.escalate(&d).await,
            other => Err(Failure::permanent(format!("unknown channel {other}"))),
        };
        let now = Utc::now();
        match outcome {
            Ok(()) => {
                tracing::info!(delivery = %id, channel = d.delivery.channel, attempts = d.attempts, "notification delivered");
                s.store.complete_delivery(id, now).await
            }
            Err(f) if f.permanent || d.attempts >= s.config.max_attempts => {
                tracing::warn!(delivery = %id, channel = d.delivery.channel, attempts = d.attempts, reason = f.reason, "notification given up");
                s.store.fail_delivery(id, now, &f.reason).await
            }
            Err(f) => {
                let next = now + backoff(&s.config, d.attempts);
                tracing::info!(delivery = %id, channel = d.delivery.channel, attempts = d.attempts, reason = f.reason, %next, "notification to retry");
                s.store.retry_delivery(id, next, &f.reason).await
            }
        }
    }

    async fn send_email(&self, d: &Delivery) -> Result<(), Failure> {
        let s = &self.inner;
        let mailer = s.mailer.as_ref().ok_or_else(|| Failure::transient("no SMTP relay configured"))?;
        let user = UserId::parse(&d.delivery.recipient).map_err(|_| Failure::permanent("recipient is not a user"))?;
        let user = s
            .store
            .user(user)
            .await
            .map_err(|e| Failure::transient(format!("storage: {e}")))?
            .filter(|u| !u.disabled)
            .ok_or_else(|| Failure::permanent("user gone or disabled"))?;
        let p = &d.delivery.payload;
        let (subject, body) = (p["subject"].as_str().unwrap_or("[Socle]"), p["body"].as_str().unwrap_or(""));
        mailer.send(user.email.as_str(), subject, body, d.delivery.id).await
    }

    async fn send_sms(&self, d: &Delivery) -> Result<(), Failure> {
        let s = &self.inner;
        let g = s.config.sms.as_ref().ok_or_else(|| Failure::transient("no SMS gateway configured"))?;
        let body = g.body(&d.delivery.recipient, d.delivery.payload["text"].as_str().unwrap_or(""));
        let mut req = s
            .http
            .post(&g.url)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .header(DELIVERY_HEADER, d.delivery.id.to_string())
            .body(body);
        if let Some((name, value)) = &g.auth_header {
            req = req.header(name.as_str(), value.as_str());
        }
        classify(req.send().await)
    }

    async fn send_push(&self, d: &Delivery) -> Result<(), Failure> {
        let s = &self.inner;
        let id = Uuid::parse_str(&d.delivery.recipient).map_err(|_| Failure::permanent("not a push subscription"))?;
        let sub = s
            .store
            .push_subscription(id)
            .await
            .map_err(|e| Failure::transient(format!("storage: {e}")))?
            .ok_or_else(|| Failure::permanent("push subscription removed"))?;
        let p = &d.delivery.payload;
        let payload = PushPayload {
            title: p["title"].as_str().unwrap_or("Socle").to_owned(),
            body: p["body"].as_str().unwrap_or("").to_owned(),
            url: p["url"].as_str().unwrap_or("").to_owned(),
            alert_id: d.delivery.alert_id.clone(),
            delivery_id: d.delivery.id,
        };
        let plaintext = serde_json::to_vec(&payload).map_err(|e| Failure::permanent(e.to_string()))?;
        let (key, auth) = (unb64(&sub.p256dh), unb64(&sub.auth));
        let (Some(key), Some(auth)) = (key, auth) else {
            return Err(Failure::permanent("subscription keys are not base64url"));
        };
        let body = webpush::encrypt(&plaintext, &key, &auth).map_err(|e| Failure::permanent(e.to_string()))?;
        let expires = Utc::now().timestamp() + 12 * 3600;
        let authorization = s
            .vapid
            .authorization(&sub.endpoint, &s.config.vapid_subject, expires)
            .ok_or_else(|| Failure::permanent("endpoint is not a URL"))?;
        let res = s
            .http
            .post(&sub.endpoint)
            .header(reqwest::header::CONTENT_ENCODING, "aes128gcm")
            .header(reqwest::header::CONTENT_TYPE, "application/octet-stream")
            .header("TTL", "86400")
            .header("Urgency", "high")
            .header(reqwest::header::AUTHORIZATION, authorization)
            .body(body)
            .send()
            .await;
        if let Ok(r) = &res {
            if matches!(r.status().as_u16(), 404 | 410) {
                // RFC 8030: the subscription expired or was withdrawn; stop using it.
                let _ = s.store.delete_push_subscription(id).await;
                return Err(Failure::permanent(format!("push subscription gone (HTTP {})", r.status().as_u16())));
            }
        }
        classify(res)
    }

    async fn send_webhook(&self, d: &Delivery) -> Result<(), Failure> {
        let s = &self.inner;
        let id = Uuid::parse_str(&d.delivery.recipient).map_err(|_| Failure::permanent("not a webhook"))?;
        let hook = s
            .store
            .webhook(id)
            .await
            .map_err(|e| Failure::transient(format!("storage: {e}")))?
            .ok_or_else(|| Failure::permanent("webhook removed"))?;
        let body = d.delivery.payload.to_string();
        let t = Utc::now().timestamp();
        let res = s
            .http
            .post(&hook.url)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .header(DELIVERY_HEADER, d.delivery.id.to_string())
            .header(SIGNATURE_HEADER, signature(&hook.secret, t, body.as_bytes()))
            .body(body)
            .send()
            .await;
        // A receiver being redeployed may answer anything for a while: every refusal is retried.
        classify(res).map_err(|f| Failure::transient(f.reason))
    }

    /// An escalation check fell due: if the alert is still open, tell the target.
    async fn escalate(&self, d: &Delivery) -> Result<(), Failure> {
        let s = &self.inner;
        let check: EscalationCheck = serde_json::from_value(d.delivery.payload.clone())
            .map_err(|e| Failure::permanent(format!("escalation payload: {e}")))?;
        if s.status.is_acknowledged_or_resolved(&check.notice.alert_id).await {
            return Ok(());
        }
        let target = UserId::parse(&d.delivery.recipient).map_err(|_| Failure::permanent("target is not a user"))?;
        let mut notice = check.notice;
        notice.change = NoticeKind::Escalated;
        if !s.visibility.may_see(target, &notice).await {
            return Err(Failure::permanent("the escalation target may not see this alert"));
        }
        let tz = self.organisation_tz(&notice).await.map_err(|e| Failure::transient(e.to_string()))?;
        let message = render(&notice, check.language, &s.config.public_url, tz);
        let channels = crate::Channels { email: true, webpush: true, sms: None };
        let rows = self
            .person_rows(&notice, target, &channels, &message, Utc::now())
            .await
            .map_err(|e| Failure::transient(e.to_string()))?;
        // Same ids if this runs again after a crash: nothing is sent twice.
        s.store.enqueue_deliveries(&rows).await.map_err(|e| Failure::transient(e.to_string()))?;
        s.wake.notify_one();
        Ok(())
    }
}

fn parse_spec(sub: &StoredSubscription) -> Option<SubscriptionSpec> {
    match serde_json::from_value::<SubscriptionSpec>(sub.spec.clone()) {
        Ok(spec) => Some(spec),
        Err(e) => {
            tracing::warn!(subscription = %sub.id, error = %e, "stored subscription cannot be read; skipped");
            None
        }
    }
}

fn backoff(c: &NotifyConfig, attempts: u32) -> chrono::Duration {
    let factor = 2u32.saturating_pow(attempts.saturating_sub(1).min(20));
    let delay = c.retry_base.saturating_mul(factor).min(c.retry_max);
    chrono::Duration::from_std(delay).unwrap_or(chrono::Duration::hours(1))
}

/// The JSON a webhook receives (the same bytes on every attempt).
pub fn webhook_body(n: &AlertNotice, delivery: Uuid, public_url: &str) -> serde_json::Value {
    serde_json::json!({
        "deliveryId": delivery,
        "alertId": n.alert_id,
        "change": n.change.as_str(),
        "organisation": n.organisation,
        "entity": {"id": n.entity_id, "name": n.entity_name},
        "domain": n.domain,
        "severity": n.severity.as_str(),
        "title": {"fr": n.title_fr, "en": n.title_en},
        "since": n.since,
        "lastValue": n.last_value.as_ref().map(|(v, unit)| serde_json::json!({"value": v, "unitCode": unit})),
        "location": n.location.map(|(lon, lat)| serde_json::json!({"type": "Point", "coordinates": [lon, lat]})),
        "link": format!("{}/carte?entite={}", public_url.trim_end_matches('/'), n.entity_id),
    })
}

#[cfg(unix)]
fn write_private(path: &Path, content: &str) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(path)?;
    f.write_all(content.as_bytes())?;
    f.sync_all()
}

#[cfg(not(unix))]
fn write_private(path: &Path, content: &str) -> std::io::Result<()> {
    std::fs::write(path, content)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_and_caps() {
        let c = NotifyConfig {
            retry_base: Duration::from_secs(30),
            retry_max: Duration::from_secs(3600),
            ..Default::default()
        };
        let secs: Vec<i64> = (1..=10).map(|a| backoff(&c, a).num_seconds()).collect();
        assert_eq!(secs, vec![30, 60, 120, 240, 480, 960, 1920, 3600, 3600, 3600]);
        assert_eq!(backoff(&c, u32::MAX).num_seconds(), 3600);
    }
}
