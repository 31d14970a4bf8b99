//! Drinking-water network sectors: the flow entering each sector, the
//! classic signal for leak detection. Household use draws a morning and an
//! evening peak; the night minimum (3–4 h) is what is left when everybody
//! sleeps: background leakage and a few night users. A burst pipe raises it
//! and it stays up until repaired.

use std::f64::consts::TAU;

use chrono::{DateTime, Utc};
use serde_json::json;

use crate::calendar::{day_of_year, Local};
use crate::communes::Commune;
use crate::noise::{hash, normal, seed_of, smooth};
use crate::series::{Cadence, Model};
use crate::territory::{set, text, Builder};

/// Litres per inhabitant per day, households and small businesses.
const LITRES_PER_INHABITANT: f64 = 150.0;

#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Sector {
    /// Mean flow over a day, m³/h.
    mean_flow: f64,
    seed: u64,
    /// Start of the leak and its flow, m³/h.
    leak: Option<(DateTime<Utc>, f64)>,
}

fn bump(h: f64, centre: f64, width: f64) -> f64 {
    let d = (h - centre) / width;
    (-0.5 * d * d).exp()
}

impl Sector {
    pub(crate) fn mean_flow(&self) -> f64 {
        self.mean_flow
    }

    /// Relative demand at a local hour: about 0.3 at night, 1.7 at the morning peak.
    fn profile(hour: f64, weekend: bool) -> f64 {
        let (morning, strength) = if weekend { (9.5, 1.1) } else { (7.5, 1.45) };
        0.28 + strength * bump(hour, morning, 1.3)
            + 0.75 * bump(hour, 12.5, 1.6)
            + 1.05 * bump(hour, 19.5, 1.8)
            + 0.45 * bump(hour, 15.0, 3.5)
    }

    /// Flow into the sector, m³/h, at `t`.
    pub(crate) fn flow(&self, t: DateTime<Utc>) -> f64 {
        let local = Local::of(t);
        // Gardens and holiday-makers: more in summer.
        let season = 1.0 + 0.15 * (TAU * (day_of_year(t) - 200.0) / 365.25).cos();
        let hours = t.timestamp() as f64 / 3600.0;
        let drift = 0.92 + 0.16 * smooth(self.seed, hours / 30.0);
        let ts = t.timestamp() as u64;
        let mut q = self.mean_flow * Self::profile(local.hour, local.is_weekend()) * season * drift;
        q *= 1.0 + 0.04 * normal(self.seed, ts);
        if let Some((start, extra)) = self.leak {
            if t >= start {
                // A burst grows a little over its first hours, then holds.
                let age_h = (t - start).num_seconds() as f64 / 3600.0;
                q += extra * (1.0 - (-age_h / 1.5).exp()).max(0.0);
            }
        }
        (q.max(0.0) * 100.0).round() / 100.0
    }
}

/// Adds the commune's network sectors.
pub(crate) fn generate(b: &mut Builder, c: &Commune) {
    let n = c.water_sectors.len().max(1) as f64;
    for (k, &(local, name, share)) in c.water_sectors.iter().enumerate() {
        let angle = TAU * k as f64 / n + 0.4;
        let r = if n > 1.0 { c.radius_m * 0.5 } else { 0.0 };
        let at = crate::communes::offset(c.centre, r * angle.cos(), r * angle.sin());
        let mut sector = b.entity("WaterConsumptionObserved", c, local, name, at);
        let served = (f64::from(c.population) * share).round();
        set(
            &mut sector,
            "description",
            text(json!(format!("Débitmètre d'entrée de secteur, environ {served} habitants desservis"))),
        );
        let mean_flow = served * LITRES_PER_INHABITANT / 1000.0 / 24.0;
        let leak = (b.scenario.leak_sector == sector.id)
            // About the sector's night minimum again: plainly visible, the
            // order of size of a real main burst in a small network.
            .then_some((b.scenario.leak_start, (mean_flow * 0.3).max(2.0)));
        let model = Sector { mean_flow, seed: hash(b.seed, seed_of(sector.id.as_str())), leak };
        b.series(&sector, "flow", Some("MQH"), Cadence::QuarterHour, Model::Flow(model));
        b.add(sector);
    }
}

#[cfg(test)]
pub(crate) fn night_minimum(obs: &[socle_domain::Observation], night_of: chrono::NaiveDate) -> Option<f64> {
    let morning = night_of + chrono::Duration::days(1);
    let from = crate::calendar::at_local(morning, 1.0);
    let to = crate::calendar::at_local(morning, 5.0);
    obs.iter()
        .filter(|o| o.observed_at >= from && o.observed_at < to)
        .filter_map(|o| match o.value {
            socle_domain::ObservedValue::Number(n) => Some(n.get()),
            _ => None,
        })
        .reduce(f64::min)
}
