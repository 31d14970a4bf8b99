//! From a decoded object to observations of one entity.
//!
//! A device's mappings say which field of the decoded object feeds which
//! attribute of its entity, in which unit, through which transform, within
//! which range. Each field is mapped on its own: a bad field yields a
//! [`FieldError`] and the others are still stored. A value outside its range
//! is refused, never clipped or stored silently: a filling level of 140 %
//! means a wrong container depth, and the administrator must see it.

use std::collections::BTreeMap;
use std::fmt;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use socle_domain::{Attribute, AttributeName, Entity, EntityId, Finite, Observation, ObservedValue, UnitCode};
use thiserror::Error;

use crate::expr::{ExprError, Expression};

/// Longest text observation kept, in characters.
pub const MAX_TEXT_CHARS: usize = 1024;
/// Longest field path, in bytes.
pub const MAX_PATH_LEN: usize = 256;
const MAX_PATH_STEPS: usize = 16;

/// A path into a decoded object: `Distance`, `sensors[0].value`, `a.b[2][1]`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct FieldPath {
    source: String,
    steps: Vec<Step>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Step {
    Key(String),
    Index(usize),
}

impl FieldPath {
    /// Keys are separated by `.`, array indices written `[n]`. Keys cannot
    /// contain `.`, `[` or `]` (no decoder we know uses them).
    pub fn parse(s: &str) -> Result<Self, MappingError> {
        let err = |why: &str| MappingError::Field { path: s.chars().take(80).collect(), reason: why.to_owned() };
        if s.is_empty() || s.len() > MAX_PATH_LEN {
            return Err(err("expected 1-256 characters"));
        }
        let mut steps = Vec::new();
        let mut rest = s;
        let mut first = true;
        loop {
            // A key runs to the next '.', '[' or the end.
            let key_end = rest.find(['.', '[']).unwrap_or(rest.len());
            let (key, after) = rest.split_at(key_end);
            if key.contains(']') || key.chars().any(char::is_control) {
                return Err(err("unexpected ']' or control character in a key"));
            }
            // Only the first step may be an index (`[0].value` on an array).
            if key.is_empty() && !(first && after.starts_with('[')) {
                return Err(err("empty key"));
            }
            if !key.is_empty() {
                steps.push(Step::Key(key.to_owned()));
            }
            first = false;
            rest = after;
            while let Some(inner) = rest.strip_prefix('[') {
                let (index, after) = inner.split_once(']').ok_or_else(|| err("unclosed '['"))?;
                let index = index.parse::<usize>().map_err(|_| err("array index must be a number"))?;
                steps.push(Step::Index(index));
                rest = after;
            }
            match rest.strip_prefix('.') {
                Some(r) => rest = r,
                None if rest.is_empty() => break,
                None => return Err(err("expected '.' or '[' after ']'")),
            }
        }
        if steps.len() > MAX_PATH_STEPS {
            return Err(err("more than 16 steps"));
        }
        Ok(Self { source: s.to_owned(), steps })
    }

    pub fn as_str(&self) -> &str {
        &self.source
    }

    /// The value at this path, if every step exists.
    pub fn get<'v>(&self, root: &'v Value) -> Option<&'v Value> {
        self.steps.iter().try_fold(root, |v, step| match step {
            Step::Key(k) => v.as_object()?.get(k),
            Step::Index(i) => v.as_array()?.get(*i),
        })
    }

    /// The value at this path in an object (a decoded payload).
    pub fn get_in<'v>(&self, object: &'v Map<String, Value>) -> Option<&'v Value> {
        let (Step::Key(first), rest) = self.steps.split_first()? else { return None };
        rest.iter().try_fold(object.get(first)?, |v, step| match step {
            Step::Key(k) => v.as_object()?.get(k),
            Step::Index(i) => v.as_array()?.get(*i),
        })
    }
}

impl TryFrom<String> for FieldPath {
    type Error = MappingError;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        Self::parse(&s)
    }
}
impl From<FieldPath> for String {
    fn from(p: FieldPath) -> Self {
        p.source
    }
}
impl fmt::Display for FieldPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.source)
    }
}

/// How a JSON value becomes an observed value.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ValueKind {
    /// JSON numbers are numeric; strings and booleans are text.
    #[default]
    Auto,
    /// Numeric: numbers, numeric strings (`"0.00"`, as Dragino sends
    /// temperatures) and booleans (1 / 0). Anything else is an error.
    Number,
    /// Text: strings, and numbers or booleans written as text.
    Text,
}

/// What is done to a number before it is stored.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "lowercase")]
pub enum Transform {
    #[default]
    Identity,
    /// `value * scale + offset` (mm to m: scale 0.001).
    Linear { scale: f64, offset: f64 },
    /// A formula over `value` and numeric properties of the entity.
    Expression { formula: Expression },
}

/// One field of a decoded object feeding one attribute.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Mapping {
    pub field: FieldPath,
    pub attribute: AttributeName,
    #[serde(default, rename = "unitCode", skip_serializing_if = "Option::is_none")]
    pub unit_code: Option<UnitCode>,
    #[serde(default)]
    pub kind: ValueKind,
    #[serde(default)]
    pub transform: Transform,
    /// Accepted range of the stored value (after the transform), inclusive.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub range: Option<(f64, f64)>,
}

/// A mapping that cannot work whatever the data.
#[derive(Debug, Clone, PartialEq, Error)]
pub enum MappingError {
    #[error("invalid field path {path:?}: {reason}")]
    Field { path: String, reason: String },
    #[error("invalid mapping: {0}")]
    Invalid(String),
    #[error(transparent)]
    Expression(#[from] ExprError),
}

impl Mapping {
    /// A plain mapping: identity, no unit, no range, automatic kind.
    pub fn new(field: FieldPath, attribute: AttributeName) -> Self {
        Self { field, attribute, unit_code: None, kind: ValueKind::Auto, transform: Transform::Identity, range: None }
    }

    /// Checks what can be checked without data: a text mapping has neither
    /// transform nor range; numbers in the mapping are finite; `min <= max`.
    pub fn validate(&self) -> Result<(), MappingError> {
        if self.kind == ValueKind::Text && (self.transform != Transform::Identity || self.range.is_some()) {
            return Err(MappingError::Invalid("a text mapping cannot have a transform or a range".into()));
        }
        if let Transform::Linear { scale, offset } = self.transform {
            if !scale.is_finite() || !offset.is_finite() {
                return Err(MappingError::Invalid("scale and offset must be finite numbers".into()));
            }
        }
        if let Some((min, max)) = self.range {
            if !min.is_finite() || !max.is_finite() || min > max {
                return Err(MappingError::Invalid(format!("range {min}..{max} is not a finite interval")));
            }
        }
        Ok(())
    }
}

/// The entity being fed and the instant of the values.
#[derive(Debug, Clone, PartialEq)]
pub struct MappingContext {
    pub entity: EntityId,
    pub observed_at: DateTime<Utc>,
    /// Numeric properties usable in expressions (`depth`, `mountingHeight`).
    pub properties: BTreeMap<String, f64>,
}

impl MappingContext {
    /// Takes the entity's numeric properties (a `Property` whose value is a
    /// JSON number) for expressions.
    pub fn for_entity(entity: &Entity, observed_at: DateTime<Utc>) -> Self {
        let properties = entity
            .attributes
            .iter()
            .filter_map(|(name, attr)| match attr {
                Attribute::Property { value: Value::Number(n), .. } => {
                    n.as_f64().filter(|f| f.is_finite()).map(|f| (name.to_string(), f))
                }
                _ => None,
            })
            .collect();
        Self { entity: entity.id.clone(), observed_at, properties }
    }
}

/// Why one field did not become an observation.
#[derive(Debug, Clone, PartialEq, Error)]
#[error("field `{field}` → {attribute}: {problem}")]
pub struct FieldError {
    pub field: String,
    pub attribute: AttributeName,
    pub problem: FieldProblem,
}

#[derive(Debug, Clone, PartialEq, Error)]
pub enum FieldProblem {
    #[error("absent from the decoded object")]
    Missing,
    #[error("expected {expected}, found {found}")]
    WrongType { expected: &'static str, found: &'static str },
    #[error("{0:?} is not a number")]
    NotANumber(String),
    #[error("value {value} is outside the accepted range {min}..{max}")]
    OutOfRange { value: f64, min: f64, max: f64 },
    #[error("the result is not a finite number")]
    NotFinite,
    #[error("text of {0} characters exceeds the limit of {MAX_TEXT_CHARS}")]
    TextTooLong(usize),
    #[error("{0}")]
    Expression(ExprError),
    #[error("{0}")]
    Mapping(MappingError),
}

/// What a decoded object produced: the observations to store and the fields that failed.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Mapped {
    pub observations: Vec<Observation>,
    pub errors: Vec<FieldError>,
}

/// Applies every mapping to a decoded object (a codec's `data`, a network
/// server's `object`, a generic message's `values`); one bad field does not
/// lose the others.
pub fn apply(mappings: &[Mapping], object: &Map<String, Value>, ctx: &MappingContext) -> Mapped {
    let mut out = Mapped::default();
    for m in mappings {
        match map_one(m, object, ctx) {
            Ok(value) => out.observations.push(Observation {
                entity: ctx.entity.clone(),
                attribute: m.attribute.clone(),
                observed_at: ctx.observed_at,
                value,
                unit_code: m.unit_code.clone(),
            }),
            Err(problem) => {
                out.errors.push(FieldError { field: m.field.to_string(), attribute: m.attribute.clone(), problem })
            }
        }
    }
    out
}

fn json_kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

fn map_one(m: &Mapping, object: &Map<String, Value>, ctx: &MappingContext) -> Result<ObservedValue, FieldProblem> {
    m.validate().map_err(FieldProblem::Mapping)?;
    let raw = match m.field.get_in(object) {
        None | Some(Value::Null) => return Err(FieldProblem::Missing),
        Some(v) => v,
    };
    let number = match (m.kind, raw) {
        (ValueKind::Text, Value::String(s)) => return text(s.clone()),
        (ValueKind::Text, Value::Number(n)) => return text(n.to_string()),
        (ValueKind::Text, Value::Bool(b)) => return text(b.to_string()),
        (ValueKind::Auto, Value::String(s)) if m.transform == Transform::Identity && m.range.is_none() => {
            return text(s.clone())
        }
        (ValueKind::Auto, Value::Bool(b)) if m.transform == Transform::Identity && m.range.is_none() => {
            return text(b.to_string())
        }
        (ValueKind::Auto | ValueKind::Number, Value::Number(n)) => n.as_f64().ok_or(FieldProblem::NotFinite)?,
        (ValueKind::Number, Value::String(s)) => {
            s.trim().parse::<f64>().map_err(|_| FieldProblem::NotANumber(s.chars().take(40).collect()))?
        }
        (ValueKind::Number, Value::Bool(b)) => f64::from(u8::from(*b)),
        (ValueKind::Text, other) => return Err(FieldProblem::WrongType { expected: "text", found: json_kind(other) }),
        // Auto with a transform or a range needs a number; `kind: number` reads numeric strings.
        (_, other) => return Err(FieldProblem::WrongType { expected: "a number", found: json_kind(other) }),
    };
    let value = match &m.transform {
        Transform::Identity => number,
        Transform::Linear { scale, offset } => number * scale + offset,
        Transform::Expression { formula } => {
            formula.eval(number, &|name| ctx.properties.get(name).copied()).map_err(FieldProblem::Expression)?
        }
    };
    let value = Finite::new(value).map_err(|_| FieldProblem::NotFinite)?.get();
    if let Some((min, max)) = m.range {
        if !(min..=max).contains(&value) {
            return Err(FieldProblem::OutOfRange { value, min, max });
        }
    }
    ObservedValue::number(value).map_err(|_| FieldProblem::NotFinite)
}

fn text(s: String) -> Result<ObservedValue, FieldProblem> {
    let n = s.chars().count();
    if n > MAX_TEXT_CHARS {
        return Err(FieldProblem::TextTooLong(n));
    }
    Ok(ObservedValue::Text(s))
}
