//! Storage for Socle behind one trait, [`Store`], with two backends:
//! embedded SQLite (the default, one file, nothing to install) and
//! PostgreSQL (for syndicates hosting many communes).
//!
//! Each backend lives in its own module with its own migrations; what they
//! share (rollup arithmetic, the migration runner's rules) lives in
//! [`rollup`] and [`migrate`].

use std::sync::Arc;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use socle_domain::{
    Entity, EntityFilter, EntityId, EntityMatch, NewOrganisation, Observation, Organisation, OrganisationId, Page,
    SeriesInfo, SeriesPoints, SeriesQuery, WriteOutcome,
};

mod accounts;
pub mod alerts;
pub mod contexts;
pub mod datasets;
mod devices;
pub mod feed;
pub mod migrate;
mod ngsi_subscriptions;
mod notifications;
pub mod postgres;
mod postgres_accounts;
mod postgres_alerts;
mod postgres_contexts;
mod postgres_datasets;
mod postgres_devices;
mod postgres_ngsi_subscriptions;
mod postgres_notifications;
mod postgres_query;
pub mod rollup;
mod rows;
pub mod sqlite;
mod sqlite_accounts;
mod sqlite_alerts;
mod sqlite_contexts;
mod sqlite_datasets;
mod sqlite_devices;
mod sqlite_ngsi_subscriptions;
mod sqlite_notifications;
mod sqlite_query;
#[cfg(feature = "testing")]
pub mod testing;

mod error;
pub use accounts::{Accounts, PendingOidcLogin, WebSession};
pub use alerts::{
    ActionRefusal, AlertAction, AlertChange, AlertEventKind, AlertEventRecord, AlertFilter, AlertRecord, AlertStatus,
    AlertWrite, Alerts, EngineState, ObservationScan, RuleFilter, RuleRecord,
};
pub use contexts::{ContextKind, JsonLdContexts, StoredContext};
pub use datasets::{DatasetUsage, Datasets, StoredAttachment, StoredDataset, StoredRecord, UsageKind};
pub use devices::{
    DeadLetter, DeadLetterFilter, DeviceFilter, DeviceHealth, DeviceRecord, DeviceRoute, Devices, Downlink,
    DownlinkChange, FrameWrite, FramesOutcome, HealthUpdate, NewDeadLetter, NewDevice, NewDownlink,
    MAX_DEAD_LETTERS_PER_ORGANISATION,
};
pub use error::StoreError;
pub use feed::{CommitFeed, Committed};
pub use ngsi_subscriptions::{
    NewNgsiNotification, NgsiDeliveryCounters, NgsiNotification, NgsiSubscriptions, StoredNgsiSubscription,
};
pub use notifications::{
    Delivery, DeliveryFilter, NewDelivery, Notifications, PushSubscriptionRecord, StoredSubscription, StoredWebhook,
    MAX_DELIVERY_ERROR_CHARS,
};

pub type Result<T, E = StoreError> = std::result::Result<T, E>;

/// Sizes reported by `/metrics` and `socle bench`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct StorageStats {
    /// Database size on disk (SQLite file and WAL; PostgreSQL schema relations).
    pub bytes: u64,
    pub entities: u64,
    pub series: u64,
}

/// One disagreement found by [`Store::check_consistency`].
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Inconsistency {
    pub entity: String,
    pub attribute: String,
    pub bucket: DateTime<Utc>,
    pub what: String,
}

#[derive(Debug, Clone, Default, PartialEq, serde::Serialize)]
pub struct ConsistencyReport {
    pub series_checked: u64,
    pub buckets_checked: u64,
    pub problems: Vec<Inconsistency>,
}

/// Everything Socle keeps. Every method that writes several rows does so in
/// one transaction: a crash leaves either all of it or none of it.
#[async_trait]
pub trait Store:
    Accounts + Devices + Alerts + Notifications + NgsiSubscriptions + Datasets + JsonLdContexts + Send + Sync + 'static
{
    /// Which backend this is (`sqlite`, `postgresql`), for logs and metrics.
    fn backend(&self) -> &'static str;

    /// Cheap round trip, for `/readyz`.
    async fn ping(&self) -> Result<()>;

    /// Creates the organisation or updates it in place (same id).
    async fn upsert_organisation(&self, org: &NewOrganisation) -> Result<Organisation>;
    async fn organisation(&self, id: &OrganisationId) -> Result<Option<Organisation>>;
    async fn list_organisations(&self) -> Result<Vec<Organisation>>;

    /// Creates or replaces entities (their attributes included), in one transaction.
    /// The owning organisation must exist.
    async fn upsert_entities(&self, entities: &[Entity]) -> Result<()>;
    /// Creates or replaces entities with exactly the attributes given (the
    /// others are removed), in one transaction. An entity that exists under
    /// another organisation is refused with [`StoreError::Conflict`] and
    /// nothing is written.
    async fn replace_entities(&self, entities: &[Entity]) -> Result<()>;
    /// Deletes an entity with its attributes and history; `false` if absent.
    /// Refused ([`StoreError::Conflict`]) while devices still measure it.
    async fn delete_entity(&self, id: &EntityId) -> Result<bool>;
    async fn entity(&self, id: &EntityId) -> Result<Option<Entity>>;
    /// Entities a filter selects, one page in id order, and how many in all.
    /// Attribute conditions keep every entity they *may* match (see
    /// [`socle_domain::ValueTest`]): callers evaluating NGSI-LD `q` exactly
    /// check those themselves.
    async fn query_entities(&self, filter: &EntityFilter) -> Result<Page<Entity>>;
    /// Ids of every entity the filter selects (`limit`/`offset` ignored), in
    /// id order, each with whether its attribute conditions surely hold:
    /// paging by id without loading entities.
    async fn match_entities(&self, filter: &EntityFilter) -> Result<Vec<EntityMatch>>;

    /// Stores a batch of observations in one transaction, updates the hourly
    /// and daily rollups and each entity's current value. A point already
    /// stored for the same series and instant is counted as a duplicate.
    /// Fails as a whole (nothing written) if an entity does not exist.
    async fn write_observations(&self, batch: &[Observation]) -> Result<WriteOutcome>;

    /// The series an entity has.
    async fn list_series(&self, entity: &EntityId) -> Result<Vec<SeriesInfo>>;
    /// Points of a series: raw points, or hourly/daily buckets from rollups.
    async fn series(&self, query: &SeriesQuery) -> Result<SeriesPoints>;

    /// Deletes raw points older than each organisation's retention; rollups stay.
    /// Returns the number of points deleted.
    async fn apply_retention(&self, now: DateTime<Utc>) -> Result<u64>;

    /// Recomputes rollups from raw points and reports any difference
    /// (only over buckets whose raw points are all still retained).
    async fn check_consistency(&self) -> Result<ConsistencyReport>;

    async fn stats(&self) -> Result<StorageStats>;

    /// Small instance-wide settings (`demo.anchor`, later keys and secrets
    /// generated on first start). Keys are chosen by code, never by users.
    async fn get_meta(&self, key: &str) -> Result<Option<String>>;
    async fn set_meta(&self, key: &str, value: &str) -> Result<()>;
}

pub type DynStore = Arc<dyn Store>;

/// Where the data lives, as given in configuration.
#[derive(Debug, Clone, PartialEq)]
pub enum StorageConfig {
    Sqlite { path: std::path::PathBuf },
    Postgres { url: String, max_connections: usize },
}

/// Opens the configured backend and applies pending migrations.
pub async fn open(config: &StorageConfig) -> Result<DynStore> {
    match config {
        StorageConfig::Sqlite { path } => Ok(Arc::new(sqlite::SqliteStore::open(path).await?)),
        StorageConfig::Postgres { url, max_connections } => {
            Ok(Arc::new(postgres::PostgresStore::open(url, *max_connections).await?))
        }
    }
}
