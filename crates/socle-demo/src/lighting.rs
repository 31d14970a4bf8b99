//! Public lighting: control cabinets switch their lights on at dusk and off
//! at dawn (photocell plus astronomical clock); one cabinet practises the
//! 23:00–05:00 night extinction many French communes adopted; one misses its
//! dawn switch-off for a few days; a few lamps are broken.

use chrono::{DateTime, Duration, NaiveDate, Utc};
use serde_json::json;
use socle_domain::Attribute;

use crate::calendar::{at_local, day_index, Local};
use crate::communes::Commune;
use crate::noise::{hash, normal, seed_of, signed, Rng};
use crate::series::{Cadence, Model, Value};
use crate::territory::{quantity, set, text, Builder};
use crate::weather::sun_times;

/// `armoire-07`: the local id of cabinet number 7 of a commune.
pub(crate) fn cabinet_local_id(number: usize) -> String {
    format!("armoire-{number:02}")
}

/// Controller and meter consumption when the lights are off, kW.
const STANDBY_KW: f64 = 0.012;

type Interval = (DateTime<Utc>, DateTime<Utc>);

#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Cabinet {
    lon: f64,
    lat: f64,
    seed: u64,
    extinction: bool,
    /// Stays lit over this interval whatever the time of day.
    stuck_on: Option<Interval>,
    load_kw: f64,
}

impl Cabinet {
    /// Photocells are not all calibrated alike: a few minutes either way, per day.
    fn drift(&self, date: NaiveDate, salt: u64) -> Duration {
        Duration::seconds((180.0 * signed(self.seed ^ salt, day_index(date))) as i64)
    }
    fn switch_on(&self, date: NaiveDate) -> DateTime<Utc> {
        sun_times(date, self.lat, self.lon).1 + Duration::minutes(8) + self.drift(date, 1)
    }
    fn switch_off(&self, date: NaiveDate) -> DateTime<Utc> {
        sun_times(date, self.lat, self.lon).0 - Duration::minutes(8) + self.drift(date, 2)
    }

    /// The lit intervals around `[from, to)`, sorted and merged. Every night
    /// that can touch the range is included, so the interval edges inside
    /// the range do not depend on the range.
    pub(crate) fn lit(&self, from: DateTime<Utc>, to: DateTime<Utc>) -> Vec<Interval> {
        let first = Local::of(from).date - Duration::days(1);
        let last = Local::of(to).date;
        let mut spans = Vec::new();
        let mut d = first;
        while d <= last {
            let next = d + Duration::days(1);
            let (on, off) = (self.switch_on(d), self.switch_off(next));
            if self.extinction {
                let (cut, back) = (at_local(d, 23.0), at_local(next, 5.0));
                if on < cut {
                    spans.push((on, cut));
                }
                if back < off {
                    spans.push((back, off));
                }
            } else {
                spans.push((on, off));
            }
            d = next;
        }
        if let Some((a, b)) = self.stuck_on {
            if a < to + Duration::days(2) && b > from - Duration::days(2) {
                spans.push((a, b));
            }
        }
        spans.sort_by_key(|s| s.0);
        let mut merged: Vec<Interval> = Vec::with_capacity(spans.len());
        for (a, b) in spans {
            match merged.last_mut() {
                Some(last) if a <= last.1 => last.1 = last.1.max(b),
                _ => merged.push((a, b)),
            }
        }
        merged
    }

    /// Mean active power (kW) over the hour ending at `t`.
    pub(crate) fn active_power(&self, t: DateTime<Utc>) -> f64 {
        let from = t - Duration::hours(1);
        let lit_s: i64 = self.lit(from, t).iter().map(|&(a, b)| (b.min(t) - a.max(from)).num_seconds().max(0)).sum();
        let share = (lit_s as f64 / 3600.0).min(1.0);
        let load = self.load_kw * share * (1.0 + 0.03 * normal(self.seed, t.timestamp() as u64));
        ((STANDBY_KW + load.max(0.0)) * 1000.0).round() / 1000.0
    }
}

/// A street light follows its cabinet; once its lamp has failed it reports
/// "off" at every switch.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Light {
    cabinet: Cabinet,
    seed: u64,
    failed_at: Option<DateTime<Utc>>,
}

impl Light {
    pub(crate) fn switches(&self, from: DateTime<Utc>, to: DateTime<Utc>) -> Vec<(DateTime<Utc>, Value)> {
        let mut out = Vec::new();
        for (a, b) in self.cabinet.lit(from, to) {
            for (edge, state) in [(a, "on"), (b, "off")] {
                // Relays and radio reports add a few seconds per light.
                let t = edge + Duration::seconds((hash(self.seed, edge.timestamp() as u64) % 20) as i64);
                if t >= from && t < to {
                    let broken = self.failed_at.is_some_and(|f| t >= f);
                    out.push((t, Value::Text(if broken { "off" } else { state })));
                }
            }
        }
        out.sort_by_key(|e| e.0);
        out
    }
}

/// The single `status` event of a light whose lamp failed.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Failure {
    at: DateTime<Utc>,
}

impl Failure {
    pub(crate) fn events(&self, from: DateTime<Utc>, to: DateTime<Utc>) -> Vec<(DateTime<Utc>, Value)> {
        if self.at >= from && self.at < to {
            vec![(self.at, Value::Text("defective"))]
        } else {
            Vec::new()
        }
    }
}

/// Adds the commune's cabinets, one per pseudo-street, and their lights.
pub(crate) fn generate(b: &mut Builder, c: &Commune) {
    let streets = c.streets(b.seed);
    let anchor_day = Local::of(b.scenario.anchor).date;
    for (k, street) in streets.iter().enumerate() {
        let number = k + 1;
        let local = cabinet_local_id(number);
        let mut rng = Rng::for_name(b.seed, &format!("{}:{local}", c.slug));
        let (lo, hi) = c.lights_per_cabinet;
        let lights = lo + rng.below(hi - lo + 1);
        // Older districts still have 100–150 W sodium lamps; renovated ones LED.
        let led = rng.chance(0.6);
        let lamp_w: Vec<f64> = (0..lights)
            .map(|_| if led { rng.range(35.0, 70.0).round() } else { [100.0, 150.0][rng.below(2)] })
            .collect();
        let load_kw = lamp_w.iter().sum::<f64>() / 1000.0;

        let at = street.point(-10.0, 4.0);
        let name = format!("Armoire d'éclairage {number:02} – {}", street.name);
        let mut cabinet_entity = b.entity("StreetlightControlCabinet", c, &local, &name, at);
        let extinction = b.scenario.extinction_cabinet == cabinet_entity.id;
        let stuck = b.scenario.lighting_anomaly_cabinet == cabinet_entity.id;
        set(&mut cabinet_entity, "maximumPowerAvailable", quantity((load_kw * 1.5).ceil(), "KWT"));
        set(&mut cabinet_entity, "workingMode", text(json!("automatic")));
        set(&mut cabinet_entity, "areaServed", text(json!(street.name)));
        if extinction {
            set(&mut cabinet_entity, "description", text(json!("Extinction en cœur de nuit de 23 h à 5 h")));
        }
        let cabinet = Cabinet {
            lon: at[0],
            lat: at[1],
            seed: hash(b.seed, seed_of(cabinet_entity.id.as_str())),
            extinction,
            stuck_on: stuck.then_some((b.scenario.lighting_anomaly_start, b.scenario.lighting_anomaly_end)),
            load_kw,
        };
        b.series(&cabinet_entity, "activePower", Some("KWT"), Cadence::Hourly, Model::CabinetPower(cabinet.clone()));
        let cabinet_id = cabinet_entity.id.clone();
        b.add(cabinet_entity);

        let spacing = rng.range(25.0, 32.0);
        for (i, watts) in lamp_w.iter().enumerate() {
            let local = format!("pl-{number:02}-{:03}", i + 1);
            let side = if i % 2 == 0 { 6.0 } else { -6.0 };
            let at = street.point(i as f64 * spacing + rng.range(-2.0, 2.0), side);
            let name = format!("Point lumineux {number:02}-{:03} – {}", i + 1, street.name);
            let mut light = b.entity("Streetlight", c, &local, &name, at);
            // About one lamp in eighty is out, failed in the last few weeks,
            // noticed at a switch-on.
            let failed_at = rng.chance(0.0125).then(|| {
                let day = anchor_day - Duration::days(1 + rng.below(25) as i64);
                cabinet.switch_on(day) + Duration::seconds(60)
            });
            set(&mut light, "status", text(json!(if failed_at.is_some() { "defective" } else { "ok" })));
            set(&mut light, "areaServed", text(json!(street.name)));
            set(&mut light, "powerRating", quantity(*watts, "WTT"));
            set(&mut light, "refStreetlightControlCabinet", Attribute::relationship(cabinet_id.clone()));
            let seed = hash(b.seed, seed_of(light.id.as_str()));
            let model = Light { cabinet: cabinet.clone(), seed, failed_at };
            b.series(&light, "powerState", None, Cadence::Events, Model::PowerState(model));
            if let Some(at) = failed_at {
                b.series(&light, "status", None, Cadence::Events, Model::LampStatus(Failure { at }));
            }
            b.add(light);
        }
    }
}
