//! Values during evaluation: record fields read according to their declared type, and
//! literals. Comparisons between types coerce the way Opendatasoft does (a text compared
//! with a date is read as a date, with a number as a number).

use std::cmp::Ordering;

use chrono::{DateTime, NaiveDate, NaiveDateTime, TimeZone, Utc};
use chrono_tz::Tz;
use geo::Geometry;
use serde_json::Value as Json;

use crate::schema::FieldType;

#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Null,
    Bool(bool),
    Number(f64),
    Text(String),
    Date(DateTime<Utc>),
    Geo(Geometry<f64>),
    List(Vec<Value>),
    /// A `range()` bucket `[low, high[`, ordered by its lower bound.
    Bucket(Box<Value>, Box<Value>),
}

impl Value {
    pub fn from_json(json: &Json, field_type: FieldType, tz: Tz) -> Value {
        match json {
            Json::Null => Value::Null,
            Json::Array(items) if field_type != FieldType::GeoPoint2d => {
                Value::List(items.iter().map(|i| Value::from_json(i, field_type, tz)).collect())
            }
            _ => match field_type {
                FieldType::Date | FieldType::DateTime => match json {
                    Json::String(s) => parse_date(s, tz).map(Value::Date).unwrap_or(Value::Null),
                    _ => Value::Null,
                },
                FieldType::GeoPoint2d | FieldType::GeoShape => {
                    crate::geojson::geometry_from_json(json).map(Value::Geo).unwrap_or(Value::Null)
                }
                _ => Value::from_plain_json(json),
            },
        }
    }

    pub fn from_plain_json(json: &Json) -> Value {
        match json {
            Json::Null => Value::Null,
            Json::Bool(b) => Value::Bool(*b),
            Json::Number(n) => n.as_f64().map(Value::Number).unwrap_or(Value::Null),
            Json::String(s) => Value::Text(s.clone()),
            Json::Array(items) => Value::List(items.iter().map(Value::from_plain_json).collect()),
            Json::Object(_) => Value::Text(json.to_string()),
        }
    }

    pub fn to_json(&self) -> Json {
        match self {
            Value::Null => Json::Null,
            Value::Bool(b) => Json::Bool(*b),
            Value::Number(n) => number_json(*n),
            Value::Text(s) => Json::String(s.clone()),
            Value::Date(d) => Json::String(d.to_rfc3339_opts(chrono::SecondsFormat::Secs, false)),
            Value::Geo(g) => crate::geojson::geometry_to_json(g),
            Value::List(items) => Json::Array(items.iter().map(Value::to_json).collect()),
            Value::Bucket(low, high) => Json::String(format!("[{}, {}[", low.display_text(), high.display_text())),
        }
    }

    /// The text used by `like`, full-text search, facets and refinements.
    pub fn display_text(&self) -> String {
        match self {
            Value::Null => String::new(),
            Value::Bool(b) => b.to_string(),
            Value::Number(n) => format_number(*n),
            Value::Text(s) => s.clone(),
            Value::Date(d) => d.to_rfc3339_opts(chrono::SecondsFormat::Secs, false),
            Value::Geo(_) | Value::Bucket(..) => match self.to_json() {
                Json::String(s) => s,
                other => other.to_string(),
            },
            Value::List(items) => items.iter().map(Value::display_text).collect::<Vec<_>>().join(", "),
        }
    }

    pub fn as_number(&self) -> Option<f64> {
        match self {
            Value::Number(n) => Some(*n),
            Value::Text(s) => s.trim().parse().ok(),
            Value::Bool(b) => Some(if *b { 1.0 } else { 0.0 }),
            _ => None,
        }
    }

    pub fn is_truthy(&self) -> bool {
        match self {
            Value::Bool(b) => *b,
            Value::Null => false,
            Value::Number(n) => *n != 0.0,
            Value::List(items) => items.iter().any(Value::is_truthy),
            _ => true,
        }
    }
}

pub fn number_json(n: f64) -> Json {
    if n.fract() == 0.0 && n.abs() < 9.0e15 {
        Json::from(n as i64)
    } else {
        serde_json::Number::from_f64(n).map(Json::Number).unwrap_or(Json::Null)
    }
}

fn format_number(n: f64) -> String {
    if n.fract() == 0.0 && n.abs() < 9.0e15 {
        format!("{}", n as i64)
    } else {
        format!("{n}")
    }
}

/// Dates as Opendatasoft accepts them: RFC 3339, a date-time without zone (read in the
/// query's zone), or a partial date `2024`, `2024-05`, `2024-05-17` (also with `/`).
pub fn parse_date(text: &str, tz: Tz) -> Option<DateTime<Utc>> {
    let text = text.trim();
    if let Ok(d) = DateTime::parse_from_rfc3339(text) {
        return Some(d.with_timezone(&Utc));
    }
    let local = |naive: NaiveDateTime| tz.from_local_datetime(&naive).earliest().map(|d| d.with_timezone(&Utc));
    for format in ["%Y-%m-%dT%H:%M:%S", "%Y-%m-%d %H:%M:%S", "%Y-%m-%dT%H:%M", "%Y-%m-%d %H:%M"] {
        if let Ok(naive) = NaiveDateTime::parse_from_str(text, format) {
            return local(naive);
        }
    }
    let normalised = text.replace('/', "-");
    let parts: Vec<&str> = normalised.split('-').collect();
    let number = |i: usize, default: u32| -> Option<u32> {
        match parts.get(i) {
            Some(p) if !p.is_empty() && p.len() <= 4 && p.bytes().all(|b| b.is_ascii_digit()) => p.parse().ok(),
            Some(_) => None,
            None => Some(default),
        }
    };
    if parts.len() > 3 || parts.first().map(|p| p.len()) != Some(4) {
        return None;
    }
    let date = NaiveDate::from_ymd_opt(number(0, 0)? as i32, number(1, 1)?, number(2, 1)?)?;
    local(date.and_hms_opt(0, 0, 0)?)
}

/// Total order used for sorting and grouping (nulls first, then by type).
pub fn total_cmp(a: &Value, b: &Value) -> Ordering {
    fn rank(v: &Value) -> u8 {
        match v {
            Value::Null => 0,
            Value::Bool(_) => 1,
            Value::Number(_) => 2,
            Value::Date(_) => 3,
            Value::Text(_) => 4,
            Value::Bucket(..) => 5,
            Value::List(_) => 6,
            Value::Geo(_) => 7,
        }
    }
    match (a, b) {
        (Value::Bool(x), Value::Bool(y)) => x.cmp(y),
        (Value::Number(x), Value::Number(y)) => x.total_cmp(y),
        (Value::Date(x), Value::Date(y)) => x.cmp(y),
        (Value::Text(x), Value::Text(y)) => x.cmp(y),
        (Value::Bucket(x, _), Value::Bucket(y, _)) => total_cmp(x, y),
        (Value::List(x), Value::List(y)) => {
            for (p, q) in x.iter().zip(y) {
                let o = total_cmp(p, q);
                if o != Ordering::Equal {
                    return o;
                }
            }
            x.len().cmp(&y.len())
        }
        (Value::Geo(_), Value::Geo(_)) => a.display_text().cmp(&b.display_text()),
        _ => rank(a).cmp(&rank(b)),
    }
}

/// SQL-like comparison: `None` when either side is null or the two cannot be compared.
pub fn compare(a: &Value, b: &Value, tz: Tz) -> Option<Ordering> {
    match (a, b) {
        (Value::Null, _) | (_, Value::Null) => None,
        (Value::Number(x), Value::Number(y)) => x.partial_cmp(y),
        (Value::Text(x), Value::Text(y)) => Some(x.cmp(y)),
        (Value::Bool(x), Value::Bool(y)) => Some(x.cmp(y)),
        (Value::Date(x), Value::Date(y)) => Some(x.cmp(y)),
        (Value::Date(x), Value::Text(s)) => parse_date(s, tz).map(|y| x.cmp(&y)),
        (Value::Text(s), Value::Date(y)) => parse_date(s, tz).map(|x| x.cmp(y)),
        (Value::Number(x), Value::Text(_)) => b.as_number().and_then(|y| x.partial_cmp(&y)),
        (Value::Text(_), Value::Number(y)) => a.as_number().and_then(|x| x.partial_cmp(y)),
        (Value::Bool(x), Value::Text(s)) | (Value::Text(s), Value::Bool(x)) => {
            let parsed = s.parse::<bool>().ok()?;
            let o = x.cmp(&parsed);
            Some(if matches!(a, Value::Bool(_)) { o } else { o.reverse() })
        }
        _ => None,
    }
}
