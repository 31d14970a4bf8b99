//! Storage of NGSI-LD subscriptions and the outbox of their notifications.
//!
//! A subscription is stored as the JSON `socle-ngsi` checked; storage does
//! not interpret it. The outbox holds one row per notification, keyed by its
//! notification id: the matcher's insert is idempotent (a change matched
//! twice, as after a restart, writes nothing new) and every attempt sends the
//! same body. Delivery outcomes update the subscription's counters in the
//! same statement batch, so `timesSent`/`lastSuccess` follow the outbox.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use socle_domain::{OrganisationId, UserId};
use uuid::Uuid;

use crate::Result;

/// A subscription and what its deliveries did.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredNgsiSubscription {
    /// The subscription's URI.
    pub id: String,
    /// The organisation (tenant) it belongs to.
    pub organisation: OrganisationId,
    /// Created under an `NGSILD-Tenant` header: only that organisation's entities.
    pub tenant_only: bool,
    /// The person who created it: it never notifies what this person may not see.
    pub owner: UserId,
    pub spec: serde_json::Value,
    pub created_at: DateTime<Utc>,
    pub modified_at: DateTime<Utc>,
    pub counters: NgsiDeliveryCounters,
}

/// The status members of a subscription's `notification`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct NgsiDeliveryCounters {
    /// Attempts finished (delivered or failed).
    pub times_sent: u64,
    pub times_failed: u64,
    pub last_notification: Option<DateTime<Utc>>,
    pub last_success: Option<DateTime<Utc>>,
    pub last_failure: Option<DateTime<Utc>>,
}

/// A notification to send.
#[derive(Debug, Clone, PartialEq)]
pub struct NewNgsiNotification {
    pub id: Uuid,
    pub subscription: String,
    /// The notification body, the same on every attempt.
    pub body: serde_json::Value,
    pub due_at: DateTime<Utc>,
}

/// A notification as stored, with its progress.
#[derive(Debug, Clone, PartialEq)]
pub struct NgsiNotification {
    pub notification: NewNgsiNotification,
    pub created_at: DateTime<Utc>,
    pub attempts: u32,
    pub last_error: Option<String>,
    pub delivered_at: Option<DateTime<Utc>>,
    pub failed_at: Option<DateTime<Utc>>,
}

#[async_trait]
pub trait NgsiSubscriptions: Send + Sync {
    /// Stores a new subscription: [`crate::StoreError::Conflict`] if the id
    /// is taken (by any organisation), `UnknownOrganisation`/`UnknownUser`.
    async fn create_ngsi_subscription(&self, s: &StoredNgsiSubscription) -> Result<()>;
    /// Replaces a subscription's definition; `false` if it does not exist.
    async fn update_ngsi_subscription(&self, id: &str, spec: &serde_json::Value, at: DateTime<Utc>) -> Result<bool>;
    async fn ngsi_subscription(&self, id: &str) -> Result<Option<StoredNgsiSubscription>>;
    /// Subscriptions of these organisations (`None`: all), oldest first.
    async fn list_ngsi_subscriptions(
        &self,
        organisations: Option<&[OrganisationId]>,
    ) -> Result<Vec<StoredNgsiSubscription>>;
    /// Deletes a subscription and its pending notifications.
    async fn delete_ngsi_subscription(&self, id: &str) -> Result<bool>;

    /// Writes notifications in one transaction; an id already in the outbox
    /// is left as it is. Returns how many were new.
    async fn enqueue_ngsi_notifications(&self, rows: &[NewNgsiNotification]) -> Result<u64>;
    /// Takes up to `limit` notifications due at `now`, counts an attempt for
    /// each and hides them until `lease_until` (taken again only once the
    /// lease is over, by this or another instance).
    async fn claim_ngsi_notifications(
        &self,
        now: DateTime<Utc>,
        lease_until: DateTime<Utc>,
        limit: u32,
    ) -> Result<Vec<NgsiNotification>>;
    /// Marks a notification delivered and counts it on its subscription.
    async fn complete_ngsi_notification(&self, id: Uuid, at: DateTime<Utc>) -> Result<()>;
    /// Records a failed attempt (counted on the subscription); due again at `next_due`.
    async fn retry_ngsi_notification(
        &self,
        id: Uuid,
        at: DateTime<Utc>,
        next_due: DateTime<Utc>,
        error: &str,
    ) -> Result<()>;
    /// Gives a notification up (counted as a failure).
    async fn fail_ngsi_notification(&self, id: Uuid, at: DateTime<Utc>, error: &str) -> Result<()>;
    /// Notifications of a subscription (`None`: all), oldest first.
    async fn list_ngsi_notifications(&self, subscription: Option<&str>, limit: u32) -> Result<Vec<NgsiNotification>>;
    /// Deletes notifications finished (delivered or given up) before `before`.
    async fn purge_ngsi_notifications(&self, before: DateTime<Utc>) -> Result<u64>;
}

pub(crate) const NGSI_SUBSCRIPTION_COLUMNS: &str = "id, organisation_id, tenant_only, owner_user, spec, created_at, \
     modified_at, times_sent, times_failed, last_notification, last_success, last_failure";
pub(crate) const NGSI_NOTIFICATION_COLUMNS: &str =
    "id, subscription_id, body, due_at, created_at, attempts, last_error, delivered_at, failed_at";

fn json(s: &str) -> Result<serde_json::Value> {
    serde_json::from_str(s).map_err(|e| crate::StoreError::Corrupt(format!("stored JSON: {e}")))
}

/// Column values of a subscription row, shared by both backends.
pub(crate) struct RawNgsiSubscription {
    pub id: String,
    pub organisation: String,
    pub tenant_only: bool,
    pub owner: String,
    pub spec: String,
    pub created_at: i64,
    pub modified_at: i64,
    pub times_sent: i64,
    pub times_failed: i64,
    pub last_notification: Option<i64>,
    pub last_success: Option<i64>,
    pub last_failure: Option<i64>,
}

impl RawNgsiSubscription {
    pub fn parse(self) -> Result<StoredNgsiSubscription> {
        use crate::rows::from_ms;
        let corrupt = |what: &str| crate::StoreError::Corrupt(what.to_owned());
        Ok(StoredNgsiSubscription {
            organisation: OrganisationId::parse(&self.organisation)
                .map_err(|_| corrupt(&format!("organisation id {:?}", self.organisation)))?,
            owner: UserId::parse(&self.owner).map_err(|_| corrupt(&format!("user id {:?}", self.owner)))?,
            id: self.id,
            tenant_only: self.tenant_only,
            spec: json(&self.spec)?,
            created_at: from_ms(self.created_at)?,
            modified_at: from_ms(self.modified_at)?,
            counters: NgsiDeliveryCounters {
                times_sent: u64::try_from(self.times_sent).unwrap_or(0),
                times_failed: u64::try_from(self.times_failed).unwrap_or(0),
                last_notification: self.last_notification.map(from_ms).transpose()?,
                last_success: self.last_success.map(from_ms).transpose()?,
                last_failure: self.last_failure.map(from_ms).transpose()?,
            },
        })
    }
}

/// Column values of an outbox row, shared by both backends.
pub(crate) struct RawNgsiNotification {
    pub id: String,
    pub subscription: String,
    pub body: String,
    pub due_at: i64,
    pub created_at: i64,
    pub attempts: i64,
    pub last_error: Option<String>,
    pub delivered_at: Option<i64>,
    pub failed_at: Option<i64>,
}

impl RawNgsiNotification {
    pub fn parse(self) -> Result<NgsiNotification> {
        use crate::rows::from_ms;
        Ok(NgsiNotification {
            notification: NewNgsiNotification {
                id: Uuid::parse_str(&self.id)
                    .map_err(|_| crate::StoreError::Corrupt(format!("notification id {:?}", self.id)))?,
                subscription: self.subscription,
                body: json(&self.body)?,
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
