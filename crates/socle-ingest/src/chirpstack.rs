//! ChirpStack v4 integration events (JSON encoding).
//!
//! The same JSON body arrives from the HTTP integration (`POST …?event=up`)
//! and on MQTT (`application/{applicationId}/device/{devEui}/event/{type}`).
//! ChirpStack serialises protobuf messages: fields at their zero value
//! (`fCnt: 0`, `confirmed: false`, `snr: 0`) are left out, so every field here
//! is optional and its absence means zero; unknown fields are ignored so that a
//! newer ChirpStack does not break ingestion.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, Utc};
use serde::Deserialize;
use serde_json::{Map, Value};

use crate::device::DevEui;
use crate::event::{LogLevel, NetworkEvent, Radio, Uplink};
use crate::frame::FrameKey;
use crate::json::{self, num};
use crate::IngestError;

/// The integration event types Socle accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EventType {
    Up,
    Status,
    Join,
    Ack,
    TxAck,
    Log,
    Location,
}

impl EventType {
    pub const ALL: [EventType; 7] =
        [Self::Up, Self::Status, Self::Join, Self::Ack, Self::TxAck, Self::Log, Self::Location];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Up => "up",
            Self::Status => "status",
            Self::Join => "join",
            Self::Ack => "ack",
            Self::TxAck => "txack",
            Self::Log => "log",
            Self::Location => "location",
        }
    }
}

impl FromStr for EventType {
    type Err = IngestError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|e| e.as_str() == s)
            .ok_or_else(|| IngestError::UnknownEvent(s.chars().take(40).collect()))
    }
}

impl fmt::Display for EventType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Parses one ChirpStack event body. `event` is the `?event=` query value or
/// the last MQTT topic segment.
pub fn parse(event: &str, body: &[u8]) -> Result<NetworkEvent, IngestError> {
    // Refuse the event type before reading the body: a cheap, clear error.
    let event: EventType = event.parse()?;
    json::check_size(body)?;
    match event {
        EventType::Up => json::parse_object::<UplinkEvent>(body)?.into_event(),
        EventType::Status => json::parse_object::<StatusEvent>(body)?.into_event(),
        EventType::Join => json::parse_object::<JoinEvent>(body)?.into_event(),
        EventType::Ack => json::parse_object::<AckEvent>(body)?.into_event(),
        EventType::TxAck => json::parse_object::<TxAckEvent>(body)?.into_event(),
        EventType::Log => json::parse_object::<LogEvent>(body)?.into_event(),
        EventType::Location => json::parse_object::<LocationEvent>(body)?.into_event(),
    }
}

/// Parses an MQTT message: the topic gives the event type, and the body must
/// be about the device the topic names (a mismatch means a misrouted message).
pub fn parse_mqtt(topic: &str, body: &[u8]) -> Result<(Topic, NetworkEvent), IngestError> {
    let topic = parse_topic(topic)?;
    let event = parse(topic.event.as_str(), body)?;
    if *event.dev_eui() != topic.dev_eui {
        return Err(IngestError::invalid(
            "deviceInfo.devEui",
            format!("{} does not match the topic's {}", event.dev_eui(), topic.dev_eui),
        ));
    }
    Ok((topic, event))
}

/// What an MQTT topic says about the event it carries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Topic {
    pub application_id: String,
    pub dev_eui: DevEui,
    pub event: EventType,
}

/// Parses `application/{applicationId}/device/{devEui}/event/{type}`.
///
/// Anything before `application/` is accepted (a bridge may add a prefix),
/// but the six last segments must have exactly this shape.
pub fn parse_topic(topic: &str) -> Result<Topic, IngestError> {
    let segments: Vec<&str> = topic.split('/').collect();
    let tail = segments
        .len()
        .checked_sub(6)
        .and_then(|start| segments.get(start..))
        .ok_or_else(|| IngestError::topic(topic, "expected application/{id}/device/{devEui}/event/{type}"))?;
    let [application, app_id, device, dev_eui, event, kind] = tail else {
        return Err(IngestError::topic(topic, "expected application/{id}/device/{devEui}/event/{type}"));
    };
    if *application != "application" || *device != "device" || *event != "event" {
        return Err(IngestError::topic(topic, "expected application/{id}/device/{devEui}/event/{type}"));
    }
    if !is_topic_id(app_id) {
        return Err(IngestError::topic(topic, "empty or invalid application id"));
    }
    let dev_eui = DevEui::parse(dev_eui).map_err(|e| IngestError::topic(topic, e.to_string()))?;
    let event = kind.parse().map_err(|e: IngestError| IngestError::topic(topic, e.to_string()))?;
    Ok(Topic { application_id: (*app_id).to_owned(), dev_eui, event })
}

/// An id segment of a topic: not empty, no MQTT wildcard, no control character.
pub(crate) fn is_topic_id(s: &str) -> bool {
    !s.is_empty() && s.len() <= 128 && !s.chars().any(|c| c == '+' || c == '#' || c.is_control())
}

// ---- wire structures -------------------------------------------------------

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct DeviceInfo {
    #[serde(default)]
    application_id: Option<String>,
    #[serde(default)]
    device_name: Option<String>,
    #[serde(default)]
    dev_eui: Option<DevEui>,
}

impl DeviceInfo {
    fn dev_eui(info: &Option<DeviceInfo>) -> Result<DevEui, IngestError> {
        info.as_ref()
            .ok_or_else(|| IngestError::MissingField("deviceInfo".into()))?
            .dev_eui
            .ok_or_else(|| IngestError::MissingField("deviceInfo.devEui".into()))
    }
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct UplinkEvent {
    #[serde(default)]
    deduplication_id: Option<String>,
    #[serde(default)]
    time: Option<DateTime<Utc>>,
    #[serde(default)]
    device_info: Option<DeviceInfo>,
    #[serde(default)]
    dev_addr: Option<String>,
    #[serde(default, deserialize_with = "num")]
    f_cnt: Option<u32>,
    #[serde(default, deserialize_with = "num")]
    f_port: Option<u8>,
    #[serde(default)]
    confirmed: Option<bool>,
    #[serde(default)]
    data: Option<String>,
    #[serde(default)]
    object: Option<Map<String, Value>>,
    #[serde(default)]
    rx_info: Vec<RxInfo>,
    #[serde(default)]
    tx_info: Option<TxInfo>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct RxInfo {
    #[serde(default, deserialize_with = "num")]
    rssi: Option<i32>,
    #[serde(default, deserialize_with = "num")]
    snr: Option<f64>,
    #[serde(default)]
    ns_time: Option<DateTime<Utc>>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct TxInfo {
    #[serde(default, deserialize_with = "num")]
    frequency: Option<u64>,
    #[serde(default)]
    modulation: Option<Modulation>,
}

#[derive(Debug, Deserialize)]
struct Modulation {
    #[serde(default)]
    lora: Option<LoraModulation>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct LoraModulation {
    #[serde(default, deserialize_with = "num")]
    bandwidth: Option<u32>,
    #[serde(default, deserialize_with = "num")]
    spreading_factor: Option<u8>,
}

impl UplinkEvent {
    fn into_event(self) -> Result<NetworkEvent, IngestError> {
        let dev_eui = DeviceInfo::dev_eui(&self.device_info)?;
        // `time` is set by ChirpStack; older versions or replays may lack it,
        // then the earliest network-server reception time is the best instant.
        let received_at = self
            .time
            .or_else(|| self.rx_info.iter().filter_map(|r| r.ns_time).min())
            .ok_or_else(|| IngestError::MissingField("time".into()))?;
        let payload = match self.data.as_deref() {
            Some(d) => json::base64_bytes("data", d)?,
            None => Vec::new(),
        };
        let mut radio = Radio::default();
        for rx in &self.rx_info {
            // Protobuf omits a zero SNR, so an absent SNR in a present entry is 0 dB.
            radio.add_gateway(rx.rssi, Some(rx.snr.unwrap_or(0.0)));
        }
        if let Some(tx) = &self.tx_info {
            radio.frequency = tx.frequency;
            if let Some(lora) = tx.modulation.as_ref().and_then(|m| m.lora.as_ref()) {
                radio.spreading_factor = lora.spreading_factor;
                radio.bandwidth = lora.bandwidth;
            }
        }
        let info = self.device_info.unwrap_or_default();
        Ok(NetworkEvent::Uplink(Uplink {
            frame: FrameKey {
                dev_eui,
                // Absent means 0: the first frame of a session.
                f_cnt: Some(self.f_cnt.unwrap_or(0)),
                session: non_empty(self.dev_addr).map(|a| a.to_ascii_lowercase()),
                ns_id: non_empty(self.deduplication_id),
            },
            device_name: non_empty(info.device_name),
            application_id: non_empty(info.application_id),
            f_port: self.f_port.unwrap_or(0),
            received_at,
            payload,
            decoded: self.object,
            radio,
            confirmed: self.confirmed.unwrap_or(false),
            simulated: false,
        }))
    }
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct StatusEvent {
    #[serde(default)]
    time: Option<DateTime<Utc>>,
    #[serde(default)]
    device_info: Option<DeviceInfo>,
    #[serde(default, deserialize_with = "num")]
    margin: Option<i32>,
    #[serde(default)]
    external_power_source: Option<bool>,
    #[serde(default)]
    battery_level_unavailable: Option<bool>,
    #[serde(default, deserialize_with = "num")]
    battery_level: Option<f64>,
}

impl StatusEvent {
    fn into_event(self) -> Result<NetworkEvent, IngestError> {
        let dev_eui = DeviceInfo::dev_eui(&self.device_info)?;
        let external_power = self.external_power_source.unwrap_or(false);
        let battery_level = if external_power || self.battery_level_unavailable.unwrap_or(false) {
            None
        } else {
            let level = self.battery_level.unwrap_or(0.0);
            if !(0.0..=100.0).contains(&level) {
                return Err(IngestError::invalid("batteryLevel", format!("{level} is not a percentage (0-100)")));
            }
            Some(level)
        };
        Ok(NetworkEvent::Status {
            dev_eui,
            time: required_time(self.time)?,
            battery_level,
            external_power,
            margin: self.margin.unwrap_or(0),
        })
    }
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct JoinEvent {
    #[serde(default)]
    time: Option<DateTime<Utc>>,
    #[serde(default)]
    device_info: Option<DeviceInfo>,
    #[serde(default)]
    dev_addr: Option<String>,
}

impl JoinEvent {
    fn into_event(self) -> Result<NetworkEvent, IngestError> {
        Ok(NetworkEvent::Join {
            dev_eui: DeviceInfo::dev_eui(&self.device_info)?,
            time: required_time(self.time)?,
            dev_addr: non_empty(self.dev_addr).map(|a| a.to_ascii_lowercase()),
        })
    }
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct AckEvent {
    #[serde(default)]
    time: Option<DateTime<Utc>>,
    #[serde(default)]
    device_info: Option<DeviceInfo>,
    #[serde(default)]
    queue_item_id: Option<String>,
    #[serde(default)]
    acknowledged: Option<bool>,
    #[serde(default, deserialize_with = "num")]
    f_cnt_down: Option<u32>,
}

impl AckEvent {
    fn into_event(self) -> Result<NetworkEvent, IngestError> {
        Ok(NetworkEvent::Ack {
            dev_eui: DeviceInfo::dev_eui(&self.device_info)?,
            time: required_time(self.time)?,
            queue_item_id: non_empty(self.queue_item_id),
            acknowledged: self.acknowledged.unwrap_or(false),
            f_cnt_down: Some(self.f_cnt_down.unwrap_or(0)),
        })
    }
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct TxAckEvent {
    #[serde(default, deserialize_with = "num")]
    downlink_id: Option<u32>,
    #[serde(default)]
    time: Option<DateTime<Utc>>,
    #[serde(default)]
    device_info: Option<DeviceInfo>,
    #[serde(default)]
    queue_item_id: Option<String>,
    #[serde(default, deserialize_with = "num")]
    f_cnt_down: Option<u32>,
    #[serde(default)]
    gateway_id: Option<String>,
}

impl TxAckEvent {
    fn into_event(self) -> Result<NetworkEvent, IngestError> {
        Ok(NetworkEvent::TxAck {
            dev_eui: DeviceInfo::dev_eui(&self.device_info)?,
            time: required_time(self.time)?,
            queue_item_id: non_empty(self.queue_item_id),
            downlink_id: Some(self.downlink_id.unwrap_or(0)),
            f_cnt_down: Some(self.f_cnt_down.unwrap_or(0)),
            gateway_id: non_empty(self.gateway_id),
        })
    }
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct LogEvent {
    #[serde(default)]
    time: Option<DateTime<Utc>>,
    #[serde(default)]
    device_info: Option<DeviceInfo>,
    /// An enum: a name in JSON, a number from some encoders.
    #[serde(default)]
    level: Option<Value>,
    #[serde(default)]
    code: Option<Value>,
    #[serde(default)]
    description: Option<String>,
    #[serde(default)]
    context: BTreeMap<String, String>,
}

/// `LogCode` names by protobuf number, for encoders that send numbers.
const LOG_CODES: [&str; 9] = [
    "UNKNOWN",
    "DOWNLINK_PAYLOAD_SIZE",
    "UPLINK_CODEC",
    "DOWNLINK_CODEC",
    "OTAA",
    "UPLINK_F_CNT_RESET",
    "UPLINK_MIC",
    "UPLINK_F_CNT_RETRANSMISSION",
    "DOWNLINK_GATEWAY",
];

impl LogEvent {
    fn into_event(self) -> Result<NetworkEvent, IngestError> {
        let level = match &self.level {
            None | Some(Value::Null) => LogLevel::Info,
            Some(Value::String(s)) if s == "INFO" => LogLevel::Info,
            Some(Value::String(s)) if s == "WARNING" => LogLevel::Warning,
            Some(Value::String(s)) if s == "ERROR" => LogLevel::Error,
            Some(Value::Number(n)) if n.as_u64() == Some(0) => LogLevel::Info,
            Some(Value::Number(n)) if n.as_u64() == Some(1) => LogLevel::Warning,
            Some(Value::Number(n)) if n.as_u64() == Some(2) => LogLevel::Error,
            Some(other) => {
                return Err(IngestError::invalid("level", format!("{other} is not one of INFO, WARNING, ERROR")))
            }
        };
        let code = match &self.code {
            None | Some(Value::Null) => "UNKNOWN".to_owned(),
            Some(Value::String(s)) if !s.is_empty() && s.len() <= 64 => s.clone(),
            Some(Value::Number(n)) => n
                .as_u64()
                .and_then(|i| usize::try_from(i).ok())
                .and_then(|i| LOG_CODES.get(i))
                .map_or_else(|| format!("CODE_{n}"), |c| (*c).to_owned()),
            Some(other) => return Err(IngestError::invalid("code", format!("{other} is not a log code"))),
        };
        Ok(NetworkEvent::Log {
            dev_eui: DeviceInfo::dev_eui(&self.device_info)?,
            time: required_time(self.time)?,
            level,
            code,
            description: self.description.unwrap_or_default(),
            context: self.context,
        })
    }
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct LocationEvent {
    #[serde(default)]
    time: Option<DateTime<Utc>>,
    #[serde(default)]
    device_info: Option<DeviceInfo>,
    #[serde(default)]
    location: Option<Location>,
}

#[derive(Debug, Deserialize)]
struct Location {
    #[serde(default, deserialize_with = "num")]
    latitude: Option<f64>,
    #[serde(default, deserialize_with = "num")]
    longitude: Option<f64>,
    #[serde(default, deserialize_with = "num")]
    altitude: Option<f64>,
    #[serde(default)]
    source: Option<Value>,
    #[serde(default, deserialize_with = "num")]
    accuracy: Option<f64>,
}

impl LocationEvent {
    fn into_event(self) -> Result<NetworkEvent, IngestError> {
        let dev_eui = DeviceInfo::dev_eui(&self.device_info)?;
        let loc = self.location.ok_or_else(|| IngestError::MissingField("location".into()))?;
        let latitude = loc.latitude.unwrap_or(0.0);
        let longitude = loc.longitude.unwrap_or(0.0);
        if !(-90.0..=90.0).contains(&latitude) {
            return Err(IngestError::invalid("location.latitude", format!("{latitude} is outside -90..90")));
        }
        if !(-180.0..=180.0).contains(&longitude) {
            return Err(IngestError::invalid("location.longitude", format!("{longitude} is outside -180..180")));
        }
        let source = match loc.source {
            Some(Value::String(s)) if !s.is_empty() => Some(s),
            Some(Value::Number(n)) => Some(n.to_string()),
            _ => None,
        };
        Ok(NetworkEvent::Location {
            dev_eui,
            time: required_time(self.time)?,
            latitude,
            longitude,
            altitude: loc.altitude,
            source,
            accuracy: loc.accuracy,
        })
    }
}

fn required_time(t: Option<DateTime<Utc>>) -> Result<DateTime<Utc>, IngestError> {
    t.ok_or_else(|| IngestError::MissingField("time".into()))
}

/// Protobuf writes an empty string for an unset string field.
pub(crate) fn non_empty(s: Option<String>) -> Option<String> {
    s.filter(|s| !s.is_empty())
}
