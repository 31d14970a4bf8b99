//! The Things Stack v3 application uplinks.
//!
//! A webhook's uplink body and an MQTT message on
//! `v3/{application}@{tenant}/devices/{device}/up` are the same JSON
//! (`ApplicationUp` with an `uplink_message`). The Things Stack omits empty,
//! zero and false fields and writes 64-bit integers (`frequency`, `timestamp`)
//! as strings, so every field here is optional and numbers are lenient.

use chrono::{DateTime, Utc};
use serde::Deserialize;
use serde_json::{Map, Value};

use crate::chirpstack::{is_topic_id, non_empty};
use crate::device::DevEui;
use crate::event::{NetworkEvent, Radio, Uplink};
use crate::frame::FrameKey;
use crate::json::{self, num};
use crate::IngestError;

/// Parses an uplink body. Other `ApplicationUp` messages (join accepts,
/// downlink events) are refused with [`IngestError::NotAnUplink`].
pub fn parse_uplink(body: &[u8]) -> Result<NetworkEvent, IngestError> {
    json::parse_object::<ApplicationUp>(body)?.into_event()
}

/// What an MQTT topic says about the message it carries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Topic {
    pub application_id: String,
    /// `ttn` on The Things Network; absent on a single-tenant deployment.
    pub tenant: Option<String>,
    pub device_id: String,
    /// `up`, `join`, `down/ack`, `location/solved`…
    pub message: String,
}

/// Parses `v3/{application}[@{tenant}]/devices/{device}/{message…}`.
pub fn parse_topic(topic: &str) -> Result<Topic, IngestError> {
    const SHAPE: &str = "expected v3/{application}@{tenant}/devices/{device}/{message}";
    let mut parts = topic.splitn(5, '/');
    let (Some("v3"), Some(app), Some("devices"), Some(device), Some(message)) =
        (parts.next(), parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(IngestError::topic(topic, SHAPE));
    };
    let (application_id, tenant) = match app.split_once('@') {
        Some((a, t)) => (a, Some(t)),
        None => (app, None),
    };
    if !is_topic_id(application_id) || tenant.is_some_and(|t| !is_topic_id(t) || t.contains('@')) {
        return Err(IngestError::topic(topic, "empty or invalid application or tenant id"));
    }
    if !is_topic_id(device) {
        return Err(IngestError::topic(topic, "empty or invalid device id"));
    }
    if message.split('/').any(|m| !is_topic_id(m)) {
        return Err(IngestError::topic(topic, "empty or invalid message type"));
    }
    Ok(Topic {
        application_id: application_id.to_owned(),
        tenant: tenant.map(str::to_owned),
        device_id: device.to_owned(),
        message: message.to_owned(),
    })
}

/// Parses an MQTT uplink: the topic must be an `up` topic and name the
/// device and application of the body (a mismatch means a misrouted message).
pub fn parse_mqtt_uplink(topic: &str, body: &[u8]) -> Result<(Topic, NetworkEvent), IngestError> {
    let parsed = parse_topic(topic)?;
    if parsed.message != "up" {
        return Err(IngestError::topic(topic, "not an uplink topic (…/up)"));
    }
    let topic = parsed;
    let event = parse_uplink(body)?;
    if let NetworkEvent::Uplink(u) = &event {
        if u.device_name.as_deref().is_some_and(|d| d != topic.device_id) {
            return Err(IngestError::invalid("end_device_ids.device_id", "does not match the topic's device"));
        }
        if u.application_id.as_deref().is_some_and(|a| a != topic.application_id) {
            return Err(IngestError::invalid(
                "end_device_ids.application_ids.application_id",
                "does not match the topic's application",
            ));
        }
    }
    Ok((topic, event))
}

// ---- wire structures -------------------------------------------------------

#[derive(Debug, Deserialize)]
struct ApplicationUp {
    #[serde(default)]
    end_device_ids: Option<EndDeviceIds>,
    #[serde(default)]
    correlation_ids: Vec<String>,
    #[serde(default)]
    received_at: Option<DateTime<Utc>>,
    #[serde(default)]
    simulated: Option<bool>,
    #[serde(default)]
    uplink_message: Option<UplinkMessage>,
    /// The other `ApplicationUp` payloads, kept only to name them in an error.
    #[serde(flatten)]
    others: Map<String, Value>,
}

/// `ApplicationUp` payload fields that are not uplinks.
const OTHER_MESSAGES: [&str; 10] = [
    "join_accept",
    "downlink_ack",
    "downlink_nack",
    "downlink_sent",
    "downlink_failed",
    "downlink_queued",
    "downlink_queue_invalidated",
    "location_solved",
    "service_data",
    "uplink_normalized",
];

#[derive(Debug, Deserialize)]
struct EndDeviceIds {
    #[serde(default)]
    device_id: Option<String>,
    #[serde(default)]
    application_ids: Option<ApplicationIds>,
    #[serde(default)]
    dev_eui: Option<DevEui>,
}

#[derive(Debug, Deserialize)]
struct ApplicationIds {
    #[serde(default)]
    application_id: Option<String>,
}

#[derive(Debug, Deserialize)]
struct UplinkMessage {
    #[serde(default)]
    session_key_id: Option<String>,
    #[serde(default, deserialize_with = "num")]
    f_port: Option<u8>,
    #[serde(default, deserialize_with = "num")]
    f_cnt: Option<u32>,
    #[serde(default)]
    frm_payload: Option<String>,
    #[serde(default)]
    decoded_payload: Option<Map<String, Value>>,
    #[serde(default)]
    rx_metadata: Vec<RxMetadata>,
    #[serde(default)]
    settings: Option<Settings>,
    #[serde(default)]
    received_at: Option<DateTime<Utc>>,
    #[serde(default)]
    confirmed: Option<bool>,
}

#[derive(Debug, Deserialize)]
struct RxMetadata {
    #[serde(default, deserialize_with = "num")]
    rssi: Option<f64>,
    #[serde(default, deserialize_with = "num")]
    channel_rssi: Option<f64>,
    #[serde(default, deserialize_with = "num")]
    snr: Option<f64>,
}

#[derive(Debug, Deserialize)]
struct Settings {
    #[serde(default)]
    data_rate: Option<DataRate>,
    #[serde(default, deserialize_with = "num")]
    frequency: Option<u64>,
}

#[derive(Debug, Deserialize)]
struct DataRate {
    #[serde(default)]
    lora: Option<Lora>,
}

#[derive(Debug, Deserialize)]
struct Lora {
    #[serde(default, deserialize_with = "num")]
    bandwidth: Option<u32>,
    #[serde(default, deserialize_with = "num")]
    spreading_factor: Option<u8>,
}

impl ApplicationUp {
    fn into_event(self) -> Result<NetworkEvent, IngestError> {
        let Some(up) = self.uplink_message else {
            return Err(match OTHER_MESSAGES.iter().find(|m| self.others.contains_key(**m)) {
                Some(other) => IngestError::NotAnUplink((*other).to_owned()),
                None => IngestError::MissingField("uplink_message".into()),
            });
        };
        let ids = self.end_device_ids.ok_or_else(|| IngestError::MissingField("end_device_ids".into()))?;
        let dev_eui = ids.dev_eui.ok_or_else(|| IngestError::MissingField("end_device_ids.dev_eui".into()))?;
        // The network server's reception time is set once per frame, so a
        // webhook retry or an MQTT redelivery yields the same instant (and
        // storage's per-instant duplicate guard applies). The application
        // server's time is the fallback.
        let received_at = up
            .received_at
            .or(self.received_at)
            .ok_or_else(|| IngestError::MissingField("uplink_message.received_at".into()))?;
        let payload = match up.frm_payload.as_deref() {
            Some(p) => json::base64_bytes("uplink_message.frm_payload", p)?,
            None => Vec::new(),
        };
        let mut radio = Radio::default();
        for rx in &up.rx_metadata {
            let rssi =
                rx.rssi.or(rx.channel_rssi).map(|r| r.round().clamp(f64::from(i32::MIN), f64::from(i32::MAX)) as i32);
            // Zero is omitted: an entry without SNR had 0 dB.
            radio.add_gateway(rssi, Some(rx.snr.unwrap_or(0.0)));
        }
        if let Some(settings) = &up.settings {
            radio.frequency = settings.frequency;
            if let Some(lora) = settings.data_rate.as_ref().and_then(|d| d.lora.as_ref()) {
                radio.spreading_factor = lora.spreading_factor;
                radio.bandwidth = lora.bandwidth;
            }
        }
        let ns_id = self.correlation_ids.into_iter().find(|c| c.starts_with("as:up:"));
        Ok(NetworkEvent::Uplink(Uplink {
            frame: FrameKey {
                dev_eui,
                f_cnt: Some(up.f_cnt.unwrap_or(0)),
                session: non_empty(up.session_key_id),
                ns_id,
            },
            device_name: non_empty(ids.device_id),
            application_id: non_empty(ids.application_ids.and_then(|a| a.application_id)),
            f_port: up.f_port.unwrap_or(0),
            received_at,
            payload,
            decoded: up.decoded_payload,
            radio,
            confirmed: up.confirmed.unwrap_or(false),
            simulated: self.simulated.unwrap_or(false),
        }))
    }
}
