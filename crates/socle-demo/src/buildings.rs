//! Public buildings: who uses them when, how warm they are kept, and what
//! their electricity, gas and water meters count.
//!
//! Intensities are per square metre and per hour, tuned to the usual French
//! figures for municipal buildings (a school: about 30 kWh/m²/year of
//! electricity and 120 kWh/m²/year of heating).

use std::f64::consts::TAU;

use chrono::{DateTime, Datelike, Duration, NaiveDate, Utc, Weekday};
use serde_json::json;

use crate::calendar::{at_local, day_index, is_heating_season, is_public_holiday, is_school_holiday, Local};
use crate::communes::Commune;
use crate::noise::{hash, normal, seed_of, unit, Rng};
use crate::scenario::RENOVATION_SAVINGS;
use crate::series::{Cadence, Model};
use crate::territory::{quantity, set, text, Builder};
use crate::weather::{outdoor_temperature, sun_times};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum BuildingKind {
    School,
    Nursery,
    TownHall,
    Library,
    Gym,
    Pool,
    FestiveHall,
    Technical,
    Music,
    Associations,
    Youth,
    ChangingRooms,
}

/// Per-kind figures: comfort and set-back temperatures (°C), pre-heating
/// (h), electricity base and occupied load, heat loss, hot water (kWh/m²/h),
/// water when occupied (m³/m²/h).
struct Figures {
    comfort: f64,
    setback: f64,
    preheat: f64,
    elec_base: f64,
    elec_occupied: f64,
    heat_loss: f64,
    hot_water: f64,
    water: f64,
}

impl BuildingKind {
    /// Smart Data Models `Building.category`.
    fn category(self) -> &'static str {
        match self {
            Self::School => "school",
            Self::Nursery => "kindergarten",
            Self::TownHall | Self::FestiveHall | Self::Associations => "civic",
            Self::Technical => "warehouse",
            Self::ChangingRooms => "pavilion",
            Self::Library | Self::Gym | Self::Pool | Self::Music | Self::Youth => "public",
        }
    }

    fn figures(self) -> Figures {
        let f = |comfort, setback, preheat, elec_base, elec_occupied, heat_loss, hot_water, water| Figures {
            comfort,
            setback,
            preheat,
            elec_base,
            elec_occupied,
            heat_loss,
            hot_water,
            water,
        };
        match self {
            Self::School => f(20.0, 16.0, 2.0, 0.0018, 0.009, 0.0026, 0.002, 0.000_12),
            Self::Nursery => f(21.0, 17.0, 2.0, 0.0025, 0.010, 0.0026, 0.004, 0.000_25),
            Self::TownHall => f(20.0, 16.0, 1.5, 0.0025, 0.010, 0.0024, 0.0005, 0.000_05),
            Self::Library => f(20.0, 16.0, 1.5, 0.0020, 0.010, 0.0024, 0.0005, 0.000_03),
            Self::Gym => f(17.0, 13.0, 2.5, 0.0012, 0.006, 0.0022, 0.003, 0.000_10),
            Self::Pool => f(27.0, 25.0, 1.0, 0.0120, 0.006, 0.0040, 0.025, 0.000_90),
            Self::FestiveHall => f(19.0, 12.0, 3.0, 0.0008, 0.012, 0.0030, 0.0005, 0.000_15),
            Self::Technical => f(18.0, 12.0, 1.5, 0.0020, 0.010, 0.0026, 0.0010, 0.000_10),
            Self::Music => f(20.0, 15.0, 2.0, 0.0015, 0.007, 0.0024, 0.0005, 0.000_03),
            Self::Associations => f(19.5, 15.0, 1.5, 0.0012, 0.007, 0.0026, 0.0005, 0.000_06),
            Self::Youth => f(19.5, 15.0, 1.5, 0.0012, 0.008, 0.0026, 0.0010, 0.000_08),
            Self::ChangingRooms => f(20.0, 12.0, 1.5, 0.0010, 0.010, 0.0035, 0.0200, 0.001_20),
        }
    }

    /// Opening hours as Smart Data Models writes them (OpenStreetMap syntax).
    fn opening_hours(self) -> &'static [&'static str] {
        match self {
            Self::School => &["Mo,Tu,Th,Fr 07:30-18:30"],
            Self::Nursery => &["Mo-Fr 07:30-18:30"],
            Self::TownHall => &["Mo-Fr 08:30-17:30", "Sa 09:00-12:00"],
            Self::Library => &["Tu,Th,Fr 13:00-18:00", "We,Sa 10:00-18:00"],
            Self::Gym => &["Mo-Fr 08:00-22:00", "Sa 09:00-18:00", "Su 09:00-12:30"],
            Self::Pool => &["Mo 12:00-20:00", "Tu-Fr 07:00-21:00", "Sa 09:00-19:00", "Su 09:00-13:00"],
            Self::FestiveHall => &["Tu,Th 18:30-22:00"],
            Self::Technical => &["Mo-Fr 07:00-16:00"],
            Self::Music => &["Mo,Tu,Th,Fr 14:00-20:00", "We 09:00-20:00", "Sa 09:00-13:00"],
            Self::Associations => &["Mo-Sa 14:00-22:00"],
            Self::Youth => &["Tu-Sa 14:00-19:00"],
            Self::ChangingRooms => &["Tu,Th 18:00-21:00", "We 14:00-18:00", "Sa 13:00-19:00", "Su 09:00-13:00"],
        }
    }
}

/// When a building is used: its kind's weekly hours, minus holidays, plus
/// the festive hall's weekend rentals (random but fixed per week).
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Usage {
    kind: BuildingKind,
    seed: u64,
}

impl Usage {
    /// Opening intervals of a local date, in local hours (may pass 24 for a
    /// party that ends at 2 in the morning).
    fn hours(&self, date: NaiveDate) -> Vec<(f64, f64)> {
        use BuildingKind::*;
        use Weekday::*;
        if is_public_holiday(date) {
            return Vec::new();
        }
        let wd = date.weekday();
        let holiday = is_school_holiday(date);
        let weekday = !matches!(wd, Sat | Sun);
        let week = day_index(date) / 7;
        let one = |a, b| vec![(a, b)];
        match self.kind {
            School if holiday || matches!(wd, Wed | Sat | Sun) => Vec::new(),
            School => one(7.5, 18.5),
            Nursery
                if weekday && !(date.month() == 12 && date.day() >= 24) && !(date.month() == 8 && date.day() <= 21) =>
            {
                one(7.5, 18.5)
            }
            TownHall if weekday => one(8.5, 17.5),
            TownHall if wd == Sat => one(9.0, 12.0),
            Library if matches!(wd, Tue | Thu | Fri) => one(13.0, 18.0),
            Library if matches!(wd, Wed | Sat) => one(10.0, 18.0),
            Gym if weekday && holiday => one(14.0, 21.0),
            Gym if weekday => one(8.0, 22.0),
            Gym if wd == Sat => one(9.0, 18.0),
            Gym => one(9.0, 12.5),
            Pool if wd == Mon => one(12.0, 20.0),
            Pool if weekday => one(7.0, 21.0),
            Pool if wd == Sat => one(9.0, 19.0),
            Pool => one(9.0, 13.0),
            FestiveHall => {
                let rented = |salt: u64, p: f64| unit(self.seed ^ salt, week) < p;
                match wd {
                    Tue | Thu if !holiday => one(18.5, 22.0),
                    Fri if rented(1, 0.3) => one(18.0, 23.5),
                    Sat if rented(2, 0.55) => one(14.0, 26.0),
                    Sun if rented(3, 0.2) => one(11.0, 18.0),
                    _ => Vec::new(),
                }
            }
            Technical if weekday => one(7.0, 16.0),
            Music if holiday => Vec::new(),
            Music if matches!(wd, Mon | Tue | Thu | Fri) => one(14.0, 20.0),
            Music if wd == Wed => one(9.0, 20.0),
            Music if wd == Sat => one(9.0, 13.0),
            Associations if wd != Sun => one(14.0, 22.0),
            Youth if weekday && holiday => one(9.0, 18.0),
            Youth if matches!(wd, Tue | Wed | Thu | Fri | Sat) => one(14.0, 19.0),
            ChangingRooms if matches!(wd, Tue | Thu) => one(18.0, 21.0),
            ChangingRooms if wd == Wed => one(14.0, 18.0),
            ChangingRooms if wd == Sat => one(13.0, 19.0),
            ChangingRooms if wd == Sun => one(9.0, 13.0),
            _ => Vec::new(),
        }
    }

    /// Opening intervals in UTC of the local date of `t` and the
    /// `days_back` dates before it (three covers a weekend), each starting
    /// `lead` hours early (pre-heating).
    fn intervals(&self, t: DateTime<Utc>, days_back: i64, lead: f64) -> Vec<(DateTime<Utc>, DateTime<Utc>)> {
        let today = Local::of(t).date;
        (0..=days_back)
            .rev()
            .flat_map(|n| {
                let date = today - Duration::days(n);
                self.hours(date).into_iter().map(move |(a, b)| (at_local(date, a - lead), at_local(date, b)))
            })
            .collect()
    }

    /// Share of `(t - 1 h, t]` during which the building is open.
    fn open_share(&self, t: DateTime<Utc>) -> f64 {
        let from = t - Duration::hours(1);
        let open: i64 =
            self.intervals(t, 1, 0.0).iter().map(|&(a, b)| (b.min(t) - a.max(from)).num_seconds().max(0)).sum();
        (open as f64 / 3600.0).min(1.0)
    }
}

/// Indoor temperature under a heating schedule. During opening hours (and
/// pre-heating) the heating holds the comfort temperature, reached
/// exponentially; after closing the heating stops and the building cools
/// freely towards the outdoor temperature until the set-back thermostat
/// holds it. Outside the heating season it follows the weather, damped.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Heating {
    usage: Usage,
    climate_offset: f64,
    seed: u64,
}

/// Time constants, hours: heating up to comfort, and free cooling (a
/// heavy masonry building loses about 1/25 of its excess heat per hour).
const RISE_H: f64 = 1.5;
const FREE_COOLING_H: f64 = 25.0;

fn hours(d: Duration) -> f64 {
    d.num_seconds() as f64 / 3600.0
}

impl Heating {
    /// What the room sensor reports: the indoor temperature, with sensor
    /// noise, to the tenth of a degree.
    pub(crate) fn temperature(&self, t: DateTime<Utc>) -> f64 {
        let noise = 0.12 * normal(self.seed, t.timestamp() as u64);
        ((self.indoor(t) + noise) * 10.0).round() / 10.0
    }

    fn indoor(&self, t: DateTime<Utc>) -> f64 {
        if is_heating_season(Local::of(t).date) {
            self.heated(t)
        } else {
            let lagged = outdoor_temperature(t - Duration::hours(4), self.climate_offset);
            21.0 + 0.45 * (lagged - 18.0) + 0.6 * self.usage.open_share(t)
        }
    }

    fn heated(&self, t: DateTime<Utc>) -> f64 {
        let fig = self.usage.kind.figures();
        let outdoor = outdoor_temperature(t, self.climate_offset);
        let cooled = |from: f64, since: DateTime<Utc>| {
            (outdoor + (from - outdoor) * (-hours(t - since) / FREE_COOLING_H).exp()).max(fig.setback)
        };
        let periods = self.usage.intervals(t, 3, fig.preheat);
        let Some(k) = periods.iter().rposition(|&(a, _)| a <= t) else {
            return fig.setback;
        };
        let (start, end) = periods[k];
        // Where the previous evening's cooling had brought the building.
        let at_start = match k.checked_sub(1).map(|j| periods[j]) {
            Some((_, prev_end)) => {
                let free = (-hours(start - prev_end) / FREE_COOLING_H).exp();
                (outdoor + (fig.comfort - outdoor) * free).max(fig.setback)
            }
            None => fig.setback,
        };
        let reached = |at: DateTime<Utc>| fig.comfort - (fig.comfort - at_start) * (-hours(at - start) / RISE_H).exp();
        if t <= end {
            reached(t)
        } else {
            cooled(reached(end), end)
        }
    }

    /// Heat delivered (kW, i.e. kWh in an hour) per square metre at `t`:
    /// losses to the outside plus what warms the building's mass, nothing
    /// while it cools freely. Boilers are sized for about 2.5 times the
    /// losses, which caps the morning restart.
    fn heat_demand(&self, t: DateTime<Utc>) -> f64 {
        if !is_heating_season(Local::of(t).date) {
            return 0.0;
        }
        let fig = self.usage.kind.figures();
        let outdoor = outdoor_temperature(t, self.climate_offset);
        let now = self.heated(t);
        let slope = (now - self.heated(t - Duration::minutes(10))) * 6.0;
        let demand = fig.heat_loss * (now - outdoor + FREE_COOLING_H * slope);
        demand.clamp(0.0, 2.5 * fig.heat_loss * (fig.comfort - outdoor).max(1.0))
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Utility {
    Electricity,
    Gas,
    Water,
}

impl Utility {
    fn meter_type(self) -> &'static str {
        match self {
            Self::Electricity => "Electricity",
            Self::Gas => "Gas",
            Self::Water => "Water",
        }
    }
    fn french(self) -> &'static str {
        match self {
            Self::Electricity => "électricité",
            Self::Gas => "gaz",
            Self::Water => "eau",
        }
    }
    fn slug(self) -> &'static str {
        match self {
            Self::Electricity => "electricite",
            Self::Gas => "gaz",
            Self::Water => "eau",
        }
    }
    fn unit(self) -> &'static str {
        match self {
            Self::Electricity | Self::Gas => "KWH",
            Self::Water => "MTQ",
        }
    }
}

/// A building's meter: the consumption of the hour ending at each point.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Meter {
    heating: Heating,
    utility: Utility,
    floor_area: f64,
    location: [f64; 2],
    seed: u64,
    /// From this instant, energy use is reduced by this share.
    savings: Option<(DateTime<Utc>, f64)>,
}

impl Meter {
    pub(crate) fn without_savings(&self) -> Self {
        Self { savings: None, ..self.clone() }
    }

    pub(crate) fn consumption(&self, t: DateTime<Utc>) -> f64 {
        let usage = self.heating.usage;
        let fig = usage.kind.figures();
        let open = usage.open_share(t);
        let mid = t - Duration::minutes(30);
        let a = self.floor_area;
        let raw = match self.utility {
            Utility::Electricity => {
                let (rise, set) = sun_times(Local::of(mid).date, self.location[1], self.location[0]);
                let dark = mid < rise + Duration::hours(1) || mid > set - Duration::hours(1);
                let lighting = if dark { 0.4 } else { 0.0 };
                a * (fig.elec_base + fig.elec_occupied * open * (1.0 + lighting))
            }
            Utility::Gas => {
                let hot_water = if usage.kind == BuildingKind::Pool {
                    // Keeping the pools warm never stops.
                    a * fig.hot_water
                } else {
                    a * fig.hot_water * open
                };
                hot_water + a * self.heating.heat_demand(mid)
            }
            Utility::Water => a * (0.000_004 + fig.water * open),
        };
        let ts = t.timestamp() as u64;
        let jitter = (1.0 + 0.07 * normal(self.seed, ts)).max(0.0);
        let saved = match (self.utility, self.savings) {
            (Utility::Electricity | Utility::Gas, Some((from, share))) if t >= from => 1.0 - share,
            _ => 1.0,
        };
        let v = raw * jitter * saved;
        match self.utility {
            Utility::Water => (v * 1000.0).round() / 1000.0,
            _ => (v * 100.0).round() / 100.0,
        }
    }
}

/// Adds the commune's buildings, each with its indoor temperature and its
/// three meters.
pub(crate) fn generate(b: &mut Builder, c: &Commune) {
    for def in c.buildings {
        let mut rng = Rng::for_name(b.seed, &format!("{}:{}", c.slug, def.local));
        let at = c.scatter(&mut rng, 0.4);
        let usage = Usage { kind: def.kind, seed: hash(b.seed, seed_of(def.local)) };
        let mut building = b.entity("Building", c, def.local, def.name, at);
        set(&mut building, "category", text(json!([def.kind.category()])));
        set(&mut building, "floorArea", quantity(def.floor_area, "MTK"));
        set(
            &mut building,
            "address",
            text(json!({
                "streetAddress": format!("{} {}", def.number, def.street),
                "postalCode": c.postal_code,
                "addressLocality": c.name,
                "addressCountry": "FR",
            })),
        );
        set(&mut building, "openingHours", text(json!(def.kind.opening_hours())));
        let heating = Heating { usage, climate_offset: c.climate_offset, seed: hash(usage.seed, 0) };
        b.series(&building, "temperature", Some("CEL"), Cadence::Hourly, Model::IndoorTemperature(heating.clone()));
        let building_id = building.id.clone();
        let renovated = b.scenario.renovated_building == building_id;
        b.add(building);

        for utility in [Utility::Electricity, Utility::Gas, Utility::Water] {
            let local = format!("{}-{}", def.local, utility.slug());
            let name = format!("Compteur {} – {}", utility.french(), def.name);
            // Meters sit in the technical room, a few metres from the building's point.
            let angle = rng.range(0.0, TAU);
            let place = crate::communes::offset(at, 12.0 * angle.cos(), 12.0 * angle.sin());
            let mut meter = b.entity("SmartMeteringObservation", c, &local, &name, place);
            set(&mut meter, "meterType", text(json!(utility.meter_type())));
            set(&mut meter, "refBuilding", socle_domain::Attribute::relationship(building_id.clone()));
            let model = Meter {
                heating: heating.clone(),
                utility,
                floor_area: def.floor_area,
                location: at,
                seed: hash(usage.seed, utility as u64 + 1),
                savings: renovated.then_some((b.scenario.renovation_date, RENOVATION_SAVINGS)),
            };
            b.series(&meter, "consumption", Some(utility.unit()), Cadence::Hourly, Model::Consumption(model));
            b.add(meter);
        }
    }
}
