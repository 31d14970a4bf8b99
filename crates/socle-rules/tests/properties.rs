//! Arbitrary sequences of observations (late, duplicated, of any value) and ticks
//! never panic, never give two open alerts for one (rule, entity), never move time
//! backwards, and survive a save/restore at any point.

mod common;

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use common::*;
use proptest::prelude::*;
use serde_json::json;
use socle_domain::{EntityId, Observation, ObservedValue};
use socle_rules::{Engine, EntityRef, Evaluation, Rule, RuleId, Snapshot, Target, Transition};

const ATTRIBUTES: [&str; 7] = ["temperature", "flow", "fillingLevel", "batteryLevel", "level", "powerState", "rssi"];
const VALUES: [f64; 14] = [-1.0, 0.0, 0.1, 0.5, 0.79, 0.8, 0.85, 1.0, 2.0, 24.0, 25.5, 26.5, 30.0, 1e9];

fn rules(target: impl Fn() -> Target) -> Vec<Rule> {
    let week = ["08:00-18:00"];
    let conditions = [
        json!({"type": "threshold", "attribute": "temperature", "direction": "above", "level": 26.0, "clear": 25.0,
               "minDurationSeconds": 900}),
        json!({"type": "silence", "afterSeconds": 7200}),
        json!({"type": "batteryLow", "percent": 20.0}),
        json!({"type": "rate", "attribute": "level", "direction": "rising", "perHour": 0.3, "windowSeconds": 3600}),
        json!({"type": "leak", "attribute": "flow", "level": 0.5, "nights": 2}),
        json!({"type": "fill", "percent": 80.0}),
        json!({"type": "occupancy", "attribute": "powerState", "level": 0.5, "minDurationSeconds": 600,
               "calendar": {"week": {"monday": week, "wednesday": week, "friday": week}, "closed": ["2026-03-30"]}}),
    ];
    conditions
        .into_iter()
        .enumerate()
        .map(|(i, c)| {
            let mut s = spec(&format!("r{i}"), "Règle", target(), kind(c));
            // Every other rule with a resolve delay, to exercise both paths.
            s.resolve_delay_seconds = if i % 2 == 0 { 600 } else { 0 };
            Rule::new(s).unwrap()
        })
        .collect()
}

#[derive(Debug, Clone)]
enum Op {
    /// Minutes from the cursor (negative: a late observation), attribute, value.
    Observe(i64, usize, usize),
    Text(i64, usize, bool),
    /// Resend one of the observations already sent.
    Resend(usize),
    /// Tick this many minutes after the cursor.
    Tick(i64),
    SaveRestore,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        5 => (-120i64..240, 0..ATTRIBUTES.len(), 0..VALUES.len()).prop_map(|(d, a, v)| Op::Observe(d, a, v)),
        1 => (-60i64..240, 0..ATTRIBUTES.len(), any::<bool>()).prop_map(|(d, a, on)| Op::Text(d, a, on)),
        2 => any::<usize>().prop_map(Op::Resend),
        2 => (0i64..600).prop_map(Op::Tick),
        1 => Just(Op::SaveRestore),
    ]
}

/// Checks the alternation of transitions for one (rule, entity) and tracks whether
/// its alert is open.
#[derive(Default)]
struct Alternation {
    open: bool,
    last_at: Option<DateTime<Utc>>,
}

impl Alternation {
    fn check(&mut self, t: &Transition) -> Result<(), TestCaseError> {
        match t {
            Transition::Open { .. } => {
                prop_assert!(!self.open, "a second alert opened: {t:?}");
                self.open = true;
            }
            Transition::Flapping { .. } => prop_assert!(self.open, "flapping without an open alert"),
            Transition::Resolve { .. } => {
                prop_assert!(self.open, "resolved an alert that was not open");
                self.open = false;
            }
        }
        prop_assert!(self.last_at.is_none_or(|l| l <= t.at()), "time went backwards: {t:?}");
        self.last_at = Some(t.at());
        Ok(())
    }
}

fn observation(e: &EntityRef, at: DateTime<Utc>, attribute: usize, value: ObservedValue) -> Observation {
    Observation {
        entity: e.id.clone(),
        attribute: attr(ATTRIBUTES[attribute]),
        observed_at: at,
        value,
        unit_code: None,
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn one_evaluation_never_panics_nor_doubles_alerts(rule_index in 0usize..7, ops in prop::collection::vec(op(), 1..150)) {
        let e = entity("Thing", "x", "Objet");
        let rule = rules(|| Target::Entity(e.id.clone())).swap_remove(rule_index);
        // Around the spring daylight-saving change, where local times are tricky.
        let mut cursor = t("2026-03-28T18:00:00Z");
        let mut ev = Evaluation::new(&rule, &e, cursor);
        let mut sent: Vec<Observation> = Vec::new();
        let mut alternation = Alternation::default();
        for op in ops {
            let transitions = match op {
                Op::Observe(d, a, v) => {
                    let at = cursor + minutes(d);
                    cursor = cursor.max(at);
                    let o = observation(&e, at, a, ObservedValue::number(VALUES[v]).unwrap());
                    sent.push(o.clone());
                    ev.on_observation(&rule, &o)
                }
                Op::Text(d, a, on) => {
                    let at = cursor + minutes(d);
                    cursor = cursor.max(at);
                    let o = observation(&e, at, a, ObservedValue::Text(if on { "on" } else { "off" }.into()));
                    sent.push(o.clone());
                    ev.on_observation(&rule, &o)
                }
                Op::Resend(i) if !sent.is_empty() => {
                    let o = sent[i % sent.len()].clone();
                    ev.on_observation(&rule, &o)
                }
                Op::Resend(_) => Vec::new(),
                Op::Tick(d) => {
                    cursor += minutes(d);
                    ev.on_tick(&rule, cursor)
                }
                Op::SaveRestore => {
                    let json = serde_json::to_string(&ev).unwrap();
                    let back: Evaluation = serde_json::from_str(&json).unwrap();
                    prop_assert_eq!(&back, &ev);
                    ev = back;
                    Vec::new()
                }
            };
            for t in &transitions {
                alternation.check(t)?;
            }
            prop_assert_eq!(ev.open_alert().is_some(), alternation.open);
        }
    }

    #[test]
    fn the_engine_keeps_one_alert_per_rule_and_entity(ops in prop::collection::vec((0usize..2, op()), 1..150)) {
        let things = [entity("Thing", "a", "Objet A"), entity("Thing", "b", "Objet B")];
        let ty = socle_domain::EntityType::parse("Thing").unwrap();
        let all = rules(|| Target::Type(ty.clone()));
        let mut engine = Engine::new(all.clone());
        let mut cursor = t("2026-10-24T18:00:00Z");
        for e in &things {
            engine.track(e, cursor);
        }
        let mut sent: Vec<Observation> = Vec::new();
        let mut alternations: HashMap<(RuleId, EntityId), Alternation> = HashMap::new();
        for (who, op) in ops {
            let e = &things[who];
            let events = match op {
                Op::Observe(d, a, v) => {
                    let at = cursor + minutes(d);
                    cursor = cursor.max(at);
                    let o = observation(e, at, a, ObservedValue::number(VALUES[v]).unwrap());
                    sent.push(o.clone());
                    engine.observe(e, &o)
                }
                Op::Text(d, a, on) => {
                    let at = cursor + minutes(d);
                    cursor = cursor.max(at);
                    let o = observation(e, at, a, ObservedValue::Text(if on { "on" } else { "off" }.into()));
                    sent.push(o.clone());
                    engine.observe(e, &o)
                }
                Op::Resend(i) if !sent.is_empty() => {
                    let o = sent[i % sent.len()].clone();
                    let owner = things.iter().find(|t| t.id == o.entity).unwrap();
                    engine.observe(owner, &o)
                }
                Op::Resend(_) => Vec::new(),
                Op::Tick(d) => {
                    cursor += minutes(d);
                    engine.tick(cursor)
                }
                Op::SaveRestore => {
                    let json = serde_json::to_string(&engine.snapshot()).unwrap();
                    let snapshot: Snapshot = serde_json::from_str(&json).unwrap();
                    let (restored, withdrawn) = Engine::restore(all.clone(), snapshot, cursor);
                    prop_assert!(withdrawn.is_empty());
                    prop_assert_eq!(restored.snapshot(), engine.snapshot());
                    engine = restored;
                    Vec::new()
                }
            };
            for event in &events {
                alternations.entry((event.rule.clone(), event.entity.clone())).or_default().check(&event.transition)?;
            }
            let mut open: Vec<_> = engine.open_alerts().map(|(r, e, _)| (r.clone(), e.clone())).collect();
            let before = open.len();
            open.sort();
            open.dedup();
            prop_assert_eq!(open.len(), before);
            prop_assert_eq!(open.len(), alternations.values().filter(|a| a.open).count());
        }
    }
}
