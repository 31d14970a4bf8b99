//! The ODSQL functions known to Socle, checked when parsed so a misspelt or
//! mis-called function is an `ODSQLError` pointing at it, never a surprise later.

use super::ast::Expr;
use super::OdsqlError;

pub fn is_aggregate(name: &str) -> bool {
    matches!(name, "count" | "sum" | "avg" | "min" | "max" | "median" | "percentile")
}

/// (name, minimum arguments, maximum arguments).
const FUNCTIONS: &[(&str, usize, usize)] = &[
    ("count", 0, 1),
    ("sum", 1, 1),
    ("avg", 1, 1),
    ("min", 1, 1),
    ("max", 1, 1),
    ("median", 1, 1),
    ("percentile", 2, 2),
    ("year", 1, 1),
    ("month", 1, 1),
    ("day", 1, 1),
    ("hour", 1, 1),
    ("minute", 1, 1),
    ("second", 1, 1),
    ("date_format", 2, 2),
    ("now", 0, 0),
    ("lower", 1, 1),
    ("upper", 1, 1),
    ("length", 1, 1),
    ("range", 2, 2),
    ("search", 1, 8),
    ("startswith", 2, 2),
    ("within_distance", 3, 3),
    ("in_bbox", 5, 5),
    ("intersects", 2, 2),
    ("within", 2, 2),
    ("disjoint", 2, 2),
];

pub fn check_call(name: &str, args: &[Expr], position: usize) -> Result<(), OdsqlError> {
    let Some(&(_, min, max)) = FUNCTIONS.iter().find(|(n, _, _)| *n == name) else {
        return Err(OdsqlError::at(position, format!("unknown function '{name}'")));
    };
    if args.len() < min || args.len() > max {
        let expected = if min == max { format!("{min}") } else { format!("{min} to {max}") };
        return Err(OdsqlError::at(
            position,
            format!("function '{name}' takes {expected} argument(s), {} given", args.len()),
        ));
    }
    if is_aggregate(name) {
        if let Some(inner) = args.iter().find(|a| a.has_aggregate()) {
            return Err(OdsqlError::at(inner.position, "an aggregate cannot contain another aggregate"));
        }
    }
    Ok(())
}
