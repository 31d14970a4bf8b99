//! Rollup arithmetic shared by both backends.
//!
//! Rollups are updated in the same transaction as the raw points, from the
//! points that were actually inserted (duplicates excluded), so they always
//! equal an aggregate of the raw data. Points are first folded in memory per
//! bucket so that a batch touches each bucket row once.

use std::collections::{HashMap, HashSet};

use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use socle_domain::series::{day_bucket, hour_bucket};
use socle_domain::RollupPoint;

use crate::rows::{from_ms, ms};
use crate::{ConsistencyReport, Inconsistency, Result};

/// count/sum/min/max of one bucket.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Agg {
    pub count: i64,
    pub sum: f64,
    pub min: f64,
    pub max: f64,
}

impl Agg {
    pub fn one(v: f64) -> Self {
        Self { count: 1, sum: v, min: v, max: v }
    }
    pub fn merge(&mut self, o: &Agg) {
        self.count += o.count;
        self.sum += o.sum;
        self.min = self.min.min(o.min);
        self.max = self.max.max(o.max);
    }
    /// Equal up to floating-point summation order.
    pub fn approx_eq(&self, o: &Agg) -> bool {
        let tol = |a: f64, b: f64| (a - b).abs() <= 1e-9 * (1.0 + a.abs().max(b.abs()));
        self.count == o.count && tol(self.sum, o.sum) && tol(self.min, o.min) && tol(self.max, o.max)
    }
}

/// Hourly and daily aggregates of inserted points, keyed by (series, bucket start ms).
#[derive(Debug, Default)]
pub struct Folded {
    pub hours: HashMap<(i64, i64), Agg>,
    pub days: HashMap<(i64, i64), Agg>,
}

impl Folded {
    pub fn add(&mut self, series: i64, t_ms: i64, value: f64, tz: Tz) {
        let a = Agg::one(value);
        self.hours.entry((series, hour_bucket(t_ms))).and_modify(|x| x.merge(&a)).or_insert(a);
        self.days.entry((series, day_bucket(t_ms, tz))).and_modify(|x| x.merge(&a)).or_insert(a);
    }
}

pub fn rollup_points(rows: Vec<(i64, Agg)>) -> Result<Vec<RollupPoint>> {
    rows.into_iter()
        .map(|(b, a)| {
            Ok(RollupPoint {
                t: from_ms(b)?,
                count: u64::try_from(a.count).unwrap_or(0),
                sum: a.sum,
                min: a.min,
                max: a.max,
            })
        })
        .collect()
}

/// Compares rollups of one series against the fold of its raw points.
pub fn compare_rollups(
    entity: &str,
    attribute: &str,
    expected: &HashMap<i64, Agg>,
    stored: &[(i64, Agg)],
    granularity: &str,
    report: &mut ConsistencyReport,
) -> Result<()> {
    let mut seen = HashSet::new();
    let problem = |bucket: i64, what: String, report: &mut ConsistencyReport| -> Result<()> {
        report.problems.push(Inconsistency {
            entity: entity.to_owned(),
            attribute: attribute.to_owned(),
            bucket: from_ms(bucket)?,
            what,
        });
        Ok(())
    };
    for (bucket, agg) in stored {
        report.buckets_checked += 1;
        seen.insert(*bucket);
        match expected.get(bucket) {
            Some(e) if e.approx_eq(agg) => {}
            Some(e) => problem(*bucket, format!("{granularity} rollup {agg:?} but raw points give {e:?}"), report)?,
            None => problem(*bucket, format!("{granularity} rollup {agg:?} without raw points"), report)?,
        }
    }
    for (bucket, e) in expected {
        if !seen.contains(bucket) {
            problem(*bucket, format!("raw points {e:?} without a {granularity} rollup"), report)?;
        }
    }
    Ok(())
}

/// First bucket start that is fully retained, for a series of an organisation
/// with this retention (None: everything).
pub fn retained_from(now: DateTime<Utc>, retention_days: Option<i64>, tz: Tz) -> i64 {
    match retention_days {
        // One extra day of margin: a bucket cut in half by retention is not comparable.
        Some(d) => day_bucket(ms(now) - (d + 1) * 86_400_000, tz) + 86_400_000,
        None => i64::MIN,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn folds_per_bucket() {
        let tz: Tz = "Europe/Paris".parse().unwrap();
        let mut f = Folded::default();
        f.add(1, 0, 2.0, tz);
        f.add(1, 1_000, 4.0, tz);
        f.add(1, 3_600_000, 1.0, tz);
        assert_eq!(f.hours[&(1, 0)], Agg { count: 2, sum: 6.0, min: 2.0, max: 4.0 });
        assert_eq!(f.hours.len(), 2);
        assert_eq!(f.days.len(), 1);
    }
}
