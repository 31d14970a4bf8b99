//! River-level gauges on the Lémance, one per commune. The level follows the
//! season (high water in winter), drifts with the weather, and rises once
//! in a flood that crosses each gauge's alert level (never its danger
//! level), reaching the downstream town hours after the upstream village.

use std::f64::consts::TAU;

use chrono::{DateTime, Duration, Utc};
use serde_json::json;

use crate::calendar::day_of_year;
use crate::communes::Commune;
use crate::noise::{hash, seed_of, smooth};
use crate::series::{Cadence, Model};
use crate::territory::{quantity, set, text, Builder};

#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Gauge {
    low: f64,
    high: f64,
    seed: u64,
    peak: DateTime<Utc>,
    /// Height of the flood wave above the ordinary level at the peak.
    crest: f64,
}

/// Hours of the rising limb (Gaussian) and of the recession (exponential).
const RISE_H: f64 = 16.0;
const RECESSION_H: f64 = 30.0;

impl Gauge {
    /// Ordinary level: seasonal plus weather drift, without the flood.
    fn ordinary(&self, t: DateTime<Utc>) -> f64 {
        let winter = 0.5 + 0.5 * (TAU * (day_of_year(t) - 30.0) / 365.25).cos();
        let hours = t.timestamp() as f64 / 3600.0;
        let weather = 0.4 * (self.high - self.low) * (smooth(self.seed, hours / 60.0) - 0.5);
        self.low + (self.high - self.low) * winter + weather
    }

    fn wave(&self, t: DateTime<Utc>) -> f64 {
        let x = (t - self.peak).num_seconds() as f64 / 3600.0;
        if x <= 0.0 {
            (-0.5 * (x / RISE_H).powi(2)).exp()
        } else {
            (-x / RECESSION_H).exp()
        }
    }

    /// Water level, metres, to the centimetre like the gauges publish it.
    pub(crate) fn level(&self, t: DateTime<Utc>) -> f64 {
        // Ripples are smooth (hours long) and small, so that the level
        // crosses a threshold once on its way up, not back and forth.
        let hours = t.timestamp() as f64 / 3600.0;
        let ripple = 0.012 * (smooth(self.seed ^ 1, hours / 3.0) - 0.5);
        let v = self.ordinary(t) + self.crest * self.wave(t) + ripple;
        (v.max(0.05) * 100.0).round() / 100.0
    }
}

/// Adds the commune's gauge, on the river south of the centre.
pub(crate) fn generate(b: &mut Builder, c: &Commune) {
    let g = &c.river_gauge;
    let at = crate::communes::offset(c.centre, 120.0, -0.3 * c.radius_m);
    let mut e = b.entity("FloodMonitoring", c, g.local, g.name, at);
    set(&mut e, "alertLevel", quantity(g.alert, "MTR"));
    set(&mut e, "dangerLevel", quantity(g.danger, "MTR"));
    set(&mut e, "stationID", text(json!(g.station_id)));
    let minutes = (g.hours_before_downstream * 60.0) as i64;
    let mut gauge = Gauge {
        low: g.low,
        high: g.high,
        seed: hash(b.seed, seed_of(e.id.as_str())),
        peak: b.scenario.flood_peak - Duration::minutes(minutes),
        crest: 0.0,
    };
    // The crest is sized on the ordinary level of that day, so the peak
    // lands exactly `peak_margin` above the alert level whatever the season.
    gauge.crest = (g.alert + g.peak_margin - gauge.ordinary(gauge.peak)).max(0.0);
    b.series(&e, "currentLevel", Some("MTR"), Cadence::QuarterHour, Model::RiverLevel(gauge));
    b.add(e);
}
