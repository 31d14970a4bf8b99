//! One simulated time series: which attribute of which entity, at what
//! cadence, and the model that gives its value at any instant.

use chrono::{DateTime, Duration, NaiveDate, Utc};
use socle_domain::{AttributeName, EntityId, EntityType, Observation, ObservedValue, UnitCode};

use crate::calendar::at_local;
use crate::{air, buildings, lighting, parking, river, waste, water, weather};

/// How often a series has a point.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cadence {
    /// Every 15 minutes (water flow, river level).
    QuarterHour,
    /// Every hour (meters, temperatures, fill levels…).
    Hourly,
    /// When something happens (a lamp switches, a car leaves).
    Events,
}

impl Cadence {
    /// The interval between two points, `None` for event series.
    pub fn period(self) -> Option<Duration> {
        match self {
            Self::QuarterHour => Some(Duration::minutes(15)),
            Self::Hourly => Some(Duration::hours(1)),
            Self::Events => None,
        }
    }
}

/// A simulated value: numbers feed rollups, text is a state.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Value {
    Number(f64),
    Text(&'static str),
}

/// The physics behind a series. Every model is a pure function of the
/// instant (and of parameters fixed at generation, the anchor included), so
/// any range can be regenerated identically.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Model {
    IndoorTemperature(buildings::Heating),
    Consumption(buildings::Meter),
    CabinetPower(lighting::Cabinet),
    PowerState(lighting::Light),
    LampStatus(lighting::Failure),
    Flow(water::Sector),
    Filling(waste::Container),
    ParkingStatus(parking::Spot),
    ParkingOccupancy(parking::Spot),
    Pollutant(air::Pollutant),
    RiverLevel(river::Gauge),
    /// Outdoor air temperature (°C), shifted by this many degrees for altitude.
    OutdoorTemperature(f64),
}

impl Model {
    /// The value of a periodic series at `t`, `None` for event models.
    fn sample(&self, t: DateTime<Utc>) -> Option<Value> {
        match self {
            Self::IndoorTemperature(m) => Some(Value::Number(m.temperature(t))),
            Self::Consumption(m) => Some(Value::Number(m.consumption(t))),
            Self::CabinetPower(m) => Some(Value::Number(m.active_power(t))),
            Self::Flow(m) => Some(Value::Number(m.flow(t))),
            Self::Filling(m) => Some(Value::Number(m.filling_level(t))),
            Self::ParkingOccupancy(m) => Some(Value::Number(if m.occupied_at(t) { 1.0 } else { 0.0 })),
            Self::Pollutant(m) => Some(Value::Number(m.concentration(t))),
            Self::RiverLevel(m) => Some(Value::Number(m.level(t))),
            Self::OutdoorTemperature(offset) => Some(Value::Number(weather::outdoor_temperature(t, *offset))),
            Self::PowerState(_) | Self::LampStatus(_) | Self::ParkingStatus(_) => None,
        }
    }

    /// The events of an event series in `[from, to)`, oldest first.
    fn events(&self, from: DateTime<Utc>, to: DateTime<Utc>) -> Vec<(DateTime<Utc>, Value)> {
        match self {
            Self::PowerState(m) => m.switches(from, to),
            Self::LampStatus(m) => m.events(from, to),
            Self::ParkingStatus(m) => m.changes(from, to),
            _ => Vec::new(),
        }
    }

    /// The same model as if no energy-saving works had been done.
    fn without_renovation(&self) -> Self {
        match self {
            Self::Consumption(m) => Self::Consumption(m.without_savings()),
            other => other.clone(),
        }
    }
}

/// A series of the demo territory and how to produce its points.
#[derive(Debug, Clone, PartialEq)]
pub struct SeriesSpec {
    pub entity: EntityId,
    pub entity_type: EntityType,
    pub attribute: AttributeName,
    pub unit: Option<UnitCode>,
    pub cadence: Cadence,
    /// Real sensors do not all report on the hour: each periodic series has
    /// its own phase on the grid, which also spreads live writes over time.
    pub(crate) offset: Duration,
    pub(crate) model: Model,
}

impl SeriesSpec {
    /// The points in the half-open range `[from, to)`, oldest first. The
    /// same range always gives the same points.
    pub fn observations(&self, from: DateTime<Utc>, to: DateTime<Utc>) -> Vec<Observation> {
        self.points(&self.model, from, to)
    }

    /// The points the series would have without the energy-saving works of
    /// the scenario: the "last year" profile an élu view compares against.
    /// Identical to [`observations`](Self::observations) for every series
    /// but the renovated school's meters.
    pub fn baseline_observations(&self, from: DateTime<Utc>, to: DateTime<Utc>) -> Vec<Observation> {
        self.points(&self.model.without_renovation(), from, to)
    }

    /// The most recent point at or before `at`, if any within ten days
    /// (a light stuck on for days has no recent switch).
    pub fn latest(&self, at: DateTime<Utc>) -> Option<Observation> {
        let lookback = self.cadence.period().unwrap_or(Duration::days(10));
        self.observations(at - lookback, at + Duration::nanoseconds(1)).pop()
    }

    /// Whether last year's history is written for this series, one point a
    /// day: the energy meters and the outdoor temperature, which is what the
    /// "same period last year, degree-day corrected" comparison reads.
    pub fn has_daily_history(&self) -> bool {
        matches!(self.model, Model::Consumption(_) | Model::OutdoorTemperature(_))
    }

    /// One point per local day of `[from, to)`, at local noon: the day's
    /// total for a meter, the day's mean for a temperature, both from the
    /// same hourly samples as the recent history. Empty for other series.
    pub fn daily_observations(&self, from: NaiveDate, to: NaiveDate) -> Vec<Observation> {
        let Some(period) = self.cadence.period().filter(|_| self.has_daily_history()) else { return Vec::new() };
        from.iter_days()
            .take_while(|d| *d < to)
            .filter_map(|d| {
                let samples: Vec<f64> = grid(at_local(d, 0.0), at_local(d, 24.0), period, self.offset)
                    .filter_map(|t| match self.model.sample(t) {
                        Some(Value::Number(n)) => Some(n),
                        _ => None,
                    })
                    .collect();
                if samples.is_empty() {
                    return None;
                }
                let sum: f64 = samples.iter().sum();
                let value = match self.model {
                    Model::OutdoorTemperature(_) => sum / samples.len() as f64,
                    _ => sum,
                };
                self.observation(at_local(d, 12.0), Value::Number(value))
            })
            .collect()
    }

    /// Whether this series is an energy meter's, which the backfill writes first.
    pub fn is_meter(&self) -> bool {
        matches!(self.model, Model::Consumption(_))
    }

    fn points(&self, model: &Model, from: DateTime<Utc>, to: DateTime<Utc>) -> Vec<Observation> {
        if from >= to {
            return Vec::new();
        }
        let values = match self.cadence.period() {
            Some(period) => {
                grid(from, to, period, self.offset).filter_map(|t| model.sample(t).map(|v| (t, v))).collect()
            }
            None => model.events(from, to),
        };
        values.into_iter().filter_map(|(t, v)| self.observation(t, v)).collect()
    }

    fn observation(&self, t: DateTime<Utc>, v: Value) -> Option<Observation> {
        let value = match v {
            // A non-finite number would be a model bug; dropping the point
            // keeps the demo running rather than failing a whole batch.
            Value::Number(n) => ObservedValue::number(n).ok()?,
            Value::Text(s) => ObservedValue::Text(s.to_owned()),
        };
        Some(Observation {
            entity: self.entity.clone(),
            attribute: self.attribute.clone(),
            observed_at: t,
            value,
            unit_code: self.unit.clone(),
        })
    }
}

/// The instants `k * period + offset` in `[from, to)`.
fn grid(
    from: DateTime<Utc>,
    to: DateTime<Utc>,
    period: Duration,
    offset: Duration,
) -> impl Iterator<Item = DateTime<Utc>> {
    let p = period.num_milliseconds().max(1);
    let off = offset.num_milliseconds();
    let first = (from.timestamp_millis() - off + p - 1).div_euclid(p);
    let end = to.timestamp_millis();
    (first..).map(move |k| k * p + off).take_while(move |&ms| ms < end).filter_map(DateTime::from_timestamp_millis)
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn grid_is_half_open_and_phased() {
        let from = Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap();
        let to = from + Duration::hours(3);
        let pts: Vec<_> = grid(from, to, Duration::hours(1), Duration::seconds(600)).collect();
        assert_eq!(pts.len(), 3);
        assert_eq!(pts[0], from + Duration::seconds(600));
        let pts: Vec<_> = grid(from, to, Duration::hours(1), Duration::zero()).collect();
        assert_eq!(pts, vec![from, from + Duration::hours(1), from + Duration::hours(2)]);
        // Adjacent ranges neither overlap nor leave holes.
        let mid = from + Duration::minutes(90);
        let a: Vec<_> = grid(from, mid, Duration::minutes(15), Duration::seconds(7)).collect();
        let b: Vec<_> = grid(mid, to, Duration::minutes(15), Duration::seconds(7)).collect();
        assert_eq!(a.len() + b.len(), 12);
    }
}
