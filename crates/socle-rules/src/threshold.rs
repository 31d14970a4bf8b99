//! Threshold rules ("temperature above 26 °C for 15 minutes") and battery-low rules,
//! which are a threshold below a level on a battery attribute.
//!
//! The condition starts when the value crosses `level` and ends only when it crosses
//! back past `clear` (hysteresis): a value hovering around the level then makes one
//! alert, not one per reading. With a minimum duration the condition must last that
//! long, without ending, before it counts.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use socle_domain::AttributeName;

use crate::localtime::after;
use crate::rule::{check_number, check_percent, check_seconds, Scale, Status};
use crate::RuleError;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Direction {
    Above,
    Below,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Threshold {
    pub attribute: AttributeName,
    pub direction: Direction,
    pub level: f64,
    /// Where the condition ends (hysteresis): at or below it for `above`, at or
    /// above it for `below`. Defaults to `level`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub clear: Option<f64>,
    /// How long the condition must last before the alert opens.
    #[serde(default)]
    pub min_duration_seconds: u32,
}

impl Threshold {
    pub(crate) fn validate(&self) -> Result<(), RuleError> {
        check_number("condition.level", self.level)?;
        if let Some(c) = self.clear {
            check_number("condition.clear", c)?;
            let wrong_side = match self.direction {
                Direction::Above => c > self.level,
                Direction::Below => c < self.level,
            };
            if wrong_side {
                return Err(RuleError::invalid(
                    "condition.clear",
                    "the clear level must lie on the normal side of the level (hysteresis)",
                ));
            }
        }
        check_seconds("condition.minDurationSeconds", self.min_duration_seconds, 0)
    }

    pub(crate) fn band(&self) -> Band {
        Band {
            above: self.direction == Direction::Above,
            inclusive: false,
            level: self.level,
            clear: self.clear.unwrap_or(self.level),
        }
    }
}

fn battery_attribute() -> AttributeName {
    AttributeName::parse("batteryLevel").expect("a valid attribute name")
}

/// Battery below a percentage. Smart Data Models devices report `batteryLevel` as a
/// ratio (1.0 full) and -1 when it cannot be determined; negative readings are ignored.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct BatteryLow {
    #[serde(default = "battery_attribute")]
    pub attribute: AttributeName,
    pub percent: f64,
    /// The battery counts as replaced again at or above this; defaults to `percent`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub clear_percent: Option<f64>,
    #[serde(default)]
    pub scale: Scale,
}

impl BatteryLow {
    pub fn new(percent: f64) -> Self {
        Self { attribute: battery_attribute(), percent, clear_percent: None, scale: Scale::Ratio }
    }

    pub(crate) fn validate(&self) -> Result<(), RuleError> {
        check_percent("condition.percent", self.percent)?;
        if let Some(c) = self.clear_percent {
            check_percent("condition.clearPercent", c)?;
            if c < self.percent {
                return Err(RuleError::invalid("condition.clearPercent", "must be at least `percent`"));
            }
        }
        Ok(())
    }

    pub(crate) fn band(&self) -> Band {
        Band { above: false, inclusive: false, level: self.percent, clear: self.clear_percent.unwrap_or(self.percent) }
    }
}

/// A level with its hysteresis. `inclusive` makes the level itself trigger ("at or
/// above 80 %"), as fill rules say.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Band {
    pub above: bool,
    pub inclusive: bool,
    pub level: f64,
    pub clear: f64,
}

impl Band {
    fn beyond(&self, v: f64, level: f64) -> bool {
        match (self.above, self.inclusive) {
            (true, false) => v > level,
            (true, true) => v >= level,
            (false, false) => v < level,
            (false, true) => v <= level,
        }
    }
    pub(crate) fn triggers(&self, v: f64) -> bool {
        self.beyond(v, self.level)
    }
    pub(crate) fn clears(&self, v: f64) -> bool {
        !self.beyond(v, self.clear)
    }
}

/// State of a level condition: when it started (if it is on) and the last value.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct LevelState {
    since: Option<DateTime<Utc>>,
    value: Option<f64>,
}

impl LevelState {
    pub(crate) fn observe(&mut self, band: &Band, t: DateTime<Utc>, v: f64) {
        self.value = Some(v);
        match self.since {
            None if band.triggers(v) => self.since = Some(t),
            Some(_) if band.clears(v) => self.since = None,
            _ => {}
        }
    }

    pub(crate) fn status(&self, hold_seconds: u32, now: DateTime<Utc>) -> Status {
        match self.since {
            Some(since) if after(since, hold_seconds) <= now => Status::Active { since, value: self.value },
            Some(_) => Status::Pending,
            None => Status::Clear,
        }
    }

    /// While the condition waits for its minimum duration, the instant it will count.
    pub(crate) fn deadline(&self, hold_seconds: u32, later_than: DateTime<Utc>) -> Option<DateTime<Utc>> {
        self.since.map(|s| after(s, hold_seconds)).filter(|d| hold_seconds > 0 && *d > later_than)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn bands_apply_hysteresis_on_both_sides() {
        let up = Band { above: true, inclusive: false, level: 26.0, clear: 25.0 };
        assert!(up.triggers(26.1) && !up.triggers(26.0));
        assert!(!up.clears(25.5) && up.clears(25.0));
        let down = Band { above: false, inclusive: false, level: 20.0, clear: 30.0 };
        assert!(down.triggers(19.0) && !down.clears(25.0) && down.clears(30.0));
        let fill = Band { above: true, inclusive: true, level: 80.0, clear: 80.0 };
        assert!(fill.triggers(80.0) && fill.clears(79.9) && !fill.clears(80.0));
    }

    #[test]
    fn level_state_waits_for_the_minimum_duration() {
        let t0 = Utc.with_ymd_and_hms(2026, 1, 5, 8, 0, 0).unwrap();
        let band = Band { above: true, inclusive: false, level: 26.0, clear: 25.0 };
        let mut s = LevelState::default();
        s.observe(&band, t0, 27.0);
        assert_eq!(s.status(900, t0), Status::Pending);
        assert_eq!(s.deadline(900, t0), Some(after(t0, 900)));
        assert_eq!(s.status(900, after(t0, 900)), Status::Active { since: t0, value: Some(27.0) });
        s.observe(&band, after(t0, 60), 25.5);
        assert!(matches!(s.status(900, after(t0, 900)), Status::Active { .. }), "still above the clear level");
        s.observe(&band, after(t0, 120), 24.0);
        assert_eq!(s.status(900, after(t0, 900)), Status::Clear);
    }

    #[test]
    fn validation_rejects_inverted_hysteresis() {
        let mut t = Threshold {
            attribute: AttributeName::parse("temperature").unwrap(),
            direction: Direction::Below,
            level: 5.0,
            clear: Some(4.0),
            min_duration_seconds: 0,
        };
        assert!(t.validate().is_err());
        t.clear = Some(6.0);
        t.validate().unwrap();
        t.level = f64::NAN;
        assert!(t.validate().is_err());
        let mut b = BatteryLow::new(20.0);
        b.validate().unwrap();
        b.clear_percent = Some(10.0);
        assert!(b.validate().is_err());
        assert!(BatteryLow::new(120.0).validate().is_err());
    }
}
