//! Helpers shared by the integration tests: entities, observations, rules.
#![allow(dead_code)]

use chrono::{DateTime, TimeDelta, Utc};
use socle_domain::{AttributeName, EntityId, EntityType, Observation, ObservedValue, OrganisationId, UnitCode};
use socle_rules::{EntityRef, Evaluation, Label, Rule, RuleId, RuleKind, RuleSpec, Target, Transition};

pub const ORG: &str = "commune-saint-aubin";

pub fn t(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
}

pub fn minutes(m: i64) -> TimeDelta {
    TimeDelta::minutes(m)
}

pub fn attr(s: &str) -> AttributeName {
    AttributeName::parse(s).unwrap()
}

pub fn entity(ty: &str, local: &str, name: &str) -> EntityRef {
    entity_in(ORG, ty, local, name)
}

pub fn entity_in(org: &str, ty: &str, local: &str, name: &str) -> EntityRef {
    let entity_type = EntityType::parse(ty).unwrap();
    EntityRef {
        id: EntityId::new(&entity_type, local).unwrap(),
        entity_type,
        organisation: OrganisationId::parse(org).unwrap(),
        name: Some(name.to_owned()),
    }
}

pub fn obs(e: &EntityRef, attribute: &str, at: DateTime<Utc>, v: f64) -> Observation {
    Observation {
        entity: e.id.clone(),
        attribute: attr(attribute),
        observed_at: at,
        value: ObservedValue::number(v).unwrap(),
        unit_code: None,
    }
}

pub fn obs_unit(e: &EntityRef, attribute: &str, at: DateTime<Utc>, v: f64, unit: &str) -> Observation {
    Observation { unit_code: Some(UnitCode::parse(unit).unwrap()), ..obs(e, attribute, at, v) }
}

pub fn text(e: &EntityRef, attribute: &str, at: DateTime<Utc>, v: &str) -> Observation {
    Observation {
        entity: e.id.clone(),
        attribute: attr(attribute),
        observed_at: at,
        value: ObservedValue::Text(v.to_owned()),
        unit_code: None,
    }
}

/// A spec with the defaults, for tests to adjust before `Rule::new`.
pub fn spec(id: &str, label: &str, target: Target, kind: RuleKind) -> RuleSpec {
    RuleSpec::new(
        RuleId::parse(id).unwrap(),
        OrganisationId::parse(ORG).unwrap(),
        Label::new(label, "").unwrap(),
        target,
        kind,
    )
}

pub fn kind(json: serde_json::Value) -> RuleKind {
    serde_json::from_value(json).unwrap()
}

pub fn rule_on(e: &EntityRef, label: &str, condition: serde_json::Value) -> Rule {
    Rule::new(spec("r1", label, Target::Entity(e.id.clone()), kind(condition))).unwrap()
}

/// A compact view of transitions: ("open"|"flap"|"resolve", at).
pub fn brief(ts: &[Transition]) -> Vec<(&'static str, DateTime<Utc>)> {
    ts.iter()
        .map(|t| match t {
            Transition::Open { at, .. } => ("open", *at),
            Transition::Flapping { at, .. } => ("flap", *at),
            Transition::Resolve { at, .. } => ("resolve", *at),
        })
        .collect()
}

/// Feeds observations (and nothing else) to a fresh evaluation started at the first one.
pub fn run(rule: &Rule, e: &EntityRef, observations: &[Observation]) -> (Evaluation, Vec<Transition>) {
    let mut ev = Evaluation::new(rule, e, observations[0].observed_at);
    let mut out = Vec::new();
    for o in observations {
        out.extend(ev.on_observation(rule, o));
    }
    (ev, out)
}
