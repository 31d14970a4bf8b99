//! What an ingest did, or why it did not.

use std::time::Duration;

use serde::Serialize;
use socle_storage::StoreError;

/// What happened to an accepted body.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Outcome {
    /// At least one frame was stored now.
    Stored,
    /// Every frame was already stored: nothing was written.
    Duplicate,
    /// A status or join event: the device's health was updated.
    Recorded,
    /// An event that carries no measurement (ack, log, location, a TTN
    /// message that is not an uplink): accepted and not kept.
    Ignored,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Stored => "stored",
            Self::Duplicate => "duplicate",
            Self::Recorded => "recorded",
            Self::Ignored => "ignored",
        }
    }
}

/// Told of the result of every body ingested (HTTP, MQTT, replays), for
/// metrics: the pipeline is the one place all of them pass.
pub trait IngestObserver: Send + Sync {
    fn observed(&self, source: &'static str, result: &Result<Accepted, Rejection>);
}

/// An accepted body. Returned only once everything is committed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Accepted {
    pub outcome: Outcome,
    /// `true` when the body brought nothing new (a retry or a replay).
    pub duplicate: bool,
    /// Frames (messages, for the generic format) stored now.
    pub frames: u32,
    /// Frames already stored before.
    pub duplicate_frames: u32,
    /// Observations stored now.
    pub observations: u64,
    /// Observations of stored frames that their series already had at that instant.
    pub duplicate_observations: u64,
    /// Mapped fields absent from the decoded object (a sensor without reading):
    /// not an error, but worth knowing.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub missing_fields: Vec<String>,
}

impl Accepted {
    pub(crate) fn empty(outcome: Outcome) -> Self {
        Self {
            outcome,
            duplicate: false,
            frames: 0,
            duplicate_frames: 0,
            observations: 0,
            duplicate_observations: 0,
            missing_fields: Vec::new(),
        }
    }
}

/// Why a body was refused; each refusal has a dead letter.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Refusal {
    /// Over the size limit (HTTP 413).
    TooLarge,
    /// Not JSON, or not the expected shape (HTTP 400).
    Malformed,
    /// No such device in the sender's organisation (HTTP 404).
    UnknownDevice,
    /// The payload could not be decoded: codec missing, failing or too slow (HTTP 422).
    Undecodable,
    /// A decoded value does not fit its mapping (out of range, wrong type)
    /// or cannot be stored (HTTP 422).
    Invalid,
}

/// Why an ingest did not succeed.
#[derive(Debug, thiserror::Error)]
pub enum Rejection {
    /// Too many ingests at once; nothing was written. Retry after the delay.
    #[error("too many ingests in progress; retry in {} s", retry_after.as_secs())]
    Overloaded { retry_after: Duration },
    /// Storage failed; nothing was written (not even a dead letter). Retry.
    #[error("storage unavailable: {cause}")]
    Unavailable { retry_after: Duration, cause: StoreError },
    /// The body is refused for good; `dead_letter` is its record (the
    /// original one when a replay is refused again).
    #[error("{code}: {message}")]
    Refused {
        kind: Refusal,
        /// Stable code (`unknown-device`, `codec-timeout`, `out-of-range`…).
        code: &'static str,
        message: String,
        dead_letter: Option<i64>,
        dev_eui: Option<String>,
    },
}

impl Rejection {
    /// Whether the body is durably dealt with (kept as a dead letter), so an
    /// MQTT message may be acknowledged; `false` means retry later.
    pub fn is_final(&self) -> bool {
        matches!(self, Self::Refused { .. })
    }

    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            Self::Overloaded { retry_after } | Self::Unavailable { retry_after, .. } => Some(*retry_after),
            Self::Refused { .. } => None,
        }
    }

    pub fn code(&self) -> &'static str {
        match self {
            Self::Overloaded { .. } => "overloaded",
            Self::Unavailable { .. } => "storage-unavailable",
            Self::Refused { code, .. } => code,
        }
    }
}
