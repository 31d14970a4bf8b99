//! An alert as a Smart Data Models `Alert` entity (NGSI-LD, normalised), for the
//! NGSI-LD API: `category`, `subCategory`, `severity`, `alertSource` (the watched
//! entity), `dateIssued`, `validFrom` (when the situation began), `validTo` (when
//! the alert resolved), `description`, `location`.

use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::{json, Map, Value};
use socle_domain::Geometry;
use socle_storage::AlertRecord;

/// The `@context` of an `Alert` entity.
pub const CONTEXT: [&str; 2] = [
    "https://uri.etsi.org/ngsi-ld/v1/ngsi-ld-core-context.jsonld",
    "https://raw.githubusercontent.com/smart-data-models/dataModel.Alert/master/context.jsonld",
];

/// The NGSI-LD id of an alert.
pub fn alert_id(alert: &AlertRecord) -> String {
    format!("urn:ngsi-ld:Alert:{}:{}", alert.organisation, alert.id)
}

/// Smart Data Models categories are coarse: rivers and flood sensors raise
/// `weather`/`floodRisk` alerts, temperatures `highTemperature`/`lowTemperature`;
/// everything else watched by a commune (leaks, containers, lights, silent
/// devices) is `environment` without a sub-category, since the model has none
/// that fits.
fn category(alert: &AlertRecord) -> (&'static str, Option<&'static str>) {
    match alert.entity_type.as_str() {
        "WaterObserved" | "FloodMonitoring" => ("weather", Some("floodRisk")),
        _ if alert.message_en.contains("above the") && alert.message_en.to_lowercase().contains("temperature") => {
            ("environment", Some("highTemperature"))
        }
        _ if alert.message_en.contains("below the") && alert.message_en.to_lowercase().contains("temperature") => {
            ("environment", Some("lowTemperature"))
        }
        _ => ("environment", None),
    }
}

fn date(t: DateTime<Utc>) -> Value {
    json!({"type": "Property", "value": {"@type": "DateTime", "@value": t.to_rfc3339_opts(SecondsFormat::Secs, true)}})
}

fn property(v: impl Into<Value>) -> Value {
    json!({"type": "Property", "value": v.into()})
}

/// The alert as a normalised NGSI-LD entity; `english` picks the description's language.
pub fn to_entity(alert: &AlertRecord, location: Option<&Geometry>, english: bool) -> Value {
    let (category, sub) = category(alert);
    let mut e = Map::new();
    e.insert("id".into(), alert_id(alert).into());
    e.insert("type".into(), "Alert".into());
    e.insert("category".into(), property(category));
    if let Some(sub) = sub {
        e.insert("subCategory".into(), property(sub));
    }
    e.insert("severity".into(), property(alert.severity.clone()));
    e.insert("alertSource".into(), property(alert.entity.to_string()));
    e.insert("dateIssued".into(), date(alert.opened_at));
    e.insert("dateCreated".into(), date(alert.opened_at));
    e.insert("dateModified".into(), date(alert.modified_at));
    e.insert("validFrom".into(), date(alert.since));
    if let Some(end) = alert.resolved_at {
        e.insert("validTo".into(), date(end));
    }
    let description = if english { &alert.message_en } else { &alert.message_fr };
    e.insert("description".into(), property(description.clone()));
    if let Some(g) = location {
        if let Ok(v) = serde_json::to_value(g) {
            e.insert("location".into(), json!({"type": "GeoProperty", "value": v}));
        }
    }
    e.insert("@context".into(), json!(CONTEXT));
    Value::Object(e)
}
