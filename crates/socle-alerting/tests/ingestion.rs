//! Observations fed through the ingestion pipeline (generic push bodies) reach the
//! alerting service on the commit feed; each rule kind opens and resolves its alert
//! at the right time, once, including across a clean restart and a crash of the
//! service on the same store. Both backends.
//!
//! Time is driven by the test: observations are in the past and ticks are explicit
//! (`auto_tick: false`), so the expected alerts are exactly what the rule engine's
//! own replay (`socle_rules::preview`) says over the same observations.

use std::collections::BTreeSet;

use chrono::{DateTime, DurationRound, TimeDelta, Utc};
use serde_json::json;
use socle_alerting::{AlertingConfig, AlertingHandle};
use socle_domain::{
    Attribute, Entity, EntityId, EntityType, NewOrganisation, OfficialCode, OrganisationId, OrganisationKind, TimeRange,
};
use socle_ingest::Device;
use socle_ingestion::{registry, Input, Pipeline, PipelineConfig, Source};
use socle_rules::Rule;
use socle_storage::testing::TestStore;
use socle_storage::{AlertFilter, AlertRecord, AlertStatus, DynStore, ObservationScan, RuleRecord};
use tokio_util::sync::CancellationToken;

const ORG: &str = "commune-a";

fn org_id() -> OrganisationId {
    OrganisationId::parse(ORG).unwrap()
}

/// (type, local id, name, device name, attributes it sends)
const ENTITIES: [(&str, &str, &str, &str, &[&str]); 4] = [
    ("Building", "ecole", "l'école Jules Ferry", "capteur-ecole", &["temperature", "activePower"]),
    ("WasteContainer", "verre-mairie", "le conteneur de la mairie", "bac-mairie", &["fillingLevel", "batteryLevel"]),
    ("WaterObserved", "riviere-moulin", "la station du Moulin", "station-moulin", &["currentLevel"]),
    ("WaterMeter", "compteur-stade", "le compteur du stade", "compteur-stade", &["flow"]),
];

fn entity_id(ty: &str, local: &str) -> EntityId {
    EntityId::new(&EntityType::parse(ty).unwrap(), local).unwrap()
}

async fn setup(s: &DynStore) {
    s.upsert_organisation(&NewOrganisation {
        id: org_id(),
        kind: OrganisationKind::Commune,
        name: "Commune A".into(),
        code: OfficialCode::parse("86001").unwrap(),
        parent: None,
        population: None,
        timezone: chrono_tz::Europe::Paris,
        retention_days: None,
    })
    .await
    .unwrap();
    for (i, (ty, local, name, device, attributes)) in ENTITIES.iter().enumerate() {
        let ty_ = EntityType::parse(ty).unwrap();
        let e = Entity::new(entity_id(ty, local), ty_, org_id()).with("name", Attribute::property(*name)).unwrap();
        s.upsert_entities(&[e]).await.unwrap();
        let mappings: Vec<_> = attributes.iter().map(|a| json!({"field": a, "attribute": a})).collect();
        let device: Device = serde_json::from_value(json!({
            "devEui": format!("a84041000181c7e{i}"), "name": device, "model": "dragino-ldds75",
            "organisation": ORG, "entity": entity_id(ty, local).as_str(), "mappings": mappings,
        }))
        .unwrap();
        registry::validate(&device).unwrap();
        s.upsert_devices(&[registry::to_new(&device)]).await.unwrap();
    }
}

fn rules() -> Vec<Rule> {
    let week = ["08:00-18:00"];
    let defs = [
        (
            "temperature",
            json!({"target": {"entity": entity_id("Building", "ecole")}, "condition":
            {"type": "threshold", "attribute": "temperature", "direction": "above", "level": 26.0, "clear": 25.0,
             "minDurationSeconds": 900}}),
        ),
        (
            "occupancy",
            json!({"target": {"type": "Building"}, "condition":
            {"type": "occupancy", "attribute": "activePower", "level": 2.0, "minDurationSeconds": 1800,
             "calendar": {"week": {"monday": week, "tuesday": week, "wednesday": week, "thursday": week,
                                   "friday": week}}}}),
        ),
        (
            "fill",
            json!({"target": {"type": "WasteContainer"}, "resolveDelaySeconds": 600, "condition":
            {"type": "fill", "percent": 80.0, "scale": "percent"}}),
        ),
        (
            "battery",
            json!({"target": {"group": [entity_id("WasteContainer", "verre-mairie")]}, "condition":
            {"type": "batteryLow", "percent": 15.0, "scale": "percent"}}),
        ),
        (
            "river",
            json!({"target": {"type": "WaterObserved"}, "severity": "high", "condition":
            {"type": "rate", "attribute": "currentLevel", "direction": "rising", "perHour": 0.3,
             "windowSeconds": 3600}}),
        ),
        (
            "leak",
            json!({"target": {"type": "WaterMeter"}, "condition":
            {"type": "leak", "attribute": "flow", "level": 0.5, "nights": 2}}),
        ),
        (
            "silence",
            json!({"target": {"type": "WaterMeter"}, "severity": "low", "condition":
            {"type": "silence", "afterSeconds": 7200}}),
        ),
    ];
    defs.into_iter()
        .map(|(id, mut d)| {
            d["id"] = id.into();
            d["organisation"] = ORG.into();
            d["label"] = json!({"fr": format!("Règle {id}")});
            serde_json::from_value(d).unwrap()
        })
        .collect()
}

async fn store_rules(s: &DynStore, rules: &[Rule], at: DateTime<Utc>) {
    for rule in rules {
        s.upsert_rule(&RuleRecord {
            id: rule.id().to_string(),
            organisation: org_id(),
            definition: serde_json::to_value(rule).unwrap(),
            enabled: true,
            author: None,
            created_at: at,
            modified_at: at,
        })
        .await
        .unwrap();
    }
}

/// One generic body: the readings of every device at `t`.
fn body(t: DateTime<Utc>, values: &[(&str, serde_json::Value)]) -> Vec<u8> {
    let messages: Vec<_> =
        values.iter().map(|(device, v)| json!({"device": device, "observedAt": t.to_rfc3339(), "values": v})).collect();
    serde_json::to_vec(&messages).unwrap()
}

/// Readings of the scenario at hour `h` after `base` (every 30 minutes).
fn readings(base: DateTime<Utc>, step: i64) -> (DateTime<Utc>, Vec<(&'static str, serde_json::Value)>) {
    let t = base + TimeDelta::minutes(30 * step);
    let h = step as f64 / 2.0;
    let mut out = Vec::new();
    // The school warms up past 26 °C for two hours on day 1, and its heating stays
    // on (3 kW) during the night of day 2.
    let temperature = if (10.0..12.0).contains(&h) { 27.5 } else { 21.0 };
    let power = if (40.0..46.0).contains(&h) { 3.0 } else { 0.5 };
    out.push(("capteur-ecole", json!({"temperature": temperature, "activePower": power})));
    // The container fills up to 90 % and is emptied at hour 60.
    let fill = if h < 60.0 { (h * 1.5).min(90.0) } else { 5.0 };
    let battery = if (70.0..80.0).contains(&h) { 10.0 } else { 60.0 };
    out.push(("bac-mairie", json!({"fillingLevel": fill, "batteryLevel": battery})));
    // The river rises by 0.5 m an hour between hours 20 and 23, then is steady.
    let level = 1.0 + 0.5 * (h.clamp(20.0, 23.0) - 20.0);
    out.push(("station-moulin", json!({"currentLevel": level})));
    // The meter: a leak (night minimum 0.8 m³/h) from hour 24 to 96; it is silent
    // from hour 100 to 106.
    let leaking = (24.0..96.0).contains(&h);
    let night =
        (t.with_timezone(&chrono_tz::Europe::Paris).time().format("%H").to_string().parse::<u32>().unwrap()).lt(&5);
    let flow = if night {
        if leaking {
            0.8
        } else {
            0.0
        }
    } else {
        2.0
    };
    if !(100.0..106.0).contains(&h) {
        out.push(("compteur-stade", json!({"flow": flow})));
    }
    (t, out)
}

const STEPS: i64 = 240; // five days

async fn start(
    s: &DynStore,
    pipeline: &Pipeline,
    lookback: TimeDelta,
) -> (AlertingHandle, tokio::task::JoinHandle<()>, CancellationToken) {
    let token = CancellationToken::new();
    let config = AlertingConfig { auto_tick: false, first_start_lookback: lookback, ..AlertingConfig::default() };
    let (handle, task) = socle_alerting::start(s.clone(), pipeline.feed(), config, token.clone()).await.unwrap();
    (handle, task, token)
}

async fn feed(pipeline: &Pipeline, handle: &AlertingHandle, base: DateTime<Utc>, steps: std::ops::Range<i64>) {
    for step in steps {
        let (t, values) = readings(base, step);
        pipeline.ingest(Input::new(org_id(), Source::Generic, body(t, &values))).await.unwrap();
        // Every half day, time passes by itself (silence, resolve delays).
        if step % 24 == 23 {
            handle.tick(t + TimeDelta::minutes(29)).await.unwrap();
        }
    }
    handle.flush().await.unwrap();
}

type Key = (String, String, DateTime<Utc>, Option<DateTime<Utc>>);

fn key(a: &AlertRecord) -> Key {
    (a.rule.clone(), a.entity.to_string(), a.opened_at, a.resolved_at)
}

async fn stored(s: &DynStore) -> Vec<AlertRecord> {
    s.list_alerts(&AlertFilter { limit: 1000, ..AlertFilter::default() }).await.unwrap().items
}

/// What the engine's own replay says over everything stored in `(from, to]`.
async fn expected(s: &DynStore, rules: &[Rule], from: DateTime<Utc>, to: DateTime<Utc>) -> BTreeSet<Key> {
    let scan = ObservationScan { from, to, organisation: None, entity_type: None, entities: None, attribute: None };
    let history = s.scan_observations(&scan).await.unwrap();
    let mut out = BTreeSet::new();
    for rule in rules {
        let entities = socle_alerting::targets(s, rule).await.unwrap();
        let p = socle_rules::preview(rule, &entities, history.clone(), TimeRange::new(from, to).unwrap());
        assert!(!p.truncated);
        for a in p.alerts {
            out.insert((rule.id().to_string(), a.entity.to_string(), a.opened_at, a.resolved_at));
        }
    }
    out
}

async fn every_rule_kind_fires_and_resolves_once_across_restarts(t: &TestStore) {
    let s = &t.store;
    setup(s).await;
    let rules = rules();
    // Monday, local midnight, two weeks ago: old enough for every window to be past.
    let base = (Utc::now() - TimeDelta::days(14)).duration_trunc(TimeDelta::days(1)).unwrap();
    let base = base
        - TimeDelta::days(i64::from(chrono::Datelike::weekday(&base).num_days_from_monday()))
        - TimeDelta::hours(1);
    store_rules(s, &rules, base).await;
    let pipeline = Pipeline::new(s.clone(), PipelineConfig::default());
    let start_at = base - TimeDelta::minutes(1);
    let lookback = Utc::now() - start_at;

    // Phase 1: two days, then a clean stop (the state is saved).
    let (handle, task, token) = start(s, &pipeline, lookback).await;
    let mut changes = handle.subscribe();
    feed(&pipeline, &handle, base, 0..96).await;
    token.cancel();
    task.await.unwrap();
    let mut seen = 0;
    while changes.try_recv().is_ok() {
        seen += 1;
    }
    assert!(seen >= 4, "alert changes are broadcast ({seen})");

    // Phase 2: a restarted service on a reopened store continues, then crashes
    // (the task is aborted: nothing saved since its start).
    let s2 = t.reopen().await.unwrap();
    let pipeline2 = Pipeline::new(s2.clone(), PipelineConfig::default());
    let (handle, task, _token) = start(&s2, &pipeline2, lookback).await;
    feed(&pipeline2, &handle, base, 96..180).await;
    task.abort();
    let _ = task.await;

    // Phase 3: after the crash, the observations since the saved watermark are
    // evaluated again; nothing opens twice.
    let (handle, task, token) = start(&s2, &pipeline2, lookback).await;
    feed(&pipeline2, &handle, base, 180..STEPS).await;
    let end = readings(base, STEPS).0;
    handle.tick(end).await.unwrap();
    token.cancel();
    task.await.unwrap();

    let alerts = stored(&s2).await;
    let got: BTreeSet<Key> = alerts.iter().map(key).collect();
    assert_eq!(got.len(), alerts.len(), "no duplicate alert");
    let want = expected(&s2, &rules, start_at, end).await;
    assert_eq!(got, want, "stored alerts are the engine's replay of the same observations");

    // Each kind fired, at the times the scenario says.
    let of = |rule: &str| alerts.iter().filter(|a| a.rule == rule).collect::<Vec<_>>();
    let at = |h: f64| base + TimeDelta::minutes((h * 60.0) as i64);
    let temperature = of("temperature");
    assert_eq!(temperature.len(), 1);
    // Above 26 °C from hour 10; 15 minutes later it has lasted long enough, which the
    // observation of 10:30 reveals (the alert is dated 10:15); back at 21 °C at 12:00.
    assert_eq!((temperature[0].since, temperature[0].opened_at), (at(10.0), at(10.25)));
    assert_eq!(temperature[0].resolved_at, Some(at(12.0)));
    assert_eq!(temperature[0].value, Some(27.5));
    assert!(temperature[0].message_fr.contains("l'école Jules Ferry"), "{}", temperature[0].message_fr);
    let fill = of("fill");
    assert_eq!(fill.len(), 1);
    // 80 % is reached at hour 53.5 (1.5 % an hour); emptied at 60, resolved 10 minutes later.
    assert_eq!(fill[0].opened_at, at(53.5));
    assert_eq!(fill[0].resolved_at, Some(at(60.0) + TimeDelta::minutes(10)));
    let river = of("river");
    assert_eq!(river.len(), 1);
    assert_eq!(river[0].severity, "high");
    assert!(river[0].opened_at > at(20.0) && river[0].opened_at <= at(21.0), "{:?}", river[0]);
    assert!(river[0].resolved_at.is_some_and(|r| r > at(23.0)));
    let leak = of("leak");
    assert_eq!(leak.len(), 1, "one leak alert over several nights");
    assert!(leak[0].resolved_at.is_some_and(|r| r > at(96.0)));
    let silence = of("silence");
    assert_eq!(silence.len(), 1);
    // Last message at hour 99.5, two hours of silence allowed; speaks again at 106.
    assert_eq!((silence[0].opened_at, silence[0].resolved_at), (at(101.5), Some(at(106.0))));
    assert_eq!(of("battery").len(), 1);
    assert_eq!(of("battery")[0].opened_at, at(70.0));
    assert!(!of("occupancy").is_empty(), "heating on outside opening hours");
    assert!(alerts.iter().all(|a| a.status == AlertStatus::Resolved), "every condition cleared: {alerts:#?}");
}

macro_rules! suite {
    ($($test:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $test() {
                    let t = socle_storage::testing::TestStore::sqlite().await;
                    super::$test(&t).await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $test() {
                    let t = socle_storage::testing::TestStore::postgres().await;
                    super::$test(&t).await;
                }
            )*
        }
    };
}

suite!(every_rule_kind_fires_and_resolves_once_across_restarts);
