//! Storage of IoT ingestion: devices (with their mappings and health), the
//! identities of frames already stored, and dead letters. A separate trait
//! from [`crate::Store`], as [`crate::Accounts`] is; every backend implements
//! all three.
//!
//! Storage does not interpret device models or mappings: the mappings are a
//! JSON document that `socle-ingest` parses and validates before they get
//! here, and device EUIs are the canonical lowercase text of a `DevEui`.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use socle_domain::{DownlinkStatus, EntityId, Observation, OrganisationId, Page, WriteOutcome};

use crate::Result;

/// Dead letters kept per organisation; older ones are deleted when a new one
/// arrives beyond this count, so a misconfigured sender cannot fill the disk.
pub const MAX_DEAD_LETTERS_PER_ORGANISATION: u64 = 10_000;

/// A device as given by an administrator (API, CLI, CSV import).
#[derive(Debug, Clone, PartialEq)]
pub struct NewDevice {
    /// Canonical (lowercase) DevEUI text.
    pub dev_eui: String,
    /// Unique within the organisation.
    pub name: String,
    pub model: String,
    pub organisation: OrganisationId,
    pub entity: EntityId,
    /// The mappings as a JSON array (validated by the caller).
    pub mappings: serde_json::Value,
}

/// What ingestion keeps about a device's radio and activity.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct DeviceHealth {
    /// When the newest frame or status event was received.
    pub last_seen: Option<DateTime<Utc>>,
    /// Battery level in percent, from the last status event (`DevStatusAns`).
    pub battery: Option<f64>,
    /// Demodulation margin (dB) of the last status event.
    pub margin: Option<i32>,
    /// Best RSSI (dBm) and SNR (dB) of the newest frame.
    pub rssi: Option<i32>,
    pub snr: Option<f64>,
    /// Uplink frame counter of the newest frame.
    pub f_cnt: Option<u32>,
    /// Frames stored (duplicates not counted).
    pub frames_received: u64,
}

/// A stored device.
#[derive(Debug, Clone, PartialEq)]
pub struct DeviceRecord {
    pub device: NewDevice,
    pub created_at: DateTime<Utc>,
    pub modified_at: DateTime<Utc>,
    pub health: DeviceHealth,
}

/// A change of health carried by one frame or status event. Radio values
/// and the counter of a frame older than the device's `last_seen` do not
/// replace newer ones; battery and margin (status events only) always do.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct HealthUpdate {
    pub at: DateTime<Utc>,
    pub battery: Option<f64>,
    pub margin: Option<i32>,
    pub rssi: Option<i32>,
    pub snr: Option<f64>,
    pub f_cnt: Option<u32>,
}

/// One frame to store: its identity, its observations and the health it brings.
#[derive(Debug, Clone, PartialEq)]
pub struct FrameWrite {
    pub dev_eui: String,
    /// The network server's id of the frame (ChirpStack `deduplicationId`,
    /// TTN `as:up:` correlation id, a generic message's `id`).
    pub ns_id: Option<String>,
    /// The LoRaWAN session and the frame counter within it.
    pub session: Option<String>,
    pub f_cnt: Option<u32>,
    pub observations: Vec<Observation>,
    pub health: HealthUpdate,
}

impl FrameWrite {
    /// Whether the frame has an identity storage can recognise again: a
    /// network-server id, or a counter within a known session.
    pub fn has_identity(&self) -> bool {
        self.ns_id.is_some() || (self.session.is_some() && self.f_cnt.is_some())
    }
}

/// What [`Devices::write_frames`] did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FramesOutcome {
    /// Per frame, in order: `true` if stored now, `false` if it was already
    /// known (then nothing of it was written).
    pub stored: Vec<bool>,
    /// The observations of the frames stored now.
    pub observations: WriteOutcome,
}

/// How a device is reached for downlinks, learnt from its uplinks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceRoute {
    /// `chirpstack` or `ttn`.
    pub network: String,
    /// ChirpStack application id, or The Things Stack `application[@tenant]`.
    pub application: String,
    /// The Things Stack device id (ChirpStack addresses devices by DevEUI).
    pub device_id: Option<String>,
}

/// A downlink asked for by a person or a rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewDownlink {
    /// A UUID, given to the network server so its events can be matched.
    pub id: String,
    pub organisation: OrganisationId,
    pub dev_eui: String,
    pub f_port: u8,
    pub payload: Vec<u8>,
    pub confirmed: bool,
    /// `user:<id>` or `rule:<id>`: who asked.
    pub requested_by: Option<String>,
    pub created_at: DateTime<Utc>,
}

/// A stored downlink and how far it went.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Downlink {
    pub downlink: NewDownlink,
    pub status: DownlinkStatus,
    pub detail: Option<String>,
    pub f_cnt_down: Option<u32>,
    /// When it reached each status (`None`: not reached).
    pub sent_at: Option<DateTime<Utc>>,
    pub transmitted_at: Option<DateTime<Utc>>,
    pub acknowledged_at: Option<DateTime<Utc>>,
    pub failed_at: Option<DateTime<Utc>>,
}

/// A step forward of a downlink. Applied only if its current status may
/// precede `status` (see [`DownlinkStatus::may_follow`]) and, when
/// `organisation` is given, only to a downlink of that organisation (a
/// network-server event names a downlink by id; another organisation's
/// token must not move it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DownlinkChange {
    pub id: String,
    pub organisation: Option<OrganisationId>,
    pub status: DownlinkStatus,
    pub at: DateTime<Utc>,
    pub detail: Option<String>,
    pub f_cnt_down: Option<u32>,
}

/// Which devices to list.
#[derive(Debug, Clone, PartialEq)]
pub struct DeviceFilter {
    /// `None`: every organisation.
    pub organisations: Option<Vec<OrganisationId>>,
    pub entity: Option<EntityId>,
    pub limit: u32,
    pub offset: u64,
}

impl Default for DeviceFilter {
    fn default() -> Self {
        Self { organisations: None, entity: None, limit: 100, offset: 0 }
    }
}

/// A rejected body, as recorded.
#[derive(Debug, Clone, PartialEq)]
pub struct NewDeadLetter {
    pub at: DateTime<Utc>,
    /// The organisation of the ingestion token that sent it.
    pub organisation: OrganisationId,
    /// `chirpstack`, `ttn`, `generic`, or an MQTT source.
    pub source: String,
    /// ChirpStack event type or MQTT topic, needed to replay it.
    pub event: Option<String>,
    pub dev_eui: Option<String>,
    /// Stable code (`unknown-device`, `codec-timeout`…).
    pub reason_code: String,
    pub reason: String,
    pub body: Vec<u8>,
    /// The size of the body as received (`body` may be cut when it was oversized).
    pub body_size: u64,
}

#[derive(Debug, Clone, PartialEq)]
pub struct DeadLetter {
    pub id: i64,
    pub letter: NewDeadLetter,
    pub replayed_at: Option<DateTime<Utc>>,
}

/// Which dead letters to list (newest first).
#[derive(Debug, Clone, PartialEq)]
pub struct DeadLetterFilter {
    /// `None`: every organisation.
    pub organisations: Option<Vec<OrganisationId>>,
    pub dev_eui: Option<String>,
    /// Only those not replayed yet.
    pub pending: bool,
    pub limit: u32,
    pub offset: u64,
}

impl Default for DeadLetterFilter {
    fn default() -> Self {
        Self { organisations: None, dev_eui: None, pending: false, limit: 100, offset: 0 }
    }
}

#[async_trait]
pub trait Devices: Send + Sync {
    /// Creates or replaces devices (definition and mappings; health is kept),
    /// in one transaction. Fails as a whole with `UnknownOrganisation`,
    /// `UnknownEntity`, or `Conflict` when a name is taken in the organisation.
    async fn upsert_devices(&self, devices: &[NewDevice]) -> Result<()>;
    async fn device(&self, dev_eui: &str) -> Result<Option<DeviceRecord>>;
    async fn device_by_name(&self, organisation: &OrganisationId, name: &str) -> Result<Option<DeviceRecord>>;
    /// Ordered by organisation, then name.
    async fn list_devices(&self, filter: &DeviceFilter) -> Result<Page<DeviceRecord>>;
    /// Returns whether the device existed. Its frames stay known.
    async fn delete_device(&self, dev_eui: &str) -> Result<bool>;

    /// Stores frames in one transaction: for each frame whose identity is
    /// not known yet, its identity, its observations (through the same path
    /// as [`crate::Store::write_observations`]: rollups, current values) and
    /// its device's health. A frame already known, from an earlier call or
    /// earlier in `frames`, writes nothing. Fails as a whole (nothing
    /// written) if an observation's entity does not exist.
    async fn write_frames(&self, frames: &[FrameWrite]) -> Result<FramesOutcome>;
    /// Applies a status event; returns whether the device exists.
    async fn update_device_health(&self, dev_eui: &str, update: &HealthUpdate) -> Result<bool>;

    /// Records a rejected body; returns its id. Beyond
    /// [`MAX_DEAD_LETTERS_PER_ORGANISATION`], the oldest of the organisation go.
    async fn add_dead_letter(&self, letter: &NewDeadLetter) -> Result<i64>;
    async fn dead_letter(&self, id: i64) -> Result<Option<DeadLetter>>;
    /// Newest first; `body` is left empty in lists (see `body_size`).
    async fn list_dead_letters(&self, filter: &DeadLetterFilter) -> Result<Page<DeadLetter>>;
    /// Returns whether the letter existed and was not already marked.
    async fn mark_dead_letter_replayed(&self, id: i64, at: DateTime<Utc>) -> Result<bool>;

    /// Records how the device is reached (replacing the previous route).
    async fn set_device_route(&self, dev_eui: &str, route: &DeviceRoute) -> Result<()>;
    async fn device_route(&self, dev_eui: &str) -> Result<Option<DeviceRoute>>;
    /// Stores a downlink in status `queued`; fails if its device does not exist.
    async fn add_downlink(&self, downlink: &NewDownlink) -> Result<()>;
    async fn downlink(&self, id: &str) -> Result<Option<Downlink>>;
    /// A device's downlinks, newest first.
    async fn list_downlinks(&self, dev_eui: &str, limit: u32) -> Result<Vec<Downlink>>;
    /// Downlinks still to hand to a network server, oldest first.
    async fn queued_downlinks(&self, limit: u32) -> Result<Vec<Downlink>>;
    /// Returns whether the change was applied.
    async fn advance_downlink(&self, change: &DownlinkChange) -> Result<bool>;

    /// Forgets frame identities stored before `frames_before` (a retry or
    /// replay older than that is caught by the per-series duplicate guard
    /// only) and dead letters received before `dead_letters_before`.
    /// Returns the rows deleted.
    async fn purge_ingestion(&self, frames_before: DateTime<Utc>, dead_letters_before: DateTime<Utc>) -> Result<u64>;
}
