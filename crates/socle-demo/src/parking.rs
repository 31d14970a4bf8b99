//! On-street parking spots with presence sensors: a `status` event each time
//! a car arrives or leaves, and an hourly `occupancy` sample (0 or 1) that
//! rollups turn into occupancy rates.

use chrono::{DateTime, Duration, Utc, Weekday};
use serde_json::json;

use crate::calendar::{is_public_holiday, Local};
use crate::communes::Commune;
use crate::noise::{hash, seed_of, unit, Rng};
use crate::series::{Cadence, Model, Value};
use crate::territory::{set, text, Builder};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum AreaKind {
    /// Shops and the Saturday market.
    Centre,
    /// Commuters on weekdays.
    Station,
    /// Residents at night.
    Residential,
}

impl AreaKind {
    /// Probability that a spot is taken at a local hour.
    fn demand(self, local: &Local) -> f64 {
        let h = local.hour;
        let day = (7.5..19.5).contains(&h);
        let sunday = local.weekday() == Weekday::Sun || is_public_holiday(local.date);
        match self {
            Self::Centre if local.weekday() == Weekday::Sat && (8.0..13.5).contains(&h) => 0.95,
            Self::Centre if sunday => {
                if day {
                    0.35
                } else {
                    0.25
                }
            }
            Self::Centre => {
                if day {
                    0.82
                } else {
                    0.3
                }
            }
            Self::Station if sunday || local.weekday() == Weekday::Sat => 0.3,
            Self::Station => {
                if (6.5..19.0).contains(&h) {
                    0.9
                } else {
                    0.25
                }
            }
            Self::Residential => {
                if day && !local.is_weekend() {
                    0.45
                } else {
                    0.8
                }
            }
        }
    }
}

const HOUR_S: i64 = 3600;

#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Spot {
    area: AreaKind,
    seed: u64,
    /// Typical stay, in hours: draws are shared over blocks this long, so
    /// cars stay a while instead of flickering every hour.
    stay_h: u64,
}

impl Spot {
    /// Whether the spot is taken during UTC hour number `h` (after the
    /// hour's change, if any).
    fn taken(&self, h: i64) -> bool {
        let hour = h as u64;
        let Some(t) = DateTime::from_timestamp(h * HOUR_S, 0) else { return false };
        // Each draw is uniform either way, so P(taken) is the demand while
        // most hours reuse their block's draw.
        let u = if unit(self.seed ^ 1, hour) < 0.7 {
            unit(self.seed, hour / self.stay_h)
        } else {
            unit(self.seed ^ 2, hour)
        };
        u < self.area.demand(&Local::of(t + Duration::minutes(30)))
    }

    /// When, within UTC hour `h`, the spot changes state (if it does).
    fn change_at(&self, h: i64) -> DateTime<Utc> {
        let s = (hash(self.seed ^ 3, h as u64) % HOUR_S as u64) as i64;
        DateTime::from_timestamp(h * HOUR_S + s, 0).unwrap_or_default()
    }

    pub(crate) fn occupied_at(&self, t: DateTime<Utc>) -> bool {
        let h = t.timestamp().div_euclid(HOUR_S);
        if self.taken(h) != self.taken(h - 1) && t < self.change_at(h) {
            self.taken(h - 1)
        } else {
            self.taken(h)
        }
    }

    pub(crate) fn changes(&self, from: DateTime<Utc>, to: DateTime<Utc>) -> Vec<(DateTime<Utc>, Value)> {
        let first = from.timestamp().div_euclid(HOUR_S);
        let last = to.timestamp().div_euclid(HOUR_S);
        let mut prev = self.taken(first - 1);
        let mut out = Vec::new();
        for h in first..=last {
            let now = self.taken(h);
            if now != prev {
                let at = self.change_at(h);
                if at >= from && at < to {
                    out.push((at, Value::Text(if now { "occupied" } else { "free" })));
                }
            }
            prev = now;
        }
        out
    }
}

/// Adds the commune's sensor-equipped parking spots, in rows.
pub(crate) fn generate(b: &mut Builder, c: &Commune) {
    for &(area_local, area_name, kind, spots) in c.parking {
        let mut rng = Rng::for_name(b.seed, &format!("{}:{area_local}", c.slug));
        let origin = c.scatter(&mut rng, 0.35);
        let heading = rng.range(0.0, std::f64::consts::PI);
        let (s, co) = heading.sin_cos();
        for i in 0..spots {
            let number = i + 1;
            // Two rows facing each other, 2.5 m per spot.
            let along = (i / 2) as f64 * 2.5;
            let across = if i % 2 == 0 { 0.0 } else { 5.5 };
            let at = crate::communes::offset(origin, along * co - across * s, along * s + across * co);
            let local = format!("{area_local}-{number:02}");
            let name = format!("{area_name} – place {number:02}");
            let mut e = b.entity("ParkingSpot", c, &local, &name, at);
            set(&mut e, "category", text(json!(["onStreet"])));
            set(&mut e, "areaServed", text(json!(area_name)));
            let spot = Spot { area: kind, seed: hash(b.seed, seed_of(e.id.as_str())), stay_h: 2 + rng.below(3) as u64 };
            b.series(&e, "status", None, Cadence::Events, Model::ParkingStatus(spot.clone()));
            b.series(&e, "occupancy", Some("C62"), Cadence::Hourly, Model::ParkingOccupancy(spot));
            b.add(e);
        }
    }
}
