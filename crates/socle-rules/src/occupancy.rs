//! Consumption outside an occupancy calendar: heating or lights on in an empty
//! building. The calendar is the site's weekly opening hours plus closed dates
//! (public holidays, school holidays), in the organisation's local time.
//!
//! The last known value counts until a new one arrives, because many meters and
//! switches only report on change: lights switched on at 18:50 in a gym that closes
//! at 19:00 are "on while closed" from 19:00, with no new reading. So the rule also
//! fires from ticks, at the calendar's boundaries.

use std::collections::BTreeSet;

use chrono::{DateTime, Datelike, Days, NaiveDate, Utc, Weekday};
use chrono_tz::Tz;
use serde::{Deserialize, Serialize};
use socle_domain::AttributeName;

use crate::localtime::{after, instant, local_minute, Fold, LocalSpan};
use crate::rule::{check_number, check_seconds, Status, MAX_SECONDS};
use crate::RuleError;

/// Opening hours per weekday; a day without spans is closed all day.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Week {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub monday: Vec<LocalSpan>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tuesday: Vec<LocalSpan>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub wednesday: Vec<LocalSpan>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub thursday: Vec<LocalSpan>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub friday: Vec<LocalSpan>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub saturday: Vec<LocalSpan>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub sunday: Vec<LocalSpan>,
}

impl Week {
    pub fn day(&self, day: Weekday) -> &[LocalSpan] {
        match day {
            Weekday::Mon => &self.monday,
            Weekday::Tue => &self.tuesday,
            Weekday::Wed => &self.wednesday,
            Weekday::Thu => &self.thursday,
            Weekday::Fri => &self.friday,
            Weekday::Sat => &self.saturday,
            Weekday::Sun => &self.sunday,
        }
    }
    fn days(&self) -> [&[LocalSpan]; 7] {
        [&self.monday, &self.tuesday, &self.wednesday, &self.thursday, &self.friday, &self.saturday, &self.sunday]
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Calendar {
    #[serde(default)]
    pub week: Week,
    /// Local dates closed all day whatever the weekday.
    #[serde(default, skip_serializing_if = "BTreeSet::is_empty")]
    pub closed: BTreeSet<NaiveDate>,
}

/// How far ahead to look for the next opening or closing: a year covers the
/// longest closures (summer holidays, works) with room to spare.
const SEARCH_DAYS: u64 = 400;

impl Calendar {
    pub(crate) fn validate(&self) -> Result<(), RuleError> {
        for spans in self.week.days() {
            if spans.len() > 8 {
                return Err(RuleError::invalid("condition.calendar.week", "at most 8 spans per day"));
            }
            if spans.iter().any(LocalSpan::crosses_midnight) {
                return Err(RuleError::invalid(
                    "condition.calendar.week",
                    "opening hours end the same day (use 24:00, and the next day from 00:00)",
                ));
            }
        }
        if self.closed.len() > 1000 {
            return Err(RuleError::invalid("condition.calendar.closed", "at most 1,000 closed dates"));
        }
        Ok(())
    }

    /// Whether the site is open at `t`, by its local wall clock.
    pub fn is_open(&self, tz: Tz, t: DateTime<Utc>) -> bool {
        let (date, minute) = local_minute(t, tz);
        !self.closed.contains(&date) && self.week.day(date.weekday()).iter().any(|s| s.contains_minute(minute))
    }

    /// The next instant after `t` at which the site opens or closes, if any within
    /// about a year.
    pub fn next_change(&self, tz: Tz, t: DateTime<Utc>) -> Option<DateTime<Utc>> {
        if self.week.days().iter().all(|d| d.is_empty()) {
            return None; // always closed
        }
        let open = self.is_open(tz, t);
        let (today, _) = local_minute(t, tz);
        let mut candidates = Vec::with_capacity(36);
        for offset in 0..=SEARCH_DAYS {
            let Some(date) = today.checked_add_days(Days::new(offset)) else { break };
            candidates.clear();
            // Midnight matters for closed dates; both folds catch a span boundary
            // inside the hour the autumn change repeats.
            candidates.push(instant(tz, date, 0, Fold::Earliest));
            for s in self.week.day(date.weekday()) {
                for m in [s.start(), s.end()] {
                    candidates.push(instant(tz, date, m, Fold::Earliest));
                    candidates.push(instant(tz, date, m, Fold::Latest));
                }
            }
            candidates.sort_unstable();
            if let Some(c) = candidates.iter().find(|c| **c > t && self.is_open(tz, **c) != open) {
                return Some(*c);
            }
        }
        None
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Occupancy {
    /// A consumption or power attribute (`activePower`, `consumption`), or a switch
    /// state (`powerState`: `on` reads as 1).
    pub attribute: AttributeName,
    /// Opens when the value is strictly above this while the site is closed.
    pub level: f64,
    pub calendar: Calendar,
    /// How long it must last (lights left on for a few minutes by the last agent out
    /// are not an alert).
    #[serde(default)]
    pub min_duration_seconds: u32,
}

impl Occupancy {
    pub(crate) fn validate(&self) -> Result<(), RuleError> {
        check_number("condition.level", self.level)?;
        check_seconds("condition.minDurationSeconds", self.min_duration_seconds, 0)?;
        self.calendar.validate()
    }
}

/// Whether the site is open, valid until the next change; evaluation time only moves
/// forward, so the time-zone work is done once per opening or closing.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Opening {
    open: bool,
    from: DateTime<Utc>,
    until: DateTime<Utc>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct OccupancyState {
    value: Option<f64>,
    above: bool,
    /// When "above while closed" started.
    since: Option<DateTime<Utc>>,
    opening: Option<Opening>,
}

impl OccupancyState {
    pub(crate) fn observe(&mut self, spec: &Occupancy, v: f64) {
        self.value = Some(v);
        self.above = v > spec.level;
        if !self.above {
            self.since = None;
        }
    }

    pub(crate) fn advance(&mut self, spec: &Occupancy, tz: Tz, now: DateTime<Utc>) {
        if !self.above {
            return;
        }
        let opening = match self.opening {
            Some(o) if o.from <= now && now < o.until => o,
            _ => {
                let until = spec.calendar.next_change(tz, now).unwrap_or_else(|| after(now, MAX_SECONDS));
                let o = Opening { open: spec.calendar.is_open(tz, now), from: now, until };
                self.opening = Some(o);
                o
            }
        };
        if opening.open {
            self.since = None;
        } else {
            self.since.get_or_insert(now);
        }
    }

    pub(crate) fn status(&self, spec: &Occupancy, now: DateTime<Utc>) -> Status {
        match self.since {
            Some(since) if self.above && after(since, spec.min_duration_seconds) <= now => {
                Status::Active { since, value: self.value }
            }
            Some(_) if self.above => Status::Pending,
            _ => Status::Clear,
        }
    }

    pub(crate) fn deadline(&self, spec: &Occupancy, later_than: DateTime<Utc>) -> Option<DateTime<Utc>> {
        if !self.above {
            return None;
        }
        let boundary = self.opening.map(|o| o.until);
        let hold = self.since.filter(|_| spec.min_duration_seconds > 0).map(|s| after(s, spec.min_duration_seconds));
        [boundary, hold].into_iter().flatten().filter(|d| *d > later_than).min()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn gym() -> Calendar {
        let day = vec!["08:00-12:00".parse().unwrap(), "14:00-22:00".parse().unwrap()];
        Calendar {
            week: Week {
                monday: day.clone(),
                tuesday: day.clone(),
                saturday: vec!["09:00-24:00".parse().unwrap()],
                ..Week::default()
            },
            closed: [NaiveDate::from_ymd_opt(2026, 5, 25).unwrap()].into(),
        }
    }

    #[test]
    fn opening_hours_and_next_change() {
        let tz = chrono_tz::Europe::Paris;
        let c = gym();
        c.validate().unwrap();
        let at = |d, h, m| Utc.with_ymd_and_hms(2026, 5, d, h, m, 0).unwrap();
        // Monday 18 May 2026, 10:00 in Paris (08:00Z): open until 12:00 (10:00Z).
        assert!(c.is_open(tz, at(18, 8, 0)));
        assert_eq!(c.next_change(tz, at(18, 8, 0)), Some(at(18, 10, 0)));
        assert_eq!(c.next_change(tz, at(18, 10, 0)), Some(at(18, 12, 0)));
        // Tuesday 22:00 closes until Saturday 09:00.
        assert_eq!(c.next_change(tz, at(19, 20, 0)), Some(at(23, 7, 0)));
        // Saturday open until midnight, then closed Sunday, and Monday 25 May is a
        // closed date (Whit Monday): next opening Tuesday 26 at 08:00.
        assert_eq!(c.next_change(tz, at(23, 7, 0)), Some(at(23, 22, 0)));
        assert_eq!(c.next_change(tz, at(23, 22, 0)), Some(at(26, 6, 0)));
        assert!(!c.is_open(tz, at(25, 8, 0)));
        assert_eq!(Calendar::default().next_change(tz, at(18, 8, 0)), None);
    }

    #[test]
    fn spans_crossing_midnight_are_refused() {
        let mut c = gym();
        c.week.friday = vec!["20:00-02:00".parse().unwrap()];
        assert!(c.validate().is_err());
    }
}
