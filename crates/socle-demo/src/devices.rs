//! The demo's sensors: one LoRaWAN device per equipment that reports, and
//! the ChirpStack v4 `up` events they send in live mode. Live data thus takes
//! the path of real data — ingestion token, frame identities, mappings,
//! device health, the commit feed that alert rules read — instead of being
//! written to the store directly (the 90-day history still is: through
//! HTTP it would take minutes instead of seconds).

use std::collections::BTreeMap;

use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::{json, Map, Value};
use socle_domain::{EntityId, Observation, ObservedValue, OrganisationId};
use socle_storage::NewDevice;

use crate::territory::Territory;

/// A demo device and what its uplinks need.
#[derive(Debug, Clone, PartialEq)]
pub struct DemoDevice {
    pub device: NewDevice,
    /// Its position in the territory's device list: gives its radio
    /// figures and its frame ids, deterministically.
    index: u32,
}

/// The device model (its codec in `socle-ingest/codecs`) of an equipment type.
fn model(entity_type: &str) -> &'static str {
    let t = entity_type.to_ascii_lowercase();
    if t.contains("waste") {
        "dragino-ldds75"
    } else if t.contains("streetlight") || t.contains("lighting") {
        "socle-streetlight"
    } else if t.contains("water") && !t.contains("level") && !t.contains("flood") {
        "socle-water-meter"
    } else if t.contains("air") {
        "socle-air-quality"
    } else if t.contains("parking") {
        "socle-parking"
    } else if t.contains("flood") || t.contains("river") || t.contains("level") {
        "socle-river-level"
    } else if t.contains("indoor") || t.contains("room") {
        "socle-th-indoor"
    } else {
        "socle-energy-meter"
    }
}

impl Territory {
    /// One device per entity that has series, mapping each series' attribute
    /// (the decoded field of the same name) with its unit. Stable across runs.
    pub fn devices(&self) -> Vec<DemoDevice> {
        let mut fields: BTreeMap<&EntityId, Vec<Value>> = BTreeMap::new();
        for s in &self.series {
            let mut m = json!({"field": s.attribute.as_str(), "attribute": s.attribute.as_str()});
            if let Some(unit) = &s.unit {
                m["unitCode"] = unit.as_str().into();
            }
            fields.entry(&s.entity).or_default().push(m);
        }
        let mut out = Vec::new();
        for e in &self.entities {
            let Some(mappings) = fields.remove(&e.id) else { continue };
            let index = out.len() as u32;
            let name = e.id.as_str().rsplit(':').next().unwrap_or(e.id.as_str()).to_owned();
            out.push(DemoDevice {
                device: NewDevice {
                    dev_eui: format!("70b3d5e75e{index:06x}"),
                    name,
                    model: model(e.entity_type.as_str()).to_owned(),
                    organisation: e.organisation.clone(),
                    entity: e.id.clone(),
                    mappings: Value::Array(mappings),
                },
                index,
            });
        }
        out
    }
}

impl DemoDevice {
    /// The ChirpStack v4 `up` event carrying `observations` (of this device's
    /// entity, all observed at `at`), decoded by the network server as
    /// ChirpStack does when the device profile has a codec. Its
    /// deduplication id derives from the device and the instant, so sending
    /// it again (after a refused or failed post) is recognised as a copy.
    pub fn uplink(&self, at: DateTime<Utc>, observations: &[&Observation]) -> Vec<u8> {
        let object: Map<String, Value> = observations
            .iter()
            .map(|o| {
                let value = match &o.value {
                    ObservedValue::Number(n) => json!(n.get()),
                    ObservedValue::Text(t) => json!(t),
                };
                (o.attribute.as_str().to_owned(), value)
            })
            .collect();
        let d = &self.device;
        let i = self.index;
        let seconds = at.timestamp().max(0) as u64;
        json!({
            "deduplicationId": format!("{i:08x}-0000-4000-8000-{seconds:012x}"),
            "time": at.to_rfc3339_opts(SecondsFormat::Millis, true),
            "deviceInfo": {
                "tenantName": "Val de Lémance",
                "applicationId": application_id(&d.organisation),
                "applicationName": d.organisation.as_str(),
                "deviceProfileName": d.model,
                "deviceName": d.name,
                "devEui": d.dev_eui,
            },
            "devAddr": format!("26{i:06x}"),
            "adr": true,
            "dr": 5,
            // One frame a minute at most per device: the minute counts frames.
            "fCnt": (seconds / 60) % (1 << 32),
            "fPort": 2,
            "confirmed": false,
            "object": object,
            "rxInfo": [{
                "gatewayId": format!("0016c001f15{:05x}", i % 7),
                "rssi": -68 - (i % 45) as i64,
                "snr": 9.5 - f64::from(i % 14),
                "crcStatus": "CRC_OK",
            }],
        })
        .to_string()
        .into_bytes()
    }
}

/// The ChirpStack application of an organisation's demo devices.
pub fn application_id(organisation: &OrganisationId) -> String {
    format!("demo-{organisation}")
}

/// Groups live observations into uplinks: one per (device, instant).
pub fn uplinks<'a>(
    devices: &'a std::collections::HashMap<EntityId, DemoDevice>,
    observations: &'a [Observation],
) -> Vec<(&'a DemoDevice, Vec<u8>)> {
    let mut frames: BTreeMap<(&EntityId, DateTime<Utc>), Vec<&Observation>> = BTreeMap::new();
    for o in observations {
        frames.entry((&o.entity, o.observed_at)).or_default().push(o);
    }
    frames.into_iter().filter_map(|((entity, at), obs)| devices.get(entity).map(|d| (d, d.uplink(at, &obs)))).collect()
}
