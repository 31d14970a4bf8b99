//! Why a network-server or device body was refused.
//!
//! Messages name the place of the problem (JSON line and column, the field's
//! path such as `rxInfo[0].rssi`) because the reader is an administrator
//! looking at a network-server integration log, not at our code.

use thiserror::Error;

/// A body, topic or field that cannot become an ingestion event.
#[derive(Debug, Clone, PartialEq, Error)]
pub enum IngestError {
    #[error("body of {size} bytes exceeds the limit of {limit} bytes")]
    BodyTooLarge { size: usize, limit: usize },

    /// Malformed JSON, or JSON of the wrong shape (a string where a number is
    /// expected…). `path` is the field's path (`.` for the document itself).
    #[error("invalid JSON at line {line}, column {column}, field `{path}`: {message}")]
    Json { path: String, line: usize, column: usize, message: String },

    #[error("missing field `{0}`")]
    MissingField(String),

    /// A field that is well-formed JSON but not an acceptable value
    /// (bad base64, latitude out of range…).
    #[error("invalid field `{field}`: {reason}")]
    InvalidField { field: String, reason: String },

    #[error("unknown ChirpStack event type {0:?}: expected one of up, status, join, ack, txack, log, location")]
    UnknownEvent(String),

    #[error("invalid MQTT topic {topic:?}: {reason}")]
    Topic { topic: String, reason: String },

    /// A valid The Things Stack message that is not an uplink (join accept,
    /// downlink ack…), sent to the uplink endpoint.
    #[error("The Things Stack message is a `{0}`, not an `uplink_message`")]
    NotAnUplink(String),

    #[error("too many messages in one body: {count} (at most {limit})")]
    TooManyMessages { count: usize, limit: usize },
}

impl IngestError {
    /// A stable code for problem details and metrics; the message may change, the code does not.
    pub fn code(&self) -> &'static str {
        match self {
            Self::BodyTooLarge { .. } => "body-too-large",
            Self::Json { .. } => "invalid-json",
            Self::MissingField(_) => "missing-field",
            Self::InvalidField { .. } => "invalid-field",
            Self::UnknownEvent(_) => "unknown-event",
            Self::Topic { .. } => "invalid-topic",
            Self::NotAnUplink(_) => "not-an-uplink",
            Self::TooManyMessages { .. } => "too-many-messages",
        }
    }

    pub(crate) fn invalid(field: impl Into<String>, reason: impl Into<String>) -> Self {
        Self::InvalidField { field: field.into(), reason: reason.into() }
    }

    pub(crate) fn topic(topic: &str, reason: impl Into<String>) -> Self {
        // Topics come from the broker and may be long: keep the message readable.
        let topic: String = topic.chars().take(200).collect();
        Self::Topic { topic, reason: reason.into() }
    }
}
