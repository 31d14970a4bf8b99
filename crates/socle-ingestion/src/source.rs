//! Where a body comes from, which decides how it is parsed.

use chrono::{DateTime, Utc};
use socle_domain::OrganisationId;

/// The sender and shape of a body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// ChirpStack v4 HTTP integration; `event` is the `?event=` value (`up`, `status`…).
    ChirpStack { event: String },
    /// ChirpStack v4 on MQTT: the topic gives the event type and the device.
    ChirpStackMqtt { topic: String },
    /// The Things Stack v3 webhook (uplink messages).
    Ttn,
    /// The Things Stack v3 on MQTT (`v3/{app}@{tenant}/devices/{device}/up`).
    TtnMqtt { topic: String },
    /// Socle's generic JSON push (one message or an array).
    Generic,
    /// A generic JSON message on an MQTT topic.
    GenericMqtt { topic: String },
}

impl Source {
    /// The name stored in dead letters and used in metrics.
    pub fn name(&self) -> &'static str {
        match self {
            Self::ChirpStack { .. } => "chirpstack",
            Self::ChirpStackMqtt { .. } => "chirpstack-mqtt",
            Self::Ttn => "ttn",
            Self::TtnMqtt { .. } => "ttn-mqtt",
            Self::Generic => "generic",
            Self::GenericMqtt { .. } => "generic-mqtt",
        }
    }

    /// The event type or topic, stored with a dead letter so it can be replayed.
    pub fn detail(&self) -> Option<&str> {
        match self {
            Self::ChirpStack { event } => Some(event),
            Self::ChirpStackMqtt { topic } | Self::TtnMqtt { topic } | Self::GenericMqtt { topic } => Some(topic),
            Self::Ttn | Self::Generic => None,
        }
    }

    /// The source of a stored dead letter.
    pub fn from_stored(name: &str, detail: Option<&str>) -> Option<Self> {
        let detail = || detail.map(str::to_owned);
        Some(match name {
            "chirpstack" => Self::ChirpStack { event: detail()? },
            "chirpstack-mqtt" => Self::ChirpStackMqtt { topic: detail()? },
            "ttn" => Self::Ttn,
            "ttn-mqtt" => Self::TtnMqtt { topic: detail()? },
            "generic" => Self::Generic,
            "generic-mqtt" => Self::GenericMqtt { topic: detail()? },
            _ => return None,
        })
    }
}

/// One body to ingest.
#[derive(Debug, Clone)]
pub struct Input {
    /// The organisation the sender acts for (an ingestion token's, or an MQTT
    /// subscription's). Only its devices are known to this input.
    pub organisation: OrganisationId,
    pub source: Source,
    pub body: Vec<u8>,
    /// When Socle received it: the instant of generic values without
    /// `observedAt`, and of dead letters.
    pub received_at: DateTime<Utc>,
}

impl Input {
    pub fn new(organisation: OrganisationId, source: Source, body: impl Into<Vec<u8>>) -> Self {
        Self { organisation, source, body: body.into(), received_at: Utc::now() }
    }
}
