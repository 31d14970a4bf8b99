//! How the hypervisor reads an entity: its domain layer (bâtiments,
//! éclairage…), the attribute that tells its state, and that state as a
//! colour class (`ok`, `on`, `off`, `warn`, `alert`, `fault`, `unknown`).
//! The map, the live feed and the dashboards share these rules.

use serde_json::Value;
use socle_domain::{Attribute, Entity};

/// The domains of the territory, in the order of the navigation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Layer {
    Buildings,
    Lighting,
    Water,
    Waste,
    Parking,
    Air,
    Risks,
}

impl Layer {
    pub const ALL: [Layer; 7] =
        [Layer::Buildings, Layer::Lighting, Layer::Water, Layer::Waste, Layer::Parking, Layer::Air, Layer::Risks];

    /// The path segment (`/tableaux/eclairage`) and the map's layer key.
    pub fn slug(self) -> &'static str {
        match self {
            Layer::Buildings => "batiments",
            Layer::Lighting => "eclairage",
            Layer::Water => "eau",
            Layer::Waste => "dechets",
            Layer::Parking => "stationnement",
            Layer::Air => "air",
            Layer::Risks => "risques",
        }
    }

    pub fn from_slug(s: &str) -> Option<Layer> {
        Layer::ALL.into_iter().find(|l| l.slug() == s)
    }

    /// The Smart Data Models types of the layer.
    pub fn types(self) -> &'static [&'static str] {
        match self {
            Layer::Buildings => &["Building", "SmartMeteringObservation"],
            Layer::Lighting => &["StreetlightControlCabinet", "Streetlight"],
            Layer::Water => &["WaterConsumptionObserved"],
            Layer::Waste => &["WasteContainer"],
            Layer::Parking => &["ParkingSpot"],
            // The weather station sits with the air: both are the sky over the territory.
            Layer::Air => &["AirQualityObserved", "WeatherObserved"],
            Layer::Risks => &["FloodMonitoring"],
        }
    }

    pub fn of_type(entity_type: &str) -> Option<Layer> {
        Layer::ALL.into_iter().find(|l| l.types().contains(&entity_type))
    }
}

/// Type of the entities holding a commune's outline (drawn, never listed).
pub const AREA_TYPE: &str = "AdministrativeArea";

/// The attribute whose value tells the state of an entity of this type.
pub fn state_attribute(entity_type: &str) -> Option<&'static str> {
    Some(match entity_type {
        "WasteContainer" => "fillingLevel",
        "Streetlight" => "powerState",
        "StreetlightControlCabinet" => "activePower",
        "ParkingSpot" => "status",
        "AirQualityObserved" => "pm10",
        "FloodMonitoring" => "currentLevel",
        "WaterConsumptionObserved" => "flow",
        "SmartMeteringObservation" => "consumption",
        "Building" | "WeatherObserved" => "temperature",
        _ => return None,
    })
}

fn number(e: &Entity, name: &str) -> Option<f64> {
    match e.attributes.iter().find(|(k, _)| k.as_str() == name).map(|(_, a)| a) {
        Some(Attribute::Property { value, .. }) => value.as_f64(),
        _ => None,
    }
}

fn text<'a>(e: &'a Entity, name: &str) -> Option<&'a str> {
    match e.attributes.iter().find(|(k, _)| k.as_str() == name).map(|(_, a)| a) {
        Some(Attribute::Property { value: Value::String(s), .. }) => Some(s),
        _ => None,
    }
}

/// The state of an entity from its current attributes.
pub fn state(e: &Entity) -> &'static str {
    let Some(attr) = state_attribute(e.entity_type.as_str()) else { return "unknown" };
    let value = match e.attributes.iter().find(|(k, _)| k.as_str() == attr).map(|(_, a)| a) {
        Some(Attribute::Property { value, .. }) => value.clone(),
        _ => return "unknown",
    };
    state_with(e, attr, &value).unwrap_or("unknown")
}

/// The state an entity would have with `value` as its `attribute`; `None`
/// when that attribute does not decide the state.
pub fn state_with(e: &Entity, attribute: &str, value: &Value) -> Option<&'static str> {
    let ty = e.entity_type.as_str();
    if state_attribute(ty) != Some(attribute) {
        return None;
    }
    // A light reported defective stays a fault whatever its power state.
    if ty == "Streetlight" && text(e, "status") == Some("defective") {
        return Some("fault");
    }
    let n = value.as_f64();
    Some(match (ty, value.as_str(), n) {
        ("WasteContainer", _, Some(f)) => level(f, 0.8, 0.95),
        ("Streetlight", Some("on"), _) => "on",
        ("Streetlight", Some("off"), _) => "off",
        ("StreetlightControlCabinet", _, Some(p)) => {
            if p > 0.05 {
                "on"
            } else {
                "off"
            }
        }
        ("ParkingSpot", Some("free"), _) => "ok",
        ("ParkingSpot", Some("occupied"), _) => "warn",
        // Daily limit value of PM10 (50 µg/m³), information threshold at 40 on an hourly reading.
        ("AirQualityObserved", _, Some(pm10)) => level(pm10, 40.0, 50.0),
        ("FloodMonitoring", _, Some(h)) => {
            let alert = number(e, "alertLevel").unwrap_or(f64::INFINITY);
            let danger = number(e, "dangerLevel").unwrap_or(f64::INFINITY);
            level(h, alert, danger)
        }
        (_, _, Some(_)) => "ok",
        _ => "unknown",
    })
}

fn level(v: f64, warn: f64, alert: f64) -> &'static str {
    if v >= alert {
        "alert"
    } else if v >= warn {
        "warn"
    } else {
        "ok"
    }
}

/// A unit code as people read it.
pub fn unit_label(code: &str) -> &str {
    match code {
        "CEL" => "°C",
        "KWH" => "kWh",
        "KWT" => "kW",
        "MTQ" => "m³",
        "MQH" => "m³/h",
        "MTR" => "m",
        "C62" | "P1" => "%",
        "GQ" => "µg/m³",
        "LTR" => "L",
        "VLT" => "V",
        other => other,
    }
}

/// A value with its unit, French or English decimals. Ratios (`C62`) are shown as percentages.
pub fn format_value(value: &Value, unit: Option<&str>, lang: &str) -> String {
    match value.as_f64() {
        Some(mut n) => {
            if unit == Some("C62") {
                n *= 100.0;
            }
            let digits = if n.abs() < 10.0 { 2 } else { 1 };
            let mut s = format!("{n:.digits$}");
            if s.contains('.') {
                s = s.trim_end_matches('0').trim_end_matches('.').to_owned();
            }
            if lang == "fr" {
                s = s.replace('.', ",");
            }
            match unit {
                Some(u) => format!("{s} {}", unit_label(u)),
                None => s,
            }
        }
        None => match value {
            Value::String(s) => s.clone(),
            Value::Null => "—".into(),
            other => other.to_string(),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use socle_domain::{EntityId, EntityType, OrganisationId};

    fn entity(ty: &str) -> Entity {
        let t = EntityType::parse(ty).unwrap();
        Entity::new(EntityId::new(&t, "x").unwrap(), t, OrganisationId::parse("commune-x").unwrap())
    }

    #[test]
    fn states_follow_the_domain_rules() {
        let mut river = entity("FloodMonitoring").with("alertLevel", Attribute::property(2.0)).unwrap();
        river = river.with("dangerLevel", Attribute::property(3.0)).unwrap();
        assert_eq!(state_with(&river, "currentLevel", &Value::from(1.2)), Some("ok"));
        assert_eq!(state_with(&river, "currentLevel", &Value::from(2.4)), Some("warn"));
        assert_eq!(state_with(&river, "currentLevel", &Value::from(3.1)), Some("alert"));
        assert_eq!(state_with(&river, "name", &Value::from("x")), None);
        let bin = entity("WasteContainer");
        assert_eq!(state_with(&bin, "fillingLevel", &Value::from(0.97)), Some("alert"));
        let light = entity("Streetlight").with("status", Attribute::property("defective")).unwrap();
        assert_eq!(state_with(&light, "powerState", &Value::from("on")), Some("fault"));
        assert_eq!(state(&entity("Building")), "unknown");
    }

    #[test]
    fn values_are_written_for_people() {
        assert_eq!(format_value(&Value::from(0.874), Some("C62"), "fr"), "87,4 %");
        assert_eq!(format_value(&Value::from(2.5), Some("MTR"), "en"), "2.5 m");
        assert_eq!(format_value(&Value::from(12.0), Some("KWH"), "fr"), "12 kWh");
        assert_eq!(format_value(&Value::from("on"), None, "fr"), "on");
    }
}
