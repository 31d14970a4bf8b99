//! The engine: routing by index, tenant isolation, no alert storm, flap guard,
//! persistence, rule edits, ticks, and the preview.

mod common;

use chrono::{DateTime, TimeDelta, Utc};
use common::*;
use serde_json::json;
use socle_domain::{Observation, TimeRange};
use socle_rules::{
    preview, Engine, EntityRef, Event, ResolveReason, Rule, RuleId, RuleSpec, Snapshot, Target, Transition,
};

fn rule(id: &str, label: &str, target: Target, condition: serde_json::Value) -> Rule {
    Rule::new(spec(id, label, target, kind(condition))).unwrap()
}

fn rule_in(org: &str, id: &str, target: Target, condition: serde_json::Value) -> Rule {
    let mut s: RuleSpec = spec(id, "Règle", target, kind(condition));
    s.organisation = socle_domain::OrganisationId::parse(org).unwrap();
    Rule::new(s).unwrap()
}

fn ty(s: &str) -> Target {
    Target::Type(socle_domain::EntityType::parse(s).unwrap())
}

fn rid(s: &str) -> RuleId {
    RuleId::parse(s).unwrap()
}

fn kinds(events: &[Event]) -> Vec<(&str, &str, DateTime<Utc>)> {
    events
        .iter()
        .map(|e| {
            let k = match e.transition {
                Transition::Open { .. } => "open",
                Transition::Flapping { .. } => "flap",
                Transition::Resolve { .. } => "resolve",
            };
            (e.rule.as_str(), k, e.transition.at())
        })
        .collect()
}

#[test]
fn an_observation_touches_only_the_rules_that_watch_it() {
    let gym = entity("Building", "gymnase", "Gymnase");
    let bin1 = entity("WasteContainer", "b1", "Conteneur 1");
    let bin2 = entity("WasteContainer", "b2", "Conteneur 2");
    let bin3 = entity("WasteContainer", "b3", "Conteneur 3");
    let device = entity("Device", "d1", "Capteur 1");
    let foreign_bin = entity_in("commune-voisine", "WasteContainer", "v1", "Conteneur voisin");
    let mut engine = Engine::new([
        rule(
            "temp",
            "Température",
            Target::Entity(gym.id.clone()),
            json!({"type": "threshold", "attribute": "temperature", "direction": "above", "level": 26.0}),
        ),
        rule("fill", "Conteneur", ty("WasteContainer"), json!({"type": "fill", "percent": 80.0})),
        rule(
            "fire",
            "Départ de feu",
            Target::Group(vec![bin2.id.clone(), bin1.id.clone()]),
            json!({"type": "threshold", "attribute": "temperature", "direction": "above", "level": 60.0}),
        ),
        rule("alive", "Capteur", ty("Device"), json!({"type": "silence", "afterSeconds": 3600})),
        rule_in("commune-voisine", "fill-voisin", ty("WasteContainer"), json!({"type": "fill", "percent": 90.0})),
    ]);
    let at = t("2026-06-01T10:00:00Z");
    assert!(engine.observe(&gym, &obs(&gym, "temperature", at, 20.0)).is_empty());
    assert_eq!(engine.evaluations(), 1);
    assert!(engine.evaluation(&rid("temp"), &gym.id).is_some());
    engine.observe(&gym, &obs(&gym, "humidity", at, 50.0));
    assert_eq!(engine.evaluations(), 1, "no rule reads humidity");
    engine.observe(&bin1, &obs(&bin1, "fillingLevel", at, 0.5));
    assert_eq!(engine.evaluations(), 2);
    engine.observe(&bin1, &obs(&bin1, "temperature", at, 20.0));
    assert_eq!(engine.evaluations(), 3);
    engine.observe(&bin3, &obs(&bin3, "temperature", at, 20.0));
    assert_eq!(engine.evaluations(), 3, "bin 3 is not in the group");
    engine.observe(&device, &obs(&device, "rssi", at, -90.0));
    assert_eq!(engine.evaluations(), 4, "silence on any attribute");

    // Same type, another tenant: only that tenant's rule sees it.
    let events = engine.observe(&foreign_bin, &obs(&foreign_bin, "fillingLevel", at, 0.95));
    assert_eq!(kinds(&events), [("fill-voisin", "open", at)]);
    assert!(engine.evaluation(&rid("fill"), &foreign_bin.id).is_none());
    // An entity of our organisation named explicitly by a foreign rule is not watched either.
    let mut e = Engine::new([rule_in(
        "commune-voisine",
        "x",
        Target::Entity(gym.id.clone()),
        json!({"type": "threshold", "attribute": "temperature", "direction": "above", "level": 0.0}),
    )]);
    assert!(e.observe(&gym, &obs(&gym, "temperature", at, 30.0)).is_empty());
    assert_eq!(e.evaluations(), 0);
}

fn bins() -> (EntityRef, EntityRef, Vec<Observation>) {
    let a = entity("WasteContainer", "a", "Conteneur A");
    let b = entity("WasteContainer", "b", "Conteneur B");
    let base = t("2026-06-01T00:00:00Z");
    let mut history = Vec::new();
    for h in 0..120 {
        let at = base + TimeDelta::hours(h);
        history.push(obs(&a, "fillingLevel", at, f64::from((h % 40) as u32) / 40.0));
        history.push(obs(&b, "fillingLevel", at, f64::from(((h + 15) % 40) as u32) / 40.0));
    }
    (a, b, history)
}

fn fill_engine() -> Engine {
    Engine::new([rule("fill", "Conteneur", ty("WasteContainer"), json!({"type": "fill", "percent": 80.0}))])
}

fn feed(engine: &mut Engine, a: &EntityRef, b: &EntityRef, history: &[Observation]) -> Vec<Event> {
    history.iter().flat_map(|o| engine.observe(if o.entity == a.id { a } else { b }, o)).collect()
}

#[test]
fn duplicated_and_out_of_order_observations_make_no_extra_alert() {
    let (a, b, history) = bins();
    let clean = feed(&mut fill_engine(), &a, &b, &history);
    assert_eq!(clean.iter().filter(|e| matches!(e.transition, Transition::Open { .. })).count(), 6);

    // Every observation three times, and each followed by a resend of an older one
    // (network retries, a gateway replaying its buffer).
    let mut messy = Vec::new();
    for (i, o) in history.iter().enumerate() {
        messy.extend([o.clone(), o.clone(), o.clone()]);
        messy.push(history[i / 2].clone());
        messy.push(history[i.saturating_sub(7)].clone());
    }
    let noisy = feed(&mut fill_engine(), &a, &b, &messy);
    assert_eq!(noisy, clean);
}

#[test]
fn flap_guard_keeps_an_oscillating_alert_open() {
    let gym = entity("Building", "gymnase", "Gymnase");
    let condition = json!({"type": "threshold", "attribute": "temperature", "direction": "above", "level": 26.0});
    let base = t("2026-01-05T08:00:00Z");
    // 27 / 24 every five minutes for two hours, then 24 for two hours.
    let history: Vec<_> = (0..48)
        .map(|i| obs(&gym, "temperature", base + minutes(5 * i), if i < 24 && i % 2 == 0 { 27.0 } else { 24.0 }))
        .collect();

    let mut guarded = Engine::new([rule("t", "Température", Target::Entity(gym.id.clone()), condition.clone())]);
    let events: Vec<_> = history.iter().flat_map(|o| guarded.observe(&gym, o)).collect();
    assert_eq!(
        kinds(&events),
        [
            ("t", "open", base),
            ("t", "resolve", base + minutes(5)),
            ("t", "open", base + minutes(10)),
            ("t", "resolve", base + minutes(15)),
            ("t", "open", base + minutes(20)),
            // Third rise within the hour: it stays open...
            ("t", "flap", base + minutes(25)),
            // ...until the temperature stayed normal for a whole hour after the last
            // rise (09:50 -> normal from 09:55).
            ("t", "resolve", base + minutes(115 + 60)),
        ]
    );
    assert!(
        matches!(&events[5].transition, Transition::Flapping { rises: 3, message, .. } if message.fr.contains("instable"))
    );

    let mut s = spec("t", "Température", Target::Entity(gym.id.clone()), kind(condition));
    s.flap_guard = None;
    let mut unguarded = Engine::new([Rule::new(s).unwrap()]);
    let opens = history
        .iter()
        .flat_map(|o| unguarded.observe(&gym, o))
        .filter(|e| matches!(e.transition, Transition::Open { .. }))
        .count();
    assert_eq!(opens, 12, "without the guard, one alert per oscillation");
}

/// Rules of every kind on one building, and a day of mixed observations.
fn mixed() -> (Vec<Rule>, EntityRef, Vec<Observation>) {
    let b = entity("Building", "mairie", "Mairie");
    let target = || Target::Entity(b.id.clone());
    let day = ["08:00-18:00"];
    let rules = vec![
        rule(
            "threshold",
            "Température",
            target(),
            json!({"type": "threshold", "attribute": "temperature", "direction": "above", "level": 26.0, "clear": 25.0, "minDurationSeconds": 900}),
        ),
        rule(
            "silence",
            "Compteur",
            target(),
            json!({"type": "silence", "attribute": "activePower", "afterSeconds": 3600}),
        ),
        rule("battery", "Pile", target(), json!({"type": "batteryLow", "percent": 20.0})),
        rule(
            "rate",
            "Niveau",
            target(),
            json!({"type": "rate", "attribute": "level", "direction": "rising", "perHour": 0.3, "windowSeconds": 3600}),
        ),
        rule("leak", "Eau", target(), json!({"type": "leak", "attribute": "flow", "level": 0.5, "nights": 1})),
        rule("fill", "Cuve", target(), json!({"type": "fill", "attribute": "tankLevel", "percent": 80.0})),
        rule(
            "occupancy",
            "Chauffage",
            target(),
            json!({"type": "occupancy", "attribute": "activePower", "level": 1.0, "calendar": {"week": {"monday": day, "tuesday": day}}}),
        ),
    ];
    let base = t("2026-03-30T00:00:00Z"); // Monday
    let mut history = Vec::new();
    for q in 0..(4 * 48) {
        let at = base + minutes(15 * q);
        let h = q / 4;
        history.push(obs(&b, "temperature", at, if (10..14).contains(&h) { 28.0 } else { 21.0 }));
        history.push(obs(&b, "batteryLevel", at, if h < 20 { 0.5 } else { 0.1 }));
        history.push(obs(&b, "level", at, if h < 30 { 1.0 } else { 1.0 + 0.2 * (q - 120) as f64 }));
        history.push(obs(&b, "flow", at, 0.8));
        history.push(obs(&b, "tankLevel", at, (q % 40) as f64 / 40.0));
        if !(20..26).contains(&h) {
            history.push(obs(&b, "activePower", at, 3.0));
        }
    }
    (rules, b, history)
}

#[test]
fn state_round_trips_through_serde_mid_stream() {
    let (rules, b, history) = mixed();
    let mut straight = Engine::new(rules.clone());
    let expected: Vec<Event> = history.iter().flat_map(|o| straight.observe(&b, o)).collect();
    let kinds_seen: std::collections::BTreeSet<_> = expected.iter().map(|e| e.rule.as_str().to_owned()).collect();
    assert_eq!(kinds_seen.len(), 7, "every kind fires in the scenario: {kinds_seen:?}");

    for cut in [1, history.len() / 3, history.len() / 2, history.len() - 1] {
        let mut first = Engine::new(rules.clone());
        let mut events: Vec<Event> = history[..cut].iter().flat_map(|o| first.observe(&b, o)).collect();
        let json = serde_json::to_string(&first.snapshot()).unwrap();
        let snapshot: Snapshot = serde_json::from_str(&json).unwrap();
        assert_eq!(snapshot, first.snapshot());
        let (mut restored, withdrawn) = Engine::restore(rules.clone(), snapshot, history[cut].observed_at);
        assert!(withdrawn.is_empty());
        assert_eq!(restored.snapshot(), first.snapshot());
        events.extend(history[cut..].iter().flat_map(|o| restored.observe(&b, o)));
        assert_eq!(events, expected, "cut at {cut}");
        assert_eq!(restored.snapshot(), straight.snapshot());
    }
}

#[test]
fn rule_edits_and_removals_withdraw_or_re_evaluate_open_alerts() {
    let a = entity("WasteContainer", "a", "Conteneur A");
    let b = entity("WasteContainer", "b", "Conteneur B");
    let group = |ids: Vec<&EntityRef>| Target::Group(ids.into_iter().map(|e| e.id.clone()).collect());
    let at = t("2026-06-01T10:00:00Z");
    let mut engine =
        Engine::new([rule("g", "Conteneur", group(vec![&a, &b]), json!({"type": "fill", "percent": 80.0}))]);
    engine.observe(&a, &obs(&a, "fillingLevel", at, 0.9));
    engine.observe(&b, &obs(&b, "fillingLevel", at, 0.9));
    assert_eq!(engine.open_alerts().count(), 2);

    // B leaves the group: its alert is withdrawn, A's stays.
    let later = at + minutes(5);
    let events =
        engine.upsert_rule(rule("g", "Conteneur", group(vec![&a]), json!({"type": "fill", "percent": 80.0})), later);
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].entity, b.id);
    assert!(
        matches!(events[0].transition, Transition::Resolve { reason: ResolveReason::Withdrawn, at, .. } if at == later)
    );
    assert_eq!(engine.open_alerts().count(), 1);

    // The threshold is raised to 95 %: the detector restarts, the open alert stays
    // until a reading shows it is no longer justified.
    assert!(engine
        .upsert_rule(rule("g", "Conteneur", group(vec![&a]), json!({"type": "fill", "percent": 95.0})), later)
        .is_empty());
    assert_eq!(engine.open_alerts().count(), 1);
    let events = engine.observe(&a, &obs(&a, "fillingLevel", later + minutes(60), 0.9));
    assert_eq!(kinds(&events), [("g", "resolve", later + minutes(60))]);
    let events = engine.observe(&a, &obs(&a, "fillingLevel", later + minutes(120), 0.96));
    assert_eq!(kinds(&events), [("g", "open", later + minutes(120))]);

    // Restoring without the rule withdraws; removing it too.
    let (_, withdrawn) = Engine::restore([], engine.snapshot(), later + minutes(130));
    assert_eq!(withdrawn.len(), 1);
    let events = engine.remove_rule(&rid("g"), later + minutes(130));
    assert!(
        matches!(&events[..], [Event { transition: Transition::Resolve { reason: ResolveReason::Withdrawn, message, .. }, .. }] if message.fr.contains("supprimée"))
    );
    assert_eq!(engine.rules().count(), 0);
    assert_eq!(engine.evaluations(), 0);
}

#[test]
fn ticks_and_deadlines_for_devices_that_stop_or_never_start() {
    let d1 = entity("Device", "d1", "Capteur 1");
    let d2 = entity("Device", "d2", "Capteur 2");
    let mut engine =
        Engine::new([rule("alive", "Capteur", ty("Device"), json!({"type": "silence", "afterSeconds": 21600}))]);
    let start = t("2026-01-05T00:00:00Z");
    engine.track(&d1, start);
    engine.track(&d2, start);
    engine.track(&entity("Building", "x", "X"), start);
    assert_eq!(engine.evaluations(), 2);
    engine.observe(&d1, &obs(&d1, "rssi", start + minutes(60), -100.0));
    assert_eq!(engine.next_deadline(), Some(start + minutes(360)));
    let events = engine.tick(start + minutes(360));
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].entity, d2.id);
    assert!(engine.tick(start + minutes(400)).is_empty());
    assert_eq!(engine.next_deadline(), Some(start + minutes(420)));
    let events = engine.tick(start + minutes(600));
    assert_eq!((events.len(), events[0].entity.clone()), (1, d1.id.clone()));
    assert_eq!(engine.open_alerts().count(), 2);
    assert!(engine.tick(start + minutes(6000)).is_empty(), "no storm: one alert each, however long");
}

#[test]
fn preview_counts_alerts_over_thirty_days() {
    let base = t("2026-05-01T00:00:00Z");
    let bins: Vec<EntityRef> =
        (0..3).map(|k| entity("WasteContainer", &format!("b{k}"), &format!("Conteneur {k}"))).collect();
    let mut history = Vec::new();
    for h in 0..720 {
        for (k, bin) in bins.iter().enumerate() {
            let level = ((h + 10 * k as i64) % 40) as f64 / 40.0;
            history.push(obs(bin, "fillingLevel", base + TimeDelta::hours(h), level));
        }
    }
    // Readings of another attribute and of another tenant's container do not count.
    let foreign = entity_in("commune-voisine", "WasteContainer", "z", "Ailleurs");
    history.push(obs(&foreign, "fillingLevel", base, 0.99));
    history.push(obs(&bins[0], "temperature", base, 80.0));
    history.reverse(); // any order
    let mut entities = bins.clone();
    entities.push(foreign);
    let range = TimeRange::new(base, base + TimeDelta::days(30)).unwrap();
    let fill = rule("fill", "Conteneur", ty("WasteContainer"), json!({"type": "fill", "percent": 80.0}));
    let p = preview(&fill, &entities, history, range);
    assert_eq!((p.opened, p.resolved, p.still_open, p.entities, p.observations), (54, 53, 1, 3, 2160));
    assert_eq!(p.alerts.len(), 54);
    assert!(!p.truncated);
    let first = &p.alerts[0];
    assert_eq!((first.entity.clone(), first.opened_at), (bins[2].id.clone(), base + TimeDelta::hours(12)));
    assert_eq!(first.resolved_at, Some(base + TimeDelta::hours(20)));
    assert!(first.message.fr.contains("Conteneur 2"));

    // A silence rule previewed over the month sees a device that never spoke.
    let dead = entity("Device", "mort", "Capteur muet");
    let alive = entity("Device", "vivant", "Capteur vivant");
    let history: Vec<_> = (0..720).map(|h| obs(&alive, "rssi", base + TimeDelta::hours(h), -90.0)).collect();
    let silence = rule("alive", "Capteur", ty("Device"), json!({"type": "silence", "afterSeconds": 86400}));
    let p = preview(&silence, &[dead.clone(), alive], history, range);
    assert_eq!((p.opened, p.still_open), (1, 1));
    assert_eq!((p.alerts[0].entity.clone(), p.alerts[0].opened_at), (dead.id, base + TimeDelta::days(1)));
}
