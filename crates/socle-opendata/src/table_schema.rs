//! Table Schema (frictionless, the format of schema.data.gouv.fr: SCDL subventions,
//! équipements, délibérations…) and the validation of an upload against it, as a list
//! of errors by row and column. The schema is attached to the dataset by its publisher:
//! Socle never fetches it from schema.data.gouv.fr at run time.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
pub struct TableSchema {
    pub fields: Vec<SchemaField>,
    #[serde(default = "default_missing", rename = "missingValues")]
    pub missing_values: Vec<String>,
}

fn default_missing() -> Vec<String> {
    vec![String::new()]
}

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
pub struct SchemaField {
    pub name: String,
    #[serde(rename = "type", default = "default_type")]
    pub field_type: String,
    #[serde(default)]
    pub format: Option<String>,
    #[serde(default)]
    pub constraints: Constraints,
    #[serde(default, rename = "trueValues")]
    pub true_values: Option<Vec<String>>,
    #[serde(default, rename = "falseValues")]
    pub false_values: Option<Vec<String>>,
}

fn default_type() -> String {
    "string".into()
}

#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
pub struct Constraints {
    #[serde(default)]
    pub required: bool,
    #[serde(default)]
    pub unique: bool,
    #[serde(default)]
    pub minimum: Option<serde_json::Value>,
    #[serde(default)]
    pub maximum: Option<serde_json::Value>,
    #[serde(default, rename = "minLength")]
    pub min_length: Option<usize>,
    #[serde(default, rename = "maxLength")]
    pub max_length: Option<usize>,
    #[serde(default)]
    pub pattern: Option<String>,
    #[serde(default, rename = "enum")]
    pub values: Option<Vec<serde_json::Value>>,
}

/// One problem: `row` counts data rows from 1 (the header is row 0); `column` is the
/// schema field's name.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ValidationError {
    pub row: usize,
    pub column: String,
    pub code: &'static str,
    pub message: String,
}

/// At most this many errors are reported (a wrong file would otherwise list them all).
pub const MAX_ERRORS: usize = 1_000;

impl TableSchema {
    pub fn parse(json: &serde_json::Value) -> Result<TableSchema, String> {
        let schema: TableSchema = serde_json::from_value(json.clone()).map_err(|e| e.to_string())?;
        for f in &schema.fields {
            if let Some(p) = &f.constraints.pattern {
                regex::Regex::new(&format!("^(?:{p})$")).map_err(|e| format!("{}: pattern: {e}", f.name))?;
            }
        }
        Ok(schema)
    }

    pub fn validate(&self, headers: &[String], rows: &[Vec<String>]) -> Vec<ValidationError> {
        let mut errors = Vec::new();
        let push = |errors: &mut Vec<ValidationError>, row, column: &str, code, message: String| {
            if errors.len() < MAX_ERRORS {
                errors.push(ValidationError { row, column: column.to_string(), code, message });
            }
        };
        let positions: Vec<Option<usize>> =
            self.fields.iter().map(|f| headers.iter().position(|h| h.trim() == f.name)).collect();
        for (f, p) in self.fields.iter().zip(&positions) {
            if p.is_none() {
                push(&mut errors, 0, &f.name, "missing-column", format!("column {} is missing", f.name));
            }
        }
        for h in headers {
            if !self.fields.iter().any(|f| f.name == h.trim()) {
                push(&mut errors, 0, h, "extra-column", format!("column {h} is not in the schema"));
            }
        }
        let patterns: Vec<Option<regex::Regex>> = self
            .fields
            .iter()
            .map(|f| f.constraints.pattern.as_ref().and_then(|p| regex::Regex::new(&format!("^(?:{p})$")).ok()))
            .collect();
        let mut seen: Vec<std::collections::HashSet<String>> = vec![Default::default(); self.fields.len()];
        for (r, row) in rows.iter().enumerate() {
            let row_number = r + 1;
            for (i, (f, p)) in self.fields.iter().zip(&positions).enumerate() {
                let Some(p) = p else { continue };
                let value = row.get(*p).map(|v| v.trim()).unwrap_or("");
                if self.missing_values.iter().any(|m| m == value) {
                    if f.constraints.required {
                        push(&mut errors, row_number, &f.name, "required", "a value is required".into());
                    }
                    continue;
                }
                if let Err(message) = check_type(f, value) {
                    push(&mut errors, row_number, &f.name, "type", message);
                    continue;
                }
                let c = &f.constraints;
                let length = value.chars().count();
                if c.min_length.is_some_and(|m| length < m) || c.max_length.is_some_and(|m| length > m) {
                    push(&mut errors, row_number, &f.name, "length", format!("length {length} is out of bounds"));
                }
                if let Some(re) = &patterns[i] {
                    if !re.is_match(value) {
                        push(
                            &mut errors,
                            row_number,
                            &f.name,
                            "pattern",
                            format!("{value:?} does not match the pattern"),
                        );
                    }
                }
                if let Some(values) = &c.values {
                    let ok = values.iter().any(|v| match v {
                        serde_json::Value::String(s) => s == value,
                        other => {
                            other.as_f64().zip(number(value)).is_some_and(|(a, b)| a == b)
                                || other.as_bool().map(|b| if b { "true" } else { "false" }) == Some(value)
                        }
                    });
                    if !ok {
                        push(&mut errors, row_number, &f.name, "enum", format!("{value:?} is not an allowed value"));
                    }
                }
                if let Some(n) = number(value) {
                    if c.minimum.as_ref().and_then(serde_json::Value::as_f64).is_some_and(|m| n < m)
                        || c.maximum.as_ref().and_then(serde_json::Value::as_f64).is_some_and(|m| n > m)
                    {
                        push(&mut errors, row_number, &f.name, "range", format!("{value} is out of range"));
                    }
                }
                if c.unique && !seen[i].insert(value.to_string()) {
                    push(&mut errors, row_number, &f.name, "unique", format!("{value:?} appears more than once"));
                }
            }
        }
        errors
    }
}

fn number(v: &str) -> Option<f64> {
    v.parse::<f64>().ok().filter(|n| n.is_finite())
}

fn check_type(f: &SchemaField, v: &str) -> Result<(), String> {
    let ok = match f.field_type.as_str() {
        "integer" => v.parse::<i64>().is_ok(),
        "number" => number(v).is_some(),
        "boolean" => {
            let trues =
                f.true_values.clone().unwrap_or_else(|| vec!["true".into(), "True".into(), "TRUE".into(), "1".into()]);
            let falses = f
                .false_values
                .clone()
                .unwrap_or_else(|| vec!["false".into(), "False".into(), "FALSE".into(), "0".into()]);
            trues.iter().chain(&falses).any(|t| t == v)
        }
        "date" => chrono::NaiveDate::parse_from_str(v, "%Y-%m-%d").is_ok(),
        "datetime" => chrono::DateTime::parse_from_rfc3339(v).is_ok(),
        "year" => v.len() == 4 && v.bytes().all(|b| b.is_ascii_digit()),
        "geopoint" => {
            let parts: Vec<&str> = v.split(',').map(str::trim).collect();
            parts.len() == 2 && parts.iter().all(|p| number(p).is_some())
        }
        _ => true,
    };
    if ok {
        Ok(())
    } else {
        Err(format!("{v:?} is not a valid {}", f.field_type))
    }
}
