//! NGSI-LD subscriptions at work (ETSI GS CIM 009 5.8, 5.3.1).
//!
//! - [`matcher`]: a reliable consumer of the commit feed judges every
//!   committed change against the active subscriptions (entity selector,
//!   `watchedAttributes`, `q`, `geoQ`, throttling, expiry) as their owner may
//!   see it, and writes one outbox row per notification in one transaction;
//!   a timer does the same for periodic (`timeInterval`) subscriptions. After
//!   a restart it re-reads the stored observations since its watermark.
//! - [`deliver`]: a worker claims due outbox rows (leases), sends them by
//!   HTTP POST or MQTT publish (QoS 1), retries with exponential backoff and
//!   records each outcome on the subscription's status members.
//!
//! A notification's id is a UUID v5 of what it reports, so matching the same
//! change twice (a replay after a crash) writes nothing new, and every
//! attempt carries the same id: a receiver drops copies by id.

use std::time::Duration;

use async_trait::async_trait;
use chrono::TimeDelta;
use socle_domain::{Audience, Entity, OrganisationId};
use socle_storage::StoredNgsiSubscription;

pub mod deliver;
pub mod matcher;

pub use deliver::Deliverer;
pub use matcher::{start, MatcherHandle};

/// Namespace of notification ids (UUID v5): fixed forever, receivers rely on ids being stable.
pub const NOTIFICATION_NAMESPACE: uuid::Uuid = uuid::Uuid::from_u128(0x6e67_7369_2d6c_642d_6e6f_7469_6669_6361);

/// Tunables of the matcher and the deliverer.
#[derive(Debug, Clone)]
pub struct SubscriptionsConfig {
    /// Batches waiting in the reliable feed before writers wait.
    pub queue: usize,
    /// After a restart, observations are re-read from this long before the watermark.
    pub replay_margin: TimeDelta,
    /// Window of one read of stored observations during a replay.
    pub replay_window: TimeDelta,
    /// How long a claimed notification is hidden from other attempts.
    pub lease: Duration,
    /// Notifications claimed at once.
    pub batch: u32,
    pub retry_base: Duration,
    pub retry_max: Duration,
    /// Attempts before a notification is given up.
    pub max_attempts: u32,
    pub http_timeout: Duration,
    /// Longest sleep of the deliverer when nothing wakes it.
    pub poll_interval: Duration,
    /// How long the owner's rights are reused before being read again.
    pub viewer_ttl: Duration,
    /// Most entities in one periodic notification.
    pub periodic_max_entities: u32,
}

impl Default for SubscriptionsConfig {
    fn default() -> Self {
        Self {
            queue: 64,
            replay_margin: TimeDelta::hours(1),
            replay_window: TimeDelta::hours(6),
            lease: Duration::from_secs(60),
            batch: 64,
            retry_base: Duration::from_secs(30),
            retry_max: Duration::from_secs(3600),
            max_attempts: 12,
            http_timeout: Duration::from_secs(10),
            poll_interval: Duration::from_secs(5),
            viewer_ttl: Duration::from_secs(30),
            periodic_max_entities: 1000,
        }
    }
}

/// What a subscription's owner may see: decided by the authorization point
/// (`socle-api`'s policy), applied here to every entity before it is notified.
#[derive(Debug, Clone)]
pub struct Viewer {
    pub audience: Audience,
    /// Only this organisation's entities (a subscription made under `NGSILD-Tenant`).
    pub tenant: Option<OrganisationId>,
}

impl Viewer {
    pub fn sees(&self, e: &Entity) -> bool {
        e.visible_to(&self.audience) && self.tenant.as_ref().is_none_or(|t| t == &e.organisation)
    }
}

#[async_trait]
pub trait Visibility: Send + Sync {
    /// The owner's view now; `None` when the owner may no longer see anything
    /// through this subscription (account gone or disabled, membership lost).
    async fn viewer(&self, subscription: &StoredNgsiSubscription) -> Option<Viewer>;
}

#[derive(Debug, thiserror::Error)]
pub enum SubscriptionsError {
    #[error("storage: {0}")]
    Store(#[from] socle_storage::StoreError),
}

#[cfg(test)]
mod tests {
    use super::*;
    use socle_domain::{EntityId, EntityType};

    #[test]
    fn a_tenant_subscription_sees_only_its_organisation() {
        let e = |org: &str| {
            Entity::new(
                EntityId::parse(&format!("urn:ngsi-ld:WasteContainer:{org}-1")).unwrap(),
                EntityType::parse("WasteContainer").unwrap(),
                OrganisationId::parse(org).unwrap(),
            )
        };
        let all = Viewer { audience: Audience::System, tenant: None };
        assert!(all.sees(&e("commune-a")) && all.sees(&e("commune-b")));
        let tenant = Viewer { audience: Audience::System, tenant: Some(OrganisationId::parse("commune-a").unwrap()) };
        assert!(tenant.sees(&e("commune-a")));
        assert!(!tenant.sees(&e("commune-b")));
        // Whatever the tenant, the audience still decides.
        let public = Viewer { audience: Audience::Public, tenant: None };
        assert!(!public.sees(&e("commune-a")), "a private entity");
    }
}
