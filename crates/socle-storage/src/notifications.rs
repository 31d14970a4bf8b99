//! Storage of notifications: each user's subscriptions, each organisation's
//! webhooks, browsers' Web Push subscriptions, and the outbox of deliveries
//! (one row per channel and recipient, written in the transaction that
//! decides them, delivered and retried by a worker).
//!
//! Storage does not interpret subscription or webhook filters: they are JSON
//! documents that `socle-notify` parses and validates before they get here.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use socle_domain::{OrganisationId, UserId};
use uuid::Uuid;

use crate::Result;

/// Longest error text kept on a delivery (a receiver's answer can be long).
pub const MAX_DELIVERY_ERROR_CHARS: usize = 500;

/// A user's subscription; `spec` holds its filters, channels, quiet hours and escalation.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredSubscription {
    pub id: Uuid,
    pub user: UserId,
    pub spec: serde_json::Value,
    pub created_at: DateTime<Utc>,
    pub modified_at: DateTime<Utc>,
}

/// An organisation's webhook; `spec` holds its filters.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredWebhook {
    pub id: Uuid,
    pub organisation: OrganisationId,
    pub url: String,
    /// The HMAC key; it leaves storage only to sign deliveries.
    pub secret: String,
    pub spec: serde_json::Value,
    pub created_at: DateTime<Utc>,
    pub modified_at: DateTime<Utc>,
}

/// A browser's push subscription (`PushSubscription.toJSON()` of the Push API).
#[derive(Debug, Clone, PartialEq)]
pub struct PushSubscriptionRecord {
    pub id: Uuid,
    pub user: UserId,
    /// The push service URL; unique: a browser registering again replaces its row.
    pub endpoint: String,
    /// The user agent's P-256 public key and authentication secret, base64url.
    pub p256dh: String,
    pub auth: String,
    pub created_at: DateTime<Utc>,
}

/// One delivery to make: a channel, a recipient, what to send.
#[derive(Debug, Clone, PartialEq)]
pub struct NewDelivery {
    /// The delivery id, sent with every attempt so receivers can deduplicate.
    pub id: Uuid,
    /// `email`, `webpush`, `sms`, `webhook`, or `escalation` (a deferred check).
    pub channel: String,
    /// Who receives it: a user id, a webhook id, a push subscription id.
    pub recipient: String,
    pub alert_id: String,
    pub payload: serde_json::Value,
    /// Not before this instant (quiet hours, escalation delay, retries).
    pub due_at: DateTime<Utc>,
}

/// A delivery as stored, with its progress.
#[derive(Debug, Clone, PartialEq)]
pub struct Delivery {
    pub delivery: NewDelivery,
    pub created_at: DateTime<Utc>,
    /// Attempts started (a claim counts as one).
    pub attempts: u32,
    pub last_error: Option<String>,
    pub delivered_at: Option<DateTime<Utc>>,
    /// Given up (too many attempts, or a permanent refusal).
    pub failed_at: Option<DateTime<Utc>>,
}

/// Which deliveries to list (oldest first).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct DeliveryFilter {
    pub alert_id: Option<String>,
    pub channel: Option<String>,
    /// Only those neither delivered nor given up.
    pub pending: bool,
    pub limit: u32,
}

#[async_trait]
pub trait Notifications: Send + Sync {
    /// Creates or replaces (same id) a subscription. `UnknownUser` if the user does not exist.
    async fn put_subscription(&self, s: &StoredSubscription) -> Result<()>;
    async fn subscription(&self, id: Uuid) -> Result<Option<StoredSubscription>>;
    /// A user's subscriptions, or everyone's (`None`), oldest first.
    async fn list_subscriptions(&self, user: Option<UserId>) -> Result<Vec<StoredSubscription>>;
    async fn delete_subscription(&self, id: Uuid) -> Result<bool>;

    /// Creates or replaces (same id) a webhook. `UnknownOrganisation` if it does not exist.
    async fn put_webhook(&self, w: &StoredWebhook) -> Result<()>;
    async fn webhook(&self, id: Uuid) -> Result<Option<StoredWebhook>>;
    /// Webhooks of these organisations (`None`: all), oldest first.
    async fn list_webhooks(&self, organisations: Option<&[OrganisationId]>) -> Result<Vec<StoredWebhook>>;
    async fn delete_webhook(&self, id: Uuid) -> Result<bool>;

    /// Records a browser's subscription; the same endpoint registered again
    /// (by the same or another user) replaces the earlier row. Returns the
    /// id kept (the earlier one when the endpoint was known).
    async fn put_push_subscription(&self, p: &PushSubscriptionRecord) -> Result<Uuid>;
    async fn list_push_subscriptions(&self, user: UserId) -> Result<Vec<PushSubscriptionRecord>>;
    async fn push_subscription(&self, id: Uuid) -> Result<Option<PushSubscriptionRecord>>;
    async fn delete_push_subscription(&self, id: Uuid) -> Result<bool>;

    /// Writes deliveries in one transaction: all of them or none. An id
    /// already in the outbox is left as it is.
    async fn enqueue_deliveries(&self, rows: &[NewDelivery]) -> Result<()>;
    /// Takes up to `limit` deliveries due at `now`, counts an attempt for
    /// each and hides them until `lease_until`, so that another worker (or
    /// this one after a crash) takes them again only once the lease is over.
    async fn claim_deliveries(
        &self,
        now: DateTime<Utc>,
        lease_until: DateTime<Utc>,
        limit: u32,
    ) -> Result<Vec<Delivery>>;
    async fn complete_delivery(&self, id: Uuid, at: DateTime<Utc>) -> Result<()>;
    /// Records a failed attempt; the delivery is due again at `next_due`.
    async fn retry_delivery(&self, id: Uuid, next_due: DateTime<Utc>, error: &str) -> Result<()>;
    /// Gives a delivery up.
    async fn fail_delivery(&self, id: Uuid, at: DateTime<Utc>, error: &str) -> Result<()>;
    async fn list_deliveries(&self, filter: &DeliveryFilter) -> Result<Vec<Delivery>>;
    /// Deletes deliveries finished (delivered or given up) before `before`.
    async fn purge_deliveries(&self, before: DateTime<Utc>) -> Result<u64>;
}

pub(crate) fn clip_error(e: &str) -> String {
    e.chars().take(MAX_DELIVERY_ERROR_CHARS).collect()
}

/// Column values of an outbox row, shared by both backends.
pub(crate) struct RawDelivery {
    pub id: String,
    pub channel: String,
    pub recipient: String,
    pub alert_id: String,
    pub payload: String,
    pub due_at: i64,
    pub created_at: i64,
    pub attempts: i64,
    pub last_error: Option<String>,
    pub delivered_at: Option<i64>,
    pub failed_at: Option<i64>,
}

pub(crate) const DELIVERY_COLUMNS: &str =
    "id, channel, recipient, alert_id, payload, due_at, created_at, attempts, last_error, delivered_at, failed_at";
pub(crate) const SUBSCRIPTION_COLUMNS: &str = "id, user_id, spec, created_at, modified_at";
pub(crate) const WEBHOOK_COLUMNS: &str = "id, organisation_id, url, secret, spec, created_at, modified_at";
pub(crate) const PUSH_COLUMNS: &str = "id, user_id, endpoint, p256dh, auth, created_at";

fn uuid(s: &str) -> Result<Uuid> {
    Uuid::parse_str(s).map_err(|_| crate::StoreError::Corrupt(format!("id {s:?} is not a UUID")))
}

fn user(s: &str) -> Result<UserId> {
    UserId::parse(s).map_err(|_| crate::StoreError::Corrupt(format!("user id {s:?} is not a UUID")))
}

fn json(s: &str) -> Result<serde_json::Value> {
    serde_json::from_str(s).map_err(|e| crate::StoreError::Corrupt(format!("stored JSON: {e}")))
}

impl RawDelivery {
    pub fn parse(self) -> Result<Delivery> {
        use crate::rows::from_ms;
        Ok(Delivery {
            delivery: NewDelivery {
                id: uuid(&self.id)?,
                channel: self.channel,
                recipient: self.recipient,
                alert_id: self.alert_id,
                payload: json(&self.payload)?,
                due_at: from_ms(self.due_at)?,
            },
            created_at: from_ms(self.created_at)?,
            attempts: u32::try_from(self.attempts).unwrap_or(u32::MAX),
            last_error: self.last_error,
            delivered_at: self.delivered_at.map(from_ms).transpose()?,
            failed_at: self.failed_at.map(from_ms).transpose()?,
        })
    }
}

pub(crate) fn parse_subscription(
    id: String,
    user_id: String,
    spec: String,
    created_at: i64,
    modified_at: i64,
) -> Result<StoredSubscription> {
    use crate::rows::from_ms;
    Ok(StoredSubscription {
        id: uuid(&id)?,
        user: user(&user_id)?,
        spec: json(&spec)?,
        created_at: from_ms(created_at)?,
        modified_at: from_ms(modified_at)?,
    })
}

#[allow(clippy::too_many_arguments)]
pub(crate) fn parse_webhook(
    id: String,
    organisation: String,
    url: String,
    secret: String,
    spec: String,
    created_at: i64,
    modified_at: i64,
) -> Result<StoredWebhook> {
    use crate::rows::from_ms;
    Ok(StoredWebhook {
        id: uuid(&id)?,
        organisation: OrganisationId::parse(&organisation)
            .map_err(|_| crate::StoreError::Corrupt(format!("organisation id {organisation:?}")))?,
        url,
        secret,
        spec: json(&spec)?,
        created_at: from_ms(created_at)?,
        modified_at: from_ms(modified_at)?,
    })
}

pub(crate) fn parse_push(
    id: String,
    user_id: String,
    endpoint: String,
    p256dh: String,
    auth: String,
    created_at: i64,
) -> Result<PushSubscriptionRecord> {
    Ok(PushSubscriptionRecord {
        id: uuid(&id)?,
        user: user(&user_id)?,
        endpoint,
        p256dh,
        auth,
        created_at: crate::rows::from_ms(created_at)?,
    })
}
