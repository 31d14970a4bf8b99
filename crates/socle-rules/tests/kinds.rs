//! Each rule kind fires and resolves at the right time, with its message.

mod common;

use chrono::{DateTime, Timelike, Utc};
use chrono_tz::Europe::Paris;
use common::*;
use serde_json::json;
use socle_domain::{Observation, UnitCode};
use socle_rules::{Evaluation, ResolveReason, Rule, Target, Transition};

fn opened(ts: &[Transition]) -> (&DateTime<Utc>, Option<f64>, &socle_rules::Message) {
    match ts.iter().find(|t| matches!(t, Transition::Open { .. })) {
        Some(Transition::Open { since, value, message, .. }) => (since, *value, message),
        _ => panic!("no open in {ts:?}"),
    }
}

fn close(a: Option<f64>, b: f64) -> bool {
    a.is_some_and(|a| (a - b).abs() < 1e-9)
}

// ---------------------------------------------------------------- threshold

fn gym_temperature(resolve_delay: u32) -> (socle_rules::EntityRef, Rule) {
    let gym = entity("Building", "gymnase", "Gymnase Jean Moulin");
    let mut s = spec(
        "r1",
        "Température",
        Target::Entity(gym.id.clone()),
        kind(json!({"type": "threshold", "attribute": "temperature", "direction": "above", "level": 26.0,
                    "clear": 25.0, "minDurationSeconds": 900})),
    );
    s.resolve_delay_seconds = resolve_delay;
    s.unit = Some(UnitCode::parse("CEL").unwrap());
    (gym, Rule::new(s).unwrap())
}

#[test]
fn threshold_waits_its_minimum_duration_holds_through_hysteresis_and_resolves_after_the_delay() {
    let (gym, rule) = gym_temperature(600);
    let base = t("2026-01-05T08:00:00Z");
    let o = |m: i64, v: f64| obs(&gym, "temperature", base + minutes(m), v);
    let mut ev = Evaluation::new(&rule, &gym, base);
    assert!(ev.on_observation(&rule, &o(0, 27.0)).is_empty());
    assert!(ev.on_observation(&rule, &o(10, 26.5)).is_empty());
    assert!(ev.on_tick(&rule, base + minutes(14)).is_empty(), "15 minutes not reached");

    // The tick at 08:20 crosses the end of the minimum duration: the alert opens at
    // 08:15, when the condition had lasted 15 minutes, not when the tick came.
    let ts = ev.on_tick(&rule, base + minutes(20));
    assert_eq!(brief(&ts), [("open", base + minutes(15))]);
    let (since, value, message) = opened(&ts);
    assert_eq!((*since, value), (base, Some(26.5)));
    assert_eq!(
        message.fr,
        "Température : 26,5 °C à Gymnase Jean Moulin, au-dessus du seuil de 26 °C, depuis le 05/01/2026 à 09 h 00."
    );
    assert_eq!(
        message.en,
        "Température: 26.5 °C at Gymnase Jean Moulin, above the 26 °C threshold, since 2026-01-05 09:00."
    );

    assert!(ev.on_observation(&rule, &o(25, 25.5)).is_empty(), "between clear and level: still on");
    assert!(ev.on_observation(&rule, &o(30, 24.0)).is_empty(), "cleared, resolve delay running");
    assert!(ev.on_observation(&rule, &o(35, 27.0)).is_empty(), "back above: delay cancelled, no second alert");
    assert!(ev.on_tick(&rule, base + minutes(45)).is_empty(), "would have resolved at 08:40 without the rise");
    assert!(ev.on_observation(&rule, &o(50, 24.0)).is_empty());
    let ts = ev.on_tick(&rule, base + minutes(70));
    assert_eq!(brief(&ts), [("resolve", base + minutes(60))]);
    let Transition::Resolve { reason, message, .. } = &ts[0] else { unreachable!() };
    assert_eq!(*reason, ResolveReason::Cleared);
    assert_eq!(message.fr, "Température : retour à la normale à Gymnase Jean Moulin. Dernière valeur : 24 °C.");
    assert!(ev.open_alert().is_none());
}

#[test]
fn threshold_spikes_shorter_than_the_minimum_duration_never_fire() {
    let (gym, rule) = gym_temperature(0);
    let base = t("2026-01-05T08:00:00Z");
    let (mut ev, ts) = run(
        &rule,
        &gym,
        &[
            obs(&gym, "temperature", base, 27.0),
            obs(&gym, "temperature", base + minutes(10), 24.0),
            obs(&gym, "temperature", base + minutes(20), 28.0),
            obs(&gym, "temperature", base + minutes(30), 25.0),
        ],
    );
    assert!(ts.is_empty());
    assert!(ev.on_tick(&rule, base + minutes(600)).is_empty());
}

#[test]
fn threshold_fires_from_observations_alone_at_the_same_instant_as_with_ticks() {
    let (gym, rule) = gym_temperature(0);
    let base = t("2026-01-05T08:00:00Z");
    let (_, ts) = run(
        &rule,
        &gym,
        &[
            obs(&gym, "temperature", base, 27.0),
            obs(&gym, "temperature", base + minutes(10), 26.5),
            obs(&gym, "temperature", base + minutes(20), 26.8),
            obs(&gym, "temperature", base + minutes(40), 20.0),
        ],
    );
    assert_eq!(brief(&ts), [("open", base + minutes(15)), ("resolve", base + minutes(40))]);
}

#[test]
fn threshold_below_with_hysteresis() {
    let school = entity("Building", "ecole", "École des Tilleuls");
    let rule = rule_on(
        &school,
        "Température des classes",
        json!({"type": "threshold", "attribute": "temperature", "direction": "below", "level": 16.0, "clear": 18.0}),
    );
    let base = t("2026-01-12T06:00:00Z");
    let (_, ts) = run(
        &rule,
        &school,
        &[
            obs(&school, "temperature", base, 17.0),
            obs(&school, "temperature", base + minutes(30), 15.5),
            obs(&school, "temperature", base + minutes(60), 17.5),
            obs(&school, "temperature", base + minutes(90), 18.0),
        ],
    );
    assert_eq!(brief(&ts), [("open", base + minutes(30)), ("resolve", base + minutes(90))]);
    assert!(opened(&ts).2.fr.contains("en dessous du seuil de 16"), "{}", opened(&ts).2.fr);
}

// ---------------------------------------------------------------- silence, battery

#[test]
fn silence_opens_from_ticks_and_resolves_when_data_comes_back() {
    let gauge = entity("Device", "capteur-7", "la station du Moulin");
    let rule = rule_on(&gauge, "Capteur de niveau", json!({"type": "silence", "afterSeconds": 21600}));
    let start = t("2026-01-05T00:00:00Z");
    let mut ev = Evaluation::new(&rule, &gauge, start);
    assert!(ev.on_observation(&rule, &text(&gauge, "status", start + minutes(60), "ok")).is_empty());
    assert_eq!(ev.next_deadline(&rule), Some(start + minutes(60 + 360)));
    assert!(ev.on_tick(&rule, start + minutes(60 + 359)).is_empty());
    let ts = ev.on_tick(&rule, start + minutes(60 + 390));
    assert_eq!(brief(&ts), [("open", start + minutes(420))]);
    let (since, value, message) = opened(&ts);
    assert_eq!((*since, value), (start + minutes(60), None));
    assert_eq!(
        message.fr,
        "Capteur de niveau : aucune donnée reçue à la station du Moulin depuis le 05/01/2026 à 02 h 00 (délai admis : 6 h)."
    );
    assert!(ev.on_tick(&rule, start + minutes(600)).is_empty(), "one alert, however long the silence");
    let ts = ev.on_observation(&rule, &obs(&gauge, "currentLevel", start + minutes(610), 1.2));
    assert_eq!(brief(&ts), [("resolve", start + minutes(610))]);
    assert!(matches!(&ts[0], Transition::Resolve { message, .. } if message.fr.contains("arrivent de nouveau")));
}

#[test]
fn silence_of_a_device_that_never_spoke_and_of_one_attribute() {
    let meter = entity("WaterMeter", "compteur-12", "Compteur de la mairie");
    let rule = rule_on(&meter, "Compteur d'eau", json!({"type": "silence", "attribute": "flow", "afterSeconds": 3600}));
    let start = t("2026-01-05T00:00:00Z");
    let mut ev = Evaluation::new(&rule, &meter, start);
    // Another attribute proves nothing about the flow readings.
    assert!(ev.on_observation(&rule, &obs(&meter, "batteryLevel", start + minutes(30), 0.9)).is_empty());
    let ts = ev.on_tick(&rule, start + minutes(61));
    assert_eq!(brief(&ts), [("open", start + minutes(60))]);
    assert_eq!(*opened(&ts).0, start);
}

#[test]
fn battery_low_reads_ratios_ignores_unknown_and_has_hysteresis() {
    let probe = entity("Device", "sonde-3", "Sonde du conteneur 3");
    let rule =
        rule_on(&probe, "Sonde de remplissage", json!({"type": "batteryLow", "percent": 20.0, "clearPercent": 30.0}));
    let base = t("2026-02-01T10:00:00Z");
    let o = |h: i64, v: f64| obs(&probe, "batteryLevel", base + minutes(60 * h), v);
    let (_, ts) = run(&rule, &probe, &[o(0, 0.25), o(1, 0.18), o(2, -1.0), o(3, 0.25), o(4, 0.95)]);
    assert_eq!(brief(&ts), [("open", base + minutes(60)), ("resolve", base + minutes(240))]);
    let (_, value, message) = opened(&ts);
    assert!(close(value, 18.0), "{value:?}");
    assert_eq!(
        message.fr,
        "Sonde de remplissage : pile faible à Sonde du conteneur 3 (18 %, seuil 20 %), depuis le 01/02/2026 à 12 h 00."
    );
}

// ---------------------------------------------------------------- rate

#[test]
fn river_rising_faster_than_30_cm_per_hour() {
    let gauge = entity("WaterObserved", "moulin", "la station du Moulin");
    let mut s = spec(
        "crue",
        "Niveau de la rivière",
        Target::Entity(gauge.id.clone()),
        kind(json!({"type": "rate", "attribute": "currentLevel", "direction": "rising", "perHour": 0.30,
                    "clearPerHour": 0.10, "windowSeconds": 3600})),
    );
    s.resolve_delay_seconds = 0;
    let rule = Rule::new(s).unwrap();
    s_check(&rule);
    let base = t("2026-03-12T13:00:00Z");
    let level = |m: i64, v: f64| obs_unit(&gauge, "currentLevel", base + minutes(m), v, "MTR");
    let readings: Vec<Observation> =
        [(0, 2.70), (30, 2.70), (60, 2.70), (90, 2.91), (120, 3.12), (150, 3.12), (180, 3.12)]
            .into_iter()
            .map(|(m, v)| level(m, v))
            .collect();
    let (_, ts) = run(&rule, &gauge, &readings);
    assert_eq!(brief(&ts), [("open", base + minutes(120)), ("resolve", base + minutes(180))]);
    let (_, value, message) = opened(&ts);
    assert!(close(value, 0.42), "{value:?}");
    assert_eq!(
        message.fr,
        "Niveau de la rivière en hausse de 42 cm/h à la station du Moulin (seuil 30 cm/h), depuis le 12/03/2026 à \
         16 h 00. Dernière valeur : 3,12 m."
    );
    assert_eq!(
        message.en,
        "Niveau de la rivière rising by 42 cm/h at la station du Moulin (threshold 30 cm/h), since 2026-03-12 16:00. \
         Last value: 3.12 m."
    );
}

fn s_check(rule: &Rule) {
    // The rule survives its own JSON form (the API stores it so).
    let back: Rule = serde_json::from_value(serde_json::to_value(rule).unwrap()).unwrap();
    assert_eq!(&back, rule);
}

#[test]
fn falling_rate_and_noise_over_short_spans() {
    let tank = entity("WaterObserved", "reservoir", "Réservoir des Hauts");
    let rule = rule_on(
        &tank,
        "Niveau du réservoir",
        json!({"type": "rate", "attribute": "level", "direction": "falling", "perHour": 0.5, "windowSeconds": 7200}),
    );
    let base = t("2026-03-12T13:00:00Z");
    let (_, ts) = run(
        &rule,
        &tank,
        &[
            obs(&tank, "level", base, 4.0),
            // A 20 cm dip a minute later is noise: the span is under half the window.
            obs(&tank, "level", base + minutes(1), 3.8),
            obs(&tank, "level", base + minutes(2), 4.0),
            obs(&tank, "level", base + minutes(60), 3.9),
            obs(&tank, "level", base + minutes(90), 3.0),
        ],
    );
    assert_eq!(brief(&ts), [("open", base + minutes(90))]);
    assert!(opened(&ts).2.fr.starts_with("Niveau du réservoir en baisse de 0,667/h"), "{}", opened(&ts).2.fr);
}

// ---------------------------------------------------------------- leak

/// A sector whose flow follows local time: low at 00:xx and 05:xx, the night
/// minimum between 01:00 and 05:00, high by day. A night window off by one hour
/// would catch a 0.3 reading and miss the leak.
fn sector_flows(
    meter: &socle_rules::EntityRef,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
    night: impl Fn(DateTime<Utc>) -> Option<f64>,
) -> Vec<Observation> {
    let mut out = Vec::new();
    let mut at = from;
    while at < to {
        let v = match at.with_timezone(&Paris).hour() {
            0 | 5 => Some(0.3),
            1..=4 => night(at),
            _ => Some(5.0),
        };
        if let Some(v) = v {
            out.push(obs_unit(meter, "flow", at, v, "MQH"));
        }
        at += minutes(15);
    }
    out
}

fn leak_rule(meter: &socle_rules::EntityRef, nights: u32, window: &str) -> Rule {
    rule_on(
        meter,
        "Secteur de distribution",
        json!({"type": "leak", "attribute": "flow", "level": 0.5, "nights": nights, "night": window}),
    )
}

#[test]
fn leak_after_three_nights_across_the_spring_change_then_resolved() {
    let meter = entity("WaterNetwork", "secteur-nord", "Secteur nord");
    let rule = leak_rule(&meter, 3, "01:00-05:00");
    let fixed = t("2026-03-31T12:00:00Z");
    let flows = sector_flows(&meter, t("2026-03-26T12:00:00Z"), t("2026-04-02T12:00:00Z"), |at| {
        Some(if at < fixed { 0.8 } else { 0.2 })
    });
    let (_, ts) = run(&rule, &meter, &flows);
    // Nights ending 27, 28 and 29 March; the third is the short one (02:00 -> 03:00):
    // it ends at 05:00 CEST, 03:00 UTC. Repaired on the 31st: the night ending on
    // 1 April (03:00 UTC) clears it.
    assert_eq!(brief(&ts), [("open", t("2026-03-29T03:00:00Z")), ("resolve", t("2026-04-01T03:00:00Z"))]);
    let (since, value, message) = opened(&ts);
    assert_eq!(*since, t("2026-03-27T00:00:00Z"), "01:00 CET on the first night");
    assert!(close(value, 0.8));
    assert_eq!(
        message.fr,
        "Secteur de distribution : fuite probable à Secteur nord, débit minimal de nuit au-dessus de 0,5 m³/h 3 nuits \
         de suite (dernière nuit : 0,8 m³/h), depuis la nuit du 27/03/2026."
    );
}

#[test]
fn leak_across_the_autumn_change() {
    let meter = entity("WaterNetwork", "secteur-sud", "Secteur sud");
    let rule = leak_rule(&meter, 3, "01:00-05:00");
    let flows = sector_flows(&meter, t("2026-10-22T12:00:00Z"), t("2026-10-26T12:00:00Z"), |_| Some(0.8));
    let (_, ts) = run(&rule, &meter, &flows);
    // Third night (ending 25 October) is five hours long and ends at 05:00 CET, 04:00 UTC.
    assert_eq!(brief(&ts), [("open", t("2026-10-25T04:00:00Z"))]);
    assert_eq!(*opened(&ts).0, t("2026-10-22T23:00:00Z"), "01:00 CEST on 23 October");
}

#[test]
fn leak_nights_without_data_are_skipped_and_a_quiet_night_breaks_the_streak() {
    let meter = entity("WaterNetwork", "secteur-est", "Secteur est");
    let rule = leak_rule(&meter, 3, "01:00-05:00");
    // No reading at all in the night ending 28 March: skipped, the streak goes on.
    let gap = (t("2026-03-27T23:30:00Z"), t("2026-03-28T04:30:00Z"));
    let flows: Vec<_> = sector_flows(&meter, t("2026-03-26T12:00:00Z"), t("2026-03-31T12:00:00Z"), |_| Some(0.8))
        .into_iter()
        .filter(|o| !(gap.0 <= o.observed_at && o.observed_at < gap.1))
        .collect();
    let (_, ts) = run(&rule, &meter, &flows);
    assert_eq!(brief(&ts), [("open", t("2026-03-30T03:00:00Z"))]);
    // One quiet night in the middle restarts the count.
    let quiet = t("2026-03-28T00:00:00Z")..t("2026-03-28T04:00:00Z");
    let flows = sector_flows(&meter, t("2026-03-26T12:00:00Z"), t("2026-03-31T12:00:00Z"), |at| {
        Some(if quiet.contains(&at) { 0.1 } else { 0.8 })
    });
    let (ev, ts) = run(&rule, &meter, &flows);
    assert_eq!(brief(&ts), [("open", t("2026-03-31T03:00:00Z"))]);
    assert!(ev.open_alert().is_some());
}

#[test]
fn leak_with_a_night_crossing_midnight() {
    let meter = entity("WaterMeter", "piscine", "Piscine municipale");
    let rule = leak_rule(&meter, 1, "23:00-05:00");
    let base = t("2026-01-10T12:00:00Z");
    let flows: Vec<_> = (0..96)
        .map(|q| {
            let at = base + minutes(15 * q);
            let h = at.with_timezone(&Paris).hour();
            obs(&meter, "flow", at, if !(6..22).contains(&h) { 0.9 } else { 4.0 })
        })
        .collect();
    let (_, ts) = run(&rule, &meter, &flows);
    assert_eq!(brief(&ts), [("open", t("2026-01-11T04:00:00Z"))], "05:00 in Paris");
    assert_eq!(*opened(&ts).0, t("2026-01-10T22:00:00Z"), "23:00 the evening before");
}

// ---------------------------------------------------------------- fill

#[test]
fn fill_at_or_above_the_percentage_until_emptied() {
    let bin = entity("WasteContainer", "verre-12", "Place de l'Église");
    let rule = rule_on(&bin, "Conteneur à verre", json!({"type": "fill", "percent": 80.0, "clearPercent": 50.0}));
    let base = t("2026-06-01T06:00:00Z");
    let o = |h: i64, v: f64| obs(&bin, "fillingLevel", base + minutes(60 * h), v);
    let (_, ts) = run(&rule, &bin, &[o(0, 0.5), o(1, 0.79), o(2, 0.80), o(3, 0.85), o(3, 0.85), o(4, 0.6), o(5, 0.1)]);
    assert_eq!(brief(&ts), [("open", base + minutes(120)), ("resolve", base + minutes(300))]);
    let (_, value, message) = opened(&ts);
    assert!(close(value, 80.0));
    assert_eq!(
        message.fr,
        "Conteneur à verre à collecter à Place de l'Église : rempli à 80 % (seuil 80 %), depuis le 01/06/2026 à 10 h 00."
    );
    assert_eq!(
        message.en,
        "Conteneur à verre to collect at Place de l'Église: 80 % full (threshold 80 %), since 2026-06-01 10:00."
    );
}

// ---------------------------------------------------------------- occupancy

fn gym_lights() -> (socle_rules::EntityRef, Rule) {
    let gym = entity("Building", "gymnase", "Gymnase Jean Moulin");
    let day = ["08:00-22:00"];
    let rule = rule_on(
        &gym,
        "Éclairage",
        json!({"type": "occupancy", "attribute": "powerState", "level": 0.5, "minDurationSeconds": 600,
               "calendar": {"week": {"monday": day, "tuesday": day, "wednesday": day, "thursday": day, "friday": day},
                            "closed": ["2026-05-14"]}}),
    );
    (gym, rule)
}

#[test]
fn lights_left_on_at_closing_time_fire_from_ticks() {
    let (gym, rule) = gym_lights();
    // Monday 11 May 2026, Paris is UTC+2: the gym closes at 20:00 UTC.
    let mut ev = Evaluation::new(&rule, &gym, t("2026-05-11T19:00:00Z"));
    assert!(ev.on_observation(&rule, &text(&gym, "powerState", t("2026-05-11T19:50:00Z"), "on")).is_empty());
    assert_eq!(ev.next_deadline(&rule), Some(t("2026-05-11T20:00:00Z")), "closing time");
    assert!(ev.on_tick(&rule, t("2026-05-11T20:05:00Z")).is_empty(), "10 minutes of grace");
    let ts = ev.on_tick(&rule, t("2026-05-11T20:20:00Z"));
    assert_eq!(brief(&ts), [("open", t("2026-05-11T20:10:00Z"))]);
    assert_eq!(*opened(&ts).0, t("2026-05-11T20:00:00Z"));
    let ts = ev.on_observation(&rule, &text(&gym, "powerState", t("2026-05-11T20:30:00Z"), "off"));
    assert_eq!(brief(&ts), [("resolve", t("2026-05-11T20:30:00Z"))]);
}

#[test]
fn occupancy_from_observations_only_and_on_closed_dates() {
    let (gym, rule) = gym_lights();
    let on = |at: &str| text(&gym, "powerState", t(at), "on");
    let off = |at: &str| text(&gym, "powerState", t(at), "off");
    let (_, ts) = run(
        &rule,
        &gym,
        &[
            on("2026-05-11T19:50:00Z"),
            on("2026-05-11T21:00:00Z"),
            off("2026-05-11T21:30:00Z"),
            // Tuesday morning, open: lights on are fine all day long.
            on("2026-05-12T08:00:00Z"),
            off("2026-05-12T19:00:00Z"),
            // Thursday 14 May is a closed date (Ascension Day), even at 10:00.
            on("2026-05-14T08:00:00Z"),
            off("2026-05-14T09:00:00Z"),
        ],
    );
    assert_eq!(
        brief(&ts),
        [
            ("open", t("2026-05-11T20:10:00Z")),
            ("resolve", t("2026-05-11T21:30:00Z")),
            ("open", t("2026-05-14T08:10:00Z")),
            ("resolve", t("2026-05-14T09:00:00Z")),
        ]
    );
}

#[test]
fn heating_consumption_while_closed_message() {
    let hall = entity("Building", "salle-des-fetes", "Salle des fêtes");
    let mut s = spec(
        "chauffage",
        "Chauffage",
        Target::Entity(hall.id.clone()),
        kind(json!({"type": "occupancy", "attribute": "activePower", "level": 0.5,
                    "calendar": {"week": {"saturday": ["14:00-24:00"]}}})),
    );
    s.unit = Some(UnitCode::parse("KWT").unwrap());
    let rule = Rule::new(s).unwrap();
    // Wednesday 7 January 2026 at 03:00 in Paris.
    let (_, ts) = run(&rule, &hall, &[obs(&hall, "activePower", t("2026-01-07T02:00:00Z"), 3.2)]);
    assert_eq!(
        opened(&ts).2.fr,
        "Chauffage : 3,2 kW à Salle des fêtes alors que le site est fermé (seuil 0,5 kW), depuis le 07/01/2026 à 03 h 00."
    );
}
