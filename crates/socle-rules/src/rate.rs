//! Rate of change ("the river rises more than 30 cm per hour"), computed over a
//! window: the newest value against the oldest one still inside the window.
//!
//! Two readings a minute apart would turn one centimetre of sensor noise into
//! 60 cm/h, so a rate is only computed once the points span at least half the
//! window. The state keeps a bounded set of anchors (at most one every 1/32 of the
//! window), so a sensor talking every second does not grow the saved state.

use std::collections::VecDeque;

use chrono::{DateTime, TimeDelta, Utc};
use serde::{Deserialize, Serialize};
use socle_domain::AttributeName;

use crate::rule::{check_number, check_seconds, Status};
use crate::RuleError;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Trend {
    Rising,
    Falling,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Rate {
    pub attribute: AttributeName,
    pub direction: Trend,
    /// Change per hour, in the attribute's unit, that opens the alert (positive:
    /// the direction says which way).
    pub per_hour: f64,
    /// Rate at or under which the condition ends; defaults to `per_hour`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub clear_per_hour: Option<f64>,
    /// Window over which the rate is measured (at least a minute).
    pub window_seconds: u32,
}

impl Rate {
    pub(crate) fn validate(&self) -> Result<(), RuleError> {
        check_number("condition.perHour", self.per_hour)?;
        if self.per_hour <= 0.0 {
            return Err(RuleError::invalid("condition.perHour", "must be positive; `direction` gives the way"));
        }
        if let Some(c) = self.clear_per_hour {
            check_number("condition.clearPerHour", c)?;
            if c > self.per_hour {
                return Err(RuleError::invalid("condition.clearPerHour", "must not exceed `perHour`"));
            }
        }
        check_seconds("condition.windowSeconds", self.window_seconds, 60)
    }
}

/// Bound on anchors even for a state read back from storage that was tampered with.
const MAX_ANCHORS: usize = 64;

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct RateState {
    anchors: VecDeque<(DateTime<Utc>, f64)>,
    since: Option<DateTime<Utc>>,
    rate: Option<f64>,
}

impl RateState {
    pub(crate) fn observe(&mut self, spec: &Rate, t: DateTime<Utc>, v: f64) {
        let window = TimeDelta::seconds(i64::from(spec.window_seconds));
        let start = t - window;
        while self.anchors.front().is_some_and(|(a, _)| *a < start) {
            self.anchors.pop_front();
        }
        if let Some(&(t0, v0)) = self.anchors.front() {
            let span = t - t0;
            if span * 2 >= window && span > TimeDelta::zero() {
                let hours = span.num_milliseconds() as f64 / 3_600_000.0;
                let signed = (v - v0) / hours;
                let rate = match spec.direction {
                    Trend::Rising => signed,
                    Trend::Falling => -signed,
                };
                self.rate = Some(rate);
                let clear = spec.clear_per_hour.unwrap_or(spec.per_hour);
                match self.since {
                    None if rate > spec.per_hour => self.since = Some(t),
                    Some(_) if rate <= clear => self.since = None,
                    _ => {}
                }
            }
        }
        let spacing = window / 32;
        if self.anchors.back().is_none_or(|(b, _)| t - *b >= spacing) {
            self.anchors.push_back((t, v));
        }
        while self.anchors.len() > MAX_ANCHORS {
            self.anchors.pop_front();
        }
    }

    pub(crate) fn status(&self) -> Status {
        match self.since {
            Some(since) => Status::Active { since, value: self.rate },
            None => Status::Clear,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn spec() -> Rate {
        Rate {
            attribute: AttributeName::parse("currentLevel").unwrap(),
            direction: Trend::Rising,
            per_hour: 0.30,
            clear_per_hour: Some(0.10),
            window_seconds: 3600,
        }
    }

    #[test]
    fn rate_needs_half_a_window_and_bounds_its_anchors() {
        let t0 = Utc.with_ymd_and_hms(2026, 2, 1, 0, 0, 0).unwrap();
        let mut s = RateState::default();
        s.observe(&spec(), t0, 1.0);
        // +5 cm in one minute is 3 m/h, but over too short a span to mean anything.
        s.observe(&spec(), t0 + TimeDelta::minutes(1), 1.05);
        assert_eq!(s.status(), Status::Clear);
        s.observe(&spec(), t0 + TimeDelta::minutes(30), 1.21);
        match s.status() {
            Status::Active { since, value: Some(v) } => {
                assert_eq!(since, t0 + TimeDelta::minutes(30));
                assert!((v - 0.42).abs() < 1e-9, "{v}");
            }
            other => panic!("{other:?}"),
        }
        for i in 0..10_000 {
            s.observe(&spec(), t0 + TimeDelta::minutes(31) + TimeDelta::seconds(i), 1.21);
        }
        assert!(s.anchors.len() <= 40, "{}", s.anchors.len());
        assert_eq!(s.status(), Status::Clear, "the level stopped rising");
    }

    #[test]
    fn validation() {
        let mut r = spec();
        r.validate().unwrap();
        r.clear_per_hour = Some(0.5);
        assert!(r.validate().is_err());
        r.clear_per_hour = None;
        r.per_hour = -0.3;
        assert!(r.validate().is_err());
        r.per_hour = 0.3;
        r.window_seconds = 10;
        assert!(r.validate().is_err());
    }
}
