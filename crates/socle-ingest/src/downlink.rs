//! Downlinks through the network servers: the command Socle publishes, and
//! the events that tell how far it went.
//!
//! Socle gives every downlink its own id and hands it to the network server
//! so that the server's later events can be matched: ChirpStack v4 takes it
//! as the queue item id (`id` of the MQTT `command/down`, echoed as
//! `queueItemId` in `txack` and `ack` events, and refused if enqueued twice,
//! which makes a re-sent command harmless); The Things Stack carries it as a
//! correlation id (`socle:downlink:{id}`) on every `down/*` message.

use base64::Engine as _;
use chrono::{DateTime, Utc};
use serde::Deserialize;
use serde_json::json;
use socle_domain::DownlinkStatus;

use crate::device::DevEui;
use crate::event::NetworkEvent;
use crate::json;
use crate::IngestError;

/// LoRaWAN application ports are 1 to 223 (0 is MAC commands, 224 tests).
pub const F_PORTS: std::ops::RangeInclusive<u8> = 1..=223;
/// The largest application payload of any EU868 data rate (DR5-7).
pub const MAX_PAYLOAD: usize = 222;

const CORRELATION_PREFIX: &str = "socle:downlink:";

/// A command for one device.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Command {
    pub id: String,
    pub dev_eui: DevEui,
    pub f_port: u8,
    pub data: Vec<u8>,
    /// Ask the device to acknowledge it (a class A device does so in its next uplink).
    pub confirmed: bool,
}

/// Why a command cannot be sent.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CommandError {
    #[error("fPort {0} is outside 1-223 (the LoRaWAN application ports)")]
    Port(u8),
    #[error("payload of {0} bytes exceeds {MAX_PAYLOAD} bytes, the most any EU868 data rate carries")]
    TooLong(usize),
    #[error("empty payload")]
    Empty,
}

impl Command {
    pub fn new(id: String, dev_eui: DevEui, f_port: u8, data: Vec<u8>, confirmed: bool) -> Result<Self, CommandError> {
        if !F_PORTS.contains(&f_port) {
            return Err(CommandError::Port(f_port));
        }
        if data.is_empty() {
            return Err(CommandError::Empty);
        }
        if data.len() > MAX_PAYLOAD {
            return Err(CommandError::TooLong(data.len()));
        }
        Ok(Self { id, dev_eui, f_port, data, confirmed })
    }
}

/// How a device is reached, learnt from its uplinks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Route {
    /// ChirpStack v4: the application id of its uplinks.
    ChirpStack { application_id: String },
    /// The Things Stack v3: `application[@tenant]` and the device id.
    Ttn { application: String, device_id: String },
}

/// An MQTT message to publish.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outgoing {
    pub topic: String,
    pub payload: Vec<u8>,
}

impl Route {
    /// The message that enqueues `command` on the network server.
    pub fn command(&self, command: &Command) -> Outgoing {
        let data = base64::engine::general_purpose::STANDARD.encode(&command.data);
        match self {
            Self::ChirpStack { application_id } => Outgoing {
                topic: format!("application/{application_id}/device/{}/command/down", command.dev_eui),
                payload: json!({
                    "id": command.id,
                    "devEui": command.dev_eui.to_string(),
                    "confirmed": command.confirmed,
                    "fPort": command.f_port,
                    "data": data,
                })
                .to_string()
                .into_bytes(),
            },
            Self::Ttn { application, device_id } => Outgoing {
                topic: format!("v3/{application}/devices/{device_id}/down/push"),
                payload: json!({
                    "downlinks": [{
                        "f_port": command.f_port,
                        "frm_payload": data,
                        "confirmed": command.confirmed,
                        "priority": "NORMAL",
                        "correlation_ids": [format!("{CORRELATION_PREFIX}{}", command.id)],
                    }]
                })
                .to_string()
                .into_bytes(),
            },
        }
    }
}

/// What a network server said of a downlink Socle sent.
#[derive(Debug, Clone, PartialEq)]
pub struct DownlinkUpdate {
    /// Socle's id of the downlink.
    pub id: String,
    pub dev_eui: Option<DevEui>,
    pub status: DownlinkStatus,
    pub at: DateTime<Utc>,
    pub f_cnt_down: Option<u32>,
    /// Why it failed, in the network server's words.
    pub detail: Option<String>,
}

/// The downlink news in a ChirpStack event, if it is about a queue item.
pub fn from_chirpstack(event: &NetworkEvent) -> Option<DownlinkUpdate> {
    match event {
        NetworkEvent::TxAck { dev_eui, time, queue_item_id: Some(id), f_cnt_down, .. } => Some(DownlinkUpdate {
            id: id.clone(),
            dev_eui: Some(*dev_eui),
            status: DownlinkStatus::Transmitted,
            at: *time,
            f_cnt_down: *f_cnt_down,
            detail: None,
        }),
        NetworkEvent::Ack { dev_eui, time, queue_item_id: Some(id), acknowledged, f_cnt_down } => {
            Some(DownlinkUpdate {
                id: id.clone(),
                dev_eui: Some(*dev_eui),
                status: if *acknowledged { DownlinkStatus::Acknowledged } else { DownlinkStatus::Failed },
                at: *time,
                f_cnt_down: *f_cnt_down,
                detail: (!acknowledged).then(|| "the device did not acknowledge the confirmed downlink".to_owned()),
            })
        }
        _ => None,
    }
}

#[derive(Deserialize)]
struct TtnDownEvent {
    #[serde(default)]
    received_at: Option<DateTime<Utc>>,
    #[serde(default)]
    correlation_ids: Vec<String>,
    #[serde(default)]
    end_device_ids: Option<TtnIds>,
    #[serde(default)]
    downlink_ack: Option<TtnDownlink>,
    #[serde(default)]
    downlink_nack: Option<TtnDownlink>,
    #[serde(default)]
    downlink_sent: Option<TtnDownlink>,
    #[serde(default)]
    downlink_failed: Option<TtnFailed>,
}

#[derive(Deserialize)]
struct TtnIds {
    #[serde(default)]
    dev_eui: Option<String>,
}

#[derive(Deserialize, Default)]
struct TtnDownlink {
    #[serde(default)]
    correlation_ids: Vec<String>,
    #[serde(default)]
    f_cnt: Option<u32>,
}

#[derive(Deserialize)]
struct TtnFailed {
    #[serde(default)]
    downlink: TtnDownlink,
    #[serde(default)]
    error: Option<serde_json::Value>,
}

/// The downlink news in a The Things Stack `down/ack|nack|sent|failed`
/// message (webhook body or MQTT payload): `None` when it is not about a
/// downlink Socle sent (no `socle:downlink:` correlation id) or is another
/// kind of message (`down/queued`: Socle already knows it sent it).
pub fn from_ttn(body: &[u8]) -> Result<Option<DownlinkUpdate>, IngestError> {
    let e: TtnDownEvent = json::parse_object(body)?;
    let at = e.received_at.unwrap_or_else(Utc::now);
    let (status, message, detail) = if let Some(m) = e.downlink_ack {
        (DownlinkStatus::Acknowledged, m, None)
    } else if let Some(m) = e.downlink_nack {
        (DownlinkStatus::Failed, m, Some("the device refused the downlink (nack)".to_owned()))
    } else if let Some(m) = e.downlink_sent {
        (DownlinkStatus::Transmitted, m, None)
    } else if let Some(f) = e.downlink_failed {
        let why =
            f.error.map_or_else(|| "the network server could not send the downlink".to_owned(), |v| v.to_string());
        (DownlinkStatus::Failed, f.downlink, Some(why))
    } else {
        return Ok(None);
    };
    let id = message
        .correlation_ids
        .iter()
        .chain(&e.correlation_ids)
        .find_map(|c| c.strip_prefix(CORRELATION_PREFIX))
        .filter(|id| !id.is_empty());
    let Some(id) = id else { return Ok(None) };
    let dev_eui = e.end_device_ids.and_then(|i| i.dev_eui).and_then(|d| DevEui::parse(&d).ok());
    Ok(Some(DownlinkUpdate { id: id.to_owned(), dev_eui, status, at, f_cnt_down: message.f_cnt, detail }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn eui() -> DevEui {
        DevEui::parse("a84041000181c7e2").unwrap()
    }

    #[test]
    fn commands_are_checked() {
        assert_eq!(Command::new("x".into(), eui(), 0, vec![1], false), Err(CommandError::Port(0)));
        assert_eq!(Command::new("x".into(), eui(), 224, vec![1], false), Err(CommandError::Port(224)));
        assert_eq!(Command::new("x".into(), eui(), 10, vec![], false), Err(CommandError::Empty));
        assert_eq!(Command::new("x".into(), eui(), 10, vec![0; 223], false), Err(CommandError::TooLong(223)));
        assert!(Command::new("x".into(), eui(), 10, vec![0; 222], true).is_ok());
    }

    #[test]
    fn chirpstack_command_carries_socle_id() {
        let c = Command::new("6d1c".into(), eui(), 10, vec![0x01, 0xff], true).unwrap();
        let out = Route::ChirpStack { application_id: "app-1".into() }.command(&c);
        assert_eq!(out.topic, "application/app-1/device/a84041000181c7e2/command/down");
        let v: serde_json::Value = serde_json::from_slice(&out.payload).unwrap();
        assert_eq!(
            v,
            json!({"id": "6d1c", "devEui": "a84041000181c7e2", "confirmed": true, "fPort": 10, "data": "Af8="})
        );
    }

    #[test]
    fn ttn_push_and_its_events() {
        let c = Command::new("6d1c".into(), eui(), 2, vec![0xbe, 0xef], false).unwrap();
        let route = Route::Ttn { application: "eclairage@ttn".into(), device_id: "armoire-12".into() };
        let out = route.command(&c);
        assert_eq!(out.topic, "v3/eclairage@ttn/devices/armoire-12/down/push");
        let v: serde_json::Value = serde_json::from_slice(&out.payload).unwrap();
        assert_eq!(v["downlinks"][0]["frm_payload"], "vu8=");
        assert_eq!(v["downlinks"][0]["correlation_ids"][0], "socle:downlink:6d1c");

        let ack = json!({
            "end_device_ids": {"device_id": "armoire-12", "dev_eui": "A84041000181C7E2"},
            "correlation_ids": ["as:downlink:01H", "socle:downlink:6d1c"],
            "received_at": "2026-11-30T06:00:00Z",
            "downlink_ack": {"f_port": 2, "f_cnt": 7, "correlation_ids": ["socle:downlink:6d1c"]}
        });
        let u = from_ttn(ack.to_string().as_bytes()).unwrap().unwrap();
        assert_eq!((u.id.as_str(), u.status, u.f_cnt_down), ("6d1c", DownlinkStatus::Acknowledged, Some(7)));
        assert_eq!(u.dev_eui, Some(eui()));
        let failed = json!({"downlink_failed": {"downlink": {"correlation_ids": ["socle:downlink:9"]}, "error": {"name": "no_gateway"}}});
        let u = from_ttn(failed.to_string().as_bytes()).unwrap().unwrap();
        assert_eq!(u.status, DownlinkStatus::Failed);
        assert!(u.detail.unwrap().contains("no_gateway"));
        // Someone else's downlink, and a queued notice: nothing to record.
        let other = json!({"downlink_sent": {"correlation_ids": ["as:downlink:1"]}});
        assert_eq!(from_ttn(other.to_string().as_bytes()).unwrap(), None);
        assert_eq!(from_ttn(br#"{"downlink_queued": {}}"#).unwrap(), None);
        assert!(from_ttn(b"[1]").is_err());
    }
}
