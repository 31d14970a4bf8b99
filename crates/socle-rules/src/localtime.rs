//! Local wall-clock times of an organisation: night windows and opening hours.
//!
//! Rules speak in local time ("01:00-05:00", "opens at 08:00") because that is how
//! agents think, while the engine runs on UTC instants. The conversion has to survive
//! the two daylight-saving nights of Europe/Paris: in spring 02:00-03:00 does not exist,
//! in autumn 02:00-03:00 happens twice.

use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, Days, LocalResult, NaiveDate, NaiveTime, TimeDelta, TimeZone, Utc};
use chrono_tz::Tz;
use serde::{Deserialize, Serialize};

use crate::RuleError;

pub(crate) const DAY_MINUTES: u16 = 24 * 60;

/// A span of local time `HH:MM-HH:MM`, in minutes since midnight. `24:00` is allowed
/// as an end ("until midnight"). Whether an end before the start means "crosses
/// midnight" is up to the user of the span (night windows allow it, opening hours do not).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct LocalSpan {
    start: u16,
    end: u16,
}

impl LocalSpan {
    pub fn new(start: u16, end: u16) -> Result<Self, RuleError> {
        if start >= DAY_MINUTES || end > DAY_MINUTES || start == end {
            return Err(RuleError::LocalSpan(format!("{start}-{end}")));
        }
        Ok(Self { start, end })
    }
    /// Minutes since local midnight.
    pub fn start(&self) -> u16 {
        self.start
    }
    pub fn end(&self) -> u16 {
        self.end
    }
    pub fn crosses_midnight(&self) -> bool {
        self.end < self.start
    }
    pub(crate) fn contains_minute(&self, minute: u16) -> bool {
        if self.crosses_midnight() {
            minute >= self.start || minute < self.end
        } else {
            minute >= self.start && minute < self.end
        }
    }
}

fn parse_hhmm(s: &str) -> Option<u16> {
    let (h, m) = s.trim().split_once(':')?;
    if h.is_empty() || h.len() > 2 || m.len() != 2 {
        return None;
    }
    let (h, m): (u16, u16) = (h.parse().ok()?, m.parse().ok()?);
    (m < 60 && (h < 24 || (h == 24 && m == 0))).then_some(h * 60 + m)
}

impl FromStr for LocalSpan {
    type Err = RuleError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let err = || RuleError::LocalSpan(s.to_owned());
        let (a, b) = s.split_once('-').ok_or_else(err)?;
        let (start, end) = (parse_hhmm(a).ok_or_else(err)?, parse_hhmm(b).ok_or_else(err)?);
        Self::new(start, end).map_err(|_| err())
    }
}
impl TryFrom<String> for LocalSpan {
    type Error = RuleError;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        s.parse()
    }
}
impl From<LocalSpan> for String {
    fn from(v: LocalSpan) -> Self {
        v.to_string()
    }
}
impl fmt::Display for LocalSpan {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:02}:{:02}-{:02}:{:02}", self.start / 60, self.start % 60, self.end / 60, self.end % 60)
    }
}

/// Minutes since local midnight of `t` in `tz`.
pub(crate) fn local_minute(t: DateTime<Utc>, tz: Tz) -> (NaiveDate, u16) {
    let local = t.with_timezone(&tz).naive_local();
    let minutes = local.time().signed_duration_since(NaiveTime::MIN).num_minutes();
    (local.date(), u16::try_from(minutes).unwrap_or(0))
}

/// Which of two instants to take when a local time happens twice (autumn).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Fold {
    Earliest,
    Latest,
}

/// The UTC instant of `minute` (0..=1440) on local `date`. A local time inside the
/// spring gap does not exist: the clock jumps over it, so the change it stands for
/// happens at the first instant after the gap. A time that happens twice resolves
/// with `fold`, so that a night window covers every local instant it names.
pub(crate) fn instant(tz: Tz, date: NaiveDate, minute: u16, fold: Fold) -> DateTime<Utc> {
    let (date, minute) =
        if minute >= DAY_MINUTES { (date.checked_add_days(Days::new(1)).unwrap_or(date), 0) } else { (date, minute) };
    let mut local = date.and_time(NaiveTime::MIN) + TimeDelta::minutes(i64::from(minute));
    // Gaps are at most an hour in the zones French authorities use (some zones
    // have 30-minute shifts); a few 15-minute steps always leave them.
    for _ in 0..12 {
        match tz.from_local_datetime(&local) {
            LocalResult::Single(t) => return t.with_timezone(&Utc),
            LocalResult::Ambiguous(a, b) => {
                return match fold {
                    Fold::Earliest => a.min(b),
                    Fold::Latest => a.max(b),
                }
                .with_timezone(&Utc)
            }
            LocalResult::None => {
                // Round up to the next quarter-hour: gap ends lie on quarter-hours.
                let m = local.time().signed_duration_since(NaiveTime::MIN).num_minutes();
                local += TimeDelta::minutes(15 - m % 15);
            }
        }
    }
    Utc.from_utc_datetime(&local)
}

/// `t + seconds`, saturating instead of overflowing at the end of chrono's range.
pub(crate) fn after(t: DateTime<Utc>, seconds: u32) -> DateTime<Utc> {
    t.checked_add_signed(TimeDelta::seconds(i64::from(seconds))).unwrap_or(DateTime::<Utc>::MAX_UTC)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spans_parse_and_print() {
        let s: LocalSpan = "01:00-05:00".parse().unwrap();
        assert_eq!((s.start(), s.end(), s.crosses_midnight()), (60, 300, false));
        assert_eq!(s.to_string(), "01:00-05:00");
        let n: LocalSpan = "22:30-06:00".parse().unwrap();
        assert!(n.crosses_midnight() && n.contains_minute(23 * 60) && n.contains_minute(0) && !n.contains_minute(600));
        assert_eq!("18:00-24:00".parse::<LocalSpan>().unwrap().end(), DAY_MINUTES);
        for bad in ["", "1-2", "25:00-26:00", "08:00-08:00", "8h-9h", "08:60-09:00", "24:00-01:00", "08:00"] {
            assert!(bad.parse::<LocalSpan>().is_err(), "{bad}");
        }
        assert_eq!(serde_json::to_string(&s).unwrap(), "\"01:00-05:00\"");
    }

    #[test]
    fn instants_across_daylight_saving() {
        let tz: Tz = "Europe/Paris".parse().unwrap();
        let spring = NaiveDate::from_ymd_opt(2026, 3, 29).unwrap();
        // 02:30 does not exist on 29 March: the clock goes from 02:00 to 03:00 (01:00Z).
        let t = instant(tz, spring, 150, Fold::Earliest);
        assert_eq!(t, Utc.with_ymd_and_hms(2026, 3, 29, 1, 0, 0).unwrap());
        let autumn = NaiveDate::from_ymd_opt(2026, 10, 25).unwrap();
        // 02:30 happens at 00:30Z and again at 01:30Z.
        assert_eq!(instant(tz, autumn, 150, Fold::Earliest), Utc.with_ymd_and_hms(2026, 10, 25, 0, 30, 0).unwrap());
        assert_eq!(instant(tz, autumn, 150, Fold::Latest), Utc.with_ymd_and_hms(2026, 10, 25, 1, 30, 0).unwrap());
        assert_eq!(
            instant(tz, autumn, DAY_MINUTES, Fold::Earliest),
            Utc.with_ymd_and_hms(2026, 10, 25, 23, 0, 0).unwrap()
        );
    }
}
