//! The device registry between `socle-ingest`'s typed [`Device`] and the
//! storage rows, with the checks a device must pass before it is stored.

use socle_ingest::{DevEui, Device, Mapping, ModelId};
use socle_storage::{DeviceRecord, NewDevice};

/// Why a device definition is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct InvalidDevice(pub String);

/// Checks what the types cannot: each mapping is usable, no attribute is
/// fed twice, the name is printable and not too long.
pub fn validate(device: &Device) -> Result<(), InvalidDevice> {
    let name = device.name.trim();
    if name.is_empty() || device.name.chars().count() > 128 || device.name.chars().any(char::is_control) {
        return Err(InvalidDevice("name: expected 1-128 characters, no control characters".into()));
    }
    if device.mappings.len() > 256 {
        return Err(InvalidDevice(format!("{} mappings, at most 256", device.mappings.len())));
    }
    for (i, m) in device.mappings.iter().enumerate() {
        m.validate().map_err(|e| InvalidDevice(format!("mappings[{i}]: {e}")))?;
        if device.mappings[..i].iter().any(|o| o.attribute == m.attribute) {
            return Err(InvalidDevice(format!("mappings[{i}]: attribute {} is already mapped", m.attribute)));
        }
    }
    Ok(())
}

/// The row to store for a (validated) device.
pub fn to_new(device: &Device) -> NewDevice {
    NewDevice {
        dev_eui: device.dev_eui.to_string(),
        name: device.name.clone(),
        model: device.model.to_string(),
        organisation: device.organisation.clone(),
        entity: device.entity.clone(),
        mappings: serde_json::to_value(&device.mappings).unwrap_or_else(|_| serde_json::Value::Array(Vec::new())),
    }
}

/// The mappings stored with a device.
pub fn mappings(record: &DeviceRecord) -> Result<Vec<Mapping>, InvalidDevice> {
    serde_json::from_value(record.device.mappings.clone())
        .map_err(|e| InvalidDevice(format!("stored mappings of {} are not usable: {e}", record.device.dev_eui)))
}

/// A stored device, typed again.
pub fn from_record(record: &DeviceRecord) -> Result<Device, InvalidDevice> {
    let d = &record.device;
    Ok(Device {
        dev_eui: DevEui::parse(&d.dev_eui).map_err(|e| InvalidDevice(e.to_string()))?,
        name: d.name.clone(),
        model: ModelId::parse(&d.model).map_err(|e| InvalidDevice(e.to_string()))?,
        organisation: d.organisation.clone(),
        entity: d.entity.clone(),
        mappings: mappings(record)?,
    })
}
