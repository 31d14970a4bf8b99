//! Leak detection by the night minimum flow: at night nobody draws water, so a
//! network sector or a building whose smallest flow stays above a level for several
//! nights in a row is leaking.
//!
//! Nights are local (the organisation's time zone), so "01:00-05:00" is three hours
//! long on the spring daylight-saving night and five on the autumn one; each night
//! is judged when it ends. A night without any reading is skipped: it neither
//! confirms nor clears a leak, because a missed LoRaWAN frame says nothing about the
//! pipes (the silence rule watches the meter itself).

use chrono::{DateTime, Days, NaiveDate, Utc};
use chrono_tz::Tz;
use serde::{Deserialize, Serialize};
use socle_domain::AttributeName;

use crate::localtime::{instant, local_minute, Fold, LocalSpan};
use crate::rule::{check_number, Status};
use crate::RuleError;

fn default_night() -> LocalSpan {
    LocalSpan::new(60, 300).expect("01:00-05:00 is a valid span")
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Leak {
    /// A flow attribute (`flow`, in m³/h or L/h).
    pub attribute: AttributeName,
    /// The night minimum must stay strictly above this.
    pub level: f64,
    /// Consecutive nights (1 to 31).
    pub nights: u32,
    /// Local night window; it may cross midnight (`23:00-05:00`).
    #[serde(default = "default_night")]
    pub night: LocalSpan,
}

impl Leak {
    pub(crate) fn validate(&self) -> Result<(), RuleError> {
        check_number("condition.level", self.level)?;
        if !(1..=31).contains(&self.nights) {
            return Err(RuleError::invalid("condition.nights", "between 1 and 31 nights"));
        }
        Ok(())
    }
}

/// One night, named by the local date on which it ends, with its UTC bounds.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Night {
    date: NaiveDate,
    start: DateTime<Utc>,
    end: DateTime<Utc>,
}

impl Night {
    fn of(span: LocalSpan, tz: Tz, date: NaiveDate) -> Self {
        let start_date =
            if span.crosses_midnight() { date.checked_sub_days(Days::new(1)).unwrap_or(date) } else { date };
        // A night covers every local instant it names: the first 01:00 and the last
        // 05:00 when the autumn change repeats an hour.
        Self {
            date,
            start: instant(tz, start_date, span.start(), Fold::Earliest),
            end: instant(tz, date, span.end(), Fold::Latest),
        }
    }

    /// The night in progress at `t`, or the next one.
    fn at_or_after(span: LocalSpan, tz: Tz, t: DateTime<Utc>) -> Self {
        let (date, _) = local_minute(t, tz);
        let mut night = Self::of(span, tz, date);
        for _ in 0..3 {
            if night.end > t {
                break;
            }
            let Some(next) = night.date.checked_add_days(Days::new(1)) else { break };
            night = Self::of(span, tz, next);
        }
        night
    }
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct LeakState {
    /// The night in progress or the next one; cached because observations only move
    /// forward, so most of them are answered without a time-zone conversion.
    upcoming: Option<Night>,
    /// Minimum seen in the upcoming night, if it has readings.
    min: Option<f64>,
    last_judged: Option<NaiveDate>,
    streak: u32,
    streak_start: Option<DateTime<Utc>>,
    last_min: Option<f64>,
}

impl LeakState {
    pub(crate) fn observe(&mut self, spec: &Leak, tz: Tz, t: DateTime<Utc>, v: f64) {
        let night = match self.upcoming {
            Some(n) if n.end > t => n,
            _ => {
                // The previous night ended without being judged (no tick reached it):
                // judge it now, before moving on.
                self.judge(spec);
                let n = Night::at_or_after(spec.night, tz, t);
                self.upcoming = Some(n);
                n
            }
        };
        if t < night.start || self.last_judged.is_some_and(|d| d >= night.date) {
            return;
        }
        self.min = Some(self.min.map_or(v, |m| m.min(v)));
    }

    /// Judges the upcoming night once it is over.
    pub(crate) fn advance(&mut self, spec: &Leak, now: DateTime<Utc>) {
        if self.upcoming.is_some_and(|n| n.end <= now) {
            self.judge(spec);
            self.upcoming = None;
        }
    }

    fn judge(&mut self, spec: &Leak) {
        let (Some(night), Some(min)) = (self.upcoming, self.min.take()) else { return };
        self.last_min = Some(min);
        self.last_judged = Some(night.date);
        if min > spec.level {
            if self.streak == 0 {
                self.streak_start = Some(night.start);
            }
            self.streak = self.streak.saturating_add(1);
        } else {
            self.streak = 0;
            self.streak_start = None;
        }
    }

    pub(crate) fn status(&self, spec: &Leak) -> Status {
        match self.streak_start {
            Some(since) if self.streak >= spec.nights => Status::Active { since, value: self.last_min },
            _ => Status::Clear,
        }
    }

    /// The end of a night that has readings: it must be judged then.
    pub(crate) fn deadline(&self, later_than: DateTime<Utc>) -> Option<DateTime<Utc>> {
        self.upcoming.filter(|_| self.min.is_some()).map(|n| n.end).filter(|d| *d > later_than)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn nights_follow_local_time_across_daylight_saving() {
        let tz = chrono_tz::Europe::Paris;
        let span: LocalSpan = "01:00-05:00".parse().unwrap();
        let spring = Night::of(span, tz, NaiveDate::from_ymd_opt(2026, 3, 29).unwrap());
        assert_eq!(spring.start, Utc.with_ymd_and_hms(2026, 3, 29, 0, 0, 0).unwrap());
        assert_eq!(spring.end, Utc.with_ymd_and_hms(2026, 3, 29, 3, 0, 0).unwrap(), "three hours long");
        let autumn = Night::of(span, tz, NaiveDate::from_ymd_opt(2026, 10, 25).unwrap());
        assert_eq!(autumn.start, Utc.with_ymd_and_hms(2026, 10, 24, 23, 0, 0).unwrap());
        assert_eq!(autumn.end, Utc.with_ymd_and_hms(2026, 10, 25, 4, 0, 0).unwrap(), "five hours long");
        let crossing: LocalSpan = "23:00-05:00".parse().unwrap();
        let t = Utc.with_ymd_and_hms(2026, 1, 10, 22, 30, 0).unwrap(); // 23:30 in Paris
        let n = Night::at_or_after(crossing, tz, t);
        assert_eq!(n.date, NaiveDate::from_ymd_opt(2026, 1, 11).unwrap());
        assert!(n.start <= t && t < n.end);
        let noon = Utc.with_ymd_and_hms(2026, 1, 10, 11, 0, 0).unwrap();
        assert!(Night::at_or_after(crossing, tz, noon).start > noon, "between nights: the next one");
    }
}
