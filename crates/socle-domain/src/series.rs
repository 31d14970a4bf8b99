//! Time series queries and their buckets.
//!
//! Hourly buckets are UTC hours. Daily buckets are local days of the owning
//! organisation's time zone, because "consumption on Monday" means the
//! French Monday, not the UTC one.

use chrono::{DateTime, Duration, NaiveTime, TimeZone, Utc};
use chrono_tz::Tz;
use serde::{Deserialize, Serialize};

use crate::entity::{AttributeName, EntityId, UnitCode};
use crate::DomainError;

pub const HOUR_MS: i64 = 3_600_000;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Step {
    Raw,
    Hour,
    Day,
}

impl std::str::FromStr for Step {
    type Err = DomainError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "raw" => Ok(Self::Raw),
            "hour" => Ok(Self::Hour),
            "day" => Ok(Self::Day),
            _ => Err(DomainError::UnknownVariant { what: "step", value: s.to_owned() }),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Aggregate {
    Avg,
    Min,
    Max,
    Sum,
    Count,
}

impl std::str::FromStr for Aggregate {
    type Err = DomainError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "avg" => Ok(Self::Avg),
            "min" => Ok(Self::Min),
            "max" => Ok(Self::Max),
            "sum" => Ok(Self::Sum),
            "count" => Ok(Self::Count),
            _ => Err(DomainError::UnknownVariant { what: "aggregate", value: s.to_owned() }),
        }
    }
}

/// A half-open interval `[from, to)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TimeRange {
    from: DateTime<Utc>,
    to: DateTime<Utc>,
}

impl TimeRange {
    pub fn new(from: DateTime<Utc>, to: DateTime<Utc>) -> Result<Self, DomainError> {
        if from >= to {
            return Err(DomainError::TimeRange("the start must be before the end".into()));
        }
        Ok(Self { from, to })
    }
    pub fn from(&self) -> DateTime<Utc> {
        self.from
    }
    pub fn to(&self) -> DateTime<Utc> {
        self.to
    }
    pub fn duration(&self) -> Duration {
        self.to - self.from
    }
}

#[derive(Debug, Clone)]
pub struct SeriesQuery {
    pub entity: EntityId,
    pub attribute: AttributeName,
    pub range: TimeRange,
    pub step: Step,
    /// Maximum number of points or buckets returned, oldest first.
    pub limit: u32,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RawPoint {
    pub t: DateTime<Utc>,
    pub value: serde_json::Value,
}

/// min/max/sum/count of one bucket; the average is derived, so merging
/// buckets stays exact.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct RollupPoint {
    pub t: DateTime<Utc>,
    pub count: u64,
    pub sum: f64,
    pub min: f64,
    pub max: f64,
}

impl RollupPoint {
    pub fn avg(&self) -> f64 {
        if self.count == 0 {
            0.0
        } else {
            self.sum / self.count as f64
        }
    }
    pub fn get(&self, a: Aggregate) -> f64 {
        match a {
            Aggregate::Avg => self.avg(),
            Aggregate::Min => self.min,
            Aggregate::Max => self.max,
            Aggregate::Sum => self.sum,
            Aggregate::Count => self.count as f64,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(untagged)]
pub enum SeriesPoints {
    Raw(Vec<RawPoint>),
    Buckets(Vec<RollupPoint>),
}

/// What is known of a series without reading its points.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SeriesInfo {
    pub attribute: AttributeName,
    pub numeric: bool,
    #[serde(rename = "unitCode", skip_serializing_if = "Option::is_none")]
    pub unit_code: Option<UnitCode>,
    #[serde(rename = "firstAt", skip_serializing_if = "Option::is_none")]
    pub first_at: Option<DateTime<Utc>>,
    #[serde(rename = "lastAt", skip_serializing_if = "Option::is_none")]
    pub last_at: Option<DateTime<Utc>>,
}

/// Start of the UTC hour containing `t_ms` (epoch milliseconds).
pub fn hour_bucket(t_ms: i64) -> i64 {
    t_ms.div_euclid(HOUR_MS) * HOUR_MS
}

/// Start (epoch ms) of the local day of `tz` containing `t_ms`.
pub fn day_bucket(t_ms: i64, tz: Tz) -> i64 {
    let Some(utc) = DateTime::<Utc>::from_timestamp_millis(t_ms) else {
        return t_ms.div_euclid(24 * HOUR_MS) * 24 * HOUR_MS;
    };
    let date = utc.with_timezone(&tz).date_naive();
    // Midnight always exists in French zones; `earliest` also covers zones
    // whose DST jump happens at midnight.
    match tz.from_local_datetime(&date.and_time(NaiveTime::MIN)).earliest() {
        Some(start) => start.timestamp_millis(),
        None => t_ms.div_euclid(24 * HOUR_MS) * 24 * HOUR_MS,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paris_days_follow_daylight_saving() {
        let tz: Tz = "Europe/Paris".parse().unwrap();
        // 2026-07-01T21:30Z is 23:30 in Paris: day starts 2026-06-30T22:00Z.
        let t = Utc.with_ymd_and_hms(2026, 7, 1, 21, 30, 0).unwrap().timestamp_millis();
        assert_eq!(day_bucket(t, tz), Utc.with_ymd_and_hms(2026, 6, 30, 22, 0, 0).unwrap().timestamp_millis());
        // In winter, Paris is UTC+1.
        let t = Utc.with_ymd_and_hms(2026, 1, 10, 23, 30, 0).unwrap().timestamp_millis();
        assert_eq!(day_bucket(t, tz), Utc.with_ymd_and_hms(2026, 1, 10, 23, 0, 0).unwrap().timestamp_millis());
        assert_eq!(hour_bucket(t), Utc.with_ymd_and_hms(2026, 1, 10, 23, 0, 0).unwrap().timestamp_millis());
    }

    #[test]
    fn every_hour_lies_in_one_local_day() {
        let tz: Tz = "Europe/Paris".parse().unwrap();
        let start = Utc.with_ymd_and_hms(2026, 3, 28, 0, 0, 0).unwrap().timestamp_millis();
        for h in 0..72 {
            let hour = start + h * HOUR_MS;
            assert_eq!(day_bucket(hour, tz), day_bucket(hour + HOUR_MS - 1, tz));
        }
    }
}
