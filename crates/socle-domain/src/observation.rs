//! Observations: one value of one attribute of one entity at one instant.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::entity::{AttributeName, EntityId, UnitCode};
use crate::DomainError;

/// A number that is neither NaN nor infinite, so sums and comparisons are sound.
#[derive(Debug, Clone, Copy, PartialEq, PartialOrd, Serialize, Deserialize)]
#[serde(try_from = "f64", into = "f64")]
pub struct Finite(f64);

impl Finite {
    pub fn new(v: f64) -> Result<Self, DomainError> {
        if v.is_finite() {
            Ok(Self(v))
        } else {
            Err(DomainError::NotFinite)
        }
    }
    pub fn get(self) -> f64 {
        self.0
    }
}
impl TryFrom<f64> for Finite {
    type Error = DomainError;
    fn try_from(v: f64) -> Result<Self, Self::Error> {
        Self::new(v)
    }
}
impl From<Finite> for f64 {
    fn from(v: Finite) -> f64 {
        v.0
    }
}

/// Numbers feed rollups; text (a status such as `on`, `fault`) is kept as history only.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum ObservedValue {
    Number(Finite),
    Text(String),
}

impl ObservedValue {
    pub fn number(v: f64) -> Result<Self, DomainError> {
        Finite::new(v).map(Self::Number)
    }
    pub fn to_json(&self) -> serde_json::Value {
        match self {
            Self::Number(n) => serde_json::Value::from(n.get()),
            Self::Text(t) => serde_json::Value::from(t.as_str()),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Observation {
    pub entity: EntityId,
    pub attribute: AttributeName,
    #[serde(rename = "observedAt")]
    pub observed_at: DateTime<Utc>,
    pub value: ObservedValue,
    #[serde(rename = "unitCode", skip_serializing_if = "Option::is_none", default)]
    pub unit_code: Option<UnitCode>,
}

/// What a batch write did. A point already stored (same series, same instant)
/// is a duplicate: it is not stored twice and does not count in rollups.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct WriteOutcome {
    pub stored: u64,
    pub duplicates: u64,
}

impl std::ops::AddAssign for WriteOutcome {
    fn add_assign(&mut self, o: Self) {
        self.stored += o.stored;
        self.duplicates += o.duplicates;
    }
}
