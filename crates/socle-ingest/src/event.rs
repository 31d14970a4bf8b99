//! What a network server tells Socle about a device, whichever server it is.
//!
//! The ChirpStack and The Things Stack parsers both produce these types, so the
//! endpoints, the decoding and the storage code are written once.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::device::DevEui;
use crate::frame::FrameKey;

/// One event from a LoRaWAN network server.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "event", rename_all = "camelCase", rename_all_fields = "camelCase")]
pub enum NetworkEvent {
    /// A data frame from the device: the event that carries measurements.
    Uplink(Uplink),
    /// A `DevStatusAns`: battery and link margin.
    Status {
        dev_eui: DevEui,
        time: DateTime<Utc>,
        /// Battery level in percent (0-100); `None` when the device is on
        /// mains power or cannot measure it.
        battery_level: Option<f64>,
        external_power: bool,
        /// Demodulation margin (SNR, dB) of the last device-status request.
        margin: i32,
    },
    /// The device joined (OTAA); a new session starts and frame counters restart.
    Join { dev_eui: DevEui, time: DateTime<Utc>, dev_addr: Option<String> },
    /// The device acknowledged a confirmed downlink, or the acknowledgement timed out.
    Ack {
        dev_eui: DevEui,
        time: DateTime<Utc>,
        queue_item_id: Option<String>,
        acknowledged: bool,
        f_cnt_down: Option<u32>,
    },
    /// A gateway accepted a downlink for transmission.
    TxAck {
        dev_eui: DevEui,
        time: DateTime<Utc>,
        queue_item_id: Option<String>,
        downlink_id: Option<u32>,
        f_cnt_down: Option<u32>,
        gateway_id: Option<String>,
    },
    /// A network-server log line about the device (codec error, MIC error…).
    Log {
        dev_eui: DevEui,
        time: DateTime<Utc>,
        level: LogLevel,
        code: String,
        description: String,
        context: BTreeMap<String, String>,
    },
    /// A position resolved by the network server (geolocation).
    Location {
        dev_eui: DevEui,
        time: DateTime<Utc>,
        latitude: f64,
        longitude: f64,
        altitude: Option<f64>,
        source: Option<String>,
        /// Accuracy in metres.
        accuracy: Option<f64>,
    },
}

impl NetworkEvent {
    pub fn dev_eui(&self) -> &DevEui {
        match self {
            Self::Uplink(u) => &u.frame.dev_eui,
            Self::Status { dev_eui, .. }
            | Self::Join { dev_eui, .. }
            | Self::Ack { dev_eui, .. }
            | Self::TxAck { dev_eui, .. }
            | Self::Log { dev_eui, .. }
            | Self::Location { dev_eui, .. } => dev_eui,
        }
    }

    pub fn time(&self) -> DateTime<Utc> {
        match self {
            Self::Uplink(u) => u.received_at,
            Self::Status { time, .. }
            | Self::Join { time, .. }
            | Self::Ack { time, .. }
            | Self::TxAck { time, .. }
            | Self::Log { time, .. }
            | Self::Location { time, .. } => *time,
        }
    }

    /// The event type, as ChirpStack names it (`up`, `status`…): for logs and metrics.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Uplink(_) => "up",
            Self::Status { .. } => "status",
            Self::Join { .. } => "join",
            Self::Ack { .. } => "ack",
            Self::TxAck { .. } => "txack",
            Self::Log { .. } => "log",
            Self::Location { .. } => "location",
        }
    }
}

/// An uplink data frame.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Uplink {
    /// Device, frame counter, session and network-server id: see [`FrameKey`].
    pub frame: FrameKey,
    /// The name given to the device in the network server.
    pub device_name: Option<String>,
    /// The network server's application id (ChirpStack: a UUID; TTN: a slug).
    pub application_id: Option<String>,
    /// LoRaWAN port; 0 (MAC commands only) when the server omits it.
    pub f_port: u8,
    /// When the network server received the frame: the instant given to the
    /// observations decoded from it.
    pub received_at: DateTime<Utc>,
    /// FRMPayload, decrypted, as the device sent it.
    pub payload: Vec<u8>,
    /// The object the network server's own codec produced (ChirpStack
    /// `object`, TTN `decoded_payload`), if it has one.
    pub decoded: Option<serde_json::Map<String, serde_json::Value>>,
    pub radio: Radio,
    pub confirmed: bool,
    /// A frame simulated from the network server's console (TTN), not a radio frame.
    pub simulated: bool,
}

impl Uplink {
    pub fn dev_eui(&self) -> &DevEui {
        &self.frame.dev_eui
    }
    pub fn f_cnt(&self) -> Option<u32> {
        self.frame.f_cnt
    }
}

/// Radio metadata, summarised over the gateways that heard the frame: enough
/// for coverage and device-health dashboards.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Radio {
    /// Best (highest) RSSI among gateways, dBm.
    pub rssi: Option<i32>,
    /// Best (highest) SNR among gateways, dB.
    pub snr: Option<f64>,
    /// Number of gateways that reported the frame.
    pub gateways: u32,
    /// Uplink frequency, Hz.
    pub frequency: Option<u64>,
    /// LoRa spreading factor (7-12); `None` for FSK or LR-FHSS.
    pub spreading_factor: Option<u8>,
    /// LoRa bandwidth, Hz.
    pub bandwidth: Option<u32>,
}

impl Radio {
    /// Folds one gateway's reception into the summary. `None` RSSI means the
    /// gateway gave none (a real RSSI is never 0 dBm); SNR 0 is a real value.
    pub(crate) fn add_gateway(&mut self, rssi: Option<i32>, snr: Option<f64>) {
        self.gateways = self.gateways.saturating_add(1);
        if let Some(r) = rssi {
            self.rssi = Some(self.rssi.map_or(r, |b| b.max(r)));
        }
        if let Some(s) = snr {
            self.snr = Some(self.snr.map_or(s, |b| b.max(s)));
        }
    }
}

/// Severity of a network-server log event.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum LogLevel {
    Info,
    Warning,
    Error,
}
