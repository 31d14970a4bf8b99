//! The deliverer: due outbox rows → HTTP POST or MQTT publish.
//!
//! Rows are claimed with a lease (a crash mid-attempt makes them due again
//! when the lease ends), sent in order per subscription, and each outcome is
//! recorded with the subscription's counters. A row is sent with the same
//! body, hence the same notification id, on every attempt.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use chrono::Utc;
use socle_ngsi::context::CORE_CONTEXT_URL;
use socle_ngsi::subscription::{with_context, Subscription, Target};
use socle_storage::{DynStore, NgsiNotification, StoreError};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use crate::{SubscriptionsConfig, SubscriptionsError};

const LINK_REL: &str = "http://www.w3.org/ns/json-ld#context";

/// Why an attempt failed; `permanent` ones are not retried.
#[derive(Debug)]
struct Failure {
    reason: String,
    permanent: bool,
}

impl Failure {
    fn transient(reason: impl Into<String>) -> Self {
        Self { reason: reason.into(), permanent: false }
    }
    fn permanent(reason: impl Into<String>) -> Self {
        Self { reason: reason.into(), permanent: true }
    }
}

pub struct Deliverer {
    store: DynStore,
    config: SubscriptionsConfig,
    http: reqwest::Client,
    wake: Arc<Notify>,
    /// One publishing connection per broker, kept (and reconnecting) while Socle runs.
    brokers: tokio::sync::Mutex<HashMap<(String, u16), socle_mqtt::Publisher>>,
}

/// What a notification carries, as HTTP headers or MQTT metadata.
struct Prepared {
    target: Target,
    body: Vec<u8>,
    headers: Vec<(String, String)>,
}

impl Deliverer {
    pub fn new(store: DynStore, config: SubscriptionsConfig, wake: Arc<Notify>) -> Self {
        let http = reqwest::Client::builder()
            .timeout(config.http_timeout)
            .connect_timeout(config.http_timeout)
            // A receiver's redirect could point anywhere: not followed.
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("Socle/", env!("CARGO_PKG_VERSION"), " NGSI-LD"))
            .build()
            .unwrap_or_default();
        Self { store, config, http, wake, brokers: tokio::sync::Mutex::new(HashMap::new()) }
    }

    /// Delivers until `cancel`: woken by the matcher, else every `poll_interval`.
    pub async fn run(self: Arc<Self>, cancel: CancellationToken) {
        loop {
            let busy = match self.deliver_due().await {
                Ok(n) => n > 0,
                Err(e) => {
                    tracing::warn!(error = %e, "NGSI-LD notification round failed");
                    false
                }
            };
            if busy && !cancel.is_cancelled() {
                continue;
            }
            tokio::select! {
                () = cancel.cancelled() => return,
                () = self.wake.notified() => {}
                () = tokio::time::sleep(self.config.poll_interval) => {}
            }
        }
    }

    /// Sends every notification due now, once; returns how many were attempted.
    pub async fn deliver_due(self: &Arc<Self>) -> Result<usize, SubscriptionsError> {
        let now = Utc::now();
        let lease = now + chrono::Duration::from_std(self.config.lease).unwrap_or(chrono::Duration::minutes(1));
        let claimed = self.store.claim_ngsi_notifications(now, lease, self.config.batch).await?;
        let count = claimed.len();
        // In order within a subscription; subscriptions side by side.
        let mut by_subscription: BTreeMap<String, Vec<NgsiNotification>> = BTreeMap::new();
        for n in claimed {
            by_subscription.entry(n.notification.subscription.clone()).or_default().push(n);
        }
        let mut tasks = tokio::task::JoinSet::new();
        for (_, rows) in by_subscription {
            let me = self.clone();
            tasks.spawn(async move {
                for n in rows {
                    if let Err(e) = me.attempt(n).await {
                        tracing::warn!(error = %e, "could not record an NGSI-LD notification's outcome");
                    }
                }
            });
        }
        while tasks.join_next().await.is_some() {}
        Ok(count)
    }

    async fn attempt(&self, n: NgsiNotification) -> Result<(), StoreError> {
        let id = n.notification.id;
        let outcome = match self.prepare(&n).await {
            Ok(p) => self.send(p).await,
            Err(f) => Err(f),
        };
        let now = Utc::now();
        let sub = &n.notification.subscription;
        match outcome {
            Ok(()) => {
                tracing::debug!(notification = %id, subscription = sub, attempts = n.attempts, "NGSI-LD notification delivered");
                self.store.complete_ngsi_notification(id, now).await
            }
            Err(f) if f.permanent || n.attempts >= self.config.max_attempts => {
                tracing::warn!(notification = %id, subscription = sub, attempts = n.attempts, reason = f.reason, "NGSI-LD notification given up");
                self.store.fail_ngsi_notification(id, now, &f.reason).await
            }
            Err(f) => {
                let next = now + backoff(&self.config, n.attempts);
                tracing::info!(notification = %id, subscription = sub, attempts = n.attempts, reason = f.reason, %next, "NGSI-LD notification to retry");
                self.store.retry_ngsi_notification(id, now, next, &f.reason).await
            }
        }
    }

    /// The request for the subscription's endpoint as it is now (a PATCH may have moved it).
    async fn prepare(&self, n: &NgsiNotification) -> Result<Prepared, Failure> {
        let stored = self
            .store
            .ngsi_subscription(&n.notification.subscription)
            .await
            .map_err(|e| Failure::transient(format!("storage: {e}")))?
            .ok_or_else(|| Failure::permanent("the subscription was deleted"))?;
        let sub: Subscription = serde_json::from_value(stored.spec)
            .map_err(|e| Failure::permanent(format!("stored subscription cannot be read: {e}")))?;
        let endpoint = &sub.notification.endpoint;
        let target = endpoint.target().map_err(|e| Failure::permanent(e.to_string()))?;
        let ctx = sub.context().map_err(|e| Failure::permanent(e.to_string()))?;
        let mut headers = Vec::new();
        let body = if endpoint.accept == "application/ld+json" {
            headers.push(("Content-Type".to_owned(), "application/ld+json".to_owned()));
            with_context(n.notification.body.clone(), &ctx)
        } else {
            headers.push(("Content-Type".to_owned(), "application/json".to_owned()));
            let url = ctx.urls.first().map_or(CORE_CONTEXT_URL, String::as_str);
            headers.push(("Link".to_owned(), format!("<{url}>; rel=\"{LINK_REL}\"; type=\"application/ld+json\"")));
            n.notification.body.clone()
        };
        for kv in &endpoint.receiver_info {
            headers.push((kv.key.clone(), kv.value.clone()));
        }
        let body = serde_json::to_vec(&body).map_err(|e| Failure::permanent(e.to_string()))?;
        Ok(Prepared { target, body, headers })
    }

    async fn send(&self, p: Prepared) -> Result<(), Failure> {
        match p.target {
            Target::Http(url) => {
                let mut req = self.http.post(&url).body(p.body);
                for (k, v) in &p.headers {
                    req = req.header(k.as_str(), v.as_str());
                }
                let res = req.send().await.map_err(|e| Failure::transient(format!("{url}: {e}")))?;
                let status = res.status();
                if status.is_success() {
                    Ok(())
                } else if status.is_client_error() && status.as_u16() != 408 && status.as_u16() != 429 {
                    Err(Failure::permanent(format!("{url} refused the notification: {status}")))
                } else {
                    Err(Failure::transient(format!("{url} answered {status}")))
                }
            }
            Target::Mqtt { host, port, topic } => {
                // The MQTT binding of NGSI-LD: what HTTP sends as headers goes in `metadata`.
                let metadata: serde_json::Map<String, serde_json::Value> =
                    p.headers.into_iter().map(|(k, v)| (k, serde_json::Value::from(v))).collect();
                let body: serde_json::Value =
                    serde_json::from_slice(&p.body).map_err(|e| Failure::permanent(e.to_string()))?;
                let payload = serde_json::to_vec(&serde_json::json!({"metadata": metadata, "body": body}))
                    .map_err(|e| Failure::permanent(e.to_string()))?;
                let publisher = self.publisher(&host, port).await;
                publisher
                    .publish(&topic, payload)
                    .await
                    .map_err(|e| Failure::transient(format!("mqtt://{host}:{port}/{topic}: {e}")))
            }
        }
    }

    async fn publisher(&self, host: &str, port: u16) -> socle_mqtt::Publisher {
        let mut brokers = self.brokers.lock().await;
        brokers
            .entry((host.to_owned(), port))
            .or_insert_with(|| {
                let client_id = format!("socle-ngsi-{}", uuid::Uuid::new_v4().simple());
                socle_mqtt::Publisher::start(&socle_mqtt::Subscription::new(host, port, client_id, Vec::new()))
            })
            .clone()
    }
}

fn backoff(c: &SubscriptionsConfig, attempts: u32) -> chrono::Duration {
    let factor = 2u32.saturating_pow(attempts.saturating_sub(1).min(20));
    let delay = c.retry_base.saturating_mul(factor).min(c.retry_max);
    chrono::Duration::from_std(delay).unwrap_or(chrono::Duration::hours(1))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_and_caps() {
        let c = SubscriptionsConfig {
            retry_base: std::time::Duration::from_secs(30),
            retry_max: std::time::Duration::from_secs(600),
            ..SubscriptionsConfig::default()
        };
        let secs: Vec<i64> = (1..=7).map(|a| backoff(&c, a).num_seconds()).collect();
        assert_eq!(secs, vec![30, 60, 120, 240, 480, 600, 600]);
        assert_eq!(backoff(&c, u32::MAX).num_seconds(), 600);
    }
}
