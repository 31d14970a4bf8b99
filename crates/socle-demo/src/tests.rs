//! Whole-territory properties: size, determinism, and that the scenario's
//! events are visible in the data.

use std::collections::{BTreeMap, HashMap, HashSet};

use chrono::{DateTime, Duration, TimeZone, Utc};
use socle_domain::{Attribute, AttributeName, EntityId, Geometry, Observation, ObservedValue, OrganisationKind};

use crate::calendar::{at_local, Local};
use crate::{SeriesSpec, Territory};

fn winter_anchor() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 1, 15, 10, 30, 0).unwrap()
}

fn summer_anchor() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 7, 3, 16, 0, 0).unwrap()
}

fn numbers(obs: &[Observation]) -> Vec<(DateTime<Utc>, f64)> {
    obs.iter()
        .filter_map(|o| match o.value {
            ObservedValue::Number(n) => Some((o.observed_at, n.get())),
            ObservedValue::Text(_) => None,
        })
        .collect()
}

fn series<'a>(t: &'a Territory, entity_type: &'a str, attribute: &'a str) -> impl Iterator<Item = &'a SeriesSpec> + 'a {
    t.series.iter().filter(move |s| s.entity_type.as_str() == entity_type && s.attribute.as_str() == attribute)
}

fn quantity(t: &Territory, id: &EntityId, name: &str) -> f64 {
    let e = t.entities.iter().find(|e| &e.id == id).expect("entity exists");
    match e.attributes.get(&AttributeName::parse(name).unwrap()) {
        Some(Attribute::Property { value, .. }) => value.as_f64().expect("numeric property"),
        other => panic!("{name} of {id}: {other:?}"),
    }
}

fn commune_of(id: &EntityId) -> &str {
    id.as_str().split(':').nth(3).unwrap_or_default()
}

#[test]
fn generation_is_deterministic() {
    let a = Territory::generate(winter_anchor());
    let b = Territory::generate(winter_anchor());
    assert_eq!(a, b);
    let (from, to) = (winter_anchor() - Duration::days(2), winter_anchor());
    for (sa, sb) in a.series.iter().zip(&b.series).step_by(7) {
        assert_eq!(sa.observations(from, to), sb.observations(from, to), "{} {}", sa.entity, sa.attribute);
    }
    // The layout does not depend on the anchor; only the story does.
    let c = Territory::generate(summer_anchor());
    assert_eq!(a.entities, c.entities);
    assert_eq!(a.organisations, c.organisations);
    // Generating a range in pieces gives the same points as in one go.
    let s = &a.series[0];
    let mid = from + Duration::minutes(1234);
    let mut pieces = s.observations(from, mid);
    pieces.extend(s.observations(mid, to));
    assert_eq!(pieces, s.observations(from, to));
}

#[test]
fn organisations_form_the_syndicate() {
    let t = Territory::generate(winter_anchor());
    assert_eq!(t.organisations.len(), 5);
    let syndicate = &t.organisations[0];
    assert_eq!(syndicate.kind, OrganisationKind::Syndicat);
    assert_eq!(syndicate.id.as_str(), crate::SYNDICATE_ID);
    assert!(syndicate.code.is_siren());
    let communes: Vec<_> = t.organisations.iter().filter(|o| o.kind == OrganisationKind::Commune).collect();
    assert_eq!(communes.len(), 3);
    assert!(communes.iter().all(|c| c.parent.as_ref() == Some(&syndicate.id) && !c.code.is_siren()));
    let populations: Vec<u32> = communes.iter().filter_map(|c| c.population).collect();
    assert!(populations[0] > 25_000 && (4_000..6_000).contains(&populations[1]) && populations[2] < 1_000);
    let partner = t.organisations.iter().find(|o| o.kind == OrganisationKind::Partenaire).expect("a partner");
    assert!(partner.parent.is_none() && partner.code.is_siren());
    // SIREN numbers carry a Luhn check digit.
    for o in t.organisations.iter().filter(|o| o.code.is_siren()) {
        let sum: u32 = o
            .code
            .as_str()
            .bytes()
            .rev()
            .enumerate()
            .map(|(i, b)| {
                let d = u32::from(b - b'0') * if i % 2 == 1 { 2 } else { 1 };
                if d > 9 {
                    d - 9
                } else {
                    d
                }
            })
            .sum();
        assert_eq!(sum % 10, 0, "{}", o.code.as_str());
    }
}

#[test]
fn about_fifteen_hundred_entities_in_proportion_to_the_communes() {
    let t = Territory::generate(winter_anchor());
    let total = t.entities.len();
    assert!((1350..=1650).contains(&total), "{total} entities");
    let mut per_commune: BTreeMap<&str, usize> = BTreeMap::new();
    for e in &t.entities {
        *per_commune.entry(commune_of(&e.id)).or_default() += 1;
    }
    let share = |slug: &str| per_commune.get(slug).copied().unwrap_or(0) as f64 / total as f64;
    // Small communes equip a little more per inhabitant (a street light per
    // 18 inhabitants rather than 37), hence not exactly 84/14/2 %.
    assert!(share("saint-aubin") > 0.70, "{per_commune:?}");
    assert!((0.12..0.25).contains(&share("montclar")), "{per_commune:?}");
    assert!((0.02..0.08).contains(&share("fontenelle")), "{per_commune:?}");
    let parking: HashSet<&str> =
        t.entities.iter().filter(|e| e.entity_type.as_str() == "ParkingSpot").map(|e| commune_of(&e.id)).collect();
    assert_eq!(parking, HashSet::from(["saint-aubin", "montclar"]));
}

#[test]
fn every_id_and_attribute_is_valid_and_consistent() {
    let t = Territory::generate(winter_anchor());
    let ids: HashSet<&EntityId> = t.entities.iter().map(|e| &e.id).collect();
    assert_eq!(ids.len(), t.entities.len(), "entity ids are unique");
    let orgs: HashSet<_> = t.organisations.iter().map(|o| &o.id).collect();
    for e in &t.entities {
        assert_eq!(EntityId::parse(e.id.as_str()).as_ref(), Ok(&e.id));
        assert_eq!(e.id.type_segment(), e.entity_type.as_str());
        assert!(orgs.contains(&e.organisation));
        assert!(e.name().is_some_and(|n| !n.is_empty()), "{} has a name", e.id);
        match &e.location {
            Some(Geometry::Point([lon, lat])) => {
                assert!((0.4..0.85).contains(lon) && (46.35..46.55).contains(lat), "{} at {lon},{lat}", e.id);
            }
            Some(Geometry::Polygon(rings)) if e.entity_type.as_str() == "AdministrativeArea" => {
                let ring = &rings[0];
                assert!(ring.len() > 10 && ring.first() == ring.last(), "{} is a closed ring", e.id);
                for [lon, lat] in ring {
                    assert!((0.4..0.85).contains(lon) && (46.35..46.55).contains(lat), "{} at {lon},{lat}", e.id);
                }
            }
            other => panic!("{} location {other:?}", e.id),
        }
        for (name, attribute) in &e.attributes {
            assert_eq!(AttributeName::parse(name.as_str()).as_ref(), Ok(name));
            if let Attribute::Relationship { object, .. } = attribute {
                assert!(ids.contains(object), "{} -> {object}", e.id);
            }
        }
    }
    let mut seen = HashSet::new();
    for s in &t.series {
        assert!(ids.contains(&s.entity), "{}", s.entity);
        assert!(seen.insert((&s.entity, &s.attribute)), "{} {} twice", s.entity, s.attribute);
        assert_eq!(AttributeName::parse(s.attribute.as_str()).as_ref(), Ok(&s.attribute));
    }
    // Meters all point at a building and have a type.
    for e in t.entities.iter().filter(|e| e.entity_type.as_str() == "SmartMeteringObservation") {
        assert!(e.attributes.contains_key(&AttributeName::parse("refBuilding").unwrap()));
        assert!(e.attributes.contains_key(&AttributeName::parse("meterType").unwrap()));
    }
}

/// Generates the 90 days before the anchor once, for the volume test and
/// the range checks; prints the counts per type (`--nocapture`).
#[test]
fn ninety_days_stay_under_two_million_points_and_in_range() {
    let t = Territory::generate(winter_anchor());
    let (from, to) = (winter_anchor() - Duration::days(90), winter_anchor());
    let mut entities: BTreeMap<String, usize> = BTreeMap::new();
    for e in &t.entities {
        *entities.entry(e.entity_type.to_string()).or_default() += 1;
    }
    let mut points: BTreeMap<String, usize> = BTreeMap::new();
    let mut total = 0;
    for s in &t.series {
        let obs = s.observations(from, to);
        assert!(obs.windows(2).all(|w| w[0].observed_at < w[1].observed_at), "{} {} is ordered", s.entity, s.attribute);
        let range = match (s.entity_type.as_str(), s.attribute.as_str()) {
            ("WeatherObserved", _) => -20.0..42.0,
            (_, "temperature") => 8.0..35.0,
            (_, "fillingLevel" | "occupancy") => 0.0..1.0001,
            (_, "consumption") => 0.0..2000.0,
            (_, "activePower") => 0.0..20.0,
            (_, "flow") => 0.0..500.0,
            (_, "currentLevel") => 0.0..4.0,
            _ => 0.0..400.0,
        };
        for (at, v) in numbers(&obs) {
            assert!(range.contains(&v), "{} {} = {v} at {at}", s.entity, s.attribute);
        }
        total += obs.len();
        *points.entry(format!("{} {}", s.entity_type, s.attribute)).or_default() += obs.len();
    }
    println!("entities per type: {entities:#?}");
    println!("points per series kind over 90 days: {points:#?}");
    println!("total: {} entities, {} series, {total} points", t.entities.len(), t.series.len());
    assert!(total < 2_000_000, "{total} points");
    assert!(total > 1_000_000, "{total} points: the history should be rich");
}

fn check_leak(t: &Territory) {
    let anchor = t.anchor();
    let leak_day = Local::of(t.scenario.leak_start).date;
    let sector = series(t, "WaterConsumptionObserved", "flow")
        .find(|s| s.entity == t.scenario.leak_sector)
        .expect("leaking sector");
    let obs = sector.observations(anchor - Duration::days(20), anchor);
    let nights = |days: std::ops::Range<i64>| -> f64 {
        let mins: Vec<f64> =
            days.filter_map(|d| crate::water::night_minimum(&obs, leak_day + Duration::days(d))).collect();
        mins.iter().sum::<f64>() / mins.len().max(1) as f64
    };
    // Nights are named by their evening: the leak starts in the small hours
    // of `leak_day`, i.e. during the night of `leak_day - 1`.
    let before = nights(-8..-2);
    let after = nights(0..5);
    assert!(after > before * 1.6, "night minimum {before:.1} -> {after:.1} m³/h (anchor {anchor})");
    // Other sectors do not move.
    for s in series(t, "WaterConsumptionObserved", "flow").filter(|s| s.entity != t.scenario.leak_sector) {
        let obs = s.observations(anchor - Duration::days(20), anchor);
        let m = |d: i64| crate::water::night_minimum(&obs, leak_day + Duration::days(d)).unwrap_or(0.0);
        let (b, a) = ((-8..-2).map(m).sum::<f64>() / 6.0, (0..5).map(m).sum::<f64>() / 5.0);
        assert!(a < b * 1.25, "{}: {b:.1} -> {a:.1} (anchor {anchor})", s.entity);
    }
    let age = anchor - t.scenario.leak_start;
    assert!(age > Duration::days(5) && age < Duration::days(7), "{age}");
}

#[test]
fn the_leak_raises_the_night_minimum_for_good() {
    check_leak(&Territory::generate(winter_anchor()));
}

fn check_containers(t: &Territory) {
    let anchor = t.anchor();
    let mut full_now = 0;
    for s in series(t, "WasteContainer", "fillingLevel") {
        let v = numbers(&s.observations(anchor - Duration::days(90), anchor));
        let emptied = v.windows(2).filter(|w| w[1].1 < w[0].1 - 0.2).count();
        assert!(emptied >= 4, "{} emptied {emptied} times in 90 days (anchor {anchor})", s.entity);
        let max = v.iter().map(|p| p.1).fold(0.0, f64::max);
        assert!(max > 0.2, "{} never fills ({max})", s.entity);
        if s.latest(anchor).and_then(|o| numbers(&[o]).first().map(|p| p.1)).is_some_and(|l| l >= 0.9) {
            full_now += 1;
        }
    }
    assert!((5..=25).contains(&full_now), "{full_now} containers at 90 % or more at the anchor {anchor}");
}

#[test]
fn containers_are_emptied_and_some_are_full_at_the_anchor() {
    check_containers(&Territory::generate(winter_anchor()));
}

fn check_river(t: &Territory) {
    let anchor = t.anchor();
    let gauges: Vec<_> = series(t, "FloodMonitoring", "currentLevel").collect();
    assert_eq!(gauges.len(), 3);
    let mut peaks = Vec::new();
    for s in gauges {
        let alert = quantity(t, &s.entity, "alertLevel");
        let danger = quantity(t, &s.entity, "dangerLevel");
        let v = numbers(&s.observations(anchor - Duration::days(90), anchor));
        let crossings = v.windows(2).filter(|w| w[0].1 < alert && w[1].1 >= alert).count();
        assert_eq!(crossings, 1, "{} crosses {alert} m {crossings} times (anchor {anchor})", s.entity);
        let (peak_at, peak) = v.iter().copied().fold((anchor, 0.0), |a, p| if p.1 > a.1 { p } else { a });
        assert!(peak < danger, "{} peaks at {peak} m, danger {danger}", s.entity);
        let days_before = (anchor - peak_at).num_hours() as f64 / 24.0;
        assert!((19.0..21.5).contains(&days_before), "{} peaks {days_before:.1} days before", s.entity);
        peaks.push((s.entity.clone(), peak_at));
    }
    // Downstream (the town) peaks after upstream (the village).
    peaks.sort_by_key(|p| p.1);
    let order: Vec<&str> = peaks.iter().map(|p| commune_of(&p.0)).collect();
    assert_eq!(order, ["fontenelle", "montclar", "saint-aubin"]);
}

#[test]
fn the_river_crosses_its_alert_level_once() {
    check_river(&Territory::generate(winter_anchor()));
}

#[test]
fn street_lighting_follows_the_night_and_the_scenario() {
    let t = Territory::generate(winter_anchor());
    let day = Local::of(winter_anchor()).date;
    let power = |id: &EntityId, at: DateTime<Utc>| {
        let s = t.series.iter().find(|s| &s.entity == id && s.attribute.as_str() == "activePower").expect("cabinet");
        numbers(&[s.latest(at).expect("hourly point")])[0].1
    };
    let normal = EntityId::parse("urn:ngsi-ld:StreetlightControlCabinet:saint-aubin:armoire-01").unwrap();
    let noon = at_local(day - Duration::days(5), 13.5);
    let night = at_local(day - Duration::days(5), 2.5);
    assert!(power(&normal, noon) < 0.05 && power(&normal, night) > 0.5);
    // Extinction from 23:00 to 05:00.
    assert!(power(&t.scenario.extinction_cabinet, night) < 0.05);
    assert!(power(&t.scenario.extinction_cabinet, at_local(day - Duration::days(5), 21.5)) > 0.5);
    // The faulty cabinet burns in daytime during the anomaly only.
    let stuck = &t.scenario.lighting_anomaly_cabinet;
    assert!(power(stuck, noon) < 0.05);
    assert!(power(stuck, at_local(day - Duration::days(1), 13.5)) > 0.5);
    assert!(power(stuck, at_local(day + Duration::days(3), 13.5)) < 0.05);

    // Lights switch twice a night (four times under extinction).
    let (from, to) = (winter_anchor() - Duration::days(30), winter_anchor() - Duration::days(10));
    let mut defective = 0;
    for s in series(&t, "Streetlight", "powerState") {
        let events = s.observations(from, to).len();
        let cabinet = match t
            .entities
            .iter()
            .find(|e| e.id == s.entity)
            .and_then(|e| e.attributes.get(&AttributeName::parse("refStreetlightControlCabinet").unwrap()).cloned())
        {
            Some(Attribute::Relationship { object, .. }) => object,
            other => panic!("{other:?}"),
        };
        let expected = if cabinet == t.scenario.extinction_cabinet { 80 } else { 40 };
        assert!(events.abs_diff(expected) <= 1, "{} has {events} switches in 20 days", s.entity);
    }
    for s in series(&t, "Streetlight", "status") {
        let events = s.observations(winter_anchor() - Duration::days(30), winter_anchor());
        assert_eq!(events.len(), 1);
        defective += 1;
    }
    assert!((3..=30).contains(&defective), "{defective} defective lamps");
}

fn check_pollution(t: &Territory) {
    let (start, end) = (t.scenario.pollution_start, t.scenario.pollution_end);
    let middle = start + (end - start) / 2;
    for s in series(t, "AirQualityObserved", "pm10") {
        let mean = |at: DateTime<Utc>| {
            let v = numbers(&s.observations(at - Duration::hours(12), at + Duration::hours(12)));
            v.iter().map(|p| p.1).sum::<f64>() / v.len() as f64
        };
        assert!(mean(middle) > 50.0, "{} PM10 {:.0} during the episode", s.entity, mean(middle));
        for d in [-20, -5, 5] {
            let at = middle + Duration::days(d);
            assert!(mean(at) < 50.0, "{} PM10 {:.0} on an ordinary day", s.entity, mean(at));
        }
    }
}

#[test]
fn the_pollution_episode_exceeds_the_information_threshold() {
    check_pollution(&Territory::generate(winter_anchor()));
}

/// The story must read the same whenever the demo is first started: every
/// season, around daylight-saving changes, at any hour.
#[test]
fn the_story_holds_whatever_the_anchor() {
    let anchors = [
        Utc.with_ymd_and_hms(2026, 3, 29, 0, 45, 0).unwrap(),
        Utc.with_ymd_and_hms(2026, 4, 20, 23, 10, 0).unwrap(),
        Utc.with_ymd_and_hms(2026, 6, 1, 12, 0, 0).unwrap(),
        Utc.with_ymd_and_hms(2026, 8, 14, 5, 0, 0).unwrap(),
        Utc.with_ymd_and_hms(2026, 10, 25, 1, 30, 0).unwrap(),
        Utc.with_ymd_and_hms(2026, 11, 30, 19, 0, 0).unwrap(),
        summer_anchor(),
    ];
    for anchor in anchors {
        let t = Territory::generate(anchor);
        check_leak(&t);
        check_containers(&t);
        check_river(&t);
        check_pollution(&t);
    }
}

#[test]
fn the_renovated_school_uses_eighteen_percent_less() {
    let t = Territory::generate(winter_anchor());
    let (from, to) = (t.scenario.renovation_date, winter_anchor());
    let sum = |obs: Vec<Observation>| numbers(&obs).iter().map(|p| p.1).sum::<f64>();
    let school = t.scenario.renovated_building.as_str().replace("Building", "SmartMeteringObservation");
    let mut checked = 0;
    for s in t.series.iter().filter(|s| s.is_meter()) {
        let (actual, baseline) = (sum(s.observations(from, to)), sum(s.baseline_observations(from, to)));
        let ratio = actual / baseline;
        if s.entity.as_str().starts_with(&school) && !s.entity.as_str().ends_with("-eau") {
            assert!((ratio - (1.0 - crate::RENOVATION_SAVINGS)).abs() < 0.002, "{}: {ratio}", s.entity);
            checked += 1;
        } else {
            assert_eq!(actual, baseline, "{}", s.entity);
        }
    }
    assert_eq!(checked, 2);
    // Before the works there is no difference.
    let s = t.series.iter().find(|s| s.entity.as_str() == format!("{school}-gaz")).expect("gas meter");
    let before = (from - Duration::days(10), from);
    assert_eq!(s.observations(before.0, before.1), s.baseline_observations(before.0, before.1));
}

#[test]
fn gas_follows_the_heating_season_and_schools_close_on_weekends() {
    let t = Territory::generate(winter_anchor());
    let gas = t.series.iter().find(|s| s.entity.as_str().ends_with("ecole-jean-moulin-gaz")).expect("gas meter");
    let day_sum =
        |at: DateTime<Utc>| numbers(&gas.observations(at, at + Duration::days(1))).iter().map(|p| p.1).sum::<f64>();
    let winter = day_sum(at_local(chrono::NaiveDate::from_ymd_opt(2026, 1, 13).unwrap(), 0.0)); // a Tuesday
    let sunday = day_sum(at_local(chrono::NaiveDate::from_ymd_opt(2026, 1, 11).unwrap(), 0.0));
    let summer = day_sum(at_local(chrono::NaiveDate::from_ymd_opt(2025, 6, 10).unwrap(), 0.0));
    assert!(winter > 300.0 && winter > sunday * 1.3 && summer < winter * 0.1, "{winter} {sunday} {summer}");
    let temp = t
        .series
        .iter()
        .find(|s| s.entity.as_str().ends_with("ecole-jean-moulin") && s.attribute.as_str() == "temperature")
        .unwrap();
    let at =
        |d, h| numbers(&[temp.latest(at_local(chrono::NaiveDate::from_ymd_opt(2026, 1, d).unwrap(), h)).unwrap()])[0].1;
    assert!(
        at(13, 11.0) > 19.0 && at(13, 4.0) < 18.0 && at(11, 15.0) < 17.5,
        "{} {} {}",
        at(13, 11.0),
        at(13, 4.0),
        at(11, 15.0)
    );
}

#[test]
fn current_values_are_set_on_entities() {
    let t = Territory::generate(winter_anchor());
    let entities = t.entities_at(winter_anchor());
    let by_id: HashMap<&EntityId, _> = entities.iter().map(|e| (&e.id, e)).collect();
    let mut with_value = 0;
    for s in &t.series {
        if let Some(Attribute::Property { observed_at: Some(at), .. }) = by_id[&s.entity].attributes.get(&s.attribute) {
            assert!(*at <= winter_anchor());
            with_value += 1;
        }
    }
    // Only a defective lamp's status (set statically) and parking spots idle
    // for three days may lack a fresh value.
    assert!(with_value as f64 > t.series.len() as f64 * 0.97, "{with_value}/{}", t.series.len());
}

mod sqlite {
    use std::sync::Arc;

    use socle_storage::sqlite::SqliteStore;
    use socle_storage::DynStore;

    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn setup_and_backfill_twice_store_nothing_new() {
        let dir = tempfile::tempdir().expect("temporary directory");
        let store: DynStore = Arc::new(SqliteStore::open(&dir.path().join("demo.db")).await.expect("open SQLite"));
        let now = Utc::now();

        let territory = crate::setup(&store, now).await.expect("setup");
        let first = crate::backfill(&store, &territory, now, 3).await.expect("first backfill");
        assert!(first.outcome.stored > 40_000, "{first:?}");
        assert_eq!(first.outcome.stored, first.generated);

        // A restart a little later: same anchor, nothing new to store.
        let again = crate::setup(&store, now + Duration::seconds(30)).await.expect("second setup");
        assert_eq!(again.anchor(), territory.anchor());
        let second = crate::backfill(&store, &again, now, 3).await.expect("second backfill");
        assert_eq!(second.outcome.stored, 0, "{second:?}");

        // Rewriting an already stored range gives only duplicates.
        let s = &territory.series[0];
        let points = s.observations(now - Duration::days(1), now);
        let outcome = store.write_observations(&points).await.expect("rewrite");
        assert_eq!((outcome.stored, outcome.duplicates), (0, points.len() as u64));

        let organisations = store.list_organisations().await.expect("organisations");
        assert_eq!(organisations.len(), 5);
        assert_eq!(store.get_meta(crate::ANCHOR_KEY).await.expect("meta").as_deref().map(str::len), Some(20));

        // Live generation continues from the backfill without duplicates.
        let mut live = crate::LiveGenerator::new(Arc::new(again), first.until);
        let batch = live.tick(first.until + Duration::minutes(20));
        assert!(!batch.is_empty());
        let outcome = store.write_observations(&batch).await.expect("live write");
        assert_eq!(outcome.stored, batch.len() as u64);
    }
}

#[test]
fn last_years_daily_points_are_the_days_totals_and_mean_temperatures() {
    let t = Territory::generate(winter_anchor());
    let day = Local::of(winter_anchor() - Duration::days(365)).date;
    let (start, end) = (at_local(day, 0.0), at_local(day + Duration::days(1), 0.0));
    let gas = t
        .series
        .iter()
        .find(|s| s.entity.as_str().ends_with("-gaz") && s.has_daily_history())
        .expect("a gas meter with daily history");
    let daily = numbers(&gas.daily_observations(day, day + Duration::days(1)));
    assert_eq!(daily.len(), 1, "one point for one day");
    assert_eq!(daily[0].0, at_local(day, 12.0), "at local noon, inside the local day bucket");
    let hourly: f64 = numbers(&gas.observations(start, end)).iter().map(|p| p.1).sum();
    assert!((daily[0].1 - hourly).abs() < 1e-6 * hourly.max(1.0), "{} vs {hourly}", daily[0].1);
    assert!(daily[0].1 > 0.0, "a school heats in January");

    let station = series(&t, "WeatherObserved", "temperature").next().expect("the weather station");
    let hourly = numbers(&station.observations(start, end));
    let mean = hourly.iter().map(|p| p.1).sum::<f64>() / hourly.len() as f64;
    let daily = numbers(&station.daily_observations(day, day + Duration::days(1)));
    assert!((daily[0].1 - mean).abs() < 1e-9, "{} vs {mean}", daily[0].1);
    // Thirteen months of it stay small: one point a day per meter and station.
    let days = crate::LAST_YEAR_DAYS as usize;
    let series_with_history = t.series.iter().filter(|s| s.has_daily_history()).count();
    assert!(series_with_history * days < 200_000, "{series_with_history} series × {days} days");
    let parking = t.series.iter().find(|s| !s.has_daily_history()).expect("a series without daily history");
    assert!(parking.daily_observations(day, day + Duration::days(30)).is_empty());
}
