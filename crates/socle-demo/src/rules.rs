//! The demo's alert rules, per commune, written as the rule editor would save them
//! (`socle_rules::RuleSpec` JSON). They are evaluated over the backfilled history
//! by the same engine as live data, so the scenario's leak, full containers and
//! flood raise their alerts on their own.

use serde_json::{json, Value};
use socle_domain::{Attribute, AttributeName};

use crate::series::Model;
use crate::territory::Territory;

/// One rule per line of the returned list, with ids stable across restarts.
pub fn rules(territory: &Territory) -> Vec<Value> {
    let mut out = Vec::new();
    let orgs: Vec<String> = territory
        .entities
        .iter()
        .map(|e| e.organisation.to_string())
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .collect();
    let has = |org: &str, ty: &str| {
        territory.entities.iter().any(|e| e.organisation.as_str() == org && e.entity_type.as_str() == ty)
    };
    let short = |org: &str| org.trim_start_matches("commune-").to_owned();
    for org in &orgs {
        let s = short(org);
        if has(org, "WasteContainer") {
            out.push(json!({
                "id": format!("demo-{s}-conteneurs-pleins"), "organisation": org,
                "label": {"fr": "Conteneur", "en": "Container"},
                "target": {"type": "WasteContainer"}, "severity": "medium",
                "condition": {"type": "fill", "percent": 80.0, "clearPercent": 60.0},
            }));
            out.push(json!({
                "id": format!("demo-{s}-conteneurs-muets"), "organisation": org,
                "label": {"fr": "Capteur de conteneur muet", "en": "Silent container sensor"},
                "target": {"type": "WasteContainer"}, "severity": "low",
                "condition": {"type": "silence", "afterSeconds": 6 * 3600},
            }));
        }
        if has(org, "FloodMonitoring") {
            out.push(json!({
                "id": format!("demo-{s}-crue-montee"), "organisation": org,
                "label": {"fr": "Montée de la rivière", "en": "River rise"},
                "target": {"type": "FloodMonitoring"}, "severity": "high", "unit": "MTR",
                "condition": {"type": "rate", "attribute": "currentLevel", "direction": "rising",
                              "perHour": 0.02, "windowSeconds": 3 * 3600},
                "resolveDelaySeconds": 3600,
            }));
        }
        if has(org, "StreetlightControlCabinet") {
            let night = ["00:00-10:00", "16:00-24:00"];
            out.push(json!({
                "id": format!("demo-{s}-eclairage-jour"), "organisation": org,
                "label": {"fr": "Éclairage allumé en journée", "en": "Lighting on in daytime"},
                "target": {"type": "StreetlightControlCabinet"}, "severity": "medium", "unit": "KWT",
                "condition": {"type": "occupancy", "attribute": "activePower", "level": 0.05,
                              "minDurationSeconds": 3600,
                              "calendar": {"week": {"monday": night, "tuesday": night, "wednesday": night,
                                 "thursday": night, "friday": night, "saturday": night, "sunday": night}}},
            }));
        }
    }
    let alert_level = AttributeName::parse("alertLevel").ok();
    for e in &territory.entities {
        let org = e.organisation.to_string();
        let local = e.id.as_str().rsplit(':').next().unwrap_or_default().to_owned();
        if e.entity_type.as_str() == "FloodMonitoring" {
            let level = alert_level.as_ref().and_then(|a| match e.attributes.get(a) {
                Some(Attribute::Property { value, .. }) => value.as_f64(),
                _ => None,
            });
            if let Some(level) = level {
                out.push(json!({
                    "id": format!("demo-{}-vigilance-{local}", short(&org)), "organisation": org,
                    "label": {"fr": "Niveau de vigilance de la rivière", "en": "River alert level"},
                    "target": {"entity": e.id.as_str()}, "severity": "critical", "unit": "MTR",
                    "condition": {"type": "threshold", "attribute": "currentLevel", "direction": "above",
                                  "level": level, "clear": level - 0.05, "minDurationSeconds": 900},
                }));
            }
        }
    }
    for s in &territory.series {
        if let Model::Flow(sector) = &s.model {
            let org = territory
                .entities
                .iter()
                .find(|e| e.id == s.entity)
                .map(|e| e.organisation.to_string())
                .unwrap_or_default();
            let local = s.entity.as_str().rsplit(':').next().unwrap_or_default().to_owned();
            // Half the mean flow: an ordinary night stays near 0.3 of it, a burst
            // adds at least as much again.
            let level = (sector.mean_flow() * 0.45 * 100.0).round() / 100.0;
            out.push(json!({
                "id": format!("demo-{}-fuite-{local}", short(&org)), "organisation": org,
                "label": {"fr": "Fuite sur le réseau d'eau", "en": "Water network leak"},
                "target": {"entity": s.entity.as_str()}, "severity": "high", "unit": "MQH",
                "condition": {"type": "leak", "attribute": "flow", "level": level, "nights": 2,
                              "night": "01:00-05:00"},
            }));
        }
    }
    out
}
