//! French civil time: Paris local time, school holidays, public holidays and
//! the heating season. Buildings and people live by the local clock, so every
//! schedule is expressed in it and converted to UTC at the edges.

use chrono::{DateTime, Datelike, Duration, NaiveDate, NaiveTime, TimeZone, Timelike, Utc, Weekday};
use chrono_tz::Europe::Paris;
use chrono_tz::Tz;

pub(crate) const TZ: Tz = Paris;

/// An instant seen on a Paris wall clock.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Local {
    pub date: NaiveDate,
    /// Hours since local midnight, with fractions (13.5 = 13:30).
    pub hour: f64,
}

impl Local {
    pub(crate) fn of(t: DateTime<Utc>) -> Self {
        let l = t.with_timezone(&TZ);
        let hour = f64::from(l.hour()) + f64::from(l.minute()) / 60.0 + f64::from(l.second()) / 3600.0;
        Self { date: l.date_naive(), hour }
    }
    pub(crate) fn weekday(&self) -> Weekday {
        self.date.weekday()
    }
    pub(crate) fn is_weekend(&self) -> bool {
        matches!(self.weekday(), Weekday::Sat | Weekday::Sun)
    }
}

/// The UTC instant of a local wall-clock time. In the spring-forward gap the
/// time does not exist, so we take the instant one hour later; in the autumn
/// overlap we take the first one.
pub(crate) fn at_local(date: NaiveDate, hour: f64) -> DateTime<Utc> {
    let hour = hour.clamp(0.0, 48.0);
    let whole_minutes = (hour * 60.0).round() as i64;
    let naive = date.and_time(NaiveTime::MIN) + Duration::minutes(whole_minutes);
    match TZ.from_local_datetime(&naive).earliest() {
        Some(t) => t.with_timezone(&Utc),
        None => match TZ.from_local_datetime(&(naive + Duration::hours(1))).earliest() {
            Some(t) => t.with_timezone(&Utc),
            // Unreachable for Paris; UTC+1 is the right answer most of the year.
            None => Utc.from_utc_datetime(&(naive - Duration::hours(1))),
        },
    }
}

/// Day of year, 1-based, as a float (fraction of day included), in UTC.
pub(crate) fn day_of_year(t: DateTime<Utc>) -> f64 {
    f64::from(t.ordinal()) + f64::from(t.num_seconds_from_midnight()) / 86_400.0
}

/// Fixed-date public holidays (Easter-based ones are left out: the demo does
/// not need them to look right).
pub(crate) fn is_public_holiday(d: NaiveDate) -> bool {
    matches!((d.month(), d.day()), (1, 1) | (5, 1) | (5, 8) | (7, 14) | (8, 15) | (11, 1) | (11, 11) | (12, 25))
}

/// School holidays, zone A, approximated by fixed dates so that any year
/// looks plausible: Toussaint, Noël, hiver, printemps, été.
pub(crate) fn is_school_holiday(d: NaiveDate) -> bool {
    let md = (d.month(), d.day());
    let between = |a: (u32, u32), b: (u32, u32)| md >= a && md <= b;
    between((10, 19), (11, 3))
        || between((12, 20), (12, 31))
        || between((1, 1), (1, 4))
        || between((2, 8), (2, 23))
        || between((4, 12), (4, 27))
        || between((7, 5), (8, 31))
}

/// Heating runs from mid-October to mid-April, as in most French public buildings.
pub(crate) fn is_heating_season(d: NaiveDate) -> bool {
    let md = (d.month(), d.day());
    !((4, 15)..(10, 15)).contains(&md)
}

/// A stable index of a local date, for per-day randomness.
pub(crate) fn day_index(d: NaiveDate) -> u64 {
    u64::from(d.num_days_from_ce().unsigned_abs())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn local_conversion_follows_dst() {
        let d = NaiveDate::from_ymd_opt(2026, 1, 10).expect("valid date");
        assert_eq!(at_local(d, 8.0), Utc.with_ymd_and_hms(2026, 1, 10, 7, 0, 0).unwrap());
        let d = NaiveDate::from_ymd_opt(2026, 7, 10).expect("valid date");
        assert_eq!(at_local(d, 8.0), Utc.with_ymd_and_hms(2026, 7, 10, 6, 0, 0).unwrap());
        // 02:30 does not exist on 2026-03-29 in Paris.
        let d = NaiveDate::from_ymd_opt(2026, 3, 29).expect("valid date");
        assert_eq!(at_local(d, 2.5), Utc.with_ymd_and_hms(2026, 3, 29, 1, 30, 0).unwrap());
        let l = Local::of(Utc.with_ymd_and_hms(2026, 7, 10, 6, 30, 0).unwrap());
        assert_eq!(l.hour, 8.5);
    }

    #[test]
    fn seasons() {
        let d = |m, day| NaiveDate::from_ymd_opt(2026, m, day).expect("valid date");
        assert!(is_heating_season(d(1, 10)) && is_heating_season(d(10, 15)) && !is_heating_season(d(7, 1)));
        assert!(is_school_holiday(d(12, 24)) && !is_school_holiday(d(1, 12)));
        assert!(is_public_holiday(d(11, 11)));
    }
}
