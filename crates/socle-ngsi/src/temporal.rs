//! Temporal queries (ETSI GS CIM 009 4.11 and 5.7.3): `timerel` with
//! `timeAt`/`endTimeAt`, ISO 8601 periods (`aggrPeriodDuration`) and the
//! aggregation methods, computed over raw points or over Socle's hourly and
//! daily rollups when the period and the methods allow.

use std::collections::BTreeSet;

use chrono::{DateTime, Duration, SecondsFormat, Utc};
use serde_json::{json, Value};
use socle_domain::RollupPoint;

use crate::error::{NgsiError, Result};

fn bad(msg: impl Into<String>) -> NgsiError {
    NgsiError::BadRequestData(msg.into())
}

fn instant(s: &str, name: &str) -> Result<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(s)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|_| bad(format!("{name} `{s}` is not an ISO 8601 date-time")))
}

pub fn format_instant(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::AutoSi, true)
}

/// The half-open interval `[from, to)` of `timerel`; without one, all history up to `now`.
pub fn time_range(
    timerel: Option<&str>,
    time_at: Option<&str>,
    end_time_at: Option<&str>,
    now: DateTime<Utc>,
) -> Result<(DateTime<Utc>, DateTime<Utc>)> {
    let epoch = DateTime::<Utc>::UNIX_EPOCH;
    let far = now + Duration::days(366);
    let Some(rel) = timerel else {
        return Ok((epoch, far));
    };
    let at = instant(time_at.ok_or_else(|| bad("timerel needs timeAt"))?, "timeAt")?;
    match rel {
        "before" => Ok((epoch, at)),
        "after" => Ok((at, far)),
        "between" => {
            let end = instant(end_time_at.ok_or_else(|| bad("timerel=between needs endTimeAt"))?, "endTimeAt")?;
            if end <= at {
                return Err(bad("endTimeAt must be after timeAt"));
            }
            Ok((at, end))
        }
        other => Err(bad(format!("timerel `{other}`: use before, after or between"))),
    }
}

/// An ISO 8601 duration. Years and months count 365 and 30 days: NGSI-LD
/// periods are fixed lengths of time.
pub fn parse_duration(s: &str) -> Result<Duration> {
    let err = || bad(format!("`{s}` is not an ISO 8601 duration (e.g. PT1H, P1D, PT15M)"));
    let rest = s.strip_prefix('P').ok_or_else(err)?;
    if rest.is_empty() || s.len() > 64 {
        return Err(err());
    }
    let (date, time) = match rest.split_once('T') {
        Some((d, t)) if !t.is_empty() => (d, Some(t)),
        Some(_) => return Err(err()),
        None => (rest, None),
    };
    let mut total = 0f64;
    let mut eat = |part: &str, units: &[(char, f64)]| -> Result<()> {
        let mut num = String::new();
        let mut last = 0usize;
        for c in part.chars() {
            if c.is_ascii_digit() || c == '.' || c == ',' {
                num.push(if c == ',' { '.' } else { c });
                continue;
            }
            let i = units.iter().position(|(u, _)| *u == c).ok_or_else(err)?;
            if i < last || num.is_empty() {
                return Err(err());
            }
            let v: f64 = num.parse().map_err(|_| err())?;
            total += v * units[i].1;
            last = i + 1;
            num.clear();
        }
        if num.is_empty() {
            Ok(())
        } else {
            Err(err())
        }
    };
    eat(date, &[('Y', 365.0 * 86400.0), ('M', 30.0 * 86400.0), ('W', 7.0 * 86400.0), ('D', 86400.0)])?;
    if let Some(t) = time {
        eat(t, &[('H', 3600.0), ('M', 60.0), ('S', 1.0)])?;
    }
    if !total.is_finite() || total > 1e11 {
        return Err(err());
    }
    Ok(Duration::milliseconds((total * 1000.0).round() as i64))
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum AggrMethod {
    TotalCount,
    DistinctCount,
    Sum,
    Avg,
    Min,
    Max,
    Stddev,
    Sumsq,
}

impl AggrMethod {
    pub const ALL: [Self; 8] =
        [Self::TotalCount, Self::DistinctCount, Self::Sum, Self::Avg, Self::Min, Self::Max, Self::Stddev, Self::Sumsq];

    pub fn name(self) -> &'static str {
        match self {
            Self::TotalCount => "totalCount",
            Self::DistinctCount => "distinctCount",
            Self::Sum => "sum",
            Self::Avg => "avg",
            Self::Min => "min",
            Self::Max => "max",
            Self::Stddev => "stddev",
            Self::Sumsq => "sumsq",
        }
    }

    pub fn parse_list(s: &str) -> Result<BTreeSet<Self>> {
        let mut out = BTreeSet::new();
        for name in s.split(',').map(str::trim) {
            let m = Self::ALL
                .into_iter()
                .find(|m| m.name() == name)
                .ok_or_else(|| bad(format!("unknown aggregation method `{name}`")))?;
            out.insert(m);
        }
        Ok(out)
    }

    /// Whether min/max/sum/count per bucket suffice (rollups can answer).
    pub fn from_rollups(self) -> bool {
        matches!(self, Self::TotalCount | Self::Sum | Self::Avg | Self::Min | Self::Max)
    }
}

/// One period's accumulated values.
#[derive(Debug, Clone, Default)]
struct Acc {
    count: u64,
    sum: f64,
    sumsq: f64,
    min: f64,
    max: f64,
    distinct: BTreeSet<u64>,
}

impl Acc {
    fn add(&mut self, v: f64) {
        if self.count == 0 {
            (self.min, self.max) = (v, v);
        }
        self.count += 1;
        self.sum += v;
        self.sumsq += v * v;
        self.min = self.min.min(v);
        self.max = self.max.max(v);
        self.distinct.insert(v.to_bits());
    }

    fn get(&self, m: AggrMethod) -> Value {
        let n = self.count as f64;
        match m {
            AggrMethod::TotalCount => json!(self.count),
            AggrMethod::DistinctCount => json!(self.distinct.len()),
            AggrMethod::Sum => json!(self.sum),
            AggrMethod::Avg => json!(self.sum / n),
            AggrMethod::Min => json!(self.min),
            AggrMethod::Max => json!(self.max),
            // Population standard deviation, as the reference brokers compute it.
            AggrMethod::Stddev => json!((self.sumsq / n - (self.sum / n).powi(2)).max(0.0).sqrt()),
            AggrMethod::Sumsq => json!(self.sumsq),
        }
    }
}

/// The aggregated representation of one attribute: for each method, the
/// list of `[value, periodStart, periodEnd]`, periods starting at `from`
/// (one period over the whole range when `period` is `None`). Periods
/// without points are left out.
pub fn aggregate_raw(
    points: &[(DateTime<Utc>, f64)],
    from: DateTime<Utc>,
    to: DateTime<Utc>,
    period: Option<Duration>,
    methods: &BTreeSet<AggrMethod>,
) -> serde_json::Map<String, Value> {
    let period = period.filter(|p| p.num_milliseconds() > 0);
    let mut periods: Vec<(DateTime<Utc>, Acc)> = Vec::new();
    for (t, v) in points {
        let start = match period {
            Some(p) => {
                let k = (*t - from).num_milliseconds().div_euclid(p.num_milliseconds());
                from + Duration::milliseconds(k * p.num_milliseconds())
            }
            None => from,
        };
        match periods.last_mut() {
            Some((s, acc)) if *s == start => acc.add(*v),
            _ => {
                let mut acc = Acc::default();
                acc.add(*v);
                periods.push((start, acc));
            }
        }
    }
    emit(&periods, period.unwrap_or(to - from), to, methods)
}

fn emit(
    periods: &[(DateTime<Utc>, Acc)],
    period: Duration,
    to: DateTime<Utc>,
    methods: &BTreeSet<AggrMethod>,
) -> serde_json::Map<String, Value> {
    let mut out = serde_json::Map::new();
    for m in methods {
        let values: Vec<Value> = periods
            .iter()
            .map(|(s, acc)| json!([acc.get(*m), format_instant(*s), format_instant((*s + period).min(to))]))
            .collect();
        out.insert(m.name().into(), Value::Array(values));
    }
    out
}

/// The same from rollup buckets of `bucket` length, merged into periods of
/// `period` (a multiple of it) starting at `from`.
pub fn aggregate_rollups(
    buckets: &[RollupPoint],
    from: DateTime<Utc>,
    to: DateTime<Utc>,
    period: Option<Duration>,
    methods: &BTreeSet<AggrMethod>,
) -> serde_json::Map<String, Value> {
    let period = period.filter(|p| p.num_milliseconds() > 0);
    let mut periods: Vec<(DateTime<Utc>, Acc)> = Vec::new();
    for b in buckets {
        let start = match period {
            Some(p) => {
                let k = (b.t - from).num_milliseconds().div_euclid(p.num_milliseconds());
                from + Duration::milliseconds(k * p.num_milliseconds())
            }
            None => from,
        };
        let merge = |acc: &mut Acc| {
            if acc.count == 0 {
                (acc.min, acc.max) = (b.min, b.max);
            }
            acc.count += b.count;
            acc.sum += b.sum;
            acc.min = acc.min.min(b.min);
            acc.max = acc.max.max(b.max);
        };
        match periods.last_mut() {
            Some((s, acc)) if *s == start => merge(acc),
            _ => {
                let mut acc = Acc::default();
                merge(&mut acc);
                periods.push((start, acc));
            }
        }
    }
    emit(&periods, period.unwrap_or(to - from), to, methods)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn t(s: &str) -> DateTime<Utc> {
        instant(s, "t").unwrap()
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("PT1H").unwrap(), Duration::hours(1));
        assert_eq!(parse_duration("P1D").unwrap(), Duration::days(1));
        assert_eq!(parse_duration("PT15M").unwrap(), Duration::minutes(15));
        assert_eq!(parse_duration("P1W").unwrap(), Duration::days(7));
        assert_eq!(parse_duration("P1DT12H").unwrap(), Duration::hours(36));
        assert_eq!(parse_duration("PT0.5S").unwrap(), Duration::milliseconds(500));
        assert_eq!(parse_duration("P0D").unwrap(), Duration::zero());
        for bad in ["", "P", "PT", "1H", "PT1X", "P1H", "PT1M1H", "PTH", "P1D2"] {
            assert!(parse_duration(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn ranges() {
        let now = t("2026-06-01T00:00:00Z");
        let (f, to) =
            time_range(Some("between"), Some("2026-01-01T00:00:00Z"), Some("2026-02-01T00:00:00Z"), now).unwrap();
        assert_eq!((f, to), (t("2026-01-01T00:00:00Z"), t("2026-02-01T00:00:00Z")));
        assert_eq!(
            time_range(Some("before"), Some("2026-01-01T00:00:00Z"), None, now).unwrap().1,
            t("2026-01-01T00:00:00Z")
        );
        assert!(time_range(Some("between"), Some("2026-01-01T00:00:00Z"), None, now).is_err());
        assert!(time_range(Some("after"), None, None, now).is_err());
        assert!(time_range(Some("during"), Some("2026-01-01T00:00:00Z"), None, now).is_err());
    }

    #[test]
    fn aggregation_by_period() {
        let from = t("2026-01-05T00:00:00Z");
        let pts: Vec<_> = (0..8).map(|k| (from + Duration::minutes(15 * k), (k % 4) as f64 + 1.0)).collect();
        let methods = AggrMethod::parse_list("totalCount,distinctCount,sum,avg,min,max,stddev,sumsq").unwrap();
        let out = aggregate_raw(&pts, from, from + Duration::hours(2), Some(Duration::hours(1)), &methods);
        assert_eq!(
            out["sum"],
            json!([
                [10.0, "2026-01-05T00:00:00Z", "2026-01-05T01:00:00Z"],
                [10.0, "2026-01-05T01:00:00Z", "2026-01-05T02:00:00Z"]
            ])
        );
        assert_eq!(out["totalCount"][0][0], 4);
        assert_eq!(out["distinctCount"][0][0], 4);
        assert_eq!(out["avg"][1][0], 2.5);
        assert_eq!(out["min"][0][0], 1.0);
        assert_eq!(out["max"][0][0], 4.0);
        assert_eq!(out["sumsq"][0][0], 30.0);
        assert!((out["stddev"][0][0].as_f64().unwrap() - 1.25f64.sqrt()).abs() < 1e-12);
        // Rollups give the same figures for the methods they can answer.
        let buckets: Vec<RollupPoint> = [0, 1]
            .iter()
            .map(|h| RollupPoint { t: from + Duration::hours(*h), count: 4, sum: 10.0, min: 1.0, max: 4.0 })
            .collect();
        let cheap = AggrMethod::parse_list("totalCount,sum,avg,min,max").unwrap();
        let whole = aggregate_rollups(&buckets, from, from + Duration::hours(2), None, &cheap);
        let raw_whole = aggregate_raw(&pts, from, from + Duration::hours(2), None, &cheap);
        assert_eq!(whole, raw_whole);
        assert!(AggrMethod::parse_list("median").is_err());
    }

    proptest! {
        #[test]
        fn durations_never_panic(s in ".{0,30}") { let _ = parse_duration(&s); }
        #[test]
        fn duration_like_never_panics(s in "P[0-9.,YMWDTHS]{0,20}") { let _ = parse_duration(&s); }
    }
}
