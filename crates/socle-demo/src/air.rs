//! Air-quality micro-stations: NO₂ from traffic (rush-hour peaks), PM10 and
//! PM2.5 (wood heating on winter evenings), ozone (sunny afternoons, eaten
//! by NO₂ near roads), and one particulate episode when the air stagnates.
//! Concentrations in µg/m³ (UN/CEFACT `GQ`).

use std::f64::consts::{PI, TAU};

use chrono::{DateTime, Utc};
use serde_json::json;

use crate::calendar::{day_of_year, Local};
use crate::communes::Commune;
use crate::noise::{hash, normal, seed_of, smooth, Rng};
use crate::series::{Cadence, Model};
use crate::territory::{set, text, Builder};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum StationKind {
    Urban,
    Traffic,
    Periurban,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Species {
    No2,
    Pm10,
    Pm25,
    O3,
}

impl Species {
    const ALL: [Species; 4] = [Self::No2, Self::Pm10, Self::Pm25, Self::O3];
    fn attribute(self) -> &'static str {
        match self {
            Self::No2 => "no2",
            Self::Pm10 => "pm10",
            Self::Pm25 => "pm25",
            Self::O3 => "o3",
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Pollutant {
    species: Species,
    station: StationKind,
    /// Shared by the station's four series, so that they move together.
    station_seed: u64,
    seed: u64,
    episode: (DateTime<Utc>, DateTime<Utc>),
}

fn bump(h: f64, centre: f64, width: f64) -> f64 {
    let d = (h - centre) / width;
    (-0.5 * d * d).exp()
}

impl Pollutant {
    /// 0 outside the episode, rising to 1 in its middle and back.
    fn episode_strength(&self, t: DateTime<Utc>) -> f64 {
        let (a, b) = self.episode;
        if t <= a || t >= b {
            return 0.0;
        }
        let x = (t - a).num_seconds() as f64 / (b - a).num_seconds().max(1) as f64;
        (PI * x).sin().powi(2)
    }

    pub(crate) fn concentration(&self, t: DateTime<Utc>) -> f64 {
        let local = Local::of(t);
        let h = local.hour;
        // 1 in mid-January, -1 in mid-July.
        let winter = (TAU * (day_of_year(t) - 15.0) / 365.25).cos();
        let hours = t.timestamp() as f64 / 3600.0;
        // Wind and rain wash the air: a shared, slowly varying dispersion.
        let dispersion = 0.7 + 0.6 * smooth(self.station_seed, hours / 20.0);
        let episode = self.episode_strength(t);
        let traffic = if local.is_weekend() { 0.5 } else { 1.0 };
        let rush = traffic * (bump(h, 8.0, 1.2) + 0.8 * bump(h, 18.0, 1.5));
        let (road, background) = match self.station {
            StationKind::Traffic => (1.6, 1.0),
            StationKind::Urban => (1.0, 0.9),
            StationKind::Periurban => (0.5, 0.75),
        };
        let no2 = background * 11.0 * (1.0 + 0.25 * winter) + road * 20.0 * rush;
        let wood = 9.0 * winter.max(0.0) * bump(h, 20.5, 2.5);
        let pm10 = background * (14.0 + 5.0 * winter) + wood + road * 4.0 * rush;
        let v = match self.species {
            Species::No2 => no2 / dispersion + 15.0 * episode,
            Species::Pm10 => pm10 / dispersion + 68.0 * episode,
            Species::Pm25 => 0.62 * pm10 / dispersion + 50.0 * episode,
            Species::O3 => {
                let sun = bump(h, 15.0, 3.0) * (1.0 - 0.6 * winter);
                (48.0 - 12.0 * winter + 35.0 * sun) * dispersion.sqrt() - 0.6 * road * 20.0 * rush
            }
        };
        let noise = 1.0 + 0.08 * normal(self.seed, t.timestamp() as u64);
        ((v * noise).max(0.5) * 10.0).round() / 10.0
    }
}

/// Adds the commune's air-quality stations, with four series each.
pub(crate) fn generate(b: &mut Builder, c: &Commune) {
    for &(local, name, kind) in c.air_stations {
        let mut rng = Rng::for_name(b.seed, &format!("{}:{local}", c.slug));
        let at = c.scatter(&mut rng, 0.6);
        let mut e = b.entity("AirQualityObserved", c, local, name, at);
        let description = match kind {
            StationKind::Traffic => "Station de proximité trafic",
            StationKind::Urban => "Station urbaine de fond",
            StationKind::Periurban => "Station périurbaine",
        };
        set(&mut e, "typeofLocation", text(json!("outdoor")));
        set(&mut e, "description", text(json!(description)));
        let station_seed = hash(b.seed, seed_of(e.id.as_str()));
        for species in Species::ALL {
            let model = Pollutant {
                species,
                station: kind,
                station_seed,
                seed: hash(station_seed, species as u64 + 1),
                episode: (b.scenario.pollution_start, b.scenario.pollution_end),
            };
            b.series(&e, species.attribute(), Some("GQ"), Cadence::Hourly, Model::Pollutant(model));
        }
        b.add(e);
    }
}
