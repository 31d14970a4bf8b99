//! Micro benchmark, without criterion: observations per second through an engine
//! holding 100 active rules, against an empty engine. Ignored by default; run with
//! `cargo test -p socle-rules --test bench -- --ignored --nocapture`.

mod common;

use std::time::Instant;

use chrono::TimeDelta;
use common::*;
use serde_json::json;
use socle_domain::{EntityType, Observation, ObservedValue};
use socle_rules::{Engine, EntityRef, Rule, Target};

const TYPES: [(&str, &[&str]); 5] = [
    ("Building", &["temperature", "activePower", "powerState"]),
    ("WasteContainer", &["fillingLevel", "batteryLevel", "temperature"]),
    ("WaterMeter", &["flow", "batteryLevel"]),
    ("WaterObserved", &["currentLevel"]),
    ("Streetlight", &["powerState", "activePower"]),
];

fn rules(entities: &[EntityRef]) -> Vec<Rule> {
    let of = |ty: &'static str| entities.iter().filter(move |e| e.entity_type.as_str() == ty);
    let by_type = |ty: &str| Target::Type(EntityType::parse(ty).unwrap());
    let mut out = Vec::new();
    let mut add = |target: Target, condition: serde_json::Value| {
        out.push(Rule::new(spec(&format!("r{}", out.len()), "Règle", target, kind(condition))).unwrap());
    };
    for b in of("Building").take(50) {
        add(
            Target::Entity(b.id.clone()),
            json!({"type": "threshold", "attribute": "temperature", "direction": "above", "level": 26.0, "clear": 25.0, "minDurationSeconds": 900}),
        );
    }
    let bins: Vec<_> = of("WasteContainer").map(|e| e.id.clone()).collect();
    for group in bins.chunks(10).take(20) {
        add(
            Target::Group(group.to_vec()),
            json!({"type": "threshold", "attribute": "temperature", "direction": "above", "level": 60.0}),
        );
    }
    let week = ["08:00-18:00"];
    for i in 0..5 {
        let p = 70.0 + 5.0 * f64::from(i);
        add(by_type("WasteContainer"), json!({"type": "fill", "percent": p}));
        add(
            by_type(if i % 2 == 0 { "WasteContainer" } else { "WaterMeter" }),
            json!({"type": "batteryLow", "percent": 10.0 + f64::from(i)}),
        );
        add(by_type("WaterMeter"), json!({"type": "silence", "afterSeconds": 3600 * (i + 1)}));
        add(
            by_type("WaterMeter"),
            json!({"type": "leak", "attribute": "flow", "level": 0.5 + f64::from(i), "nights": 3}),
        );
        add(
            by_type("WaterObserved"),
            json!({"type": "rate", "attribute": "currentLevel", "direction": "rising", "perHour": 0.3, "windowSeconds": 3600}),
        );
        add(
            by_type("Building"),
            json!({"type": "occupancy", "attribute": "activePower", "level": 1.0 + f64::from(i), "minDurationSeconds": 600,
                   "calendar": {"week": {"monday": week, "tuesday": week, "wednesday": week, "thursday": week, "friday": week}}}),
        );
    }
    out
}

/// Observations of every entity in turn, one minute apart per entity. `stormy`: values
/// drawn at random across the rules' levels, so alerts open and resolve all the time
/// (messages are built); otherwise steady values that change no alert.
fn observations(entities: &[EntityRef], n: usize, stormy: bool) -> Vec<(usize, Observation)> {
    let base = t("2026-03-02T00:00:00Z");
    let mut seed: u64 = 0x2545_f491_4f6c_dd1d;
    let mut next = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        (seed % 10_000) as f64 / 10_000.0
    };
    (0..n)
        .map(|i| {
            let k = i % entities.len();
            let e = &entities[k];
            let attrs = TYPES.iter().find(|(ty, _)| *ty == e.entity_type.as_str()).unwrap().1;
            let round = i / entities.len();
            let attribute = attrs[round % attrs.len()];
            let x = if stormy { next() } else { 0.3 };
            let v = match attribute {
                "temperature" => 18.0 + 12.0 * x,
                "fillingLevel" | "batteryLevel" => x,
                "flow" => 3.0 * x,
                "currentLevel" => 1.0 + x,
                "powerState" => f64::from(x > 0.5),
                _ => 10.0 * x,
            };
            let at = base + TimeDelta::minutes(round as i64);
            let o = Observation {
                entity: e.id.clone(),
                attribute: attr(attribute),
                observed_at: at,
                value: ObservedValue::number(v).unwrap(),
                unit_code: None,
            };
            (k, o)
        })
        .collect()
}

fn run(engine: &mut Engine, entities: &[EntityRef], observations: &[(usize, Observation)]) -> (f64, usize) {
    let start = Instant::now();
    let mut events = 0;
    for (k, o) in observations {
        events += engine.observe(&entities[*k], o).len();
    }
    (observations.len() as f64 / start.elapsed().as_secs_f64(), events)
}

#[test]
#[ignore = "benchmark: run with --ignored --nocapture"]
fn observations_per_second_with_100_rules() {
    let entities: Vec<EntityRef> = TYPES
        .iter()
        .flat_map(|(ty, _)| (0..400).map(move |i| entity(ty, &format!("e{i}"), &format!("{ty} {i}"))))
        .collect();
    let rules = rules(&entities);
    assert_eq!(rules.len(), 100);
    let steady = observations(&entities, 400_000, false);
    let stormy = observations(&entities, 400_000, true);

    let (empty_rate, _) = run(&mut Engine::new([]), &entities, &steady);
    let (steady_rate, steady_events) = run(&mut Engine::new(rules.clone()), &entities, &steady);
    let mut engine = Engine::new(rules);
    let (stormy_rate, stormy_events) = run(&mut engine, &entities, &stormy);
    let ticks = Instant::now();
    let tick_events = engine.tick(t("2026-03-02T00:00:00Z") + TimeDelta::days(2)).len();
    println!(
        "\nsocle-rules (debug build): {} observations over {} entities, 100 rules, {} (rule, entity) evaluations\n\
         steady values, {steady_events} events: {steady_rate:.0} observations/s ({:.2} µs each)\n\
         random values, {stormy_events} events: {stormy_rate:.0} observations/s ({:.2} µs each)\n\
         no rule: {empty_rate:.0} observations/s ({:.2} µs each)\n\
         one tick over every evaluation: {:.1} ms ({tick_events} events)",
        steady.len(),
        entities.len(),
        engine.evaluations(),
        1e6 / steady_rate,
        1e6 / stormy_rate,
        1e6 / empty_rate,
        ticks.elapsed().as_secs_f64() * 1e3,
    );
    assert!(stormy_rate > 10_000.0, "rules too slow: {stormy_rate:.0} observations/s");
}
