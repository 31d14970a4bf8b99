//! Socle's generic JSON push format, for devices that are not LoRaWAN
//! (a weather station on Wi-Fi, a gateway script, a supervisor export).
//!
//! A body is one message or an array of messages:
//!
//! ```json
//! {"device": "station-meteo-mairie", "observedAt": "2025-03-12T07:40:00Z",
//!  "values": {"temperature": 21.5, "humidity": 48, "status": "ok",
//!             "sensors": [{"value": 3.2}]},
//!  "id": "42-1741765200"}
//! ```
//!
//! - `device` (required): the device's name, or its DevEUI (16 hex digits) for
//!   a LoRaWAN device relayed by other means;
//! - `observedAt` (optional, RFC 3339 with offset): when the values were
//!   measured; absent, the endpoint uses the reception time;
//! - `values` (required, non-empty object): anything JSON; the device's
//!   mappings pick fields by path (`temperature`, `sensors[0].value`);
//! - `id` (optional): the sender's message id, for logs and deduplication.
//!
//! Unknown fields are refused, so a typo (`observed_at`) is an error rather
//! than a silently ignored timestamp.

use std::fmt;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::device::DevEui;
use crate::json;
use crate::IngestError;

/// At most this many messages in one body: a batch is written in one
/// transaction, and a bounded batch keeps that transaction short.
pub const MAX_MESSAGES: usize = 1000;

/// At most this many top-level values in one message.
pub const MAX_VALUES: usize = 256;

/// One message of the generic format.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct GenericMessage {
    pub device: DeviceKey,
    pub observed_at: Option<DateTime<Utc>>,
    pub values: Map<String, Value>,
    pub id: Option<String>,
}

/// How a generic message names its device.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
#[serde(untagged)]
pub enum DeviceKey {
    Eui(DevEui),
    Name(String),
}

impl DeviceKey {
    /// A DevEUI if the text is 16 hex digits, otherwise a name of 1-128
    /// printable characters.
    pub fn parse(s: &str) -> Result<Self, String> {
        if let Ok(eui) = DevEui::parse(s) {
            return Ok(Self::Eui(eui));
        }
        if is_name(s) {
            Ok(Self::Name(s.to_owned()))
        } else {
            Err("expected a device name (1-128 characters, no control characters) or a DevEUI".to_owned())
        }
    }
}

pub(crate) fn is_name(s: &str) -> bool {
    !s.trim().is_empty() && s.chars().count() <= 128 && !s.chars().any(char::is_control)
}

impl fmt::Display for DeviceKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Eui(e) => e.fmt(f),
            Self::Name(n) => f.write_str(n),
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct Wire {
    device: String,
    #[serde(default)]
    observed_at: Option<DateTime<Utc>>,
    values: Map<String, Value>,
    #[serde(default)]
    id: Option<String>,
}

/// Parses a body of the generic format: one message or an array of them.
pub fn parse(body: &[u8]) -> Result<Vec<GenericMessage>, IngestError> {
    json::check_size(body)?;
    // Look at the first significant byte instead of an untagged enum: serde's
    // untagged errors say "did not match any variant", without line or field.
    let first = body.iter().find(|b| !b.is_ascii_whitespace());
    let wires = if first == Some(&b'[') {
        json::parse_body::<Vec<json::Obj<Wire>>>(body)?.into_iter().map(|o| o.0).collect()
    } else {
        vec![json::parse_object::<Wire>(body)?]
    };
    if wires.len() > MAX_MESSAGES {
        return Err(IngestError::TooManyMessages { count: wires.len(), limit: MAX_MESSAGES });
    }
    wires
        .into_iter()
        .enumerate()
        .map(|(i, w)| {
            // Field names carry the message index in batches, as serde's paths do.
            let at = |f: &str| if first == Some(&b'[') { format!("[{i}].{f}") } else { f.to_owned() };
            let device = DeviceKey::parse(&w.device).map_err(|r| IngestError::invalid(at("device"), r))?;
            if w.values.is_empty() {
                return Err(IngestError::invalid(at("values"), "no value"));
            }
            if w.values.len() > MAX_VALUES {
                return Err(IngestError::invalid(
                    at("values"),
                    format!("{} values, at most {MAX_VALUES}", w.values.len()),
                ));
            }
            let id = w.id.filter(|s| !s.is_empty());
            if id.as_deref().is_some_and(|s| !is_name(s)) {
                return Err(IngestError::invalid(at("id"), "expected 1-128 characters, no control characters"));
            }
            Ok(GenericMessage { device, observed_at: w.observed_at, values: w.values, id })
        })
        .collect()
}
