//! Evaluation of an expression against one record. Never fails at run time: an
//! operation that makes no sense for the values at hand gives `null`, which no
//! predicate accepts (as in SQL). Static mistakes (unknown fields, bad literals) are
//! caught earlier by `Query::build`.

use std::cmp::Ordering;

use chrono::{DateTime, Datelike, Timelike, Utc};
use chrono_tz::Tz;
use geo::{Closest, ClosestPoint, Distance, Geometry, Haversine, Intersects, Point, Rect, Within};
use serde_json::{Map, Value as Json};

use super::ast::{BinaryOp, Bound, Expr, ExprKind, IntervalUnit, Literal};
use super::value::{compare, parse_date, Value};
use crate::schema::{FieldType, Schema};

pub type Record = Map<String, Json>;

pub struct Context<'a> {
    pub schema: &'a Schema,
    pub tz: Tz,
    pub now: DateTime<Utc>,
}

impl Context<'_> {
    pub fn field(&self, record: &Record, name: &str) -> Value {
        let Some(json) = record.get(name) else {
            return Value::Null;
        };
        match self.schema.type_of(name) {
            Some(t) => Value::from_json(json, t, self.tz),
            None => Value::from_plain_json(json),
        }
    }

    pub fn literal(&self, literal: &Literal) -> Value {
        match literal {
            Literal::Null => Value::Null,
            Literal::Bool(b) => Value::Bool(*b),
            Literal::Number(n) | Literal::Distance(n) => Value::Number(*n),
            Literal::Text(s) => Value::Text(s.clone()),
            Literal::Date(s) => parse_date(s, self.tz).map(Value::Date).unwrap_or(Value::Null),
            Literal::Geom(s) => parse_geom(s).map(Value::Geo).unwrap_or(Value::Null),
            Literal::Interval(..) => Value::Null,
        }
    }

    /// A predicate in `where`: a bare text literal there is a full-text search.
    pub fn test(&self, expr: &Expr, record: &Record) -> bool {
        match &expr.kind {
            ExprKind::Literal(Literal::Text(text)) => self.search(record, None, text),
            ExprKind::Binary(BinaryOp::And, a, b) => self.test(a, record) && self.test(b, record),
            ExprKind::Binary(BinaryOp::Or, a, b) => self.test(a, record) || self.test(b, record),
            ExprKind::Not(inner) => !self.test(inner, record),
            _ => self.eval(expr, record).is_truthy(),
        }
    }

    pub fn eval(&self, expr: &Expr, record: &Record) -> Value {
        match &expr.kind {
            ExprKind::Literal(l) => self.literal(l),
            ExprKind::Field(name) => self.field(record, name),
            ExprKind::Star => Value::Null,
            ExprKind::Not(inner) => Value::Bool(!self.test(inner, record)),
            ExprKind::Neg(inner) => match self.eval(inner, record).as_number() {
                Some(n) => Value::Number(-n),
                None => Value::Null,
            },
            ExprKind::Binary(op, a, b) => match op {
                BinaryOp::And | BinaryOp::Or => Value::Bool(self.test(expr, record)),
                _ => self.binary(*op, self.eval(a, record), self.eval(b, record)),
            },
            ExprKind::Like { value, pattern, negated } => {
                let pattern = self.eval(pattern, record).display_text();
                let matched = any_value(&self.eval(value, record), |v| {
                    !matches!(v, Value::Null) && like(&v.display_text(), &pattern)
                });
                Value::Bool(matched != *negated)
            }
            ExprKind::IsNull { value, negated } => {
                let v = self.eval(value, record);
                let null = matches!(v, Value::Null) || matches!(&v, Value::List(items) if items.is_empty());
                Value::Bool(null != *negated)
            }
            ExprKind::InRange { value, low, high, negated } => {
                let check = |v: &Value, bound: &Option<Bound>, low_side: bool| -> bool {
                    let Some(bound) = bound else { return true };
                    let b = self.eval(&bound.value, record);
                    match compare(v, &b, self.tz) {
                        Some(Ordering::Equal) => bound.inclusive,
                        Some(Ordering::Greater) => low_side,
                        Some(Ordering::Less) => !low_side,
                        None => false,
                    }
                };
                let matched = any_value(&self.eval(value, record), |v| check(v, low, true) && check(v, high, false));
                Value::Bool(matched != *negated)
            }
            ExprKind::InList { value, items, negated } => {
                let candidates: Vec<Value> = items.iter().map(|i| self.eval(i, record)).collect();
                let matched = any_value(&self.eval(value, record), |v| {
                    candidates.iter().any(|c| compare(v, c, self.tz) == Some(Ordering::Equal))
                });
                Value::Bool(matched != *negated)
            }
            ExprKind::Call { name, args } => self.call(name, args, record),
        }
    }

    fn binary(&self, op: BinaryOp, a: Value, b: Value) -> Value {
        let cmp = |want: fn(Ordering) -> bool| -> Value {
            // A multivalued field matches when one of its values does.
            let matched = any_value(&a, |x| compare(x, &b, self.tz).map(want).unwrap_or(false));
            Value::Bool(matched)
        };
        match op {
            BinaryOp::Eq => cmp(|o| o == Ordering::Equal),
            BinaryOp::Ne => {
                if matches!(a, Value::Null) || matches!(b, Value::Null) {
                    Value::Bool(false)
                } else {
                    Value::Bool(!matches!(cmp(|o| o == Ordering::Equal), Value::Bool(true)))
                }
            }
            BinaryOp::Lt => cmp(|o| o == Ordering::Less),
            BinaryOp::Le => cmp(|o| o != Ordering::Greater),
            BinaryOp::Gt => cmp(|o| o == Ordering::Greater),
            BinaryOp::Ge => cmp(|o| o != Ordering::Less),
            BinaryOp::Add | BinaryOp::Sub | BinaryOp::Mul | BinaryOp::Div | BinaryOp::Rem => {
                let (Some(x), Some(y)) = (a.as_number(), b.as_number()) else {
                    return Value::Null;
                };
                let r = match op {
                    BinaryOp::Add => x + y,
                    BinaryOp::Sub => x - y,
                    BinaryOp::Mul => x * y,
                    BinaryOp::Div if y != 0.0 => x / y,
                    BinaryOp::Rem if y != 0.0 => x % y,
                    _ => return Value::Null,
                };
                if r.is_finite() {
                    Value::Number(r)
                } else {
                    Value::Null
                }
            }
            BinaryOp::And | BinaryOp::Or => Value::Null,
        }
    }

    fn call(&self, name: &str, args: &[Expr], record: &Record) -> Value {
        let arg = |i: usize| args.get(i).map(|a| self.eval(a, record)).unwrap_or(Value::Null);
        let date_part = |f: fn(&DateTime<Tz>) -> u32| match arg(0) {
            Value::Date(d) => Value::Number(f64::from(f(&d.with_timezone(&self.tz)))),
            _ => Value::Null,
        };
        match name {
            "year" => match arg(0) {
                Value::Date(d) => Value::Number(f64::from(d.with_timezone(&self.tz).year())),
                _ => Value::Null,
            },
            "month" => date_part(|d| d.month()),
            "day" => date_part(|d| d.day()),
            "hour" => date_part(|d| d.hour()),
            "minute" => date_part(|d| d.minute()),
            "second" => date_part(|d| d.second()),
            "date_format" => match (arg(0), arg(1)) {
                (Value::Date(d), Value::Text(pattern)) => {
                    Value::Text(format_date(&d.with_timezone(&self.tz), &pattern))
                }
                _ => Value::Null,
            },
            "now" => Value::Date(self.now),
            "lower" => text_fn(arg(0), |s| s.to_lowercase()),
            "upper" => text_fn(arg(0), |s| s.to_uppercase()),
            "length" => match arg(0) {
                Value::Text(s) => Value::Number(s.chars().count() as f64),
                _ => Value::Null,
            },
            "range" => self.range(arg(0), args.get(1), record),
            "search" => {
                let (fields, text) = args.split_at(args.len().saturating_sub(1));
                let text = text.first().map(|t| self.eval(t, record).display_text()).unwrap_or_default();
                let names: Vec<&str> = fields
                    .iter()
                    .filter_map(|f| match &f.kind {
                        ExprKind::Field(n) => Some(n.as_str()),
                        _ => None,
                    })
                    .collect();
                let scope = (!names.is_empty()).then_some(names.as_slice());
                Value::Bool(self.search(record, scope, &text))
            }
            "startswith" => {
                let prefix = normalise(&arg(1).display_text());
                Value::Bool(any_value(&arg(0), |v| normalise(&v.display_text()).starts_with(&prefix)))
            }
            "within_distance" => match (arg(0), arg(1), arg(2).as_number()) {
                (Value::Geo(g), Value::Geo(Geometry::Point(center)), Some(distance)) => {
                    Value::Bool(distance_to(&g, center).is_some_and(|d| d <= distance))
                }
                _ => Value::Bool(false),
            },
            "in_bbox" => {
                let n: Vec<Option<f64>> = (1..5).map(|i| arg(i).as_number()).collect();
                match (arg(0), n.as_slice()) {
                    (Value::Geo(g), [Some(lat1), Some(lon1), Some(lat2), Some(lon2)]) => {
                        let rect = Rect::new((*lon1, *lat1), (*lon2, *lat2));
                        Value::Bool(g.intersects(&rect))
                    }
                    _ => Value::Bool(false),
                }
            }
            "intersects" | "within" | "disjoint" => match (arg(0), arg(1)) {
                (Value::Geo(a), Value::Geo(b)) => Value::Bool(match name {
                    "intersects" => a.intersects(&b),
                    "within" => a.is_within(&b),
                    _ => !a.intersects(&b),
                }),
                _ => Value::Bool(false),
            },
            // Aggregates outside a grouping context have no value per record.
            _ => Value::Null,
        }
    }

    fn range(&self, value: Value, step: Option<&Expr>, record: &Record) -> Value {
        let Some(step) = step else {
            return Value::Null;
        };
        match (&value, &step.kind) {
            (Value::Date(d), ExprKind::Literal(Literal::Interval(n, unit))) => {
                date_bucket(&d.with_timezone(&self.tz), *n, *unit)
                    .map(|(low, high)| Value::Bucket(Box::new(Value::Date(low)), Box::new(Value::Date(high))))
                    .unwrap_or(Value::Null)
            }
            _ => match (value.as_number(), self.eval(step, record).as_number()) {
                (Some(v), Some(s)) if s > 0.0 && s.is_finite() => {
                    let low = (v / s).floor() * s;
                    Value::Bucket(Box::new(Value::Number(low)), Box::new(Value::Number(low + s)))
                }
                _ => Value::Null,
            },
        }
    }

    /// Every word of `text` must occur (accent- and case-insensitively) in the record's
    /// text values, or in the `scope` fields only.
    pub fn search(&self, record: &Record, scope: Option<&[&str]>, text: &str) -> bool {
        let mut haystack = String::new();
        for (name, json) in record {
            if scope.is_some_and(|s| !s.contains(&name.as_str())) {
                continue;
            }
            if matches!(self.schema.type_of(name), Some(FieldType::GeoPoint2d | FieldType::GeoShape)) {
                continue;
            }
            collect_text(json, &mut haystack);
        }
        let haystack = normalise(&haystack);
        normalise(text).split_whitespace().all(|word| haystack.contains(word))
    }
}

fn collect_text(json: &Json, out: &mut String) {
    match json {
        Json::String(s) => {
            out.push_str(s);
            out.push(' ');
        }
        Json::Number(n) => {
            out.push_str(&n.to_string());
            out.push(' ');
        }
        Json::Array(items) => items.iter().for_each(|i| collect_text(i, out)),
        _ => {}
    }
}

fn any_value(v: &Value, mut f: impl FnMut(&Value) -> bool) -> bool {
    match v {
        Value::List(items) => items.iter().any(f),
        other => f(other),
    }
}

fn text_fn(v: Value, f: fn(&str) -> String) -> Value {
    match v {
        Value::Null => Value::Null,
        other => Value::Text(f(&other.display_text())),
    }
}

/// Lower case without diacritics, so `ecole` finds `École`.
pub fn normalise(text: &str) -> String {
    text.chars()
        .flat_map(char::to_lowercase)
        .map(|c| match c {
            'à' | 'â' | 'ä' | 'á' | 'ã' => 'a',
            'é' | 'è' | 'ê' | 'ë' => 'e',
            'î' | 'ï' | 'í' => 'i',
            'ô' | 'ö' | 'ó' | 'õ' => 'o',
            'ù' | 'û' | 'ü' | 'ú' => 'u',
            'ç' => 'c',
            'ÿ' => 'y',
            'œ' => 'o',
            other => other,
        })
        .collect()
}

/// `like`: `%` or `*` stand for any run of characters, `_` for one; case- and
/// accent-insensitive. A pattern without wildcard matches when contained.
pub fn like(text: &str, pattern: &str) -> bool {
    let text: Vec<char> = normalise(text).chars().collect();
    let pattern: Vec<char> = normalise(pattern).chars().collect();
    if !pattern.iter().any(|c| matches!(c, '%' | '*' | '_')) {
        let needle: String = pattern.iter().collect();
        return text.iter().collect::<String>().contains(&needle);
    }
    // Iterative wildcard matching with backtracking on the last star: linear memory,
    // no recursion.
    let (mut t, mut p) = (0usize, 0usize);
    let mut star: Option<(usize, usize)> = None;
    while t < text.len() {
        if p < pattern.len() && (pattern[p] == '_' || pattern[p] == text[t]) {
            t += 1;
            p += 1;
        } else if p < pattern.len() && matches!(pattern[p], '%' | '*') {
            star = Some((p, t));
            p += 1;
        } else if let Some((sp, st)) = star {
            p = sp + 1;
            t = st + 1;
            star = Some((sp, st + 1));
        } else {
            return false;
        }
    }
    while p < pattern.len() && matches!(pattern[p], '%' | '*') {
        p += 1;
    }
    p == pattern.len()
}

fn distance_to(g: &Geometry<f64>, center: Point<f64>) -> Option<f64> {
    match g.closest_point(&center) {
        Closest::Intersection(_) => Some(0.0),
        Closest::SinglePoint(p) => Some(Haversine.distance(p, center)),
        Closest::Indeterminate => None,
    }
}

pub fn parse_geom(text: &str) -> Option<Geometry<f64>> {
    let trimmed = text.trim();
    if trimmed.starts_with('{') {
        let json: Json = serde_json::from_str(trimmed).ok()?;
        return crate::geojson::geometry_from_json(&json);
    }
    use std::str::FromStr;
    let parsed = wkt::Wkt::<f64>::from_str(trimmed).ok()?;
    Geometry::try_from(parsed).ok()
}

fn date_bucket(d: &DateTime<Tz>, n: u32, unit: IntervalUnit) -> Option<(DateTime<Utc>, DateTime<Utc>)> {
    use chrono::{Duration, NaiveDate, TimeZone};
    let tz = d.timezone();
    let n = i64::from(n.max(1));
    let at = |date: NaiveDate| -> Option<DateTime<Utc>> {
        tz.from_local_datetime(&date.and_hms_opt(0, 0, 0)?).earliest().map(|x| x.with_timezone(&Utc))
    };
    match unit {
        IntervalUnit::Second | IntervalUnit::Minute | IntervalUnit::Hour => {
            let size = n * match unit {
                IntervalUnit::Second => 1,
                IntervalUnit::Minute => 60,
                _ => 3600,
            };
            let ts = d.timestamp();
            let low = ts.div_euclid(size) * size;
            Some((DateTime::from_timestamp(low, 0)?, DateTime::from_timestamp(low + size, 0)?))
        }
        IntervalUnit::Day | IntervalUnit::Week => {
            let days = if unit == IntervalUnit::Week { 7 * n } else { n };
            // Weeks start on Monday: 1970-01-05 was one.
            let epoch = NaiveDate::from_ymd_opt(1970, 1, 5)?;
            let offset = (d.date_naive() - epoch).num_days().div_euclid(days) * days;
            let low = epoch + Duration::days(offset);
            Some((at(low)?, at(low + Duration::days(days))?))
        }
        IntervalUnit::Month | IntervalUnit::Year => {
            let months = if unit == IntervalUnit::Year { 12 * n } else { n };
            let index = i64::from(d.year()) * 12 + i64::from(d.month0());
            let low = index.div_euclid(months) * months;
            let month_start =
                |i: i64| NaiveDate::from_ymd_opt(i.div_euclid(12) as i32, (i.rem_euclid(12) + 1) as u32, 1);
            Some((at(month_start(low)?)?, at(month_start(low + months)?)?))
        }
    }
}

/// Opendatasoft's `date_format` patterns (Java style: `yyyy-MM-dd HH:mm`).
fn format_date(d: &DateTime<Tz>, pattern: &str) -> String {
    let mut out = String::new();
    let chars: Vec<char> = pattern.chars().collect();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        let mut run = 1;
        while i + run < chars.len() && chars[i + run] == c {
            run += 1;
        }
        let piece = match (c, run) {
            ('y', 2) => format!("{:02}", d.year().rem_euclid(100)),
            ('y', _) => format!("{:04}", d.year()),
            ('M', 1) => d.month().to_string(),
            ('M', 2) => format!("{:02}", d.month()),
            ('M', _) => d.format("%B").to_string(),
            ('d', 1) => d.day().to_string(),
            ('d', _) => format!("{:02}", d.day()),
            ('H', 1) => d.hour().to_string(),
            ('H', _) => format!("{:02}", d.hour()),
            ('m', 1) => d.minute().to_string(),
            ('m', _) => format!("{:02}", d.minute()),
            ('s', _) => format!("{:02}", d.second()),
            ('E', _) => d.format("%A").to_string(),
            ('w', _) => format!("{:02}", d.iso_week().week()),
            _ => std::iter::repeat_n(c, run).collect(),
        };
        out.push_str(&piece);
        i += run;
    }
    out
}
