//! Voluntary drop-off containers (household waste and glass columns) with
//! ultrasonic fill-level probes. They fill during the day, more in the
//! afternoon, and drop to almost empty when the collection round passes.

use std::f64::consts::TAU;

use chrono::{DateTime, Datelike, Duration, Utc, Weekday};
use serde_json::json;

use crate::calendar::{at_local, day_index, is_public_holiday, Local};
use crate::communes::Commune;
use crate::noise::{hash, normal, seed_of, unit, Rng};
use crate::series::{Cadence, Model};
use crate::territory::{quantity, set, text, Builder};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum WasteKind {
    Household,
    Glass,
}

/// Which days the round passes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Rounds {
    /// Twice a week, on these two weekdays.
    Twice(Weekday, Weekday),
    Weekly(Weekday),
    /// Every other week on this weekday; `parity` picks the week.
    Fortnightly(Weekday, u64),
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Container {
    seed: u64,
    rounds: Rounds,
    /// Local hour the round usually reaches this container.
    round_hour: f64,
    /// Share of the container filled per hour, on average.
    rate: f64,
    /// Collections skipped over this interval (the truck did not come).
    missed: Option<(DateTime<Utc>, DateTime<Utc>)>,
}

/// How far back a collection is looked for; older than that the container
/// is full anyway.
const LOOKBACK_DAYS: i64 = 40;

impl Container {
    fn collected_on(&self, date: chrono::NaiveDate) -> bool {
        if is_public_holiday(date) {
            return false;
        }
        let wd = date.weekday();
        match self.rounds {
            Rounds::Twice(a, b) => wd == a || wd == b,
            Rounds::Weekly(a) => wd == a,
            Rounds::Fortnightly(a, parity) => wd == a && (day_index(date) / 7) % 2 == parity,
        }
    }

    /// The last collection at or before `t`.
    fn last_collection(&self, t: DateTime<Utc>) -> Option<DateTime<Utc>> {
        let today = Local::of(t).date;
        (0..LOOKBACK_DAYS).map(|n| today - Duration::days(n)).filter(|&d| self.collected_on(d)).find_map(|d| {
            let jitter = 0.75 * (unit(self.seed ^ 7, day_index(d)) - 0.5);
            let at = at_local(d, self.round_hour + jitter);
            let missed = self.missed.is_some_and(|(a, b)| at >= a && at < b);
            (at <= t && !missed).then_some(at)
        })
    }

    /// Deposits between two instants: the integral of a rate that peaks in
    /// the afternoon and is low at night, in closed form so that any instant
    /// is computed without stepping through the hours.
    fn deposits(&self, from: DateTime<Utc>, to: DateTime<Utc>) -> f64 {
        const DAILY_SWING: f64 = 0.8;
        let cumulative = |t: DateTime<Utc>| {
            let h = t.timestamp() as f64 / 3600.0;
            h - DAILY_SWING * 24.0 / TAU * (TAU * (h - 8.0) / 24.0).cos()
        };
        self.rate * (cumulative(to) - cumulative(from)).max(0.0)
    }

    /// Fill level, 0 to 1 (the probe saturates at 1).
    pub(crate) fn filling_level(&self, t: DateTime<Utc>) -> f64 {
        let since = self.last_collection(t).unwrap_or(t - Duration::days(LOOKBACK_DAYS));
        // A column is never perfectly empty after collection.
        let level = 0.02 + self.deposits(since, t);
        let probe = level + 0.012 * normal(self.seed, t.timestamp() as u64);
        (probe.clamp(0.0, 1.0) * 100.0).round() / 100.0
    }
}

/// Adds the commune's household and glass columns along its streets.
pub(crate) fn generate(b: &mut Builder, c: &Commune) {
    let streets = c.streets(b.seed);
    let small = c.household_containers < 10;
    for kind in [WasteKind::Household, WasteKind::Glass] {
        let count = match kind {
            WasteKind::Household => c.household_containers,
            WasteKind::Glass => c.glass_containers,
        };
        for i in 0..count {
            let number = i + 1;
            let (prefix, label) = match kind {
                WasteKind::Household => ("om", "Colonne ordures ménagères"),
                WasteKind::Glass => ("verre", "Colonne verre"),
            };
            let local = format!("{prefix}-{number:03}");
            let mut rng = Rng::for_name(b.seed, &format!("{}:{local}", c.slug));
            let street = &streets[rng.below(streets.len())];
            let at = street.point(rng.range(0.0, 600.0), if rng.chance(0.5) { 9.0 } else { -9.0 });
            let name = format!("{label} n°{number} – {}", street.name);
            let mut e = b.entity("WasteContainer", c, &local, &name, at);
            let underground = rng.chance(0.25);
            let capacity = match kind {
                WasteKind::Household if underground => 5000.0,
                WasteKind::Household => 4000.0,
                WasteKind::Glass => 3000.0,
            };
            let (waste_type, stored) = match kind {
                WasteKind::Household => ("household", "inorganic"),
                WasteKind::Glass => ("glass", "glass"),
            };
            set(&mut e, "wasteType", text(json!(waste_type)));
            set(&mut e, "storedWasteKind", text(json!([stored])));
            set(&mut e, "category", text(json!([if underground { "underground" } else { "surface" }])));
            set(&mut e, "binCapacity", quantity(capacity, "LTR"));
            set(&mut e, "areaServed", text(json!(street.name)));

            let sector = (i % 2) as u64;
            let rounds = match (kind, small) {
                (WasteKind::Household, true) => Rounds::Weekly(Weekday::Wed),
                (WasteKind::Household, false) if sector == 0 => Rounds::Twice(Weekday::Mon, Weekday::Thu),
                (WasteKind::Household, false) => Rounds::Twice(Weekday::Tue, Weekday::Fri),
                (WasteKind::Glass, _) => Rounds::Fortnightly(Weekday::Wed, sector),
            };
            // Hours between two collections, and the usual fill when the
            // truck arrives (40 % to 85 %, the spread rounds planning exploits).
            let interval_h = match rounds {
                Rounds::Twice(..) => 84.0,
                Rounds::Weekly(_) => 168.0,
                Rounds::Fortnightly(..) => 336.0,
            };
            let overflowing = overflows(c.slug, kind, number);
            // These fill up in fifteen days whatever their rounds, so that
            // sixteen days without collection leave them full at the anchor.
            let rate = if overflowing { 1.05 / 360.0 } else { rng.range(0.4, 0.85) / interval_h };
            let model = Container {
                seed: hash(b.seed, seed_of(e.id.as_str())),
                rounds,
                round_hour: 6.0 + (i % 20) as f64 * 0.25,
                rate,
                missed: overflowing.then_some((b.scenario.missed_collections_start, b.scenario.missed_collections_end)),
            };
            b.series(&e, "fillingLevel", Some("C62"), Cadence::Hourly, Model::Filling(model));
            b.add(e);
        }
    }
}

/// The containers whose rounds were missed before the anchor, so that the
/// operator finds them full.
fn overflows(commune: &str, kind: WasteKind, number: usize) -> bool {
    matches!(
        (commune, kind, number),
        ("saint-aubin", WasteKind::Household, 3 | 17 | 42)
            | ("saint-aubin", WasteKind::Glass, 5 | 11)
            | ("montclar", WasteKind::Household, 4)
            | ("montclar", WasteKind::Glass, 2)
    )
}
