//! The SQL of an entity selection on SQLite: type, owners, audience, ids,
//! bounding box and conditions on attribute values (NGSI-LD `q` pushed
//! down). Placeholders are numbered (`?N`) so that one bound value can serve
//! both the filter and the "surely matches" column.

use rusqlite::types::Value as SqlValue;
use socle_domain::{Comparison, EntityFilter, Scalar, ValueTest};

use crate::rows::audience_condition;

/// `FROM … WHERE …` of a selection, whether each row surely satisfies the
/// attribute conditions (`sure`, an SQL expression), and the bound values.
pub(crate) struct Selected {
    pub from_where: String,
    pub sure: String,
    pub args: Vec<SqlValue>,
}

fn bind(args: &mut Vec<SqlValue>, v: SqlValue) -> String {
    args.push(v);
    format!("?{}", args.len())
}

fn op(c: Comparison) -> &'static str {
    match c {
        Comparison::Eq => "=",
        Comparison::Gt => ">",
        Comparison::Ge => ">=",
        Comparison::Lt => "<",
        Comparison::Le => "<=",
    }
}

/// A scalar comparison on the JSON text in `v`, true only for a value of the
/// scalar's own kind (so that SQLite's cross-type ordering never decides).
fn compare(v: &str, c: Comparison, s: &Scalar, args: &mut Vec<SqlValue>) -> String {
    let o = op(c);
    match s {
        Scalar::Number(n) => {
            let p = bind(args, SqlValue::Real(*n));
            format!("(json_type({v}) IN ('integer', 'real') AND json_extract({v}, '$') {o} {p})")
        }
        Scalar::Text(t) => {
            let p = bind(args, SqlValue::Text(t.clone()));
            format!("(json_type({v}) = 'text' AND json_extract({v}, '$') {o} {p})")
        }
        // false < true, as Rust orders booleans.
        Scalar::Bool(b) => format!("(CASE {v} WHEN 'true' THEN 1 WHEN 'false' THEN 0 END) {o} {}", i32::from(*b)),
    }
}

/// Values that may match without surely matching (see [`ValueTest`]).
fn maybe(a: &str, scalars: &[&Scalar]) -> String {
    let v = format!("{a}.value");
    // A LanguageProperty's texts are each compared (any language matches).
    let texts = format!("{a}.kind = 'LanguageProperty'");
    if scalars.iter().any(|s| matches!(s, Scalar::Number(_))) {
        format!("(json_type({v}) IN ('array', 'text') OR {texts})")
    } else {
        format!("(json_type({v}) = 'array' OR {texts})")
    }
}

/// (surely holds, may hold without surely holding) for one attribute row.
fn value_test(a: &str, test: &ValueTest, args: &mut Vec<SqlValue>) -> (String, String) {
    let v = format!("{a}.value");
    match test {
        ValueTest::Exists => ("1".into(), "0".into()),
        ValueTest::Compare(c, s) => (compare(&v, *c, s, args), maybe(a, &[s])),
        ValueTest::AnyOf(list) if list.is_empty() => ("0".into(), "0".into()),
        ValueTest::AnyOf(list) => {
            let any: Vec<String> = list.iter().map(|s| compare(&v, Comparison::Eq, s, args)).collect();
            (format!("({})", any.join(" OR ")), maybe(a, &list.iter().collect::<Vec<_>>()))
        }
        ValueTest::Between(lo, hi) => {
            let (l, h) = (compare(&v, Comparison::Ge, lo, args), compare(&v, Comparison::Le, hi, args));
            (format!("({l} AND {h})"), maybe(a, &[lo, hi]))
        }
    }
}

/// `None` when the filter can select nothing (an empty list of owners or ids).
pub(crate) fn selection(filter: &EntityFilter) -> Option<Selected> {
    let mut args = Vec::new();
    let mut from = String::from("FROM entities e");
    let mut conds: Vec<String> = Vec::new();
    if let Some(b) = filter.bbox {
        let [w, e, s, n] = [b.min_lon, b.max_lon, b.min_lat, b.max_lat].map(|x| bind(&mut args, SqlValue::Real(x)));
        from.push_str(&format!(
            " JOIN entities_bbox b ON b.seq = e.seq AND b.max_lon >= {w} AND b.min_lon <= {e} AND b.max_lat >= {s} AND b.min_lat <= {n}"
        ));
    }
    let mut sure = Vec::new();
    for (i, c) in filter.attributes.iter().enumerate() {
        let a = format!("a{i}");
        let name = bind(&mut args, SqlValue::Text(c.attribute.as_str().to_owned()));
        // (entity_seq, name) is the key: at most one row per join, no duplicates.
        from.push_str(&format!(" JOIN entity_attributes {a} ON {a}.entity_seq = e.seq AND {a}.name = {name}"));
        let (surely, may) = value_test(&a, &c.test, &mut args);
        conds.push(format!("({surely} OR {may})"));
        sure.push(surely);
    }
    if let Some(t) = &filter.entity_type {
        conds.push(format!("e.type = {}", bind(&mut args, SqlValue::Text(t.to_string()))));
    }
    if let Some(orgs) = &filter.organisations {
        if orgs.is_empty() {
            return None;
        }
        let marks: Vec<String> = orgs.iter().map(|o| bind(&mut args, SqlValue::Text(o.to_string()))).collect();
        conds.push(format!("e.organisation_id IN ({})", marks.join(", ")));
    }
    if let Some(ids) = &filter.ids {
        if ids.is_empty() {
            return None;
        }
        // One JSON array, not one placeholder per id (SQLite caps their number).
        let list = serde_json::to_string(&ids.iter().map(|i| i.as_str()).collect::<Vec<_>>()).unwrap_or_default();
        conds.push(format!("e.id IN (SELECT value FROM json_each({}))", bind(&mut args, SqlValue::Text(list))));
    }
    let mut k = args.len();
    if let Some((cond, values)) = audience_condition(&filter.audience, &mut || {
        k += 1;
        format!("?{k}")
    }) {
        conds.push(cond);
        args.extend(values.into_iter().map(SqlValue::Text));
    }
    let where_clause = if conds.is_empty() { String::new() } else { format!(" WHERE {}", conds.join(" AND ")) };
    let sure = if sure.is_empty() { "1".to_owned() } else { format!("COALESCE({}, 0)", sure.join(" AND ")) };
    Some(Selected { from_where: format!("{from}{where_clause}"), sure, args })
}
