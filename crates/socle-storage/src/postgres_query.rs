//! The SQL of an entity selection on PostgreSQL: type, owners, audience,
//! ids, bounding box and conditions on attribute values (NGSI-LD `q` pushed
//! down). A bound value may serve both the filter and the "surely matches"
//! column (`$n` twice).

use socle_domain::{Comparison, EntityFilter, Scalar, ValueTest};
use tokio_postgres::types::ToSql;

use crate::rows::audience_condition;

pub(crate) type Arg = Box<dyn ToSql + Sync + Send>;

/// `FROM … WHERE …` of a selection, whether each row surely satisfies the
/// attribute conditions (`sure`, an SQL expression), and the bound values.
pub(crate) struct Selected {
    pub from_where: String,
    pub sure: String,
    pub args: Vec<Arg>,
}

fn bind(args: &mut Vec<Arg>, v: Arg) -> String {
    args.push(v);
    format!("${}", args.len())
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

/// JSON texts are written by serde_json (compact, no leading space), so
/// their first character tells their kind without parsing them as jsonb,
/// which was most of the time of a query over 100,000 entities.
const NUMBER_START: &str = "('-', '0', '1', '2', '3', '4', '5', '6', '7', '8', '9')";

/// A scalar comparison on the JSON text in `v`, NULL unless the value is of
/// the scalar's own kind (CASE: casting another kind would fail).
fn compare(v: &str, c: Comparison, s: &Scalar, args: &mut Vec<Arg>) -> String {
    let o = op(c);
    match s {
        Scalar::Number(n) => {
            let p = bind(args, Box::new(*n));
            format!("((CASE WHEN left({v}, 1) IN {NUMBER_START} THEN {v}::float8 END) {o} {p}::float8)")
        }
        // serde_json writes a string one way: equal strings, equal texts.
        Scalar::Text(t) if c == Comparison::Eq => {
            let p = bind(args, Box::new(serde_json::Value::from(t.as_str()).to_string()));
            format!("({v} = {p}::text)")
        }
        Scalar::Text(t) => {
            let p = bind(args, Box::new(t.clone()));
            // COLLATE "C": code point order, as Rust compares strings.
            format!("((CASE WHEN left({v}, 1) = '\"' THEN {v}::jsonb #>> '{{}}' END) COLLATE \"C\" {o} {p}::text)")
        }
        Scalar::Bool(b) => format!("((CASE {v} WHEN 'true' THEN 1 WHEN 'false' THEN 0 END) {o} {})", i32::from(*b)),
    }
}

/// Values that may match without surely matching (see [`ValueTest`]).
fn maybe(a: &str, scalars: &[&Scalar]) -> String {
    let v = format!("{a}.value");
    // A LanguageProperty's texts are each compared (any language matches).
    let texts = format!("{a}.kind = 'LanguageProperty'");
    if scalars.iter().any(|s| matches!(s, Scalar::Number(_))) {
        format!("(left({v}, 1) IN ('[', '\"') OR {texts})")
    } else {
        format!("(left({v}, 1) = '[' OR {texts})")
    }
}

/// (surely holds, may hold without surely holding) for one attribute row.
fn value_test(a: &str, test: &ValueTest, args: &mut Vec<Arg>) -> (String, String) {
    let v = format!("{a}.value");
    match test {
        ValueTest::Exists => ("TRUE".into(), "FALSE".into()),
        ValueTest::Compare(c, s) => (compare(&v, *c, s, args), maybe(a, &[s])),
        ValueTest::AnyOf(list) if list.is_empty() => ("FALSE".into(), "FALSE".into()),
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
    let mut args: Vec<Arg> = Vec::new();
    let mut from = String::from("FROM entities e");
    let mut conds: Vec<String> = Vec::new();
    let mut sure = Vec::new();
    for (i, c) in filter.attributes.iter().enumerate() {
        let a = format!("a{i}");
        let name = bind(&mut args, Box::new(c.attribute.as_str().to_owned()));
        // (entity_seq, name) is the key: at most one row per join, no duplicates.
        from.push_str(&format!(" JOIN entity_attributes {a} ON {a}.entity_seq = e.seq AND {a}.name = {name}"));
        let (surely, may) = value_test(&a, &c.test, &mut args);
        conds.push(format!("({surely} OR {may})"));
        sure.push(surely);
    }
    if let Some(b) = filter.bbox {
        let [w, s, e, n] = [b.min_lon, b.min_lat, b.max_lon, b.max_lat].map(|x| bind(&mut args, Box::new(x)));
        conds.push(format!("e.bbox && box(point({w}::float8, {s}::float8), point({e}::float8, {n}::float8))"));
    }
    if let Some(t) = &filter.entity_type {
        conds.push(format!("e.type = {}", bind(&mut args, Box::new(t.to_string()))));
    }
    if let Some(orgs) = &filter.organisations {
        if orgs.is_empty() {
            return None;
        }
        let list: Vec<String> = orgs.iter().map(ToString::to_string).collect();
        conds.push(format!("e.organisation_id = ANY({})", bind(&mut args, Box::new(list))));
    }
    if let Some(ids) = &filter.ids {
        if ids.is_empty() {
            return None;
        }
        let list: Vec<String> = ids.iter().map(ToString::to_string).collect();
        conds.push(format!("e.id = ANY({})", bind(&mut args, Box::new(list))));
    }
    let mut k = args.len();
    if let Some((cond, values)) = audience_condition(&filter.audience, &mut || {
        k += 1;
        format!("${k}")
    }) {
        conds.push(cond);
        args.extend(values.into_iter().map(|v| Box::new(v) as Arg));
    }
    let where_clause = if conds.is_empty() { String::new() } else { format!(" WHERE {}", conds.join(" AND ")) };
    let sure = if sure.is_empty() { "TRUE".to_owned() } else { format!("COALESCE({}, FALSE)", sure.join(" AND ")) };
    Some(Selected { from_where: format!("{from}{where_clause}"), sure, args })
}
